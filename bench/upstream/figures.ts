// Turns what the phases measured into the side-by-side lines (bench/upstream/
// table.ts) and the JSON figures.

import { round, summarize } from '../lib/stats.js';
import type { IdleFigures } from './idle.js';
import type { Burst, PerSide } from './latency.js';
import type { RotationFigures } from './rotation.js';
import type { Line } from './table.js';

export interface Measured {
  readonly readyMs: PerSide<number[]>;
  readonly rssAfterStartKiB: PerSide<number>;
  /** Before any volume. */
  readonly idleAtStart: PerSide<IdleFigures>;
  readonly sequential: PerSide<number[]>;
  readonly burst: PerSide<Burst>;
  readonly unpublish: PerSide<number[]>;
  /** Sequential publishes from the first idle window's volume count up to the second's (others held, republishes going on). */
  readonly growing: PerSide<number[]> | null;
  readonly republish: PerSide<number[]>;
  readonly idle: Array<PerSide<IdleFigures>>;
  readonly rotation: PerSide<RotationFigures> | null;
}

const both = <T>(m: PerSide<T>, f: (x: T) => number): { upstream: number; ours: number } => ({
  upstream: f(m.upstream),
  ours: f(m.ours),
});

const p50 = (xs: number[]): number => summarize(xs).median;
const p99 = (xs: number[]): number => summarize(xs).p99;
const MiB = (kib: number): number => kib / 1024;

export function lines(m: Measured, concurrent: number): Line[] {
  const out: Line[] = [
    { label: 'ready after start, median', unit: 'ms', ...both(m.readyMs, p50), digits: 0 },
    { label: 'RSS after start', unit: 'MiB', ...both(m.rssAfterStartKiB, MiB) },
    { label: 'idle CPU after start, no volumes', unit: 'mCPU', ...both(m.idleAtStart, (x) => x.milliCpu) },
    { label: `NodePublishVolume sequential p50 (n=${m.sequential.ours.length})`, unit: 'ms', ...both(m.sequential, p50) },
    { label: 'NodePublishVolume sequential p99', unit: 'ms', ...both(m.sequential, p99) },
    { label: `NodePublishVolume ${concurrent} concurrent p50`, unit: 'ms', ...both(m.burst, (b) => p50(b.ms)) },
    { label: `NodePublishVolume ${concurrent} concurrent p99`, unit: 'ms', ...both(m.burst, (b) => p99(b.ms)) },
    { label: `${concurrent} concurrent publishes, wall`, unit: 'ms', ...both(m.burst, (b) => b.wallMs), digits: 0 },
    { label: `NodeUnpublishVolume p50 (n=${m.unpublish.ours.length})`, unit: 'ms', ...both(m.unpublish, p50) },
    { label: 'republish (kubelet, requiresRepublish) p50', unit: 'ms', ...both(m.republish, p50) },
  ];
  if (m.growing) {
    const [from, to] = [m.idle[0]?.ours.volumes ?? 0, (m.idle[0]?.ours.volumes ?? 0) + m.growing.ours.length];
    out.push({ label: `NodePublishVolume p50 holding ${from} to ${to} volumes`, unit: 'ms', ...both(m.growing, p50) });
  }
  for (const w of m.idle) {
    const n = w.ours.volumes;
    out.push(
      { label: `idle CPU, ${n} volumes, rotation on`, unit: 'mCPU', ...both(w, (x) => x.milliCpu) },
      { label: `RSS, ${n} volumes`, unit: 'MiB', ...both(w, (x) => MiB(x.rssKiB)) },
      { label: `  of which anonymous (not file pages)`, unit: 'MiB', ...both(w, (x) => MiB(x.anonKiB)) },
      { label: `provider calls per volume-hour, ${n} volumes`, unit: '/h', ...both(w, (x) => x.providerCallsPerVolumeHour), digits: 0 },
    );
  }
  const [small, large] = m.idle;
  if (small && large && large.ours.volumes > small.ours.volumes) {
    const per = (s: IdleFigures, l: IdleFigures): number => (l.rssKiB - s.rssKiB) / (l.volumes - s.volumes);
    out.push({
      label: `RSS per added volume (${small.ours.volumes} to ${large.ours.volumes})`,
      unit: 'KiB',
      upstream: per(small.upstream, large.upstream),
      ours: per(small.ours, large.ours),
    });
  }
  if (m.rotation) {
    const r = m.rotation;
    const n = r.ours.ms.length + r.ours.missed;
    const s =
      (f: (xs: number[]) => number) =>
      (x: RotationFigures): number =>
        x.missed > 0 ? Number.NaN : f(x.ms) / 1000;
    out.push(
      { label: `rotation to a new open, p50 (${n} volumes)`, unit: 's', ...both(r, s(p50)) },
      {
        label: 'rotation to a new open, max',
        unit: 's',
        ...both(
          r,
          s((xs) => Math.max(...xs)),
        ),
      },
    );
  }
  return out;
}

/** Everything, rounded, for the JSON line. */
export function json(m: Measured): Record<string, unknown> {
  const sum = (xs: number[]) => {
    const s = summarize(xs);
    return { n: s.n, p50: round(s.median), p99: round(s.p99), max: round(s.max) };
  };
  const per =
    <T>(f: (x: T) => unknown) =>
    (x: PerSide<T>) => ({ upstream: f(x.upstream), ours: f(x.ours) });
  return {
    readyMs: per(sum)(m.readyMs),
    rssAfterStartKiB: m.rssAfterStartKiB,
    idleAtStartMilliCpu: per((x: IdleFigures) => round(x.milliCpu))(m.idleAtStart),
    publishSequentialMs: per(sum)(m.sequential),
    publishConcurrentMs: per((b: Burst) => ({ ...sum(b.ms), wallMs: round(b.wallMs) }))(m.burst),
    unpublishMs: per(sum)(m.unpublish),
    publishGrowingMs: m.growing ? per(sum)(m.growing) : null,
    republishMs: per(sum)(m.republish),
    idle: m.idle.map(
      per((x: IdleFigures) => ({
        ...x,
        windowSeconds: round(x.windowSeconds),
        milliCpu: round(x.milliCpu),
        providerCallsPerVolumeHour: round(x.providerCallsPerVolumeHour),
      })),
    ),
    rotationMs: m.rotation ? per((r: RotationFigures) => ({ ...sum(r.ms), missed: r.missed }))(m.rotation) : null,
  };
}
