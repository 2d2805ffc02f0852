// Mount-table changes, always through child processes (mount(8), umount(8))
// so the JS thread never makes a blocking syscall that could need an answer
// from our own FUSE server.

import { spawn } from 'node:child_process';

export class MountError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
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
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
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

// The *At forms act on a directory the caller opened (O_PATH, no symlink
// followed): the child gets it as fd 3 and mount(2) follows that magic link to
// the very inode checked, so nothing swapped in between can redirect them.
const AT_FD3 = '/proc/self/fd/3';

/** A plain bind of `source` onto the directory behind `fd` (flags come from remountBindAt). */
export function bindMountAt(source: string, fd: number): Promise<void> {
  return run('mount', ['-n', '-c', '--bind', source, AT_FD3], fd);
}

/** Sets the flags of the bind mount whose root `fd` is (opened after the bind). */
export function remountBindAt(fd: number, writable: boolean): Promise<void> {
  return run('mount', ['-n', '-c', '-o', `remount,bind,${writable ? 'rw' : 'ro'},${BIND_FLAGS}`, AT_FD3], fd);
}

/** Lazily detaches the mount whose root `fd` is. */
export function unmountAt(fd: number): Promise<void> {
  return run('umount', ['-n', '-c', '-l', AT_FD3], fd);
}

export async function unmount(target: string, opts: { lazy?: boolean } = {}): Promise<void> {
  await run('umount', opts.lazy ? ['-n', '-l', target] : ['-n', target]);
}
