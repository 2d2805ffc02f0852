// 4. Rotation to visible: from rewriting the provider's source to a reader
// (readloop, re-opening the file) seeing the new bytes, with a 1 s poll.

import { join } from 'node:path';
import { canaryBytes } from '../../testkit/canary.js';
import { sleep } from '../../testkit/wait.js';
import { kubeletTarget, newPodUid } from '../lib/clients.js';
import { monoNs } from '../lib/clock.js';
import type { Section, SectionContext } from '../lib/context.js';
import type { Driver } from '../lib/driver.js';
import { diffCounts, fuseRequests, scrape } from '../lib/metrics.js';
import { fmt, out, phase, table } from '../lib/output.js';
import { KiB, P } from '../lib/params.js';
import { watchForChange } from '../lib/readloop.js';
import { writeSecretsFile } from '../lib/secrets.js';
import { round, roundSummary, summarize } from '../lib/stats.js';

async function benchRotation(ctx: SectionContext, driver: Driver): Promise<void> {
  const {
    env,
    bin,
    fixtures: { rotSecrets },
  } = ctx;
  const { results } = ctx.report;
  const provider = ctx.provider();
  if (!bin) throw new Error('rotation needs readloop');
  phase(`rotation (${P.rotations} rotations, poll interval ${P.rotationPollInterval})`);
  const target = kubeletTarget(env, newPodUid(), 'secrets-rot');
  const name = 'secret1k';
  await writeSecretsFile(rotSecrets, [{ path: name, contents: canaryBytes(KiB, 'rot0') }]);
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
    } catch {
      /* not JSON */
    }
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
        await Promise.race([
          w.ready,
          w.changed.then(() => {
            throw new Error('watcher saw a change before the rotation');
          }),
        ]);
        // A random phase against the poll timer, so the figures sample the whole interval.
        await sleep(Math.random() * 1100);
        const next = canaryBytes(KiB, `rot${i}`);
        const T = monoNs();
        await writeSecretsFile(rotSecrets, [{ path: name, contents: next }]);
        const seen = await w.changed;
        if (!seen.content.equals(next))
          throw new Error(`rotation ${i}: new content differs from what was written (${seen.content.length} bytes)`);
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
  const provMeanMs =
    provCount > 0
      ? (delta('secrets_store_provider_mount_duration_seconds_sum{provider="example",result="ok"}') / provCount) * 1000
      : Number.NaN;
  const s = {
    endToEnd: roundSummary(summarize(e2e), 1),
    providerAnswerToVisible: roundSummary(summarize(providerToVisible), 2),
    driverLogToVisible: roundSummary(summarize(logToVisible), 1),
    firstReadOfNewVersionUs: roundSummary(summarize(firstReadUs), 1),
  };
  const rotReqs = diffCounts(fuseRequests(m1), fuseRequests(m0));
  results.rotation = {
    fuseRequestsDuringPhase: rotReqs,
    rotations: P.rotations,
    pollInterval: P.rotationPollInterval,
    pollJitter: '±10%',
    readerRecheckUs: P.watchSleepUs,
    ms: s,
    driverPollsDuringPhase: polls,
    driverPollMeanMs: round(pollMeanMs, 2),
    providerMountMeanMs: round(provMeanMs, 2),
  };
  out(
    `4. Rotation to visible, ms (${P.rotations} rotations; driver --rotation-poll-interval=${P.rotationPollInterval} ±10% jitter; reader re-opens every ${P.watchSleepUs} µs)`,
  );
  table(
    ['measure', 'median', 'p95', 'min', 'max', 'n'],
    [
      [
        'secrets file rewritten -> new bytes read',
        fmt(s.endToEnd.median),
        fmt(s.endToEnd.p95),
        fmt(s.endToEnd.min),
        fmt(s.endToEnd.max),
        s.endToEnd.n,
      ],
      [
        'provider answered -> new bytes read',
        fmt(s.providerAnswerToVisible.median, 2),
        fmt(s.providerAnswerToVisible.p95, 2),
        fmt(s.providerAnswerToVisible.min, 2),
        fmt(s.providerAnswerToVisible.max, 2),
        s.providerAnswerToVisible.n,
      ],
      [
        'driver logged rotation -> new bytes read',
        fmt(s.driverLogToVisible.median),
        fmt(s.driverLogToVisible.p95),
        fmt(s.driverLogToVisible.min),
        fmt(s.driverLogToVisible.max),
        s.driverLogToVisible.n,
      ],
      [
        'first open+read+close of the new version (µs)',
        fmt(s.firstReadOfNewVersionUs.median),
        fmt(s.firstReadOfNewVersionUs.p95),
        fmt(s.firstReadOfNewVersionUs.min),
        fmt(s.firstReadOfNewVersionUs.max),
        s.firstReadOfNewVersionUs.n,
      ],
    ],
    42,
  );
  out(
    `  driver poll (SPC read + provider Mount + swap), mean over ${polls} polls in the phase: ${fmt(pollMeanMs, 2)} ms; provider Mount alone: ${fmt(provMeanMs, 2)} ms`,
  );
  out(
    `  FUSE requests during the phase (${P.rotations} rotations, reader spinning): ${
      Object.entries(rotReqs)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ') || 'none'
    }`,
  );
  out('  end-to-end is dominated by waiting for the next poll (uniform over the interval); the rest is the poll itself');
  out('  "provider answered" is when the provider\'s log line reached the bench; "driver logged" has ms resolution and may be negative');
  out('  (the driver logs after the swap is complete, the reader can see it first)');
  out('  the first open of a new version is not cached: it waits for the driver to answer LOOKUP/READLINK/READ, so it includes');
  out("  any stall of the driver's JS thread at that moment");
  out();
}

export const rotation: Section = { name: 'rotation', driver: 'rot', needsReadloop: true, run: benchRotation };
