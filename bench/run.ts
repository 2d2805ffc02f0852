// npm run bench: read latency, publish latency, rotation-to-visible latency
// and memory per volume of the real driver (child process, CSI over its unix
// socket, the example provider as the secret source), each against baselines
// measured in the same run. Not a test: nothing passes or fails on timing.
// Prints a table, then one JSON line with every figure.

import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { availableParallelism, release } from 'node:os';
import { join } from 'node:path';
import {
  BenchEnv, buildReadloop, canary, diffCounts, fuseRequests, kubeletTarget, monoNs, newPodUid, providerRequest, RawProviderClient,
  readLatencies, rssKiB, run, statusKiB, forceGc, probeMlockGc, scrape, sleep, startDriver, startProvider, watchForChange, writeSecretsFile, writeSpc,
  type Driver, type SecretFile,
} from './harness.js';
import { round, roundSummary, summarize, type Summary } from './stats.js';

// ---------------------------------------------------------------------------
// Parameters (env overrides for quick runs: BENCH_READ_ITERATIONS=2000 ...)

const num = (name: string, dflt: number): number => {
  const v = process.env[name];
  return v && /^\d+$/.test(v) ? Number(v) : dflt;
};
const P = {
  readIterations: num('BENCH_READ_ITERATIONS', 20_000),
  readRounds: 10,
  readWarmup: num('BENCH_READ_WARMUP', 2_000),
  readRoundWarmup: 200,
  publishN: num('BENCH_PUBLISH_N', 50),
  publishWarmup: 3,
  memoryVolumes: num('BENCH_MEMORY_VOLUMES', 200),
  rotations: num('BENCH_ROTATIONS', 10),
  rotationPollInterval: '1s',
  /** The driver used for reads, publishes and memory polls at the production default, so 1 s polls of many volumes do not load the machine. */
  mainPollInterval: '2m',
  watchSleepUs: 200,
};

const KiB = 1024;

// ---------------------------------------------------------------------------
// Output helpers

