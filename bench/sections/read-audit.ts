// 7. The cost of read audit per open (docs/audit.md): open + read + close of
// a 1 KiB file from a child process (readloop), on three volumes served by
// this process in the same run, in interleaved rounds:
// - a connection as the driver runs by default (OPEN answered ENOSYS once,
//   so opens never reach the server);
// - a connection that answers OPEN (--audit-reads), a volume without audit;
// - the same connection, a volume with audit (one JSON line per open, to /dev/null).

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { SecretsFilesystem, threadGroupOf } from '../../src/fuse/filesystem.js';
import { createLogger } from '../../src/observability/log.js';
import { podOfProcess } from '../../src/observability/cgroup-pod.js';
import { ReadAudit } from '../../src/observability/read-audit.js';
import { canaryBytes } from '../../testkit/canary.js';
import type { Section, SectionContext } from '../lib/context.js';
import { fmt, out, phase, table } from '../lib/output.js';
import { KiB, P } from '../lib/params.js';
import { readLatencies } from '../lib/readloop.js';
import { round, roundSummary, summarize } from '../lib/stats.js';

const quiet = { warn: () => undefined, debug: () => undefined };

async function benchReadAudit(ctx: SectionContext): Promise<void> {
  const { env, bin } = ctx;
  const { results, notes } = ctx.report;
  if (!bin) throw new Error('read audit cost needs readloop');
  phase('read audit: cost per open');
  const contents = canaryBytes(KiB, 'audit-bench');
  const expect = env.path('audit-expect');
  await writeFile(expect, contents);
  let lines = 0;
  const sink = createLogger('info', pino.destination({ dest: '/dev/null', sync: true }));
  const audit = new ReadAudit({
    log: {
      info: (obj, msg) => {
        lines++;
        sink.info(obj, msg);
      },
    },
    processOf: threadGroupOf,
    podOf: (pid) => podOfProcess(pid),
  });
  const plainFs = await SecretsFilesystem.mount({ mountDir: env.path('audit-default'), log: quiet });
  const openFs = await SecretsFilesystem.mount({
    mountDir: env.path('audit-opens'),
    log: quiet,
    answerOpens: true,
    onOpen: (id, caller) => audit.onOpen(id, caller),
  });
  try {
    const file = [{ path: 'token', mode: 0o644, contents }];
    const serve = async (fs: SecretsFilesystem, name: string): Promise<string> => {
      const v = fs.createVolume(name);
      await fs.publish(v, file);
      return v.sourcePath;
    };
    const audited = openFs.createVolume('audited');
    await openFs.publish(audited, file);
    audit.watch({ targetPath: audited.sourcePath, podNamespace: 'bench', podName: 'reader', podUid: '', handle: audited });
    const variants = [
      { name: 'default connection (no OPEN)', path: join(await serve(plainFs, 'plain'), 'token') },
      { name: '--audit-reads, volume without audit', path: join(await serve(openFs, 'unaudited'), 'token') },
      { name: '--audit-reads, audited volume', path: join(audited.sourcePath, 'token') },
    ];
    const perRound = Math.ceil(P.readIterations / P.readRounds);
    const samples = variants.map(() => [] as number[]);
    const linesBefore = lines;
    for (let r = 0; r < P.readRounds; r++) {
      for (const [i, v] of variants.entries()) {
        samples[i]!.push(...(await readLatencies(bin, v.path, perRound, r === 0 ? P.readWarmup : P.readRoundWarmup, expect)));
      }
    }
    const auditedOpens = P.readRounds * perRound + P.readWarmup + (P.readRounds - 1) * P.readRoundWarmup;
    if (lines - linesBefore !== auditedOpens) throw new Error(`read audit: ${lines - linesBefore} lines for ${auditedOpens} audited opens`);
    const sums = samples.map((s) => summarize(s));
    const [base, unaudited, aud] = sums as [ReturnType<typeof summarize>, ReturnType<typeof summarize>, ReturnType<typeof summarize>];
    out(`7. Read audit: open + read + close of a 1 KiB file (readloop, ${P.readRounds} interleaved rounds of ${perRound}, same run)`);
    table(
      ['volume', 'median µs', 'p95 µs', 'mean µs', 'opens/s (1/mean)'],
      variants.map((v, i) => [v.name, fmt(sums[i]!.median, 1), fmt(sums[i]!.p95, 1), fmt(sums[i]!.mean, 1), fmt(1e6 / sums[i]!.mean, 0)]),
      38,
    );
    out(
      `  ratio (median): audited / default ${fmt(aud.median / base.median, 2)}x, ` +
        `unaudited on --audit-reads / default ${fmt(unaudited.median / base.median, 2)}x, ` +
        `audited / unaudited on the same connection ${fmt(aud.median / unaudited.median, 2)}x`,
    );
    out(
      `  per open, median: +${fmt(aud.median - base.median, 1)} µs audited, +${fmt(unaudited.median - base.median, 1)} µs OPEN round trip alone`,
    );
    out();
    results.readAudit = {
      fileBytes: KiB,
      iterations: P.readRounds * perRound,
      us: Object.fromEntries(variants.map((v, i) => [v.name, roundSummary(sums[i]!)])),
      ratioMedian: {
        auditedVsDefault: round(aud.median / base.median, 2),
        unauditedVsDefault: round(unaudited.median / base.median, 2),
        auditedVsUnaudited: round(aud.median / unaudited.median, 2),
      },
      auditLines: lines - linesBefore,
    };
  } finally {
    for (const fs of [openFs, plainFs]) {
      const aborted = await fs.close();
      if (aborted) notes.push(`read audit: closing ${fs.mountDir} needed an abort (${aborted.method})`);
    }
  }
}

export const readAudit: Section = { name: 'read-audit', needsReadloop: true, run: benchReadAudit };
