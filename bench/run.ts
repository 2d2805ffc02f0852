// npm run bench: read latency, publish latency, rotation-to-visible latency
// and memory per volume of the real driver (child process, CSI over its unix
// socket, the example provider as the secret source), each against baselines
// measured in the same run, then one FUSE connection per node vs one per
// volume (bench/mount-strategy.ts in child processes). Not a test: nothing
// passes or fails on timing. Prints a table, then one JSON line with every
// figure.

import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { availableParallelism, release } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import {
  atOrUnder, BenchEnv, buildReadloop, canary, diffCounts, fuseRequests, kubeletTarget, monoNs, MOUNT_STRATEGY_PREFIX, mountStrategyDirs, mountsWhere,
  newPodUid, probeSecretAllocGc, providerRequest, RawProviderClient, readLatencies, REPO_ROOT, removeMountStrategyDirs, rssKiB, run, runCaptured,
  statusKiB, forceGc, probeMlockGc, scrape, sleep, startDriver, startProvider, threadStates, umountAllWhere, watchForChange, writeSecretsFile, writeSpc,
  type Driver, type SecretFile, type CapturedRun,
} from './harness.js';
import type { StrategyResult } from './mount-strategy.js';
import type { SwitchCostResult } from './switch-cost.js';
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
  /** Volumes per strategy in section 5 (bench/mount-strategy.ts in a child process). */
  strategyVolumes: num('BENCH_STRATEGY_VOLUMES', 50),
  strategyThreadpool: 128,
  /** Section 6: rotations timed one after another, and volumes rotated at once. */
  switchRotations: num('BENCH_SWITCH_ROTATIONS', 300),
  switchVolumes: num('BENCH_SWITCH_VOLUMES', 50),
  /** The default-threadpool repro: volumes asked for, pool size, and the hard timeout after which the child is killed. */
  hangVolumes: 8,
  hangThreadpool: 4,
  hangTimeoutMs: 15_000,
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

  // The provider writes its files itself (a write window: the target bind is
  // writable during the call, then remounted read-only).
  const wpub: number[] = [];
  const wunpub: number[] = [];
  for (let i = 0; i < P.publishWarmup + P.publishN; i++) {
    const t = kubeletTarget(env, newPodUid(), 'secrets-written');
    const t0 = monoNs();
    await driver.csi.publish({ targetPath: t, podUid: 'pubw', spc: 'pubw' });
    const p = ms(t0);
    if (i === P.publishWarmup && bin) {
      for (const f of pubFiles) await readLatencies(bin, join(t, f.path), 1, 1, join(tmpfsDir, `plain-${f.path}`));
    }
    const t1 = monoNs();
    await driver.csi.unpublish(t);
    if (i >= P.publishWarmup) { wpub.push(p); wunpub.push(ms(t1)); }
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
    publishWriteWindow: roundSummary(summarize(wpub), 2),
    unpublishWriteWindow: roundSummary(summarize(wunpub), 2),
  };
  const upstreamLikePublish = round(s.providerMount.median + s.tmpfsMountAndWrite.median, 2);
  results.publish = {
    n: P.publishN, filesPerVolume: pubFiles.length, fileBytes: pubFiles[0]!.contents.length, ms: s,
    providerMountInDriverMeanMs: round(driverProviderMeanMs, 2), upstreamLikePublishMedianEstimate: upstreamLikePublish,
  };

  out(`2. Publish latency, ms (N=${P.publishN} sequential, distinct kubelet-style target paths, ${pubFiles.length} files of ${pubFiles[0]!.contents.length / KiB} KiB)`);
  const row = (label: string, x: Summary): string[] => [label, fmt(x.median, 2), fmt(x.p95, 2), fmt(x.max, 2), fmt(x.mean, 2)];
  table(['operation', 'median', 'p95', 'max', 'mean'], [
    row('NodePublishVolume (ours, round trip)', s.publish),
    row('NodeUnpublishVolume (ours, round trip)', s.unpublish),
    row('NodePublishVolume, provider writes (window)', s.publishWriteWindow),
    row('NodeUnpublishVolume after a window', s.unpublishWriteWindow),
    row('baseline: provider Mount alone', s.providerMount),
    row('baseline: mount tmpfs + write files', s.tmpfsMountAndWrite),
    row('baseline: umount tmpfs', s.tmpfsUmount),
  ], 40);
  out(`  provider Mount inside our publishes (driver's histogram, mean): ${fmt(driverProviderMeanMs, 2)} ms`);
  out(`  upstream-like publish estimate (provider Mount + tmpfs mount/write, sum of medians): ${fmt(upstreamLikePublish, 2)} ms`);
  out(`  a write window costs ${fmt(s.publishWriteWindow.median - s.publish.median, 2)} ms more per publish (median): the provider's own writes through FUSE and one remount to read-only; its content was checked byte for byte from a child process`);
  out();
}

