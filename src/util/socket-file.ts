// A unix socket file that exists at its path only with its final mode.
//
// bind() creates the file with 0777 & ~umask: under umask 000 any local user
// could connect, and a chmod after bind leaves a window in which one can (and
// keep the connection). The umask is process-wide, and grpc-js binds
// asynchronously, so changing it around the bind would also apply to files
// created meanwhile. Instead the socket is bound in a fresh 0700 directory
// beside its path (nobody else can reach it there), given its mode, and
// renamed into place: rename is atomic, and it replaces a stale socket of a
// previous process.

import { chmodSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { chmod, lstat, mkdtemp, rename, rm, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** mkdtemp creates the directory 0700 whatever the umask. Kept short: socket paths are limited to 107 bytes. */
const privateDirPrefix = (path: string): string => join(dirname(path), '.sock-');
const SOCKET_NAME = 's';

/**
 * Binds with `bind` (given the private path to bind at) and moves the socket
 * to `path` with `mode`; on failure after the bind, `unbind` closes it again.
 */
export async function bindSocketFile<T>(
  path: string,
  mode: number,
  bind: (at: string) => Promise<T>,
  unbind: (bound: T) => unknown,
): Promise<T> {
  const dir = await mkdtemp(privateDirPrefix(path));
  try {
    const at = join(dir, SOCKET_NAME);
    const bound = await bind(at);
    try {
      await chmod(at, mode);
      await rename(at, path);
    } catch (e) {
      await unbind(bound);
      throw e;
    }
    return bound;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** bindSocketFile for a synchronous bind (a process that does nothing else while it starts). */
export function bindSocketFileSync<T>(path: string, mode: number, bind: (at: string) => T, unbind: (bound: T) => unknown): T {
  const dir = mkdtempSync(privateDirPrefix(path));
  try {
    const at = join(dir, SOCKET_NAME);
    const bound = bind(at);
    try {
      chmodSync(at, mode);
      renameSync(at, path);
    } catch (e) {
      unbind(bound);
      throw e;
    }
    return bound;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Removes the socket at `path` on shutdown only if it is still the one this
 * process made (same device and inode): a successor may already have renamed
 * its own over it, and we never delete what we did not create.
 */
export async function socketFileRemover(path: string): Promise<() => Promise<void>> {
  const mine = await lstat(path);
  return async () => {
    const now = await lstat(path).catch(() => null);
    if (now?.isSocket() && now.dev === mine.dev && now.ino === mine.ino) await unlink(path).catch(() => undefined);
  };
}
