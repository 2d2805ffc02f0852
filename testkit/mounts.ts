// The mount table: what is mounted where, and lazily unmounting it all, for
// the tests and the bench alike.

import { readFile } from 'node:fs/promises';
import { parseMountInfo } from '../src/mount/mountinfo.js';
import { run } from './run.js';

/** `dir` itself or anything below it. */
export const atOrUnder =
  (dir: string) =>
  (p: string): boolean =>
    p === dir || p.startsWith(`${dir}/`);

/** Mount points of a mountinfo text that `match` accepts, in table order (stacked mounts repeated). */
export function mountPointsIn(mountinfo: string, match: (mountPoint: string) => boolean): string[] {
  return parseMountInfo(mountinfo)
    .map((m) => m.mountPoint)
    .filter(match);
}

/** Deepest first: the order to unmount in. */
export const deepestFirst = (points: readonly string[]): string[] => [...points].sort((a, b) => b.length - a.length);

/** Mount points (deepest first, stacked ones repeated) that `match` accepts. */
export async function mountsWhere(match: (mountPoint: string) => boolean): Promise<string[]> {
  return deepestFirst(mountPointsIn(await readFile('/proc/self/mountinfo', 'utf8'), match));
}

/** Lazily unmounts every mount `match` accepts (deepest first, a few passes); returns what it unmounted. */
export async function umountAllWhere(match: (mountPoint: string) => boolean, errors: string[] = []): Promise<string[]> {
  const done: string[] = [];
  for (let pass = 0; pass < 3; pass++) {
    const now = await mountsWhere(match);
    if (now.length === 0) break;
    for (const m of now) {
      await run('umount', ['-l', m], { timeoutMs: 10_000 }).then(
        () => done.push(m),
        (e: unknown) => errors.push((e as Error).message),
      );
    }
  }
  const still = await mountsWhere(match);
  if (still.length > 0) errors.push(`still mounted: ${still.join(' ')}`);
  return done;
}