// ---------------------------------------------------------------------------
// 3. Memory per volume

interface Triple { before: number; afterPublish: number; afterUnpublish: number }

interface MemoryResult {
  config: string;
  forcedGc: boolean;
  volumes: number;
  filesPerVolume: number;
  fileBytes: number;
  bindMountsSeen: number;
  /** The driver warned that it could not lock secret memory (then VmLck stays flat). */
  secretLockWarning: string | null;
  rssKiB: Triple;
  heapUsedKiB: Triple;
  /** Locked memory: with default flags, the secret file contents (one mapping each, allocSecure). */
  vmLckKiB: Triple;
  /** The driver's own gauges: inodes and file bytes held in its table. */
  fuseInodes: Triple;
  fuseFileBytes: Triple;
  rssPerVolumeKiB: number;
  heapPerVolumeKiB: number;
  vmLckPerVolumeKiB: number;
  vmLckPerFileKiB: number;
  /** VmLck after unpublishing everything and forcing GC equals the baseline. */
  vmLckBackToBaseline: boolean;
  /** Extra forced-GC rounds the after-unpublish sample needed for VmLck to settle (0: the first sample). */
  extraGcRoundsAfterUnpublish: number;
  publishAllMs: number;
  unpublishAllMs: number;
}

/**
 * Driver VmRSS, V8 heap used and VmLck before and after publishing
 * `memoryVolumes` volumes (3 x 1 KiB each), and after unpublishing them. The
 * driver runs with --inspect and two full GCs are forced before each sample
 * (HeapProfiler.collectGarbage), so garbage from the calls does not count and
 * collected secret buffers have given back their locked pages.
 */