const out = (s = ''): void => { process.stdout.write(`${s}\n`); };
const pad = (s: string | number, w: number): string => String(s).padStart(w);
const padEnd = (s: string, w: number): string => s.padEnd(w);
function table(headers: string[], rows: Array<Array<string | number>>, firstWidth = 0): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i] ?? '').length), i === 0 ? firstWidth : 0));
  out(`  ${headers.map((h, i) => (i === 0 ? padEnd(h, widths[i]!) : pad(h, widths[i]!))).join('  ')}`);
  out(`  ${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of rows) out(`  ${r.map((c, i) => (i === 0 ? padEnd(String(c), widths[i]!) : pad(c, widths[i]!))).join('  ')}`);
}
const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const phase = (name: string): void => { process.stderr.write(`[bench] ${name}\n`); };

// ---------------------------------------------------------------------------
// Results

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

const results: Record<string, unknown> = {};
const notes: string[] = [];

// ---------------------------------------------------------------------------
// Atomic-writer layout (what kubelet's AtomicWriter, and upstream, write on tmpfs)

function tsDirName(d = new Date()): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `..${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}.${Math.floor(Math.random() * 2 ** 32)}`;
}

async function writeAtomicLayout(dir: string, files: readonly SecretFile[]): Promise<void> {
  const ts = tsDirName();
  await mkdir(join(dir, ts), { recursive: true, mode: 0o755 });
  for (const f of files) await writeFile(join(dir, ts, f.path), f.contents, { mode: 0o644 });
  await symlink(ts, join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const f of files) await symlink(join('..data', f.path), join(dir, f.path));
}

// ---------------------------------------------------------------------------
// 1. Read latency

async function benchReads(env: BenchEnv, bin: string, driver: Driver, tmpfsDir: string, readFiles: SecretFile[]): Promise<void> {
  phase('read latency');
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
      const rq = t.fuse ? reqs.get(t.target) ?? {} : null;
      const loops = P.readRounds * (perRound + P.readRoundWarmup);
      const rm = summarize(roundMedians.get(key(size, t.target))!);
      rows.push({
        size, target: t.target, path: t.path.replace(env.root, '<tmp>'), us: roundSummary(summarize(s), 2),
        roundMedianRange: [round(rm.min, 2), round(rm.max, 2)],
        firstPassFuseRequests: t.fuse ? firstPass.get(t.target) ?? {} : null,
        fuseRequests: rq, fuseRequestsPerIteration: rq ? round(Object.values(rq).reduce((a, b) => a + b, 0) / loops, 5) : null,
      });
    }
  }
  await driver.csi.unpublish(target);

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
    iterationsPerTarget: perRound * P.readRounds, rounds: P.readRounds, warmupPass: P.readWarmup, warmupPerRound: P.readRoundWarmup,
    rows, ratios, target: 'fuse median within 1.5x of tmpfs',
  };

  out('1. Read latency: open + read to EOF + close, one reader process (readloop.c), µs');
  out(`   ${perRound * P.readRounds} timed iterations per target: ${P.readRounds} interleaved rounds of ${perRound} (each after ${P.readRoundWarmup} untimed reads),`);
  out(`   after a warm-up pass of ${P.readWarmup} reads per target checked byte for byte; FUSE requests from the driver's metrics`);
  const reqText = (r: Record<string, number> | null): string => (r === null ? '-' : Object.entries(r).map(([k, v]) => `${k}=${v}`).join(' ') || 'none');
  table(['size / target', 'median', 'p99', 'mean', 'max', 'round medians', 'FUSE req/iter', 'FUSE req in warm-up pass'],
    rows.map((r) => [`${r.size} ${r.target}`, fmt(r.us.median, 2), fmt(r.us.p99, 2), fmt(r.us.mean, 2), fmt(r.us.max, 0),
      `${fmt(r.roundMedianRange[0]!, 2)}-${fmt(r.roundMedianRange[1]!, 2)}`,
      r.fuseRequestsPerIteration === null ? '-' : fmt(r.fuseRequestsPerIteration, 5), reqText(r.firstPassFuseRequests)]), 22);
  out();
  const pr = (x: unknown): string => {
    const p = x as { median: number; min: number; max: number };
    return `${fmt(p.median, 2)}x (${fmt(p.min, 2)}-${fmt(p.max, 2)})`;
  };
  table(['size', 'fuse/tmpfs', 'paired per round', 'fuse/tmpfs-atomic', 'paired per round', 'fuse..data/tmpfs', 'p99 fuse/tmpfs', 'fuse-tmpfs µs', 'target 1.5x'],
    Object.entries(ratios).map(([size, r]) => [size, `${fmt(r.fuse_vs_tmpfs_median as number, 2)}x`, pr(r.paired_fuse_vs_tmpfs),
      `${fmt(r.fuse_vs_tmpfsAtomic_median as number, 2)}x`, pr(r.paired_fuse_vs_tmpfsAtomic),
      `${fmt(r.fuseData_vs_tmpfs_median as number, 2)}x`, `${fmt(r.fuse_vs_tmpfs_p99 as number, 2)}x`, fmt(r.fuse_minus_tmpfs_median_us as number, 2),
      (r.fuse_vs_tmpfs_median as number) <= 1.5 ? 'within' : 'ABOVE']));
  out('   ratios are of medians; "paired per round": median (min-max) over rounds of the ratio within one round');
  out();
  for (const r of rows) {
    if (r.fuseRequestsPerIteration !== null && r.fuseRequestsPerIteration > 0.01) {
      notes.push(`${r.size} ${r.target}: ${r.fuseRequestsPerIteration} FUSE requests per open+read+close: the kernel cache is not being used for this path`);
    }
  }
  const fuseRows = rows.filter((r) => r.fuseRequestsPerIteration !== null);
  if (fuseRows.length > 0 && fuseRows.every((r) => r.fuseRequestsPerIteration! <= 0.01)) {
    const worst = Math.max(...fuseRows.map((r) => r.fuseRequestsPerIteration!));
    notes.push(`reads: the kernel cache serves the FUSE reads (at most ${worst} FUSE requests per open+read+close in the timed rounds; `
      + 'the driver is not on the read path), so the extra time over tmpfs is spent in the kernel\'s FUSE code');
  }
}

// ---------------------------------------------------------------------------
// 2. Publish latency

