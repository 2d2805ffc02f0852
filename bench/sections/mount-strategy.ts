// 5. One FUSE connection per node vs one per volume (bench/mount-strategy.ts
// in child processes), and the hang of one connection per volume with Node's
// default threadpool, reproduced in a child that is killed after a timeout.

import { join } from 'node:path';
import { runCaptured } from '../../testkit/run.js';
import { mountsWhere } from '../../testkit/mounts.js';
import { childJson, howEnded, threadStates } from '../lib/children.js';
import { monoNs } from '../lib/clock.js';
import type { Section, SectionContext } from '../lib/context.js';
import { fmt, out, phase, table } from '../lib/output.js';
import { P } from '../lib/params.js';
import { REPO_ROOT } from '../lib/paths.js';
import { round } from '../lib/stats.js';
import { mountStrategyDirs } from '../lib/strategy-dirs.js';
import type { StrategyResult } from '../mount-strategy.js';

const STRATEGY_JS = join(REPO_ROOT, 'dist/bench/mount-strategy.js');

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

async function benchMountStrategy(ctx: SectionContext): Promise<void> {
  const { results, notes } = ctx.report;
  const { env, strategyDirs } = ctx;
  const n = P.strategyVolumes;
  phase(`mount strategy (${n} volumes per strategy, child process, UV_THREADPOOL_SIZE=${P.strategyThreadpool})`);
  const t0 = monoNs();
  const r = await runCaptured(process.execPath, [STRATEGY_JS, String(n)], {
    timeoutMs: 90_000,
    env: { ...process.env, UV_THREADPOOL_SIZE: String(P.strategyThreadpool) },
    onSpawn: env.trackSpawned,
  });
  const elapsedMs = Number(monoNs() - t0) / 1e6;
  const { res, error } = childJson<StrategyResult>(r);
  // It cleans up after itself; whatever is left (always looked for, and on a failure
  // every mount under /tmp/ssbench-mounts-) is unmounted lazily and removed here.
  const cleanupErrors: string[] = [];
  const leftovers = await strategyDirs.cleanup(cleanupErrors, res === null);
  if (leftovers.length > 0)
    notes.push(`mount strategy: ${leftovers.length} mount(s) left by the child had to be unmounted: ${leftovers.slice(0, 4).join(' ')}`);
  for (const e of cleanupErrors) notes.push(`mount strategy cleanup: ${e}`);

  // The default threadpool with one connection per volume.
  const repro = await reproDefaultPoolHang(ctx);

  results.mountStrategy = {
    command: `UV_THREADPOOL_SIZE=${P.strategyThreadpool} node dist/bench/mount-strategy.js ${n}`,
    childElapsedMs: round(elapsedMs, 0),
    result: res,
    error: error || null,
    leftoverMountsUnmounted: leftovers.length,
    defaultThreadpool: repro,
  };
  out(`5. One FUSE connection per node vs one per volume (${n} volumes of 3 x 1 KiB each; bench/mount-strategy.ts in a child process,`);
  out(`   UV_THREADPOOL_SIZE=${P.strategyThreadpool}, so the per-volume strategy is not starved; setup and teardown in ms)`);
  if (res) {
    const row = (name: string, f: StrategyResult['perNode']): Array<string | number> => [
      name,
      fmt(f.setupMedianMs, 2),
      fmt(f.setupP95Ms, 2),
      f.poolThreadsHeld,
      f.fdsAdded,
      fmt(f.teardownMs, 1),
      f.stalledAtVolume === null ? 'no' : `at volume ${f.stalledAtVolume + 1}`,
    ];
    table(
      ['strategy', 'setup median', 'setup p95', 'pool threads held', 'fds added', 'teardown (all)', 'threadpool stalled'],
      [
        row(`one connection per node + ${res.volumes} bind mounts`, res.perNode),
        row(`one connection per volume (${res.volumes} FUSE mounts)`, res.perVolume),
      ],
      44,
    );
    out('  setup: per node = create volume + publish + bind mount (mount(8)); per volume = open /dev/fuse + mount (mount(8)) + publish');
    out(
      `  pool threads held: libuv threadpool threads parked in read(2) on /dev/fuse while the mounts live (the node connection has 2 readers);`,
    );
    out(`  fds added: open descriptors in the process after setup; the child ran with a threadpool of ${res.threadpoolSize}`);
  } else {
    out(`  FAILED: ${error}`);
  }
  const reproText = repro.hung
    ? `hung: yes (killed after ${repro.timeoutMs / 1000} s; ${repro.perVolumeConnectionsMountedAtKill} per-volume connections were mounted, ` +
      `${repro.poolThreadsInFuseRead} of ${repro.poolThreads} libuv pool threads blocked in fuse_dev_do_read, main thread waiting in ${repro.mainThreadWchan})`
    : `hung: no (${repro.how} after ${fmt(repro.elapsedMs / 1000, 1)} s; per-volume stalled at volume ` +
      `${repro.childResult?.perVolume.stalledAtVolume == null ? 'none' : repro.childResult.perVolume.stalledAtVolume + 1})`;
  out(
    `  with Node's default threadpool (UV_THREADPOOL_SIZE=${repro.threadpoolSize}), one connection per volume, ${repro.volumesAsked} volumes: ${reproText}`,
  );
  out(
    `    the child's mounts were unmounted (umount -l) and its temp dir removed: ${repro.mountsCleanedUp} mount(s)${repro.cleanupErrors.length ? `; errors: ${repro.cleanupErrors.join('; ')}` : ''}`,
  );
  out();
  notes.push(
    `one connection per volume: with Node's default threadpool (4 threads) a driver that mounted one FUSE connection per volume ` +
      'would hang at the 5th volume: each connection parks a pool thread in read(2) on its /dev/fuse fd, so after 4 volumes no fs call ' +
      '(mkdir, stat, readdir, ...) of the process ever completes. The driver uses one connection per node (2 pool threads, however many volumes). ' +
      `Reproduced in this run with UV_THREADPOOL_SIZE=${repro.threadpoolSize}: ${reproText}.`,
  );
  if (error) throw new Error(`mount strategy: ${error}`);
}

