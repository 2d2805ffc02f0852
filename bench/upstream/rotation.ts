// Rotation to visibility: the secret changes at the provider (its source file
// is replaced), then every held volume's file is opened afresh every few
// hundred ms until it shows the new bytes. Upstream v1.6.0 only refreshes a
// volume on kubelet's republish once its poll interval has passed; ours polls
// on its own. Per driver: the delay of each volume.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../../testkit/wait.js';
import type { PerSide } from './latency.js';
import type { Side } from './side.js';

export interface RotationFigures {
  /** Secret change to the first open that read the new bytes, ms, one per volume that got there. */
  readonly ms: number[];
  /** Volumes still serving the old bytes at the timeout. */
  readonly missed: number;
}

/** Calls `rotate` (which must change `file` in every volume to `fresh`), then times each volume until it serves `fresh`. */
export async function rotationToVisible(
  sides: readonly Side[],
  file: string,
  fresh: Buffer,
  rotate: () => Promise<void>,
  o: { probeMs: number; timeoutMs: number },
): Promise<PerSide<RotationFigures>> {
  const pending = sides.flatMap((s) => s.held.map((v) => ({ side: s.name, path: join(v.target, file) })));
  const seen: PerSide<number[]> = { upstream: [], ours: [] };
  await rotate();
  const t0 = performance.now();
  while (pending.length > 0 && performance.now() - t0 < o.timeoutMs) {
    const round = await Promise.all(
      pending.map(async (p) => {
        const bytes = await readFile(p.path).catch(() => null);
        return bytes !== null && bytes.equals(fresh) ? performance.now() : null;
      }),
    );
    for (let i = round.length - 1; i >= 0; i--) {
      const at = round[i];
      if (at == null) continue;
      seen[pending[i]!.side].push(at - t0);
      pending.splice(i, 1);
    }
    await sleep(o.probeMs);
  }
  const missed = (name: string): number => pending.filter((p) => p.side === name).length;
  return {
    upstream: { ms: seen.upstream, missed: missed('upstream') },
    ours: { ms: seen.ours, missed: missed('ours') },
  };
}
