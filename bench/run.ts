// npm run bench: read latency, publish latency, memory per volume and
// rotation-to-visible latency of the real driver (child process, CSI over its
// unix socket, the example provider as the secret source), each against
// baselines measured in the same run, then one FUSE connection per node vs
// one per volume and the cost of a rotation's switch (bench/mount-strategy.ts
// and bench/switch-cost.ts in child processes). Not a test: nothing passes or
// fails on timing. Prints a table per section (bench/sections/), then one JSON
// line with every figure. `--section NAME` (repeatable) runs only those
// sections; the parameters' env overrides (bench/lib/params.ts) shorten a run.

import { availableParallelism, release } from 'node:os';
import { join } from 'node:path';
import type { Proc } from '../testkit/proc.js';
import { run } from '../testkit/run.js';
import { sleep } from '../testkit/wait.js';
import { kubeletTarget, newPodUid } from './lib/clients.js';
import { Report, type Section, type SectionContext } from './lib/context.js';
import { startProvider } from './lib/driver.js';
import { DriverSlot } from './lib/drivers.js';
import { BenchEnv } from './lib/env.js';
import { prepareFixtures } from './lib/fixtures.js';
import { fmt, out } from './lib/output.js';
import { buildReadloop } from './lib/readloop.js';
import { round } from './lib/stats.js';
import { StrategyDirs } from './lib/strategy-dirs.js';
import { lockedMemory } from './sections/locked-memory.js';
import { memory } from './sections/memory.js';
import { mountStrategy } from './sections/mount-strategy.js';
import { publish } from './sections/publish.js';
import { readAudit } from './sections/read-audit.js';
import { reads } from './sections/reads.js';
import { rotation } from './sections/rotation.js';
import { switchCost } from './sections/switch-cost.js';

// As the driver runs (src/bin/driver.ts): each FUSE connection served in this
// process parks two pool threads in read(2), and section 7 serves four.
process.env.UV_THREADPOOL_SIZE ??= '16';

/** In the order they run (and print). */
const SECTIONS: readonly Section[] = [lockedMemory, reads, publish, memory, rotation, mountStrategy, switchCost, readAudit];

/** The sections `--section NAME` (repeatable, or comma-separated) picks; all without it. */
function selectedSections(argv: readonly string[]): Section[] {
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--section') names.push(...(argv[++i] ?? '').split(','));
    else if (a.startsWith('--section=')) names.push(...a.slice('--section='.length).split(','));
    else throw new Error(`unknown argument ${a} (usage: run.js [--section NAME]...)`);
  }
  const unknown = names.filter((n) => !SECTIONS.some((s) => s.name === n));
  if (unknown.length > 0) throw new Error(`unknown section ${unknown.join(', ')}; sections: ${SECTIONS.map((s) => s.name).join(', ')}`);
  return names.length === 0 ? [...SECTIONS] : SECTIONS.filter((s) => names.includes(s.name));
}

async function main(sections: readonly Section[]): Promise<number> {
  const started = Date.now();
  const report = new Report();
  const { results, notes } = report;
  const strategyDirs = await StrategyDirs.snapshot();
  const env = await BenchEnv.create();
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`[bench] ${sig}: cleaning up\n`);
    env.killSpawned();
    void sleep(200)
      .then(() => strategyDirs.cleanup([], true))
      .catch(() => undefined)
      .then(() => env.cleanup())
      .finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let failure: Error | null = null;
  const tmpfsDir = kubeletTarget(env, newPodUid(), 'tmpfs-read');
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

    const fixtures = await prepareFixtures(env, tmpfsDir);
    let provider: Proc | null = null;
    const ctx: SectionContext = {
      env,
      report,
      fixtures,
      bin,
      strategyDirs,
      provider: () => {
        if (!provider) throw new Error('the example provider is not running');
        return provider;
      },
    };
    const drivers = new DriverSlot(env, fixtures);
    for (const s of sections) {
      if (s.needsReadloop && !bin) continue;
      if (!s.driver) {
        await drivers.stop();
        await s.run(ctx);
        continue;
      }
      if (!provider) {
        provider = await startProvider(env, fixtures.providerSocket);
        await startProvider(env, join(fixtures.providerDir, 'example-writer.sock'));
      }
      await s.run(ctx, await drivers.get(s.driver));
    }
    await drivers.stop();
  } catch (e) {
    failure = e as Error;
  } finally {
    await run('umount', [tmpfsDir]).catch(() => undefined); // not mounted when the run failed before it
    const c = await env.cleanup();
    for (const cr of c.crashed) notes.push(`CRASHED: ${cr}`);
    const ours = c.leftoverMounts.filter((m) => m !== tmpfsDir);
    results.cleanup = { leftoverMountsUnmounted: ours.map((m) => m.replace(env.root, '<tmp>')), errors: c.errors };
    if (ours.length > 0) notes.push(`cleanup had to unmount ${ours.length} leftover mount(s): ${ours.slice(0, 5).join(' ')}`);
    for (const e of c.errors) notes.push(`cleanup: ${e}`);
    // Section 5's children mount under /tmp/ssbench-mounts-*, outside the temp dir.
    const strategyErrors: string[] = [];
    const strategyLeft = await strategyDirs.cleanup(strategyErrors, failure !== null).catch((e: unknown) => {
      strategyErrors.push((e as Error).message);
      return [];
    });
    (results.cleanup as Record<string, unknown>).mountStrategyMountsUnmounted = strategyLeft;
    if (strategyLeft.length > 0)
      notes.push(`cleanup had to unmount ${strategyLeft.length} mount-strategy mount(s): ${strategyLeft.slice(0, 5).join(' ')}`);
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

let chosen: Section[] | null = null;
try {
  chosen = selectedSections(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
}
process.exitCode = chosen ? await main(chosen) : 2;
