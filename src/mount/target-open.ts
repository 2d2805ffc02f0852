// A target path opened without following a symlink anywhere the kubelet made
// it: a symlinked target (or parent) would put the mount, or an unmount, on
// whatever it points to (/etc, another pod's volume). The directory is opened
// with O_PATH, which reads nothing and so never calls into a FUSE server, and
// checked through /proc/self/fd, which names the very inode opened; the
// mount commands then act on that fd (commands.ts *At), leaving no window for
// a swap between check and mount.

import { constants } from 'node:fs';
import { lstat, mkdir, open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { errors, type DriverError } from '../errors.js';

/** Linux's O_PATH (not in fs.constants); the same value on x86_64 and arm64. */
const O_PATH = 0o10000000;
const DIR_NOFOLLOW = O_PATH | constants.O_DIRECTORY | constants.O_NOFOLLOW;

const code = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? '';
/** What a syscall on a FUSE mount whose server is gone fails with. */
const isDeadMount = (e: unknown): boolean => ['ENOTCONN', 'ECONNABORTED', 'ESTALE', 'EIO'].includes(code(e));

const symlinked = (target: string, what: string): DriverError =>
  errors.invalidArgument(`target path ${target}: ${what} is a symbolic link or not a directory; refusing to follow it`);

/**
 * Refuses a target that is a symlink, or whose parent is reached through one
 * (its real path differs from `real`, the target's canonical path with the
 * kubelet root resolved). Nothing is followed; a missing target passes.
 */
export async function refuseSymlinkedTarget(target: string, real: string): Promise<void> {
  try {
    if ((await lstat(target)).isSymbolicLink()) throw symlinked(target, 'it');
  } catch (e) {
    if (code(e) === 'ENOENT' || isDeadMount(e)) {
      // Missing, or a dead FUSE mount (a mount point is no symlink): the parent still counts.
    } else throw e;
  }
  let parent: string;
  try {
    parent = await realpath(dirname(target));
  } catch (e) {
    if (code(e) === 'ENOENT') return;
    throw e;
  }
  if (parent !== dirname(real)) throw symlinked(target, `its parent (really ${parent})`);
}

/** Creates the target directory (its parent first, as kubelet does), then checks it. */
export async function makeTargetDir(target: string, real: string): Promise<void> {
  await mkdir(dirname(target), { recursive: true, mode: 0o750 });
  await refuseSymlinkedTarget(target, real);
  await mkdir(target, { mode: 0o750 }).catch((e: unknown) => {
    if (code(e) !== 'EEXIST') throw e;
  });
}

/**
 * Opens the target directory with O_PATH, following no symlink in its last
 * two components, and checks through /proc/self/fd that it is `real`. The
 * caller closes the handle.
 */
export async function openTargetDir(target: string, real: string): Promise<FileHandle> {
  const parent = await open(dirname(target), DIR_NOFOLLOW).catch((e: unknown) => {
    throw ['ELOOP', 'ENOTDIR'].includes(code(e)) ? symlinked(target, 'its parent') : e;
  });
  try {
    const at = await readlink(`/proc/self/fd/${parent.fd}`);
    if (at !== dirname(real)) throw symlinked(target, `its parent (really ${at})`);
    const dir = await open(`/proc/self/fd/${parent.fd}/${basename(target)}`, DIR_NOFOLLOW).catch((e: unknown) => {
      throw ['ELOOP', 'ENOTDIR'].includes(code(e)) ? symlinked(target, 'it') : e;
    });
    const seen = await readlink(`/proc/self/fd/${dir.fd}`).catch(async (e: unknown) => {
      await dir.close();
      throw e;
    });
    if (seen !== real) {
      await dir.close();
      throw symlinked(target, `it (really ${seen})`);
    }
    return dir;
  } finally {
    await parent.close();
  }
}
