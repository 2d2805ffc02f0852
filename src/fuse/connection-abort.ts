// Ends a FUSE connection from the server's side whatever still mounts it,
// through the kernel's fusectl file /sys/fs/fuse/connections/<id>/abort.
//
// Why: a connection lives as long as any mount of it, in any mount namespace
// (a pod's bind mount keeps it after our own unmount), and a threadpool
// thread blocked in read(2) on /dev/fuse is only woken by a request or the
// connection's end: closing our descriptor does not wake it. Aborting makes
// every blocked read return ENODEV, fails the requests in flight with
// ECONNABORTED and every later one with ENOTCONN.
//
// Nothing here touches the mount itself (mountinfo, sysfs, child processes),
// so it is safe in the process serving it.

import { spawn } from 'node:child_process';
import { access, readFile, writeFile } from 'node:fs/promises';

export const FUSECTL_DIR = '/sys/fs/fuse/connections';

/** How the abort was made; 'failed' carries why, in `error`. */
export type AbortMethod = 'fusectl' | 'private-namespace' | 'mounted-fusectl' | 'failed';

export interface AbortResult {
  readonly method: AbortMethod;
  readonly error?: string;
}

/** mountinfo escapes space, tab, newline and backslash in paths as octal. */
const escapeMountPath = (p: string): string => p.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);

/**
 * The connection id (the minor device number of the mount) of the FUSE
 * mount at `mountDir` in this process's mount namespace, from mountinfo
 * rather than stat: no request to the server, and no mistaking the parent
 * directory for the mount when it is already gone. Null when not mounted.
 */
export async function fuseConnectionId(mountDir: string, mountinfo = '/proc/self/mountinfo'): Promise<number | null> {
  const want = escapeMountPath(mountDir);
  let id: number | null = null;
  for (const line of (await readFile(mountinfo, 'utf8')).split('\n')) {
    const f = line.split(' ');
    const fsType = line.slice(line.indexOf(' - ') + 3).split(' ')[0] ?? '';
    // The last entry wins: it is the one on top of a stack of mounts.
    if (f[4] === want && fsType.startsWith('fuse')) id = Number(f[2]?.split(':')[1]);
  }
  return id !== null && Number.isInteger(id) ? id : null;
}

function run(cmd: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${stderr.trim()}`))));
  });
}

// sh -c scripts: $0 is the fusectl directory, $1 the connection id.
const MOUNT_FUSECTL = 'mount -t fusectl fusectl "$0" || exit 1';
const WRITE_ABORT = 'echo 1 > "$0/$1/abort"';

/**
 * Aborts connection `id`. fusectl is used where it is mounted; where it is
 * not, it is mounted for the moment in a private mount namespace (unshare),
 * so nothing is left behind in ours (on a bare host that is the host's); and
 * only when that is impossible in our own namespace, unmounted again after.
 */
export async function abortFuseConnection(id: number): Promise<AbortResult> {
  const dir = `${FUSECTL_DIR}/${id}`;
  if (
    await access(dir).then(
      () => true,
      () => false,
    )
  ) {
    try {
      await writeFile(`${dir}/abort`, '1');
      return { method: 'fusectl' };
    } catch (e) {
      return { method: 'failed', error: (e as Error).message };
    }
  }
  try {
    await run('unshare', [
      '--mount',
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      `${MOUNT_FUSECTL}; ${WRITE_ABORT}`,
      FUSECTL_DIR,
      String(id),
    ]);
    return { method: 'private-namespace' };
  } catch (e) {
    const first = (e as Error).message;
    try {
      await run('sh', ['-c', `${MOUNT_FUSECTL}; ${WRITE_ABORT}; r=$?; umount "$0"; exit $r`, FUSECTL_DIR, String(id)]);
      return { method: 'mounted-fusectl' };
    } catch (e2) {
      return { method: 'failed', error: `${first}; ${(e2 as Error).message}` };
    }
  }
}