async function benchPublish(env: BenchEnv, driver: Driver, providerSocket: string, pubSecrets: string, pubFiles: SecretFile[], bin: string | null, tmpfsDir: string): Promise<void> {
  phase('publish latency');
  const ms = (t0: bigint): number => Number(monoNs() - t0) / 1e6;

  // Warm-up (JIT, gRPC channel, provider), not counted.
  for (let i = 0; i < P.publishWarmup; i++) {
    const t = kubeletTarget(env, newPodUid(), 'secrets-warm');
    await driver.csi.publish({ targetPath: t, podUid: 'warm', spc: 'pub' });
    await driver.csi.unpublish(t);
  }

  const targets = Array.from({ length: P.publishN }, () => kubeletTarget(env, newPodUid(), 'secrets-store'));
  const pub: number[] = [];
  const unpub: number[] = [];
  const m0 = await scrape(driver.metricsUrl);
  for (const t of targets) {
    const t0 = monoNs();
    await driver.csi.publish({ targetPath: t, podUid: 'pub', spc: 'pub' });
    pub.push(ms(t0));
  }
  // The provider call as the driver saw it (its own histogram), to split the publish time.
  const m1 = await scrape(driver.metricsUrl);
  const hk = (k: string): number => (m1.get(`secrets_store_provider_mount_duration_seconds_${k}{provider="example",result="ok"}`) ?? 0)
    - (m0.get(`secrets_store_provider_mount_duration_seconds_${k}{provider="example",result="ok"}`) ?? 0);
  const driverProviderMeanMs = hk('count') > 0 ? (hk('sum') / hk('count')) * 1000 : Number.NaN;
  // The published content is what the provider served (checked from a child process).
  if (bin) {
    for (const f of pubFiles) await readLatencies(bin, join(targets[0]!, f.path), 1, 1, join(tmpfsDir, `plain-${f.path}`));
  }
  for (const t of targets) {
    const t0 = monoNs();
    await driver.csi.unpublish(t);
    unpub.push(ms(t0));
  }

  // Baseline: the provider's Mount alone, called as the driver calls it.
  const raw = new RawProviderClient(providerSocket);
  const prov: number[] = [];
  try {
    for (let i = 0; i < P.publishWarmup + P.publishN; i++) {
      const req = providerRequest(pubSecrets, kubeletTarget(env, newPodUid(), 'raw'), newPodUid());
      const t0 = monoNs();
      const res = await raw.mount(req);
      if (i >= P.publishWarmup) prov.push(ms(t0));
      if (res.files.length !== pubFiles.length) throw new Error(`provider returned ${res.files.length} files`);
    }
  } finally {
    raw.close();
  }

  // Baseline: what upstream does per publish besides the provider call: mount(8) a
  // tmpfs, write the files in the atomic-writer layout, and umount(8) on unpublish.
  const cycleMount: number[] = [];
  const cycleUmount: number[] = [];
  const cycleRoot = env.path('tmpfs-cycle');
  for (let i = 0; i < P.publishWarmup + P.publishN; i++) {
    const dir = join(cycleRoot, String(i), 'mount');
    await mkdir(dir, { recursive: true });
    let mounted = false;
    try {
      const t0 = monoNs();
      await run('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0750', 'tmpfs', dir]);
      mounted = true;
      await writeAtomicLayout(dir, pubFiles);
      const m = ms(t0);
      const t1 = monoNs();
      await run('umount', [dir]);
      mounted = false;
      const u = ms(t1);
      if (i >= P.publishWarmup) { cycleMount.push(m); cycleUmount.push(u); }
    } finally {
      if (mounted) await run('umount', ['-l', dir]).catch(() => undefined);
    }
    await rm(join(cycleRoot, String(i)), { recursive: true, force: true });
  }

  const s = {
    publish: roundSummary(summarize(pub), 2),
    unpublish: roundSummary(summarize(unpub), 2),
    providerMount: roundSummary(summarize(prov), 2),
    tmpfsMountAndWrite: roundSummary(summarize(cycleMount), 2),
    tmpfsUmount: roundSummary(summarize(cycleUmount), 2),
  };
  const upstreamLikePublish = round(s.providerMount.median + s.tmpfsMountAndWrite.median, 2);
  results.publish = {
    n: P.publishN, filesPerVolume: pubFiles.length, fileBytes: pubFiles[0]!.contents.length, ms: s,
    providerMountInDriverMeanMs: round(driverProviderMeanMs, 2), upstreamLikePublishMedianEstimate: upstreamLikePublish,
  };

  out(`2. Publish latency, ms (N=${P.publishN} sequential, distinct kubelet-style target paths, ${pubFiles.length} files of ${pubFiles[0]!.contents.length / KiB} KiB)`);
  table(['operation', 'median', 'p95', 'max', 'mean'], [
    ['NodePublishVolume (ours, round trip)', fmt(s.publish.median, 2), fmt(s.publish.p95, 2), fmt(s.publish.max, 2), fmt(s.publish.mean, 2)],
    ['NodeUnpublishVolume (ours, round trip)', fmt(s.unpublish.median, 2), fmt(s.unpublish.p95, 2), fmt(s.unpublish.max, 2), fmt(s.unpublish.mean, 2)],
    ['baseline: provider Mount alone', fmt(s.providerMount.median, 2), fmt(s.providerMount.p95, 2), fmt(s.providerMount.max, 2), fmt(s.providerMount.mean, 2)],
    ['baseline: mount tmpfs + write files', fmt(s.tmpfsMountAndWrite.median, 2), fmt(s.tmpfsMountAndWrite.p95, 2), fmt(s.tmpfsMountAndWrite.max, 2), fmt(s.tmpfsMountAndWrite.mean, 2)],
    ['baseline: umount tmpfs', fmt(s.tmpfsUmount.median, 2), fmt(s.tmpfsUmount.p95, 2), fmt(s.tmpfsUmount.max, 2), fmt(s.tmpfsUmount.mean, 2)],
  ], 40);
  out(`  provider Mount inside our publishes (driver's histogram, mean): ${fmt(driverProviderMeanMs, 2)} ms`);
  out(`  upstream-like publish estimate (provider Mount + tmpfs mount/write, sum of medians): ${fmt(upstreamLikePublish, 2)} ms`);
  out();
}

