// Whether a path is a mount point, and whether that mount is dead, without
// reading the whole mount table (which grows with every volume).

import { stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';

export type MountPointState = 'missing' | 'plain' | 'mounted' | 'stale';

/** What a syscall on a FUSE mount whose server is gone fails with. */
const isDeadMountError = (e: unknown): boolean =>
  ['ENOTCONN', 'ECONNABORTED', 'ESTALE', 'EIO'].includes((e as NodeJS.ErrnoException).code ?? '');

/**
 * A different device than its parent means mounted; ENOTCONN and friends
 * mean a FUSE mount whose server is gone. Async (threadpool), so it is safe
 * on our own mounts. `at`: where to look at the directory itself, e.g. a
 * /proc/self/fd link of a descriptor opened without following symlinks.
 */
export async function probeMountPoint(path: string, at = path): Promise<MountPointState> {
  let st;
  try {
    st = await stat(at);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    if (isDeadMountError(e)) return 'stale';
    throw e;
  }
  const parent = await stat(dirname(path));
  if (st.dev === parent.dev && st.ino !== parent.ino) return 'plain';
  // A FUSE mount's stat is answered from the kernel's cached attributes for a
  // while after its server died; statfs always asks the server.
  try {
    await statfs(at);
  } catch (e) {
    if (isDeadMountError(e)) return 'stale';
    throw e;
  }
  return 'mounted';
}