async function benchMemory(env: BenchEnv, driver: Driver, config: string, filesPerVolume: number, fileBytes: number, lockWarning: () => string | null): Promise<MemoryResult> {
  phase(`memory (${P.memoryVolumes} volumes, ${config})`);
  if (!driver.inspectorUrl) throw new Error('memory: the driver must run with --inspect (forced GC)');
  const inspectorUrl = driver.inspectorUrl;
  const pid = driver.child.pid;
  const sample = async (settleMs = 1000): Promise<{ rss: number; heapKiB: number; vmLck: number; inodes: number; fileBytes: number }> => {
    await sleep(settleMs);
    await forceGc(inspectorUrl);
    await forceGc(inspectorUrl);
    // The addon's finalizers (zero, munlock, munmap) run after the GC, from the driver's event loop.
    await sleep(300);
    const m = await scrape(driver.metricsUrl);
    const heap = m.get('nodejs_heap_size_used_bytes') ?? Number.NaN;
    return {
      rss: await rssKiB(pid), heapKiB: round(heap / KiB, 0), vmLck: await statusKiB(pid, 'VmLck'),
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
  let end = await sample();
  // The kernel's FORGETs for the unpublished inodes may trail the unpublish; give
  // VmLck up to 3 more GC rounds to reach the baseline, and report how many it took.
  let extra = 0;
  while (end.vmLck > before.vmLck && extra < 3) {
    extra++;
    end = await sample(500);
  }
  const per = (a: number, b: number, d = 1): number => round((a - b) / P.memoryVolumes, d);
  const t = (k: 'rss' | 'heapKiB' | 'vmLck' | 'inodes' | 'fileBytes'): Triple => ({ before: before[k], afterPublish: after[k], afterUnpublish: end[k] });
  return {
    config, forcedGc: true, volumes: P.memoryVolumes, filesPerVolume, fileBytes, bindMountsSeen: mounted, secretLockWarning: lockWarning(),
    rssKiB: t('rss'), heapUsedKiB: t('heapKiB'), vmLckKiB: t('vmLck'), fuseInodes: t('inodes'), fuseFileBytes: t('fileBytes'),
    rssPerVolumeKiB: per(after.rss, before.rss), heapPerVolumeKiB: per(after.heapKiB, before.heapKiB),
    vmLckPerVolumeKiB: per(after.vmLck, before.vmLck, 2), vmLckPerFileKiB: round((after.vmLck - before.vmLck) / (P.memoryVolumes * filesPerVolume), 2),
    vmLckBackToBaseline: end.vmLck === before.vmLck, extraGcRoundsAfterUnpublish: extra,
    publishAllMs: round(publishAllMs, 0), unpublishAllMs: round(unpublishAllMs, 0),
  };
}

function printMemory(r: MemoryResult): void {
  results.memory = { ...r, kernelSideCounted: false };
  out(`3. Memory per mounted volume, KiB: ${r.volumes} volumes x ${r.filesPerVolume} files x ${r.fileBytes / KiB} KiB`);
  out(`   driver with default flags (--lock-memory=true: secret file contents in mlock'ed pages of their own, no mlockall),`);
  out('   started with --inspect only to force two full GCs (HeapProfiler.collectGarbage) before each sample');
  table(['measure', 'before', 'after publish', 'after unpublish', 'per volume', 'unpublished - before'], [
    ['VmRSS', r.rssKiB.before, r.rssKiB.afterPublish, r.rssKiB.afterUnpublish, fmt(r.rssPerVolumeKiB, 1), r.rssKiB.afterUnpublish - r.rssKiB.before],
    ['V8 heap used', r.heapUsedKiB.before, r.heapUsedKiB.afterPublish, r.heapUsedKiB.afterUnpublish, fmt(r.heapPerVolumeKiB, 1), r.heapUsedKiB.afterUnpublish - r.heapUsedKiB.before],
    ['VmLck (locked secret pages)', r.vmLckKiB.before, r.vmLckKiB.afterPublish, r.vmLckKiB.afterUnpublish, fmt(r.vmLckPerVolumeKiB, 2), r.vmLckKiB.afterUnpublish - r.vmLckKiB.before],
  ], 28);
  out(`  VmLck growth: ${fmt(r.vmLckPerFileKiB, 2)} KiB per secret file (one 4 KiB page per file expected); `
    + `back to baseline after unpublish + GC: ${r.vmLckBackToBaseline ? 'yes' : 'NO'}`
    + (r.extraGcRoundsAfterUnpublish > 0 ? ` (after ${r.extraGcRoundsAfterUnpublish} extra GC round(s))` : ''));
  if (r.secretLockWarning) out(`  the driver could not lock secret memory: ${r.secretLockWarning}`);
  out(`  ${r.bindMountsSeen} bind mounts seen; publishing all took ${fmt(r.publishAllMs, 0)} ms, unpublishing all ${fmt(r.unpublishAllMs, 0)} ms;`);
  out(`  driver's table: inodes ${r.fuseInodes.before} -> ${r.fuseInodes.afterPublish} -> ${r.fuseInodes.afterUnpublish}, `
    + `file bytes ${r.fuseFileBytes.before} -> ${r.fuseFileBytes.afterPublish} -> ${r.fuseFileBytes.afterUnpublish} (before -> published -> unpublished)`);
  out('  kernel side (FUSE inodes/dentries/page cache, bind mounts) is not counted');
  const probes = results.lockedMemoryProbes as { mlockallGc: Awaited<ReturnType<typeof probeMlockGc>>; secretAllocatorGc: Awaited<ReturnType<typeof probeSecretAllocGc>> } | undefined;
  if (probes) {
    const m = probes.mlockallGc;
    const a = probes.secretAllocatorGc;
    out(`  locked-memory probes (details in the notes): mlockall + gc(): ${m.survived ? 'survived' : `died (${m.how})`}, which is why the driver does not mlockall;`);
    out(`    secretAllocator(loadNative(), true) + ${a.buffers} secret buffers + ${a.gcCalls} gc(): survived: ${a.survived}`);
  }
  out();
  if (r.secretLockWarning || r.vmLckPerFileKiB < 4) {
    notes.push(`memory: secret pages do not look locked (VmLck +${fmt(r.vmLckPerFileKiB, 2)} KiB per file)${r.secretLockWarning ? `: ${r.secretLockWarning}` : ''}`);
  }
  if (!r.vmLckBackToBaseline) {
    notes.push(`memory: VmLck did not return to its baseline after unpublishing everything and forcing GC (${r.vmLckKiB.before} -> ${r.vmLckKiB.afterUnpublish} KiB)`);
  }
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
// 5. One FUSE connection per node vs one per volume

const STRATEGY_JS = join(REPO_ROOT, 'dist/bench/mount-strategy.js');
const SWITCH_JS = join(REPO_ROOT, 'dist/bench/switch-cost.js');
/** Children of section 5, killed by the signal handler. */
const liveChildren = new Set<ChildProcess>();
const trackChild = (c: ChildProcess): void => {
  liveChildren.add(c);
  c.on('close', () => liveChildren.delete(c));
};
/** /tmp/ssbench-mounts-* that existed before the run (not ours: never touched). */
let strategyDirsAtStart = new Set<string>();

/** Unmounts and removes every /tmp/ssbench-mounts-* dir that appeared during the run; returns the mounts it had to undo. */
async function cleanupStrategyDirs(errors: string[], scanAllMounts = false): Promise<string[]> {
  const ours = (await mountStrategyDirs()).filter((d) => !strategyDirsAtStart.has(d));
  const undone = await removeMountStrategyDirs(ours, errors);
  if (scanAllMounts) {
    // A mount under /tmp/ssbench-mounts-* whose directory is not a pre-existing one (e.g. its directory is gone).
    const preexisting = [...strategyDirsAtStart].map(atOrUnder);
    undone.push(...await umountAllWhere((m) => m.startsWith(MOUNT_STRATEGY_PREFIX) && !preexisting.some((f) => f(m)), errors));
  }
  return undone;
}

const howEnded = (r: CapturedRun): string => (r.timedOut ? 'killed after the timeout' : r.signal ? `signal ${r.signal}` : `exit code ${r.code}`);

/** A bench child's JSON result, or why there is none (how it ended, its last lines). */
function childJson<T>(r: CapturedRun): { res: T | null; error: string } {
  if (r.code !== 0) return { res: null, error: `${howEnded(r)}: ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join(' | ')}` };
  try {
    return { res: JSON.parse(r.stdout) as T, error: '' };
  } catch (e) {
    return { res: null, error: `unparsable output: ${(e as Error).message}: ${r.stdout.slice(0, 300)}` };
  }
}

interface DefaultPoolRepro {
  threadpoolSize: number;
  volumesAsked: number;
  timeoutMs: number;
  hung: boolean;
  how: string;
  elapsedMs: number;
  /** Per-volume FUSE connections (<dir>/b/<i>) mounted when the child was killed (or -1 when it was not). */
  perVolumeConnectionsMountedAtKill: number;
  /** libuv threadpool threads of the child, and how many of them were blocked in fuse_dev_do_read (read(2) on /dev/fuse) at the kill. */
  poolThreads: number;
  poolThreadsInFuseRead: number;
  mainThreadWchan: string;
  /** The child's own figures when it finished by itself. */
  childResult: StrategyResult | null;
  mountsCleanedUp: number;
  cleanupErrors: string[];
}

async function benchMountStrategy(): Promise<void> {
  const n = P.strategyVolumes;
  phase(`mount strategy (${n} volumes per strategy, child process, UV_THREADPOOL_SIZE=${P.strategyThreadpool})`);
  const t0 = monoNs();
  const r = await runCaptured(process.execPath, [STRATEGY_JS, String(n)], {
    timeoutMs: 90_000, env: { ...process.env, UV_THREADPOOL_SIZE: String(P.strategyThreadpool) }, onSpawn: trackChild,
  });
  const elapsedMs = Number(monoNs() - t0) / 1e6;
  const { res, error } = childJson<StrategyResult>(r);
  // It cleans up after itself; whatever is left (always looked for, and on a failure
  // every mount under /tmp/ssbench-mounts-) is unmounted lazily and removed here.
  const cleanupErrors: string[] = [];
  const leftovers = await cleanupStrategyDirs(cleanupErrors, res === null);
  if (leftovers.length > 0) notes.push(`mount strategy: ${leftovers.length} mount(s) left by the child had to be unmounted: ${leftovers.slice(0, 4).join(' ')}`);
  for (const e of cleanupErrors) notes.push(`mount strategy cleanup: ${e}`);

  // The default threadpool with one connection per volume.
  const repro = await reproDefaultPoolHang();

  results.mountStrategy = {
    command: `UV_THREADPOOL_SIZE=${P.strategyThreadpool} node dist/bench/mount-strategy.js ${n}`, childElapsedMs: round(elapsedMs, 0),
    result: res, error: error || null, leftoverMountsUnmounted: leftovers.length, defaultThreadpool: repro,
  };
  out(`5. One FUSE connection per node vs one per volume (${n} volumes of 3 x 1 KiB each; bench/mount-strategy.ts in a child process,`);
  out(`   UV_THREADPOOL_SIZE=${P.strategyThreadpool}, so the per-volume strategy is not starved; setup and teardown in ms)`);
  if (res) {
    const row = (name: string, f: StrategyResult['perNode']): Array<string | number> => [name, fmt(f.setupMedianMs, 2), fmt(f.setupP95Ms, 2),
      f.poolThreadsHeld, f.fdsAdded, fmt(f.teardownMs, 1), f.stalledAtVolume === null ? 'no' : `at volume ${f.stalledAtVolume + 1}`];
    table(['strategy', 'setup median', 'setup p95', 'pool threads held', 'fds added', 'teardown (all)', 'threadpool stalled'], [
      row(`one connection per node + ${res.volumes} bind mounts`, res.perNode),
      row(`one connection per volume (${res.volumes} FUSE mounts)`, res.perVolume),
    ], 44);
    out('  setup: per node = create volume + publish + bind mount (mount(8)); per volume = open /dev/fuse + mount (mount(8)) + publish');
    out(`  pool threads held: libuv threadpool threads parked in read(2) on /dev/fuse while the mounts live (the node connection has 2 readers);`);
    out(`  fds added: open descriptors in the process after setup; the child ran with a threadpool of ${res.threadpoolSize}`);
  } else {
    out(`  FAILED: ${error}`);
  }
  const reproText = repro.hung
    ? `hung: yes (killed after ${repro.timeoutMs / 1000} s; ${repro.perVolumeConnectionsMountedAtKill} per-volume connections were mounted, `
      + `${repro.poolThreadsInFuseRead} of ${repro.poolThreads} libuv pool threads blocked in fuse_dev_do_read, main thread waiting in ${repro.mainThreadWchan})`
    : `hung: no (${repro.how} after ${fmt(repro.elapsedMs / 1000, 1)} s; per-volume stalled at volume `
      + `${repro.childResult?.perVolume.stalledAtVolume == null ? 'none' : repro.childResult.perVolume.stalledAtVolume + 1})`;
  out(`  with Node's default threadpool (UV_THREADPOOL_SIZE=${repro.threadpoolSize}), one connection per volume, ${repro.volumesAsked} volumes: ${reproText}`);
  out(`    the child's mounts were unmounted (umount -l) and its temp dir removed: ${repro.mountsCleanedUp} mount(s)${repro.cleanupErrors.length ? `; errors: ${repro.cleanupErrors.join('; ')}` : ''}`);
  out();
  notes.push(`one connection per volume: with Node's default threadpool (4 threads) a driver that mounted one FUSE connection per volume `
    + 'would hang at the 5th volume: each connection parks a pool thread in read(2) on its /dev/fuse fd, so after 4 volumes no fs call '
    + '(mkdir, stat, readdir, ...) of the process ever completes. The driver uses one connection per node (2 pool threads, however many volumes). '
    + `Reproduced in this run with UV_THREADPOOL_SIZE=${repro.threadpoolSize}: ${reproText}.`);
  if (error) throw new Error(`mount strategy: ${error}`);
}

// ---------------------------------------------------------------------------
// 6. The cost of a rotation's switch: syscalls in a forked child (inotify sees
// them) against the table-only switch; and the keeper snapshot as a node fills.

async function benchSwitchCost(): Promise<void> {
  const rotations = P.switchRotations;
  const volumes = P.switchVolumes;
  phase(`rotation switch cost (${rotations} rotations, ${volumes} concurrent volumes, child process)`);
  const r = await runCaptured(process.execPath, [SWITCH_JS, String(rotations), String(volumes)], {
    timeoutMs: 120_000, env: { ...process.env, UV_THREADPOOL_SIZE: '16' }, onSpawn: trackChild,
  });
  // The child unmounts what it mounted; after a failure anything left under its temp dir goes here.
  const cleanupErrors: string[] = [];
  const leftovers = await umountAllWhere((m) => m.startsWith('/tmp/ssbench-switch-'), cleanupErrors);
  if (leftovers.length > 0) notes.push(`switch cost: ${leftovers.length} mount(s) left by the child had to be unmounted: ${leftovers.slice(0, 4).join(' ')}`);
  for (const e of cleanupErrors) notes.push(`switch cost cleanup: ${e}`);
  const { res, error } = childJson<SwitchCostResult>(r);
  results.switchCost = { command: `UV_THREADPOOL_SIZE=16 node dist/bench/switch-cost.js ${rotations} ${volumes}`, result: res, error: error || null };
  out(`6. A rotation's switch inside the driver (bench/switch-cost.ts in a child process; 3 files of 1 KiB, one changes per rotation)`);
  if (!res) {
    out(`  FAILED: ${error}`);
    out();
    throw new Error(`switch cost: ${error}`);
  }
  const reqs = (m: Record<string, number>): string => Object.entries(m).map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  const v = res.vfsSteps;
  const tb = res.tableOnly;
  table(['switch', 'median µs', 'p95 µs', 'mean µs', `${volumes} volumes at once, ms`], [
    ['syscalls in a forked child (default)', fmt(v.publishUs.median, 0), fmt(v.publishUs.p95, 0), fmt(v.publishUs.mean, 0), fmt(v.concurrentMs, 1)],
    ['table only + invalidations (baseline)', fmt(tb.publishUs.median, 0), fmt(tb.publishUs.p95, 0), fmt(tb.publishUs.mean, 0), fmt(tb.concurrentMs, 1)],
  ], 38);
  out(`  ratio (median): ${fmt(v.publishUs.median / tb.publishUs.median, 1)}x; the difference is what makes a rotation visible to inotify watchers`);
  out(`  FUSE requests per rotation, switch only: ${reqs(v.switchRequests)}`);
  out(`  with the old version's removal (grace 0): ${reqs(v.withRemovalRequests)}`);
  out('  keeper snapshot (the whole state encoded, then handed to a keeper process; once per rotation, publish and unpublish;');
  out('  the JS thread waits for both):');
  for (const sn of res.snapshotMs) {
    out(`    ${pad(sn.volumes, 5)} volumes: ${pad(fmt(sn.bytes / KiB, 0), 6)} KiB in ${fmt(sn.ms, 2)} ms (encode ${fmt(sn.encodeMs, 2)}, hand-over ${fmt(sn.sendMs, 2)})`);
  }
  out();
  notes.push(`rotation switch: ${fmt(v.publishUs.median / 1000, 2)} ms median with the syscalls made by a forked child (inotify sees them) `
    + `vs ${fmt(tb.publishUs.median / 1000, 2)} ms table-only; ${volumes} volumes rotating at once: ${fmt(v.concurrentMs, 0)} ms vs ${fmt(tb.concurrentMs, 0)} ms. `
    + `Keeper snapshots grow with the node: ${res.snapshotMs.map((sn) => `${sn.volumes} volumes ${fmt(sn.ms, 1)} ms`).join(', ')}.`);
}

/**
 * bench/mount-strategy.js with UV_THREADPOOL_SIZE=4 in a child, killed
 * (SIGKILL) after a hard timeout. At the timeout the child's threads are
 * looked at (/proc/<pid>/task/<tid>/wchan) and its per-volume mounts counted;
 * afterwards every mount under its temp dir is lazily unmounted and the dir
 * removed.
 */
async function reproDefaultPoolHang(): Promise<DefaultPoolRepro> {
  phase(`one connection per volume with UV_THREADPOOL_SIZE=${P.hangThreadpool} (${P.hangVolumes} volumes, killed after ${P.hangTimeoutMs / 1000} s if stuck)`);
  const before = new Set(await mountStrategyDirs());
  let threads: Array<{ comm: string; wchan: string }> = [];
  let perVolume = -1;
  const t0 = monoNs();
  const r = await runCaptured(process.execPath, [STRATEGY_JS, String(P.hangVolumes)], {
    timeoutMs: P.hangTimeoutMs, env: { ...process.env, UV_THREADPOOL_SIZE: String(P.hangThreadpool) }, onSpawn: trackChild,
    beforeKill: async (pid) => {
      threads = await threadStates(pid).catch(() => []);
      const dirs = (await mountStrategyDirs()).filter((d) => !before.has(d));
      perVolume = (await mountsWhere((m) => dirs.some((d) => m.startsWith(`${d}/b/`)))).length;
    },
  });
  const elapsedMs = Number(monoNs() - t0) / 1e6;
  const errors: string[] = [];
  const undone = await cleanupStrategyDirs(errors, r.code !== 0);
  let childResult: StrategyResult | null = null;
  if (r.code === 0) {
    try { childResult = JSON.parse(r.stdout) as StrategyResult; } catch { /* reported as not parsed below */ }
  }
  const pool = threads.filter((t) => t.comm.startsWith('libuv-worker'));
  return {
    threadpoolSize: P.hangThreadpool, volumesAsked: P.hangVolumes, timeoutMs: P.hangTimeoutMs,
    hung: r.timedOut, how: howEnded(r), elapsedMs: round(elapsedMs, 0),
    perVolumeConnectionsMountedAtKill: perVolume,
    poolThreads: pool.length, poolThreadsInFuseRead: pool.filter((t) => t.wchan === 'fuse_dev_do_read').length,
    mainThreadWchan: threads[0]?.wchan ?? '',
    childResult, mountsCleanedUp: undone.length, cleanupErrors: errors,
  };
}

// ---------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = Date.now();
  strategyDirsAtStart = new Set(await mountStrategyDirs());
  const env = await BenchEnv.create();
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`[bench] ${sig}: cleaning up\n`);
    for (const c of liveChildren) c.kill('SIGKILL');
    void sleep(200).then(() => cleanupStrategyDirs([], true)).catch(() => undefined)
      .then(() => env.cleanup()).finally(() => process.exit(130));
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
    // The same files written by the provider itself (the AWS provider's default mode), through a write window.
    await writeSpc(spcDir, 'pubw', pubSecrets, 'example-writer', { writeFiles: 'true' });

    // Baseline files on a tmpfs of our own (the bench mounts it), plain and in the atomic-writer layout.
    await mkdir(tmpfsDir, { recursive: true });
    await run('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'tmpfs', tmpfsDir]);
    tmpfsMounted = true;
    for (const f of [...readFiles, ...pubFiles]) await writeFile(join(tmpfsDir, `plain-${f.path}`), f.contents, { mode: 0o644 });
    await writeAtomicLayout(tmpfsDir, readFiles);

    // Why the driver does not mlockall, and that its way (locked pages for secrets only) survives GC.
    phase('locked memory probes: mlockall + gc(), secretAllocator + gc()');
    const probe = await probeMlockGc();
    const secretProbe = await probeSecretAllocGc(2000);
    results.lockedMemoryProbes = { mlockallGc: probe, secretAllocatorGc: secretProbe };
    notes.push(probe.locked && !probe.survived
      ? `why the driver does not mlockall: a Node process locked with mlockall (the addon's lockAll(true)) died on its first full gc(): ${probe.how}`
        + `${probe.failedSyscall ? ` (${probe.failedSyscall})` : ''}. Under mlockall V8's madvise(MADV_DONTNEED) fails with EINVAL and V8 CHECKs it, `
        + 'so a driver locked that way would abort whenever V8 gives heap pages back. --lock-memory therefore locks only the pages holding secret file contents.'
      : `mlockall + gc() probe: locked=${probe.locked}, survived=${probe.survived} (${probe.how}); the abort it demonstrates did not happen here`);
    const sv = secretProbe.vmLckKiB;
    notes.push(`the driver's way survives GC: a child using secretAllocator(loadNative(), true) (locked=${secretProbe.locked}) allocated ${secretProbe.buffers} `
      + `1 KiB secret buffers${sv ? ` (VmLck ${sv.start} -> ${sv.held} KiB)` : ''}, churned the heap with ${secretProbe.gcCalls} gc() calls under --expose-gc `
      + `while replacing half of them per round, content intact: ${secretProbe.contentIntact}; survived: ${secretProbe.survived} (${secretProbe.how})`
      + `${sv ? `; VmLck after dropping them: ${sv.afterRelease} KiB` : ''}${secretProbe.error ? `; ${secretProbe.error}` : ''}`
      + `${secretProbe.lockError ? `; lock error: ${secretProbe.lockError}` : ''}`);

    const providerDir = env.path('providers');
    const providerSocket = join(providerDir, 'example.sock');
    const provider = await startProvider(env, providerSocket);
    await startProvider(env, join(providerDir, 'example-writer.sock'));

    phase('starting driver (poll interval 2m) for reads and publishes');
    const mainDriver = await startDriver(env, { name: 'main', providerDir, spcDir, rotationPollInterval: P.mainPollInterval, logLevel: 'warn' });
    if (bin) await benchReads(env, bin, mainDriver, tmpfsDir, readFiles);
    await benchPublish(env, mainDriver, providerSocket, pubSecrets, pubFiles, bin, tmpfsDir);
    mainDriver.csi.close();
    await mainDriver.child.stop();

    phase('starting driver (poll interval 2m, default flags, --inspect) for memory');
    const memDriver = await startDriver(env, { name: 'mem', providerDir, spcDir, rotationPollInterval: P.mainPollInterval, logLevel: 'warn', inspect: true });
    const lockWarning = (): string | null => /could not lock secret memory[^\n]*/.exec(memDriver.child.recentOutput())?.[0] ?? null;
    printMemory(await benchMemory(env, memDriver, 'default flags, forced GC', pubFiles.length, pubFiles[0]!.contents.length, lockWarning));
    memDriver.csi.close();
    await memDriver.child.stop();

    if (bin) {
      phase('starting driver (poll interval 1s) for rotation');
      const rot = await startDriver(env, { name: 'rot', providerDir, spcDir, rotationPollInterval: P.rotationPollInterval, logLevel: 'info' });
      await benchRotation(env, bin, rot, provider, rotSecrets);
      rot.csi.close();
      await rot.child.stop();
    }

    await benchMountStrategy();
    await benchSwitchCost();
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
    // Section 5's children mount under /tmp/ssbench-mounts-*, outside the temp dir.
    const strategyErrors: string[] = [];
    const strategyLeft = await cleanupStrategyDirs(strategyErrors, failure !== null).catch((e: unknown) => { strategyErrors.push((e as Error).message); return []; });
    (results.cleanup as Record<string, unknown>).mountStrategyMountsUnmounted = strategyLeft;
    if (strategyLeft.length > 0) notes.push(`cleanup had to unmount ${strategyLeft.length} mount-strategy mount(s): ${strategyLeft.slice(0, 5).join(' ')}`);
    for (const e of strategyErrors) notes.push(`cleanup: ${e}`);
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