// ---------------------------------------------------------------------------
// 3. Memory per volume

interface MemoryResult {
  config: string;
  forcedGc: boolean;
  volumes: number;
  bindMountsSeen: number;
  vmLckKiB: number;
  rssKiB: { before: number; afterPublish: number; afterUnpublish: number };
  heapUsedKiB: { before: number; afterPublish: number; afterUnpublish: number };
  /** The driver's own gauges: inodes and file bytes held in its table. */
  fuseInodes: { before: number; afterPublish: number; afterUnpublish: number };
  fuseFileBytes: { before: number; afterPublish: number; afterUnpublish: number };
  rssPerVolumeKiB: number;
  heapPerVolumeKiB: number;
  publishAllMs: number;
  unpublishAllMs: number;
}

/**
 * Driver VmRSS before and after publishing `memoryVolumes` volumes (3 x 1 KiB
 * each), and after unpublishing them. With an inspector URL, two full GCs are
 * forced before each sample, so garbage from the calls does not count.
 */
async function benchMemory(env: BenchEnv, driver: Driver, config: string): Promise<MemoryResult> {
  phase(`memory (${P.memoryVolumes} volumes, ${config})`);
  const pid = driver.child.pid;
  const sample = async (): Promise<{ rss: number; heapKiB: number; inodes: number; fileBytes: number }> => {
    await sleep(1000);
    if (driver.inspectorUrl) { await forceGc(driver.inspectorUrl); await forceGc(driver.inspectorUrl); await sleep(300); }
    const m = await scrape(driver.metricsUrl);
    const heap = m.get('nodejs_heap_size_used_bytes') ?? Number.NaN;
    return {
      rss: await rssKiB(pid), heapKiB: round(heap / KiB, 0),
      inodes: m.get('secrets_store_fuse_inodes') ?? Number.NaN, fileBytes: m.get('secrets_store_fuse_file_bytes') ?? Number.NaN,
    };
  };
  // Warm-up: code paths compiled, pools and caches filled, before the baseline.
  for (let i = 0; i < 10; i++) {
    const t = kubeletTarget(env, newPodUid(), 'secrets-warm');
    await driver.csi.publish({ targetPath: t, podUid: 'warm', spc: 'pub' });
    await driver.csi.unpublish(t);
  }
  const before = await sample();
  const targets = Array.from({ length: P.memoryVolumes }, () => kubeletTarget(env, newPodUid(), 'secrets-store'));
  const t0 = monoNs();
  for (const t of targets) await driver.csi.publish({ targetPath: t, podUid: 'mem', spc: 'pub' });
  const publishAllMs = Number(monoNs() - t0) / 1e6;
  const mounted = (await env.mountsUnderRoot()).filter((m) => m.includes('/secrets-store/')).length;
  const after = await sample();
  const t1 = monoNs();
  for (const t of targets) await driver.csi.unpublish(t);
  const unpublishAllMs = Number(monoNs() - t1) / 1e6;
  const end = await sample();
  const per = (a: number, b: number): number => round((a - b) / P.memoryVolumes, 1);
  return {
    config, forcedGc: driver.inspectorUrl !== null, volumes: P.memoryVolumes, bindMountsSeen: mounted,
    vmLckKiB: await statusKiB(pid, 'VmLck').catch(() => Number.NaN),
    rssKiB: { before: before.rss, afterPublish: after.rss, afterUnpublish: end.rss },
    heapUsedKiB: { before: before.heapKiB, afterPublish: after.heapKiB, afterUnpublish: end.heapKiB },
    fuseInodes: { before: before.inodes, afterPublish: after.inodes, afterUnpublish: end.inodes },
    fuseFileBytes: { before: before.fileBytes, afterPublish: after.fileBytes, afterUnpublish: end.fileBytes },
    rssPerVolumeKiB: per(after.rss, before.rss), heapPerVolumeKiB: per(after.heapKiB, before.heapKiB),
    publishAllMs: round(publishAllMs, 0), unpublishAllMs: round(unpublishAllMs, 0),
  };
}

