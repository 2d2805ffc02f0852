// Typed loader for the csi_native Node-API addon (native/src/csi_native.c):
// memory hardening (mlockall, PR_SET_DUMPABLE, MADV_DONTDUMP), SCM_RIGHTS
// fd passing and mount-table syscalls (native/src/mount_ops.c), which Node
// has no API for. Linux only.
//
// The .node file lives in <package root>/native/build/Release. This module runs
// both as src/native/addon.ts (tests, via ts-node) and as
// dist/src/native/addon.js (compiled), so the package root is found by walking
// up from this file's directory rather than by a fixed relative path.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** What `recvFds` returns. Empty `data` (and no fds) means end-of-file. */
export interface RecvFdsResult {
  data: Buffer;
  /** Received descriptors, already close-on-exec. The caller must close them. */
  fds: number[];
}

/** Flag values from the system headers the addon was built with. */
export interface MountConstants {
  readonly MS_RDONLY: number;
  readonly MS_NOSUID: number;
  readonly MS_NODEV: number;
  readonly MS_NOEXEC: number;
  readonly MS_REMOUNT: number;
  readonly MS_BIND: number;
  readonly MNT_DETACH: number;
  readonly UMOUNT_NOFOLLOW: number;
  readonly MOUNT_ATTR_RDONLY: number;
  readonly MOUNT_ATTR_NOSUID: number;
  readonly MOUNT_ATTR_NODEV: number;
  readonly MOUNT_ATTR_NOEXEC: number;
}

/**
 * Mount-table syscalls, each made on a thread of its own (never the libuv
 * threadpool: a path on one of our own FUSE mounts needs our FUSE server to
 * answer). They reject with a {@link NativeSyscallError} whose `detail` is
 * strerror(errno). Only use src/mount/commands.ts.
 */
export interface NativeMountOps {
  /** mount(2). */
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): Promise<void>;
  /** umount2(2). */
  umount(target: string, flags: number): Promise<void>;
  /**
   * open_tree(source, OPEN_TREE_CLONE), mount_setattr(attrSet) on the clone,
   * then move_mount onto the directory behind `targetFd` (if >= 0, with
   * MOVE_MOUNT_T_EMPTY_PATH) or at `target`: a bind attached with its flags.
   */
  bindTree(source: string, targetFd: number, target: string | null, attrSet: number): Promise<void>;
  /** Whether the kernel (and any seccomp filter) lets us use open_tree, move_mount and mount_setattr. */
  mountApi(): boolean;
  readonly mountConstants: MountConstants;
}

/**
 * The addon's exports. All calls but the mount ones are synchronous on the calling thread; the
 * socket calls block if the socket is blocking. Syscall failures throw
 * {@link NativeSyscallError} (EINTR is retried internally, EAGAIN is thrown);
 * wrong argument types throw TypeError `ERR_INVALID_ARG_TYPE`, out-of-range
 * numbers RangeError `ERR_OUT_OF_RANGE`.
 */
export interface NativeAddon {
  /** mlockall(MCL_CURRENT | MCL_FUTURE [| MCL_ONFAULT when onFault]). */
  lockAll(onFault?: boolean): void;
  /** munlockall(). */
  unlockAll(): void;
  /** prctl(PR_SET_DUMPABLE, 0): no core dumps, no same-uid ptrace. */
  disableDumpable(): void;
  /** prctl(PR_GET_DUMPABLE) != 0. */
  isDumpable(): boolean;
  /** madvise(MADV_DONTDUMP) over the pages holding `buf`'s bytes. */
  dontDump(buf: Buffer): void;
  /**
   * A Buffer on pages of its own: never in core dumps or forked children,
   * mlock'ed when `lock` (throws ERR_SYSCALL from mlock without CAP_IPC_LOCK),
   * zeroed and unmapped when collected.
   */
  allocSecure(size: number, lock: boolean): Buffer;
  /**
   * sendmsg() on a connected unix socket with `fds` as SCM_RIGHTS (at most
   * 253) and the non-empty `payload` as data. Returns the bytes sent, which on
   * SOCK_STREAM may be fewer than `payload.length`.
   */
  sendFds(socketFd: number, fds: readonly number[], payload: Buffer): number;
  /**
   * recvmsg(MSG_CMSG_CLOEXEC) of up to `maxBytes` (1..64 MiB) bytes and
   * `maxFds` (0..253) descriptors. If more fds arrived than `maxFds`, or a
   * SOCK_SEQPACKET message was longer than `maxBytes`, the fds that arrived
   * are closed and a NativeSyscallError with errno EMSGSIZE is thrown.
   */
  recvFds(socketFd: number, maxFds: number, maxBytes: number): RecvFdsResult;
  /** fcntl(fd, F_DUPFD_CLOEXEC, 0). */
  dupFd(fd: number): number;
  /** socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC). */
  socketPair(): [number, number];
  /** A listening non-blocking SOCK_SEQPACKET unix socket at `path` (replacing a stale file), mode 0600. */
  unixListen(path: string): number;
  /** accept4() of a pending connection (non-blocking socket), or -1 when none is waiting. */
  unixAccept(listenFd: number): number;
  /** A connected non-blocking SOCK_SEQPACKET socket to `path`. */
  unixConnect(path: string): number;
  /** The pid listening on the SOCK_STREAM unix socket at `path` (SO_PEERCRED); 0 outside our pid namespace. */
  peerPid(path: string): number;
  /** _exit(code): for a process whose threadpool is parked on a FUSE connection that outlives it. */
  exitNow(code: number): never;
  /**
   * Forks a child that makes the syscalls of `script` (records of an op byte,
   * 'd' mkdir, 's' symlink target path, 'r' rename from to, 'u' unlink,
   * 'x' rmdir, each path NUL-terminated) in order, writing an int32 (0 or
   * errno) per syscall made to a pipe and stopping at the first failure.
   * Returns [pid, read end of the pipe (close-on-exec)]. The child holds no
   * other descriptor and dies with this process. Reap it with reapChild.
   */
  forkSyscalls(script: Buffer): [number, number];
  /** waitpid(pid, WNOHANG): the exit status (128 + signal if killed), or -1 while it runs. */
  reapChild(pid: number): number;
  /** Missing from an addon built before mount_ops.c (then mount(8) is used). */
  mount?: NativeMountOps['mount'];
  umount?: NativeMountOps['umount'];
  bindTree?: NativeMountOps['bindTree'];
  mountApi?: NativeMountOps['mountApi'];
  mountConstants?: MountConstants;
}

