// 1. Read latency: open + read to EOF + close of a file on the FUSE mount
// against the same file on tmpfs (plain and in the atomic-writer layout),
// from a child process (readloop), in interleaved rounds.

import { join } from 'node:path';
import { kubeletTarget, newPodUid } from '../lib/clients.js';
import type { Section, SectionContext } from '../lib/context.js';
import type { Driver } from '../lib/driver.js';
import { diffCounts, fuseRequests, scrape } from '../lib/metrics.js';
import { fmt, out, phase, table } from '../lib/output.js';
import { KiB, P } from '../lib/params.js';
import { readLatencies } from '../lib/readloop.js';
import { round, roundSummary, summarize, type Summary } from '../lib/stats.js';

interface ReadRow {
  size: string;
  target: string;
  path: string;
  us: Summary;
  /** Lowest and highest per-round median. */
  roundMedianRange: number[];
  /** FUSE requests the warm-up pass caused (the cold cost); null for tmpfs. */
  firstPassFuseRequests: Record<string, number> | null;
  /** FUSE requests during the timed rounds (incl. their untimed lead-in), by op; null for tmpfs. */
  fuseRequests: Record<string, number> | null;
  fuseRequestsPerIteration: number | null;
}

async function benchReads(ctx: SectionContext, driver: Driver): Promise<void> {
  const {
    env,
    bin,
    fixtures: { tmpfsDir, readFiles },
  } = ctx;
  const { results, notes } = ctx.report;
  if (!bin) throw new Error('read latency needs readloop');
  phase('read latency');
  // The node is not empty: other pods' volumes are served by the same connection meanwhile.
  const background: string[] = [];
  for (let i = 0; i < P.readBackgroundVolumes; i++) {
    const t = kubeletTarget(env, newPodUid(), 'secrets-bg');
    await driver.csi.publish({ targetPath: t, podUid: `bg-${i}`, spc: 'pub' });
    background.push(t);
  }
  const target = kubeletTarget(env, newPodUid(), 'secrets-read');
  await driver.csi.publish({ targetPath: target, podUid: 'read', spc: 'read' });
  // The tmpfs is mounted at a kubelet-style target path too, so path walks are equally long.
  const targets = (name: string): Array<{ target: string; path: string; fuse: boolean }> => [
    { target: 'tmpfs', path: join(tmpfsDir, `plain-${name}`), fuse: false },
    { target: 'tmpfs-atomic', path: join(tmpfsDir, name), fuse: false },
    { target: 'fuse', path: join(target, name), fuse: true },
    { target: 'fuse-..data', path: join(target, '..data', name), fuse: true },
  ];
  const rows: ReadRow[] = [];
  const perRound = Math.ceil(P.readIterations / P.readRounds);
  const roundMedians = new Map<string, number[]>();
  const key = (size: string, t: string): string => `${size} ${t}`;
  for (const f of readFiles) {
    const size = `${f.contents.length / KiB} KiB`;
    const expect = join(tmpfsDir, `plain-${f.path}`);
    const samples = new Map<string, number[]>();
    const reqs = new Map<string, Record<string, number>>();
    const firstPass = new Map<string, Record<string, number>>();
    // Warm-up pass: every target read and checked against the expected bytes; the
    // FUSE requests it causes are the cold cost (lookups, first read).
    for (const t of targets(f.path)) {
      const before = t.fuse ? fuseRequests(await scrape(driver.metricsUrl)) : {};
      await readLatencies(bin, t.path, 1, P.readWarmup, expect);
      if (t.fuse) firstPass.set(t.target, diffCounts(fuseRequests(await scrape(driver.metricsUrl)), before));
    }
    // Rounds interleave the targets, so the machine's drift (this VM has fast and
    // slow phases) hits all of them alike; per-round ratios are paired.
    for (let r = 0; r < P.readRounds; r++) {
      for (const t of targets(f.path)) {
        const before = t.fuse ? fuseRequests(await scrape(driver.metricsUrl)) : {};
        const lat = await readLatencies(bin, t.path, perRound, P.readRoundWarmup, expect);
        if (t.fuse) {
          const d = diffCounts(fuseRequests(await scrape(driver.metricsUrl)), before);
          const acc = reqs.get(t.target) ?? {};
          for (const [k, v] of Object.entries(d)) acc[k] = (acc[k] ?? 0) + v;
          reqs.set(t.target, acc);
        }
        samples.set(t.target, [...(samples.get(t.target) ?? []), ...lat]);
        const rm = roundMedians.get(key(size, t.target)) ?? [];
        rm.push(summarize(lat).median);
        roundMedians.set(key(size, t.target), rm);
      }
    }
    for (const t of targets(f.path)) {
      const s = samples.get(t.target)!;
      const rq = t.fuse ? (reqs.get(t.target) ?? {}) : null;
      const loops = P.readRounds * (perRound + P.readRoundWarmup);
      const rm = summarize(roundMedians.get(key(size, t.target))!);
      rows.push({
        size,
        target: t.target,
        path: t.path.replace(env.root, '<tmp>'),
        us: roundSummary(summarize(s), 2),
        roundMedianRange: [round(rm.min, 2), round(rm.max, 2)],
        firstPassFuseRequests: t.fuse ? (firstPass.get(t.target) ?? {}) : null,
        fuseRequests: rq,
        fuseRequestsPerIteration: rq ? round(Object.values(rq).reduce((a, b) => a + b, 0) / loops, 5) : null,
      });
    }
  }
  await driver.csi.unpublish(target);
  for (const t of background) await driver.csi.unpublish(t);

  const get = (size: string, t: string): ReadRow => rows.find((r) => r.size === size && r.target === t)!;
  /** Median over rounds of (median of x in the round / median of y in the same round), with min and max. */
  const paired = (size: string, x: string, y: string): { median: number; min: number; max: number } => {
    const xs = roundMedians.get(key(size, x))!;
    const ys = roundMedians.get(key(size, y))!;
    const s = summarize(xs.map((v, i) => v / ys[i]!));
    return { median: round(s.median, 2), min: round(s.min, 2), max: round(s.max, 2) };
  };
  const ratios: Record<string, Record<string, unknown>> = {};
  for (const f of readFiles) {
    const size = `${f.contents.length / KiB} KiB`;
    const a = get(size, 'tmpfs').us;
    const b = get(size, 'tmpfs-atomic').us;
    const c = get(size, 'fuse').us;
    const d = get(size, 'fuse-..data').us;
    ratios[size] = {
      fuse_vs_tmpfs_median: round(c.median / a.median, 2),
      fuse_vs_tmpfsAtomic_median: round(c.median / b.median, 2),
      fuseData_vs_tmpfs_median: round(d.median / a.median, 2),
      fuse_vs_tmpfs_p99: round(c.p99 / a.p99, 2),
      fuse_vs_tmpfsAtomic_p99: round(c.p99 / b.p99, 2),
      paired_fuse_vs_tmpfs: paired(size, 'fuse', 'tmpfs'),
      paired_fuse_vs_tmpfsAtomic: paired(size, 'fuse', 'tmpfs-atomic'),
      fuse_minus_tmpfs_median_us: round(c.median - a.median, 2),
    };
  }
  results.read = {
    volumesServed: P.readBackgroundVolumes + 1,
    iterationsPerTarget: perRound * P.readRounds,
    rounds: P.readRounds,
    warmupPass: P.readWarmup,
    warmupPerRound: P.readRoundWarmup,
    rows,
    ratios,
    target: 'fuse median within 1.5x of tmpfs',
  };

  out(`1. Read latency: open + read to EOF + close, one reader process (readloop.c), µs; ${P.readBackgroundVolumes + 1} volumes served`);
  out(
    `   ${perRound * P.readRounds} timed iterations per target: ${P.readRounds} interleaved rounds of ${perRound} (each after ${P.readRoundWarmup} untimed reads),`,
  );
  out(`   after a warm-up pass of ${P.readWarmup} reads per target checked byte for byte; FUSE requests from the driver's metrics`);
  const reqText = (r: Record<string, number> | null): string =>
    r === null
      ? '-'
      : Object.entries(r)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ') || 'none';
  table(
    ['size / target', 'median', 'p99', 'mean', 'max', 'round medians', 'FUSE req/iter', 'FUSE req in warm-up pass'],
    rows.map((r) => [
      `${r.size} ${r.target}`,
      fmt(r.us.median, 2),
      fmt(r.us.p99, 2),
      fmt(r.us.mean, 2),
      fmt(r.us.max, 0),
      `${fmt(r.roundMedianRange[0]!, 2)}-${fmt(r.roundMedianRange[1]!, 2)}`,
      r.fuseRequestsPerIteration === null ? '-' : fmt(r.fuseRequestsPerIteration, 5),
      reqText(r.firstPassFuseRequests),
    ]),
    22,
  );
  out();
  const pr = (x: unknown): string => {
    const p = x as { median: number; min: number; max: number };
    return `${fmt(p.median, 2)}x (${fmt(p.min, 2)}-${fmt(p.max, 2)})`;
  };
  table(
    [
      'size',
      'fuse/tmpfs',
      'paired per round',
      'fuse/tmpfs-atomic',
      'paired per round',
      'fuse..data/tmpfs',
      'p99 fuse/tmpfs',
      'fuse-tmpfs µs',
      'target 1.5x',
    ],
    Object.entries(ratios).map(([size, r]) => [
      size,
      `${fmt(r.fuse_vs_tmpfs_median as number, 2)}x`,
      pr(r.paired_fuse_vs_tmpfs),
      `${fmt(r.fuse_vs_tmpfsAtomic_median as number, 2)}x`,
      pr(r.paired_fuse_vs_tmpfsAtomic),
      `${fmt(r.fuseData_vs_tmpfs_median as number, 2)}x`,
      `${fmt(r.fuse_vs_tmpfs_p99 as number, 2)}x`,
      fmt(r.fuse_minus_tmpfs_median_us as number, 2),
      (r.fuse_vs_tmpfs_median as number) <= 1.5 ? 'within' : 'ABOVE',
    ]),
  );
  out('   ratios are of medians; "paired per round": median (min-max) over rounds of the ratio within one round');
  out();
  for (const r of rows) {
    if (r.fuseRequestsPerIteration !== null && r.fuseRequestsPerIteration > 0.01) {
      notes.push(
        `${r.size} ${r.target}: ${r.fuseRequestsPerIteration} FUSE requests per open+read+close: the kernel cache is not being used for this path`,
      );
    }
  }
  const fuseRows = rows.filter((r) => r.fuseRequestsPerIteration !== null);
  if (fuseRows.length > 0 && fuseRows.every((r) => r.fuseRequestsPerIteration! <= 0.01)) {
    const worst = Math.max(...fuseRows.map((r) => r.fuseRequestsPerIteration!));
    notes.push(
      `reads: the kernel cache serves the FUSE reads (at most ${worst} FUSE requests per open+read+close in the timed rounds; ` +
        "the driver is not on the read path), so the extra time over tmpfs is spent in the kernel's FUSE code",
    );
  }
}

export const reads: Section = { name: 'reads', driver: 'main', needsReadloop: true, run: benchReads };