/**
 * bench/mount-strategy.js with UV_THREADPOOL_SIZE=4 in a child, killed
 * (SIGKILL) after a hard timeout. At the timeout the child's threads are
 * looked at (/proc/<pid>/task/<tid>/wchan) and its per-volume mounts counted;
 * afterwards every mount under its temp dir is lazily unmounted and the dir
 * removed.
 */
async function reproDefaultPoolHang({ env, strategyDirs }: SectionContext): Promise<DefaultPoolRepro> {
  phase(
    `one connection per volume with UV_THREADPOOL_SIZE=${P.hangThreadpool} (${P.hangVolumes} volumes, killed after ${P.hangTimeoutMs / 1000} s if stuck)`,
  );
  const before = new Set(await mountStrategyDirs());
  let threads: Array<{ comm: string; wchan: string }> = [];
  let perVolume = -1;
  const t0 = monoNs();
  const r = await runCaptured(process.execPath, [STRATEGY_JS, String(P.hangVolumes)], {
    timeoutMs: P.hangTimeoutMs,
    env: { ...process.env, UV_THREADPOOL_SIZE: String(P.hangThreadpool) },
    onSpawn: env.trackSpawned,
    beforeKill: async (pid) => {
      threads = await threadStates(pid).catch(() => []);
      const dirs = (await mountStrategyDirs()).filter((d) => !before.has(d));
      perVolume = (await mountsWhere((m) => dirs.some((d) => m.startsWith(`${d}/b/`)))).length;
    },
  });
  const elapsedMs = Number(monoNs() - t0) / 1e6;
  const errors: string[] = [];
  const undone = await strategyDirs.cleanup(errors, r.code !== 0);
  let childResult: StrategyResult | null = null;
  if (r.code === 0) {
    try {
      childResult = JSON.parse(r.stdout) as StrategyResult;
    } catch {
      /* reported as not parsed below */
    }
  }
  const pool = threads.filter((t) => t.comm.startsWith('libuv-worker'));
  return {
    threadpoolSize: P.hangThreadpool,
    volumesAsked: P.hangVolumes,
    timeoutMs: P.hangTimeoutMs,
    hung: r.timedOut,
    how: howEnded(r),
    elapsedMs: round(elapsedMs, 0),
    perVolumeConnectionsMountedAtKill: perVolume,
    poolThreads: pool.length,
    poolThreadsInFuseRead: pool.filter((t) => t.wchan === 'fuse_dev_do_read').length,
    mainThreadWchan: threads[0]?.wchan ?? '',
    childResult,
    mountsCleanedUp: undone.length,
    cleanupErrors: errors,
  };
}

export const mountStrategy: Section = { name: 'mount-strategy', run: benchMountStrategy };
