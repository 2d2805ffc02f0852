// Mount-table operations, always through child processes (mount(8), umount(8))
// so the JS thread never makes a blocking syscall that could need an answer
// from our own FUSE server.

import { spawn } from 'node:child_process';
import { readFile, stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface MountInfoEntry {
  readonly mountId: number;
  readonly root: string;
  readonly mountPoint: string;
  readonly fsType: string;
  readonly source: string;
  readonly options: string;
}

/** Undoes the octal escapes mountinfo uses for space, tab, newline and backslash. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountInfo(text: string): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const a = line.slice(0, sep).split(' ');
    const b = line.slice(sep + 3).split(' ');
    out.push({
      mountId: Number(a[0]),
      root: unescape(a[3] ?? ''),
      mountPoint: unescape(a[4] ?? ''),
      fsType: b[0] ?? '',
      source: unescape(b[1] ?? ''),
      options: b[2] ?? '',
    });
  }
  return out;
}

export async function readMountInfo(): Promise<MountInfoEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

export class MountError extends Error {
  constructor(message: string, readonly exitCode: number | null, readonly stderr: string) {
    super(message);
    this.name = 'MountError';
  }
}

function run(cmd: string, args: string[], extraFd?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'ignore', 'pipe'];
    if (extraFd !== undefined) stdio.push(extraFd);
    const child = spawn(cmd, args, { stdio });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (e) => reject(new MountError(`${cmd}: ${e.message}`, null, '')));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new MountError(`${cmd} ${args.join(' ')} failed (exit ${code}): ${stderr.trim()}`, code, stderr));
    });
  });
}

export interface FuseMountOptions {
  /** Shown as the mount source in mountinfo. */
  readonly fsname: string;
  /** Filesystem type shown as fuse.<subtype>. */
  readonly subtype: string;
}

/**
 * Mounts the FUSE connection behind `fd` at `dir` (mount -o fd=N, the way
 * gcs-fuse-csi-driver does; no libfuse, no fusermount). The child gets the fd
 * as its fd 3. allow_other + default_permissions: the kernel enforces each
 * file's mode for every caller.
 */
export function mountFuse(fd: number, dir: string, o: FuseMountOptions): Promise<void> {
  const opts = ['fd=3', 'rootmode=40000', 'user_id=0', 'group_id=0', 'allow_other', 'default_permissions', 'nosuid', 'nodev', 'noexec'];
  return run('mount', ['-i', '-n', '-t', `fuse.${o.subtype}`, '-o', opts.join(','), o.fsname, dir], fd);
}

const BIND_FLAGS = 'nosuid,nodev,noexec';

/** Bind-mounts `source` to `target`, read-only unless asked (mount(8) does the remount step). */
export function bindMount(source: string, target: string, writable = false): Promise<void> {
  // -c: no canonicalisation, which would stat the target (a dead mount there fails with ENOTCONN).
  return run('mount', ['-n', '-c', '--bind', '-o', `${writable ? 'rw' : 'ro'},${BIND_FLAGS}`, source, target]);
}

/** Changes only the read-only flag of the bind mount at `target`. */
export function remountBind(target: string, writable: boolean): Promise<void> {
  return run('mount', ['-n', '-c', '-o', `remount,bind,${writable ? 'rw' : 'ro'},${BIND_FLAGS}`, target]);
}

export async function unmount(target: string, opts: { lazy?: boolean } = {}): Promise<void> {
  await run('umount', opts.lazy ? ['-n', '-l', target] : ['-n', target]);
}

export function isMountPoint(table: readonly MountInfoEntry[], path: string): boolean {
  return table.some((m) => m.mountPoint === path);
}

export type MountPointState = 'missing' | 'plain' | 'mounted' | 'stale';

/** What a syscall on a FUSE mount whose server is gone fails with. */
const isDeadMountError = (e: unknown): boolean =>
  ['ENOTCONN', 'ECONNABORTED', 'ESTALE', 'EIO'].includes((e as NodeJS.ErrnoException).code ?? '');

/**
 * Whether `path` is a mount point, without reading the whole mount table
 * (which grows with every volume): a different device than its parent means
 * mounted; ENOTCONN and friends mean a FUSE mount whose server is gone.
 * Async (threadpool), so it is safe on our own mounts.
 */
export async function probeMountPoint(path: string): Promise<MountPointState> {
  let st;
  try {
    st = await stat(path);
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
    await statfs(path);
  } catch (e) {
    if (isDeadMountError(e)) return 'stale';
    throw e;
  }
  return 'mounted';
}
