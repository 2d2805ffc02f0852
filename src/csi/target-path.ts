// The one spelling of a kubelet target path this driver works with, and the
// directory it must be under. Lexical only (no filesystem access): two
// spellings of one directory (`a//b`, `a/./b`, a trailing slash) must be one
// key of the volume registry, or the driver takes its own mount for a foreign
// one. Symlinks are refused later, where the path is opened (src/mount).

import { realpath } from 'node:fs/promises';
import { posix } from 'node:path';
import { errors, type DriverError } from '../errors.js';

/** --kubelet-root-dir as configured, and where it really is (it may be a symlink on some distros). */
export interface KubeletRoot {
  readonly configured: string;
  readonly resolved: string;
}

const bad = (m: string): DriverError => errors.invalidArgument(m);

/** `path.posix.normalize` without a trailing slash; relative paths and `..` components refused. */
export function canonicalTargetPath(p: string): string {
  if (!posix.isAbsolute(p) || p.includes('\0') || p.split('/').includes('..')) {
    throw bad(`Target path must be an absolute path without '..': ${p}`);
  }
  const n = posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

const isUnder = (p: string, dir: string): boolean => (dir === '/' ? p !== '/' : p.startsWith(`${dir}/`));

/** Refuses a (canonical) target that is not below the kubelet root, by either of its spellings. */
export function checkUnderKubeletRoot(target: string, root: KubeletRoot | null): void {
  if (!root || isUnder(target, root.configured) || isUnder(target, root.resolved)) return;
  throw bad(`Target path ${target} is outside the kubelet root directory ${root.configured} (--kubelet-root-dir)`);
}

/** Where a canonical target really is once the kubelet root's own symlink (if any) is resolved. */
export function realTargetPath(target: string, root: KubeletRoot | null): string {
  if (root && root.resolved !== root.configured && isUnder(target, root.configured)) {
    return root.resolved + target.slice(root.configured.length);
  }
  return target;
}

/** Resolves --kubelet-root-dir once at startup; empty turns the check off. */
export async function resolveKubeletRoot(dir: string): Promise<KubeletRoot | null> {
  if (dir === '') return null;
  const configured = canonicalTargetPath(dir);
  const resolved = await realpath(configured).catch((e: unknown) => {
    throw new Error(`--kubelet-root-dir ${dir}: ${(e as Error).message}`, { cause: e });
  });
  return { configured, resolved };
}
