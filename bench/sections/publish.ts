// 2. Publish latency: NodePublishVolume and NodeUnpublishVolume round trips
// (with and without a write window) against the provider's Mount alone and
// what upstream does besides it (mount a tmpfs, write the files, umount).

import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../testkit/run.js';
import { kubeletTarget, newPodUid, providerRequest, RawProviderClient } from '../lib/clients.js';
import type { Section, SectionContext } from '../lib/context.js';
import type { Driver } from '../lib/driver.js';
import { scrape } from '../lib/metrics.js';
import { fmt, out, phase, table } from '../lib/output.js';
import { KiB, P } from '../lib/params.js';
import { readLatencies } from '../lib/readloop.js';
import { writeAtomicLayout } from '../lib/secrets.js';
import { round, roundSummary, summarize, type Summary } from '../lib/stats.js';
import { monoNs } from '../lib/clock.js';

async function benchPublish(ctx: SectionContext, driver: Driver): Promise<void> {
  const {
    env,
    bin,
    fixtures: { providerSocket, pubSecrets, pubFiles, tmpfsDir },
  } = ctx;
  const { results } = ctx.report;
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
  const hk = (k: string): number =>
    (m1.get(`secrets_store_provider_mount_duration_seconds_${k}{provider="example",result="ok"}`) ?? 0) -
    (m0.get(`secrets_store_provider_mount_duration_seconds_${k}{provider="example",result="ok"}`) ?? 0);
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
    if (i >= P.publishWarmup) {
      wpub.push(p);
      wunpub.push(ms(t1));
    }
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
      if (i >= P.publishWarmup) {
        cycleMount.push(m);
        cycleUmount.push(u);
      }
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
    n: P.publishN,
    filesPerVolume: pubFiles.length,
    fileBytes: pubFiles[0]!.contents.length,
    ms: s,
    providerMountInDriverMeanMs: round(driverProviderMeanMs, 2),
    upstreamLikePublishMedianEstimate: upstreamLikePublish,
  };

  out(
    `2. Publish latency, ms (N=${P.publishN} sequential, distinct kubelet-style target paths, ${pubFiles.length} files of ${pubFiles[0]!.contents.length / KiB} KiB)`,
  );
  const row = (label: string, x: Summary): string[] => [label, fmt(x.median, 2), fmt(x.p95, 2), fmt(x.max, 2), fmt(x.mean, 2)];
  table(
    ['operation', 'median', 'p95', 'max', 'mean'],
    [
      row('NodePublishVolume (ours, round trip)', s.publish),
      row('NodeUnpublishVolume (ours, round trip)', s.unpublish),
      row('NodePublishVolume, provider writes (window)', s.publishWriteWindow),
      row('NodeUnpublishVolume after a window', s.unpublishWriteWindow),
      row('baseline: provider Mount alone', s.providerMount),
      row('baseline: mount tmpfs + write files', s.tmpfsMountAndWrite),
      row('baseline: umount tmpfs', s.tmpfsUmount),
    ],
    40,
  );
  out(`  provider Mount inside our publishes (driver's histogram, mean): ${fmt(driverProviderMeanMs, 2)} ms`);
  out(`  upstream-like publish estimate (provider Mount + tmpfs mount/write, sum of medians): ${fmt(upstreamLikePublish, 2)} ms`);
  out(
    `  a write window costs ${fmt(s.publishWriteWindow.median - s.publish.median, 2)} ms more per publish (median): the provider's own writes through FUSE and one remount to read-only; its content was checked byte for byte from a child process`,
  );
  out();
}

export const publish: Section = { name: 'publish', driver: 'main', run: benchPublish };
