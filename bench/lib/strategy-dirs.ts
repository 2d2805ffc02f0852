// bench/mount-strategy.ts mounts outside the bench's temp dir, in
// /tmp/ssbench-mounts-*: finding those directories and undoing them.

import { readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { atOrUnder, mountsWhere, umountAllWhere } from '../../testkit/mounts.js';

/** The directory bench/mount-strategy.ts creates its mounts in is mkdtemp(`${MOUNT_STRATEGY_PREFIX}XXXXXX`). */
export const MOUNT_STRATEGY_PREFIX = '/tmp/ssbench-mounts-';

/** /tmp/ssbench-mounts-* directories that exist now. */
export async function mountStrategyDirs(): Promise<string[]> {
  const base = dirname(MOUNT_STRATEGY_PREFIX);
  const name = MOUNT_STRATEGY_PREFIX.slice(base.length + 1);
  return (await readdir(base).catch(() => [] as string[])).filter((n) => n.startsWith(name)).map((n) => join(base, n));
}

/**
 * Unmounts everything at or under each of `dirs` and removes them (only when
 * nothing is left mounted there). Returns the mounts it had to undo.
 */
export async function removeMountStrategyDirs(dirs: readonly string[], errors: string[] = []): Promise<string[]> {
  const undone: string[] = [];
  for (const d of dirs) {
    undone.push(...(await umountAllWhere(atOrUnder(d), errors)));
    if ((await mountsWhere(atOrUnder(d))).length > 0) {
      errors.push(`${d}: still mounted, kept`);
      continue;
    }
    await rm(d, { recursive: true, force: true }).catch((e: unknown) => errors.push(`rm ${d}: ${(e as Error).message}`));
  }
  return undone;
}

/** The /tmp/ssbench-mounts-* dirs of this run: those that appear after it starts (the others are not ours and never touched). */
export class StrategyDirs {
  private constructor(private readonly atStart: ReadonlySet<string>) {}

  static async snapshot(): Promise<StrategyDirs> {
    return new StrategyDirs(new Set(await mountStrategyDirs()));
  }

  /** The dirs that appeared since the start. */
  async ours(): Promise<string[]> {
    return (await mountStrategyDirs()).filter((d) => !this.atStart.has(d));
  }

  /** Unmounts and removes every dir that appeared during the run; returns the mounts it had to undo. */
  async cleanup(errors: string[], scanAllMounts = false): Promise<string[]> {
    const undone = await removeMountStrategyDirs(await this.ours(), errors);
    if (scanAllMounts) {
      // A mount under /tmp/ssbench-mounts-* whose directory is not a pre-existing one (e.g. its directory is gone).
      const preexisting = [...this.atStart].map(atOrUnder);
      undone.push(...(await umountAllWhere((m) => m.startsWith(MOUNT_STRATEGY_PREFIX) && !preexisting.some((f) => f(m)), errors)));
    }
    return undone;
  }
}
