// 7. The cost of read audit per open (docs/audit.md): open + read + close of
// a 1 KiB file from a child process (readloop), on four volumes served by
// this process in the same run, in interleaved rounds:
// - the main connection of a driver without audit (OPEN answered ENOSYS
//   once, so opens never reach the server);
// - the main connection of a driver with --audit-reads serving an audited
//   volume, a volume without audit (the same no_open mode: audited volumes
//   are on a connection of their own);
// - that driver's audit connection, the audited volume (one JSON line per
//   open, to /dev/null);
// - for reference, a volume without audit on a connection that answers
//   every OPEN (what --audit-reads cost every volume when there was one
//   connection).

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { SecretsFilesystem } from '../../src/fuse/filesystem.js';
import { threadGroupOf } from '../../src/fuse/thread-group.js';
import { Connections, type ConnectionsOptions } from '../../src/fuse/connections.js';
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
  const driver = async (dir: string, auditAllowed: boolean): Promise<Connections> => {
    const o: ConnectionsOptions = {
      base: { mountDir: env.path(dir), log: quiet },
      auditAllowed,
      onOpen: (id, caller, owns) => audit.onOpen(id, caller, owns),
      mountAudit: (fo) => SecretsFilesystem.mount(fo),
    };
    let main: SecretsFilesystem | null = null;
    main = await SecretsFilesystem.mount(Connections.optionsFor(o, env.path(dir), false, () => main));
    return new Connections(main, o);
  };
  const plainDriver = await driver('audit-default', false);
  const auditDriver = await driver('audit-enabled', true);
  const everyOpen = await SecretsFilesystem.mount({ mountDir: env.path('audit-every-open'), log: quiet, answerOpens: true });
  try {
    const file = [{ path: 'token', mode: 0o644, contents }];
    const serve = async (fs: Connections | SecretsFilesystem, name: string, audited = false): Promise<string> => {
      const v = await fs.createVolume(name, null, audited);
      await fs.publish(v, file);
      if (audited) audit.watch({ targetPath: v.sourcePath, podNamespace: 'bench', podName: 'reader', podUid: '', handle: v });
      return join(v.sourcePath, 'token');
    };
    const variants = [
      { name: 'default driver', path: await serve(plainDriver, 'plain') },
      { name: '--audit-reads, volume without audit', path: await serve(auditDriver, 'unaudited') },
      { name: '--audit-reads, audited volume', path: await serve(auditDriver, 'audited', true) },
      { name: '(one connection answering OPEN)', path: await serve(everyOpen, 'unaudited') },
    ];
    if (auditDriver.all().length !== 2) throw new Error('read audit: the audited volume is not on a connection of its own');
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
    type Summary = ReturnType<typeof summarize>;
    const [base, unaudited, aud, oneConn] = sums as [Summary, Summary, Summary, Summary];
    out(`7. Read audit: open + read + close of a 1 KiB file (readloop, ${P.readRounds} interleaved rounds of ${perRound}, same run)`);
    table(
      ['volume', 'median µs', 'p95 µs', 'mean µs', 'opens/s (1/mean)'],
      variants.map((v, i) => [v.name, fmt(sums[i]!.median, 1), fmt(sums[i]!.p95, 1), fmt(sums[i]!.mean, 1), fmt(1e6 / sums[i]!.mean, 0)]),
      38,
    );
    out(
      `  ratio (median): audited / default ${fmt(aud.median / base.median, 2)}x, ` +
        `unaudited on --audit-reads / default ${fmt(unaudited.median / base.median, 2)}x, ` +
        `unaudited on a connection answering OPEN / default ${fmt(oneConn.median / base.median, 2)}x`,
    );
    out(
      `  per open, median: +${fmt(aud.median - base.median, 1)} µs audited, +${fmt(oneConn.median - base.median, 1)} µs OPEN round trip alone`,
    );
    out();
    results.readAudit = {
      fileBytes: KiB,
      iterations: P.readRounds * perRound,
      us: Object.fromEntries(variants.map((v, i) => [v.name, roundSummary(sums[i]!)])),
      ratioMedian: {
        auditedVsDefault: round(aud.median / base.median, 2),
        unauditedVsDefault: round(unaudited.median / base.median, 2),
        oneConnectionUnauditedVsDefault: round(oneConn.median / base.median, 2),
      },
      auditLines: lines - linesBefore,
    };
  } finally {
    for (const fs of [auditDriver, plainDriver]) {
      for (const a of await fs.close()) notes.push(`read audit: closing ${a.mountDir} needed an abort (${a.aborted.method})`);
    }
    const aborted = await everyOpen.close();
    if (aborted) notes.push(`read audit: closing ${everyOpen.mountDir} needed an abort (${aborted.method})`);
  }
}

export const readAudit: Section = { name: 'read-audit', needsReadloop: true, run: benchReadAudit };
