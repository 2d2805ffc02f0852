// 3. Memory per mounted volume: the driver's VmRSS, V8 heap and VmLck before
// and after publishing many volumes and after unpublishing them, each sample
// after forced full GCs.

import { kubeletTarget, newPodUid } from '../lib/clients.js';
import { monoNs } from '../lib/clock.js';
import type { Report, Section, SectionContext } from '../lib/context.js';
import { forceGc, type Driver } from '../lib/driver.js';
import type { BenchEnv } from '../lib/env.js';
import { rssKiB, scrape, statusKiB } from '../lib/metrics.js';
import { fmt, out, phase, table } from '../lib/output.js';
import { KiB, P } from '../lib/params.js';
import type { probeMlockGc, probeSecretAllocGc } from '../lib/probes.js';
import { round } from '../lib/stats.js';
import { sleep } from '../../testkit/wait.js';

interface Triple {
  before: number;
  afterPublish: number;
  afterUnpublish: number;
}

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
async function benchMemory(
  env: BenchEnv,
  driver: Driver,
  config: string,
  filesPerVolume: number,
  fileBytes: number,
  lockWarning: () => string | null,
): Promise<MemoryResult> {
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
      rss: await rssKiB(pid),
      heapKiB: round(heap / KiB, 0),
      vmLck: await statusKiB(pid, 'VmLck'),
      inodes: m.get('secrets_store_fuse_inodes') ?? Number.NaN,
      fileBytes: m.get('secrets_store_fuse_file_bytes') ?? Number.NaN,
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
  const t = (k: 'rss' | 'heapKiB' | 'vmLck' | 'inodes' | 'fileBytes'): Triple => ({
    before: before[k],
    afterPublish: after[k],
    afterUnpublish: end[k],
  });
  return {
    config,
    forcedGc: true,
    volumes: P.memoryVolumes,
    filesPerVolume,
    fileBytes,
    bindMountsSeen: mounted,
    secretLockWarning: lockWarning(),
    rssKiB: t('rss'),
    heapUsedKiB: t('heapKiB'),
    vmLckKiB: t('vmLck'),
    fuseInodes: t('inodes'),
    fuseFileBytes: t('fileBytes'),
    rssPerVolumeKiB: per(after.rss, before.rss),
    heapPerVolumeKiB: per(after.heapKiB, before.heapKiB),
    vmLckPerVolumeKiB: per(after.vmLck, before.vmLck, 2),
    vmLckPerFileKiB: round((after.vmLck - before.vmLck) / (P.memoryVolumes * filesPerVolume), 2),
    vmLckBackToBaseline: end.vmLck === before.vmLck,
    extraGcRoundsAfterUnpublish: extra,
    publishAllMs: round(publishAllMs, 0),
    unpublishAllMs: round(unpublishAllMs, 0),
  };
}

function printMemory({ results, notes }: Report, r: MemoryResult): void {
  results.memory = { ...r, kernelSideCounted: false };
  out(`3. Memory per mounted volume, KiB: ${r.volumes} volumes x ${r.filesPerVolume} files x ${r.fileBytes / KiB} KiB`);
  out(`   driver with default flags (--lock-memory=true: secret file contents in mlock'ed pages of their own, no mlockall),`);
  out('   started with --inspect only to force two full GCs (HeapProfiler.collectGarbage) before each sample');
  table(
    ['measure', 'before', 'after publish', 'after unpublish', 'per volume', 'unpublished - before'],
    [
      [
        'VmRSS',
        r.rssKiB.before,
        r.rssKiB.afterPublish,
        r.rssKiB.afterUnpublish,
        fmt(r.rssPerVolumeKiB, 1),
        r.rssKiB.afterUnpublish - r.rssKiB.before,
      ],
      [
        'V8 heap used',
        r.heapUsedKiB.before,
        r.heapUsedKiB.afterPublish,
        r.heapUsedKiB.afterUnpublish,
        fmt(r.heapPerVolumeKiB, 1),
        r.heapUsedKiB.afterUnpublish - r.heapUsedKiB.before,
      ],
      [
        'VmLck (locked secret pages)',
        r.vmLckKiB.before,
        r.vmLckKiB.afterPublish,
        r.vmLckKiB.afterUnpublish,
        fmt(r.vmLckPerVolumeKiB, 2),
        r.vmLckKiB.afterUnpublish - r.vmLckKiB.before,
      ],
    ],
    28,
  );
  out(
    `  VmLck growth: ${fmt(r.vmLckPerFileKiB, 2)} KiB per secret file (one 4 KiB page per file expected); ` +
      `back to baseline after unpublish + GC: ${r.vmLckBackToBaseline ? 'yes' : 'NO'}` +
      (r.extraGcRoundsAfterUnpublish > 0 ? ` (after ${r.extraGcRoundsAfterUnpublish} extra GC round(s))` : ''),
  );
  if (r.secretLockWarning) out(`  the driver could not lock secret memory: ${r.secretLockWarning}`);
  out(
    `  ${r.bindMountsSeen} bind mounts seen; publishing all took ${fmt(r.publishAllMs, 0)} ms, unpublishing all ${fmt(r.unpublishAllMs, 0)} ms;`,
  );
  out(
    `  driver's table: inodes ${r.fuseInodes.before} -> ${r.fuseInodes.afterPublish} -> ${r.fuseInodes.afterUnpublish}, ` +
      `file bytes ${r.fuseFileBytes.before} -> ${r.fuseFileBytes.afterPublish} -> ${r.fuseFileBytes.afterUnpublish} (before -> published -> unpublished)`,
  );
  out('  kernel side (FUSE inodes/dentries/page cache, bind mounts) is not counted');
  const probes = results.lockedMemoryProbes as
    { mlockallGc: Awaited<ReturnType<typeof probeMlockGc>>; secretAllocatorGc: Awaited<ReturnType<typeof probeSecretAllocGc>> } | undefined;
  if (probes) {
    const m = probes.mlockallGc;
    const a = probes.secretAllocatorGc;
    out(
      `  locked-memory probes (details in the notes): mlockall + gc(): ${m.survived ? 'survived' : `died (${m.how})`}, which is why the driver does not mlockall;`,
    );
    out(`    secretAllocator(loadNative(), true) + ${a.buffers} secret buffers + ${a.gcCalls} gc(): survived: ${a.survived}`);
  }
  out();
  if (r.secretLockWarning || r.vmLckPerFileKiB < 4) {
    notes.push(
      `memory: secret pages do not look locked (VmLck +${fmt(r.vmLckPerFileKiB, 2)} KiB per file)${r.secretLockWarning ? `: ${r.secretLockWarning}` : ''}`,
    );
  }
  if (!r.vmLckBackToBaseline) {
    notes.push(
      `memory: VmLck did not return to its baseline after unpublishing everything and forcing GC (${r.vmLckKiB.before} -> ${r.vmLckKiB.afterUnpublish} KiB)`,
    );
  }
}

export const memory: Section = {
  name: 'memory',
  driver: 'mem',
  async run(ctx: SectionContext, driver: Driver): Promise<void> {
    const { pubFiles } = ctx.fixtures;
    const lockWarning = (): string | null => /could not lock secret memory[^\n]*/.exec(driver.child.recentOutput())?.[0] ?? null;
    printMemory(
      ctx.report,
      await benchMemory(ctx.env, driver, 'default flags, forced GC', pubFiles.length, pubFiles[0]!.contents.length, lockWarning),
    );
  },
};