function printMemory(rows: MemoryResult[]): void {
  results.memory = { filesPerVolume: 3, fileBytes: KiB, kernelSideCounted: false, runs: rows };
  out(`3. Memory per mounted volume: driver VmRSS (and V8 heap used), ${P.memoryVolumes} volumes x 3 files x 1 KiB, KiB`);
  table(['driver config', 'RSS before', 'RSS after pub', 'RSS after unpub', 'RSS/volume', 'heap before', 'heap after pub', 'heap/volume', 'VmLck'],
    rows.map((r) => [r.config, r.rssKiB.before, r.rssKiB.afterPublish, r.rssKiB.afterUnpublish, fmt(r.rssPerVolumeKiB, 1),
      r.heapUsedKiB.before, r.heapUsedKiB.afterPublish, fmt(r.heapPerVolumeKiB, 1), r.vmLckKiB]), 30);
  for (const r of rows) {
    out(`  ${r.config}: ${r.bindMountsSeen} bind mounts seen; publishing all took ${fmt(r.publishAllMs, 0)} ms, unpublishing all ${fmt(r.unpublishAllMs, 0)} ms;`);
    out(`    driver's table: inodes ${r.fuseInodes.before} -> ${r.fuseInodes.afterPublish} -> ${r.fuseInodes.afterUnpublish}, `
      + `file bytes ${r.fuseFileBytes.before} -> ${r.fuseFileBytes.afterPublish} -> ${r.fuseFileBytes.afterUnpublish} (before -> published -> unpublished)`);
  }
  out('  "forced GC": a second driver instance started with --inspect, used only for HeapProfiler.collectGarbage before each sample,');
  out('  and with --lock-memory=false, because a full GC under mlockall crashes Node (see the probe in the notes)');
  out('  kernel side (FUSE inodes/dentries/page cache, bind mounts) is not counted');
  out();
}

// ---------------------------------------------------------------------------
// 4. Rotation to visible

