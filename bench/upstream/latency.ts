// NodePublishVolume and NodeUnpublishVolume latency of both drivers, as
// kubelet calls them: one after another (the two drivers alternating, which
// one goes first swapping every round, so a slow moment of the machine hits
// both), and many at once (one driver at a time).

import type { SideName } from './drivers.js';
import type { Volume } from './kubelet.js';
import type { Side } from './side.js';

export type PerSide<T> = Record<SideName, T>;

const inTurn = (sides: readonly Side[], round: number): Side[] => (round % 2 === 0 ? [...sides] : [...sides].reverse());

const empty = (): PerSide<number[]> => ({ upstream: [], ours: [] });

/** Publishes and unpublishes `n` volumes per driver, untimed (first-call costs: connections, caches). */
export async function warmUp(sides: readonly Side[], n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    for (const s of inTurn(sides, i)) {
      const v = s.freshVolume();
      await s.kubelet.publish(v);
      await s.kubelet.unpublish(v);
    }
  }
}

/** Publishes fresh volumes one at a time until each driver holds `n`; returns the latencies (ms) and the volumes added. */
export async function publishUpTo(sides: readonly Side[], n: number): Promise<{ ms: PerSide<number[]>; added: PerSide<Volume[]> }> {
  const ms = empty();
  const added: PerSide<Volume[]> = { upstream: [], ours: [] };
  for (let round = 0; sides.some((s) => s.held.length < n); round++) {
    for (const s of inTurn(sides, round)) {
      if (s.held.length >= n) continue;
      const v = s.freshVolume();
      ms[s.name].push(await s.kubelet.publish(v));
      s.held.push(v);
      added[s.name].push(v);
    }
  }
  return { ms, added };
}

export interface Burst {
  /** Each call's latency, ms. */
  readonly ms: number[];
  /** First call sent to last answer, ms. */
  readonly wallMs: number;
  readonly volumes: Volume[];
}

/** `n` NodePublishVolume calls in flight at once against each driver in turn. */
export async function publishBurst(sides: readonly Side[], n: number): Promise<PerSide<Burst>> {
  const out: Partial<PerSide<Burst>> = {};
  for (const s of sides) {
    const volumes = Array.from({ length: n }, () => s.freshVolume());
    const t0 = performance.now();
    const ms = await Promise.all(volumes.map((v) => s.kubelet.publish(v)));
    out[s.name] = { ms, wallMs: performance.now() - t0, volumes };
  }
  return out as PerSide<Burst>;
}

/** Unpublishes each driver's `volumes` one at a time, the drivers alternating; returns the latencies (ms). */
export async function unpublishAlternating(sides: readonly Side[], volumes: PerSide<readonly Volume[]>): Promise<PerSide<number[]>> {
  const ms = empty();
  const longest = Math.max(...sides.map((s) => volumes[s.name].length));
  for (let i = 0; i < longest; i++) {
    for (const s of inTurn(sides, i)) {
      const v = volumes[s.name][i];
      if (v) ms[s.name].push(await s.kubelet.unpublish(v));
    }
  }
  return ms;
}
