// Every mount-table change the driver makes, by syscall through the native
// addon (native/src/mount_ops.c): no child process per mount. Each call runs
// on a thread of its own, so the JS thread never makes a syscall that could
// wait for our own FUSE server. Only an addon without the mount calls (built
// before them) falls back to mount(8)/umount(8) children.
//
// Binds use the new mount API (open_tree + mount_setattr + move_mount) when
// the kernel has it: the bind is attached with its flags already set, never
// visible writable. Measured (docs/performance.md) it costs the same as a
// bind + remount by mount(2) (about 0.2 ms with the unmount), which remains
// the fallback for kernels before 5.12 or a seccomp filter refusing it.

import { spawn } from 'node:child_process';
import { readlink } from 'node:fs/promises';
import { getSystemErrorName } from 'node:util';
import { isNativeSyscallError, loadNative, type MountConstants, type NativeMountOps } from '../native/addon.js';

/**
 * A failed mount-table change. `message` reads like the command that would
 * have made it ("mount --bind SRC TARGET failed: <strerror> (ENOTCONN)").
 * From a syscall: `errno` (positive), `code` ('ENOTCONN') and `syscall` are
 * set and `exitCode` is null; from the mount(8) fallback, `exitCode` and
 * `stderr`.
 */
export class MountError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly errno?: number,
    readonly code?: string,
    readonly syscall?: string,
  ) {
    super(message);
    this.name = 'MountError';
  }
}

/** How mount-table changes are made in this process. */
export type MountMethod = 'mount-api' | 'mount-syscall' | 'mount-command';

interface Native {
  readonly ops: NativeMountOps;
  readonly c: MountConstants;
  readonly mountApi: boolean;
}

/** The addon's mount calls, looked up once; null when they are not there. */
const native: () => Native | null = (() => {
  let cached: Native | null | undefined;
  return () => {
    if (cached !== undefined) return cached;
    cached = null;
    try {
      const n = loadNative();
      if (n.mount && n.umount && n.bindTree && n.mountApi && n.mountConstants) {
        const ops = n as unknown as NativeMountOps;
        cached = { ops, c: ops.mountConstants, mountApi: ops.mountApi() };
      }
    } catch {
      // Not built: the mount(8) fallback below.
    }
    return cached;
  };
})();