async function benchRotation(env: BenchEnv, bin: string, driver: Driver, provider: { onLine(fn: (l: string, at: bigint) => void): () => void }, rotSecrets: string): Promise<void> {
  phase(`rotation (${P.rotations} rotations, poll interval ${P.rotationPollInterval})`);
  const target = kubeletTarget(env, newPodUid(), 'secrets-rot');
  const name = 'secret1k';
  await writeSecretsFile(rotSecrets, [{ path: name, contents: canary(KiB, 'rot0') }]);
  await driver.csi.publish({ targetPath: target, podUid: 'rot', spc: 'rot' });
  // Let a few unchanged polls run first, so the poll path is warm (JIT) like in a long-running driver.
  await sleep(2500);

  // When the provider answered a Mount for this volume (arrival of its log line), and when the driver logged a rotation.
  const providerAnswers: bigint[] = [];
  const rotatedLogs: number[] = [];
  const off1 = provider.onLine((line, at) => {
    if (line.includes('"mount"') && line.includes(target)) providerAnswers.push(at);
  });
  const off2 = driver.child.onLine((line) => {
    if (!line.includes('rotated volume content')) return;
    try {
      const o = JSON.parse(line) as { time?: string | number };
      rotatedLogs.push(typeof o.time === 'number' ? o.time : Date.parse(String(o.time)));
    } catch { /* not JSON */ }
  });
  const m0 = await scrape(driver.metricsUrl);

  const e2e: number[] = [];
  const providerToVisible: number[] = [];
  const logToVisible: number[] = [];
  const firstReadUs: number[] = [];
  try {
    for (let i = 1; i <= P.rotations; i++) {
      const w = watchForChange(bin, join(target, name), P.watchSleepUs, 10_000);
      try {
        await Promise.race([w.ready, w.changed.then(() => { throw new Error('watcher saw a change before the rotation'); })]);
        // A random phase against the poll timer, so the figures sample the whole interval.
        await sleep(Math.random() * 1100);
        const next = canary(KiB, `rot${i}`);
        const T = monoNs();
        await writeSecretsFile(rotSecrets, [{ path: name, contents: next }]);
        const seen = await w.changed;
        if (!seen.content.equals(next)) throw new Error(`rotation ${i}: new content differs from what was written (${seen.content.length} bytes)`);
        e2e.push(Number(seen.monoNs - T) / 1e6);
        firstReadUs.push(seen.readUs);
        const answered = providerAnswers.filter((a) => a > T && a <= seen.monoNs + 5_000_000n).pop();
        if (answered !== undefined) providerToVisible.push(Number(seen.monoNs - answered) / 1e6);
        await sleep(20);
        const logged = rotatedLogs.pop();
        if (logged !== undefined) logToVisible.push(seen.realMs - logged);
        rotatedLogs.length = 0;
      } finally {
        w.kill();
      }
    }
  } finally {
    off1();
    off2();
  }
  const m1 = await scrape(driver.metricsUrl);
  await driver.csi.unpublish(target);

  const delta = (k: string): number => (m1.get(k) ?? 0) - (m0.get(k) ?? 0);
  const polls = delta('rotation_reconcile_duration_sec_count{os_type="linux"}');
  const pollMeanMs = polls > 0 ? (delta('rotation_reconcile_duration_sec_sum{os_type="linux"}') / polls) * 1000 : Number.NaN;
  const provCount = delta('secrets_store_provider_mount_duration_seconds_count{provider="example",result="ok"}');
  const provMeanMs = provCount > 0 ? (delta('secrets_store_provider_mount_duration_seconds_sum{provider="example",result="ok"}') / provCount) * 1000 : Number.NaN;
  const s = {
    endToEnd: roundSummary(summarize(e2e), 1),
    providerAnswerToVisible: roundSummary(summarize(providerToVisible), 2),
    driverLogToVisible: roundSummary(summarize(logToVisible), 1),
    firstReadOfNewVersionUs: roundSummary(summarize(firstReadUs), 1),
  };
  const rotReqs = diffCounts(fuseRequests(m1), fuseRequests(m0));
  results.rotation = {
    fuseRequestsDuringPhase: rotReqs,
    rotations: P.rotations, pollInterval: P.rotationPollInterval, pollJitter: '±10%', readerRecheckUs: P.watchSleepUs, ms: s,
    driverPollsDuringPhase: polls, driverPollMeanMs: round(pollMeanMs, 2), providerMountMeanMs: round(provMeanMs, 2),
  };
  out(`4. Rotation to visible, ms (${P.rotations} rotations; driver --rotation-poll-interval=${P.rotationPollInterval} ±10% jitter; reader re-opens every ${P.watchSleepUs} µs)`);
  table(['measure', 'median', 'p95', 'min', 'max', 'n'], [
    ['secrets file rewritten -> new bytes read', fmt(s.endToEnd.median), fmt(s.endToEnd.p95), fmt(s.endToEnd.min), fmt(s.endToEnd.max), s.endToEnd.n],
    ['provider answered -> new bytes read', fmt(s.providerAnswerToVisible.median, 2), fmt(s.providerAnswerToVisible.p95, 2), fmt(s.providerAnswerToVisible.min, 2), fmt(s.providerAnswerToVisible.max, 2), s.providerAnswerToVisible.n],
    ['driver logged rotation -> new bytes read', fmt(s.driverLogToVisible.median), fmt(s.driverLogToVisible.p95), fmt(s.driverLogToVisible.min), fmt(s.driverLogToVisible.max), s.driverLogToVisible.n],
    ['first open+read+close of the new version (µs)', fmt(s.firstReadOfNewVersionUs.median), fmt(s.firstReadOfNewVersionUs.p95), fmt(s.firstReadOfNewVersionUs.min), fmt(s.firstReadOfNewVersionUs.max), s.firstReadOfNewVersionUs.n],
  ], 42);
  out(`  driver poll (SPC read + provider Mount + swap), mean over ${polls} polls in the phase: ${fmt(pollMeanMs, 2)} ms; provider Mount alone: ${fmt(provMeanMs, 2)} ms`);
  out(`  FUSE requests during the phase (${P.rotations} rotations, reader spinning): ${Object.entries(rotReqs).map(([k, v]) => `${k}=${v}`).join(' ') || 'none'}`);
  out('  end-to-end is dominated by waiting for the next poll (uniform over the interval); the rest is the poll itself');
  out('  "provider answered" is when the provider\'s log line reached the bench; "driver logged" has ms resolution and may be negative');
  out('  (the driver logs after the swap is complete, the reader can see it first)');
  out('  the first open of a new version is not cached: it waits for the driver to answer LOOKUP/READLINK/READ, so it includes');
  out('  any stall of the driver\'s JS thread at that moment');
  out();
}