/** The Error the addon throws when a syscall fails. */
export interface NativeSyscallError extends Error {
  code: 'ERR_SYSCALL';
  /** Positive, as the kernel returns it (unlike Node's negative errno). */
  errno: number;
  syscall: string;
  /** strerror(errno), set by the mount calls. */
  detail?: string;
}

export function isNativeSyscallError(err: unknown): err is NativeSyscallError {
  return (
    err instanceof Error &&
    (err as Partial<NativeSyscallError>).code === 'ERR_SYSCALL' &&
    typeof (err as Partial<NativeSyscallError>).errno === 'number' &&
    typeof (err as Partial<NativeSyscallError>).syscall === 'string'
  );
}

const ADDON_RELATIVE_PATH = path.join('native', 'build', 'Release', 'csi_native.node');

/**
 * Walks up from `startDir` to the first directory containing
 * native/build/Release/csi_native.node; undefined if none up to the root.
 */
export function findAddonPath(startDir: string): string | undefined {
  let dir = path.resolve(startDir);
  for (;;) {
    const candidate = path.join(dir, ADDON_RELATIVE_PATH);
    if (existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** Loads the addon once and returns the same object on every later call. */
export const loadNative: () => NativeAddon = (() => {
  let cached: NativeAddon | undefined;
  return () => {
    if (cached) return cached;
    const here = path.dirname(fileURLToPath(import.meta.url));
    const addonPath = findAddonPath(here);
    if (addonPath === undefined) {
      throw new Error(`native addon not built: run npm run build:native (no ${ADDON_RELATIVE_PATH} above ${here})`);
    }
    const require = createRequire(import.meta.url);
    cached = require(addonPath) as NativeAddon;
    return cached;
  };
})();

export interface HardenOptions {
  /** mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) so secrets never hit swap. */
  lockMemory: boolean;
}

export interface HardenReport {
  /** prctl(PR_GET_DUMPABLE) after hardening; false on success. */
  dumpable: boolean;
  /** Whether mlockall succeeded. */
  memoryLocked: boolean;
  /** Why mlockall failed (ENOMEM/EPERM: no CAP_IPC_LOCK or RLIMIT_MEMLOCK too low). */
  lockError?: string;
}

/** mlock/mlockall refused for lack of privilege or memlock quota, not a real failure. */
export function isLockRefused(err: unknown): err is NativeSyscallError {
  return isNativeSyscallError(err) && (err.errno === osConstants.errno.ENOMEM || err.errno === osConstants.errno.EPERM);
}

function lockErrorText(err: NativeSyscallError): string {
  return `${err.message} (needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK)`;
}

/**
 * Makes the process non-dumpable and, if asked, locks its memory. A lock
 * failure for lack of privilege or memlock quota (ENOMEM/EPERM) is reported,
 * not thrown, so the caller decides whether that is fatal; any other failure
 * throws. After a successful lock an 'exit' listener calls munlockall(), since
 * V8 aborts during isolate teardown in a locked process.
 *
 * Locking is incompatible with worker_threads: V8 frees pages with
 * madvise(MADV_DONTNEED), which fails with EINVAL on locked memory, and V8
 * CHECK-fails (SIGTRAP, exit 133). That already happens while a Worker starts
 * (checked on Node 24.21), so lock only processes that never start Workers.
 */
export function hardenProcess(native: NativeAddon, options: HardenOptions): HardenReport {
  native.disableDumpable();
  const report: HardenReport = { dumpable: native.isDumpable(), memoryLocked: false };
  if (!options.lockMemory) return report;
  try {
    native.lockAll(true);
  } catch (err) {
    if (isLockRefused(err)) {
      report.lockError = lockErrorText(err);
      return report;
    }
    throw err;
  }
  process.on('exit', () => native.unlockAll());
  report.memoryLocked = true;
  return report;
}

/** Allocates the memory that holds one secret. */
export type SecretAllocator = (size: number) => Buffer;

export interface SecretAllocatorReport {
  readonly allocate: SecretAllocator;
  /** Whether secret pages are locked in RAM (mlock); false when the process may not lock memory. */
  readonly locked: boolean;
  readonly lockError?: string;
}

/**
 * Secret buffers locked in RAM and kept out of core dumps, one mapping each.
 * Falls back to unlocked (still non-dumpable) pages when mlock is refused, so
 * the driver runs without CAP_IPC_LOCK and says so.
 */
export function secretAllocator(native: NativeAddon, lock: boolean): SecretAllocatorReport {
  if (!lock) return { allocate: (n) => native.allocSecure(n, false), locked: false };
  try {
    native.allocSecure(1, true);
    return { allocate: (n) => native.allocSecure(n, true), locked: true };
  } catch (err) {
    if (isLockRefused(err)) {
      return { allocate: (n) => native.allocSecure(n, false), locked: false, lockError: lockErrorText(err) };
    }
    throw err;
  }
}