/** Rejections of a native call become MountErrors described as `what` (a string, or computed on failure). */
async function sys(what: string | (() => Promise<string>), call: () => Promise<void>): Promise<void> {
  try {
    await call();
  } catch (e) {
    const desc = typeof what === 'string' ? what : await what();
    if (!isNativeSyscallError(e)) throw new MountError(`${desc} failed: ${(e as Error).message}`, null, '');
    const code = getSystemErrorName(-e.errno);
    const detail = e.detail ?? e.message;
    throw new MountError(`${desc} failed: ${detail} (${code})`, null, '', e.errno, code, e.syscall);
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

const BIND_FLAGS = 'nosuid,nodev,noexec';
const bindOpts = (writable: boolean): string => `${writable ? 'rw' : 'ro'},${BIND_FLAGS}`;

const fuseData = (fd: number): string => `fd=${fd},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions`;

/** mount(2) flags of a bind's remount: read-only unless `writable`, always nosuid,nodev,noexec. */
const remountFlags = (c: MountConstants, writable: boolean): number =>
  c.MS_REMOUNT | c.MS_BIND | c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC | (writable ? 0 : c.MS_RDONLY);

/** The same as mount_setattr attributes. */
const treeAttrs = (c: MountConstants, writable: boolean): number =>
  c.MOUNT_ATTR_NOSUID | c.MOUNT_ATTR_NODEV | c.MOUNT_ATTR_NOEXEC | (writable ? 0 : c.MOUNT_ATTR_RDONLY);

// The *At forms act on a directory the caller opened (O_PATH, no symlink
// followed), through the fd itself (move_mount) or its /proc/self/fd link,
// which mount(2) follows to the very inode checked: nothing swapped in
// between can redirect them. (A mount(8) child gets the fd as its fd 3.)
const AT_FD3 = '/proc/self/fd/3';
const fdLink = (fd: number): string => `/proc/self/fd/${fd}`;

/** For messages: where `fd` is (a /proc readlink: never a FUSE request). */
const pathOf = (fd: number) => (): Promise<string> => readlink(fdLink(fd)).catch(() => fdLink(fd));

/**
 * The mount-table changes, made one way (see MountMethod). The driver uses
 * the best its addon and kernel allow, through the functions below; tests
 * make one for each way.
 */
export class MountCalls {
  private constructor(private readonly n: Native | null) {}

  /** The calls by `method`; throws if this process cannot use it. */
  static using(method: MountMethod): MountCalls {
    const n = native();
    if (method === 'mount-command') return new MountCalls(null);
    if (n === null || (method === 'mount-api' && !n.mountApi)) throw new Error(`mount method ${method} is not available here`);
    return new MountCalls({ ...n, mountApi: method === 'mount-api' });
  }

  /** The best available. */
  static best(): MountCalls {
    return new MountCalls(native());
  }

  get method(): MountMethod {
    return this.n === null ? 'mount-command' : this.n.mountApi ? 'mount-api' : 'mount-syscall';
  }

  /**
   * Mounts the FUSE connection behind `fd` at `dir` (mount(2) with -o fd=N, the
   * way gcs-fuse-csi-driver does; no libfuse, no fusermount). allow_other +
   * default_permissions: the kernel enforces each file's mode for every caller.
   */
  mountFuse(fd: number, dir: string, o: FuseMountOptions): Promise<void> {
    const type = `fuse.${o.subtype}`;
    const n = this.n;
    if (n === null) {
      // The child gets the fd as its fd 3.
      return run('mount', ['-i', '-n', '-t', type, '-o', `${fuseData(3)},${BIND_FLAGS}`, o.fsname, dir], fd);
    }
    const flags = n.c.MS_NOSUID | n.c.MS_NODEV | n.c.MS_NOEXEC;
    return sys(`mount -t ${type} -o ${fuseData(fd)},${BIND_FLAGS} ${o.fsname} ${dir}`, () =>
      n.ops.mount(o.fsname, dir, type, flags, fuseData(fd)),
    );
  }

  /** Bind-mounts `source` to `target`, read-only unless asked. */
  async bindMount(source: string, target: string, writable = false): Promise<void> {
    const n = this.n;
    // -c: no canonicalisation, which would stat the target (a dead mount there fails with ENOTCONN).
    if (n === null) return run('mount', ['-n', '-c', '--bind', '-o', bindOpts(writable), source, target]);
    // The syscalls never stat the target either.
    const what = `mount --bind -o ${bindOpts(writable)} ${source} ${target}`;
    if (n.mountApi) return sys(what, () => n.ops.bindTree(source, -1, target, treeAttrs(n.c, writable)));
    await sys(what, () => n.ops.mount(source, target, null, n.c.MS_BIND, null));
    // Never left mounted without its flags.
    await sys(what, () => n.ops.mount(null, target, null, remountFlags(n.c, writable), null)).catch(async (e: unknown) => {
      await n.ops.umount(target, n.c.MNT_DETACH).catch(() => undefined);
      throw e;
    });
  }

  /** Changes only the read-only flag of the bind mount at `target`. */
  remountBind(target: string, writable: boolean): Promise<void> {
    const n = this.n;
    const opts = `remount,bind,${bindOpts(writable)}`;
    if (n === null) return run('mount', ['-n', '-c', '-o', opts, target]);
    return sys(`mount -o ${opts} ${target}`, () => n.ops.mount(null, target, null, remountFlags(n.c, writable), null));
  }

  /**
   * Binds `source` onto the directory behind `fd`. With the new mount API the
   * flags (read-only unless `writable`, nosuid,nodev,noexec) are set before it
   * is attached and this returns true; otherwise it is a plain bind, returns
   * false, and the caller sets the flags with remountBindAt.
   */
  async bindMountAt(source: string, fd: number, writable: boolean): Promise<boolean> {
    const n = this.n;
    if (n === null) {
      await run('mount', ['-n', '-c', '--bind', source, AT_FD3], fd);
      return false;
    }
    if (n.mountApi) {
      const what = async (): Promise<string> => `mount --bind -o ${bindOpts(writable)} ${source} ${await pathOf(fd)()}`;
      await sys(what, () => n.ops.bindTree(source, fd, null, treeAttrs(n.c, writable)));
      return true;
    }
    const what = async (): Promise<string> => `mount --bind ${source} ${await pathOf(fd)()}`;
    await sys(what, () => n.ops.mount(source, fdLink(fd), null, n.c.MS_BIND, null));
    return false;
  }

  /** Sets the flags of the bind mount whose root `fd` is (opened after the bind). */
  remountBindAt(fd: number, writable: boolean): Promise<void> {
    const n = this.n;
    const opts = `remount,bind,${bindOpts(writable)}`;
    if (n === null) return run('mount', ['-n', '-c', '-o', opts, AT_FD3], fd);
    const what = async (): Promise<string> => `mount -o ${opts} ${await pathOf(fd)()}`;
    return sys(what, () => n.ops.mount(null, fdLink(fd), null, remountFlags(n.c, writable), null));
  }

  /** Lazily detaches the mount whose root `fd` is. */
  unmountAt(fd: number): Promise<void> {
    const n = this.n;
    if (n === null) return run('umount', ['-n', '-c', '-l', AT_FD3], fd);
    const what = async (): Promise<string> => `umount -l ${await pathOf(fd)()}`;
    return sys(what, () => n.ops.umount(fdLink(fd), n.c.MNT_DETACH));
  }

  /**
   * Unmounts `target`, detaching it at once when `lazy`. A symlink as the last
   * component is not followed (UMOUNT_NOFOLLOW): callers refuse symlinked
   * targets first, and one swapped in since fails instead of being followed.
   */
  async unmount(target: string, opts: { lazy?: boolean } = {}): Promise<void> {
    const n = this.n;
    if (n === null) return run('umount', opts.lazy ? ['-n', '-l', target] : ['-n', target]);
    const flags = n.c.UMOUNT_NOFOLLOW | (opts.lazy ? n.c.MNT_DETACH : 0);
    return sys(`umount ${opts.lazy ? '-l ' : ''}${target}`, () => n.ops.umount(target, flags));
  }
}

const calls: () => MountCalls = (() => {
  let cached: MountCalls | undefined;
  return () => (cached ??= MountCalls.best());
})();

export function mountMethod(): MountMethod {
  return calls().method;
}

/** Mounts the FUSE connection behind `fd` at `dir` (see MountCalls.mountFuse). */
export const mountFuse = (fd: number, dir: string, o: FuseMountOptions): Promise<void> => calls().mountFuse(fd, dir, o);
/** Bind-mounts `source` to `target`, read-only unless asked (nosuid,nodev,noexec always). */
export const bindMount = (source: string, target: string, writable = false): Promise<void> => calls().bindMount(source, target, writable);
/** Changes only the read-only flag of the bind mount at `target`. */
export const remountBind = (target: string, writable: boolean): Promise<void> => calls().remountBind(target, writable);
/** See MountCalls.bindMountAt: true when the flags are set too. */
export const bindMountAt = (source: string, fd: number, writable: boolean): Promise<boolean> => calls().bindMountAt(source, fd, writable);
/** Sets the flags of the bind mount whose root `fd` is (opened after the bind). */
export const remountBindAt = (fd: number, writable: boolean): Promise<void> => calls().remountBindAt(fd, writable);
/** Lazily detaches the mount whose root `fd` is. */
export const unmountAt = (fd: number): Promise<void> => calls().unmountAt(fd);
/** Unmounts `target` (not following a symlink as its last component), detached at once when `lazy`. */
export const unmount = (target: string, opts: { lazy?: boolean } = {}): Promise<void> => calls().unmount(target, opts);