// ---------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = Date.now();
  const env = await BenchEnv.create();
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`[bench] ${sig}: cleaning up\n`);
    void env.cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let failure: Error | null = null;
  // Baseline tmpfs where kubelet would have upstream mount it: plain files `plain-<name>` and the atomic-writer layout side by side.
  const tmpfsDir = kubeletTarget(env, newPodUid(), 'tmpfs-read');
  let tmpfsMounted = false;
  try {
    const cc = await buildReadloop(env.path('bin'));
    const bin = cc.bin;
    if (!bin) notes.push(`read latency and rotation skipped: ${cc.reason}`);
    const ccVersion = bin ? (await run('cc', ['--version']).catch(() => ({ stdout: '' }))).stdout.split('\n')[0] : null;
    results.env = { kernel: release(), node: process.version, cpus: availableParallelism(), cc: ccVersion, tempDir: env.root };

    out('secrets-store CSI driver benchmark');
    out(`kernel ${release()}, node ${process.version}, ${availableParallelism()} CPUs, cc: ${ccVersion ?? 'none'}`);
    out(`temp dir ${env.root}; secrets in /dev/shm`);
    out();

    // Secrets (random canary-like bytes) in /dev/shm, one SPC per purpose.
    const readFiles: SecretFile[] = [
      { path: 'secret1k', contents: canary(KiB, 'read1k') },
      { path: 'secret64k', contents: canary(64 * KiB, 'read64k') },
    ];
    const pubFiles: SecretFile[] = ['a', 'b', 'c'].map((n) => ({ path: `pub-${n}`, contents: canary(KiB, `pub${n}`) }));
    const readSecrets = env.shmPath('read.json');
    const pubSecrets = env.shmPath('pub.json');
    const rotSecrets = env.shmPath('rot.json');
    await writeSecretsFile(readSecrets, readFiles);
    await writeSecretsFile(pubSecrets, pubFiles);
    await writeSecretsFile(rotSecrets, [{ path: 'secret1k', contents: canary(KiB, 'rot0') }]);
    const spcDir = env.path('spc');
    await writeSpc(spcDir, 'read', readSecrets);
    await writeSpc(spcDir, 'pub', pubSecrets);
    await writeSpc(spcDir, 'rot', rotSecrets);

    // Baseline files on a tmpfs of our own (the bench mounts it), plain and in the atomic-writer layout.
    await mkdir(tmpfsDir, { recursive: true });
    await run('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'tmpfs', tmpfsDir]);
    tmpfsMounted = true;
    for (const f of [...readFiles, ...pubFiles]) await writeFile(join(tmpfsDir, `plain-${f.path}`), f.contents, { mode: 0o644 });
    await writeAtomicLayout(tmpfsDir, readFiles);

    // The driver locks its memory by default; check that a full GC survives that.
    phase('mlockall + GC probe');
    const probe = await probeMlockGc();
    results.mlockGcProbe = probe;
    if (probe.locked && !probe.survived) {
      notes.push(`mlockall + full GC: a Node process locked like the driver (--lock-memory=true, its default) died on gc(): ${probe.how} (${probe.failedSyscall}). `
        + 'Under mlockall madvise(MADV_DONTNEED) fails with EINVAL and V8 CHECKs it, so the driver aborts whenever V8 gives heap pages back. '
        + 'The forced-GC memory run in section 3 therefore uses --lock-memory=false.');
    }

    const providerDir = env.path('providers');
    const providerSocket = join(providerDir, 'example.sock');
    const provider = await startProvider(env, providerSocket);

    phase('starting driver (poll interval 2m) for reads and publishes');
    const mainDriver = await startDriver(env, { name: 'main', providerDir, spcDir, rotationPollInterval: P.mainPollInterval, logLevel: 'warn' });
    if (bin) await benchReads(env, bin, mainDriver, tmpfsDir, readFiles);
    await benchPublish(env, mainDriver, providerSocket, pubSecrets, pubFiles, bin, tmpfsDir);
    const memory: MemoryResult[] = [];
    try {
      memory.push(await benchMemory(env, mainDriver, 'default flags (mlockall), no forced GC'));
      mainDriver.csi.close();
      await mainDriver.child.stop();

      phase('starting driver (poll interval 2m, --lock-memory=false, --inspect) for memory');
      const memDriver = await startDriver(env, { name: 'mem', providerDir, spcDir, rotationPollInterval: P.mainPollInterval, logLevel: 'warn', inspect: true, lockMemory: false });
      memory.push(await benchMemory(env, memDriver, '--lock-memory=false, forced GC'));
      memDriver.csi.close();
      await memDriver.child.stop();
    } finally {
      if (memory.length > 0) printMemory(memory);
    }

    if (bin) {
      phase('starting driver (poll interval 1s) for rotation');
      const rot = await startDriver(env, { name: 'rot', providerDir, spcDir, rotationPollInterval: P.rotationPollInterval, logLevel: 'info' });
      await benchRotation(env, bin, rot, provider, rotSecrets);
      rot.csi.close();
      await rot.child.stop();
    }
  } catch (e) {
    failure = e as Error;
  } finally {
    if (tmpfsMounted) await run('umount', [tmpfsDir]).catch(() => undefined);
    const c = await env.cleanup();
    for (const cr of c.crashed) notes.push(`CRASHED: ${cr}`);
    const ours = c.leftoverMounts.filter((m) => m !== tmpfsDir);
    results.cleanup = { leftoverMountsUnmounted: ours.map((m) => m.replace(env.root, '<tmp>')), errors: c.errors };
    if (ours.length > 0) notes.push(`cleanup had to unmount ${ours.length} leftover mount(s): ${ours.slice(0, 5).join(' ')}`);
    for (const e of c.errors) notes.push(`cleanup: ${e}`);
  }
  if (failure) notes.push(`FAILED: ${failure.message}`);
  results.notes = notes;
  results.elapsedSeconds = round((Date.now() - started) / 1000, 1);
  results.ok = failure === null;
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);

  if (notes.length > 0) {
    out('Notes');
    for (const n of notes) out(`  - ${n}`);
    out();
  }
  out(`elapsed ${fmt((Date.now() - started) / 1000, 1)} s`);
  out(JSON.stringify(results));
  return failure ? 1 : 0;
}

process.exitCode = await main();
