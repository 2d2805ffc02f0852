// npm run bench:upstream: the upstream Secrets Store CSI driver v1.6.0 and
// ours side by side, in one run, on the same control plane (the bench's own,
// testkit/control-plane.ts), with the same example provider process, the same
// SecretProviderClass and Pod shapes, and the bench playing kubelet against
// both CSI sockets (including requiresRepublish's periodic republish). Each
// driver runs as a root child with its own socket, node id, namespace and
// kubelet root. Prints one line per figure with both values, the ratio
// ours/upstream and which one is ahead, the same as Markdown, then one JSON
// line. Not a test: nothing passes or fails on timing. bench/upstream/params.ts
// lists the BENCH_UP_* overrides.

import { availableParallelism, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { canaryBytes } from '../testkit/canary.js';
import type { Proc } from '../testkit/proc.js';
import { sleep } from '../testkit/wait.js';
import { startProvider } from './lib/driver.js';
import { BenchEnv } from './lib/env.js';
import { fmt, out } from './lib/output.js';
import { KiB } from './lib/params.js';
import { writeSecretsFile, type SecretFile } from './lib/secrets.js';
import { round } from './lib/stats.js';
import { Cluster } from './upstream/cluster.js';
import { driverImageEnv, upstreamBinary, type DriverSetup, type SideName } from './upstream/drivers.js';
import { json, lines, type Measured } from './upstream/figures.js';
import { idleWindow, type IdleFigures } from './upstream/idle.js';
import { publishBurst, publishUpTo, unpublishAlternating, warmUp, type PerSide } from './upstream/latency.js';
import { UP } from './upstream/params.js';
import { clockTicks, rssKiB } from './upstream/proc-stats.js';
import { ProviderCalls } from './upstream/provider-calls.js';
import { Republisher } from './upstream/republisher.js';
import { rotationToVisible } from './upstream/rotation.js';
import { Side } from './upstream/side.js';
import { Teardown } from './upstream/teardown.js';
import { printLines, printMarkdown } from './upstream/table.js';

const NAMES: readonly SideName[] = ['upstream', 'ours'];
const T0 = Date.now();
/** Progress on stderr, with the time since the start. */
const phase = (s: string): void => {
  process.stderr.write(`[bench +${fmt((Date.now() - T0) / 1000, 0)}s] ${s}\n`);
};
const ROTATED_FILE = 'secret-a';

async function measure(env: BenchEnv, td: Teardown, notes: string[]): Promise<Measured> {
  const upstreamBin = await upstreamBinary();
  phase('starting the control plane');
  const cluster = await Cluster.start((cp) => {
    td.cp = cp;
  });
  const secretsFile = env.shmPath('upbench-secrets.json');
  const files: SecretFile[] = ['a', 'b', 'c'].map((n) => ({ path: `secret-${n}`, contents: canaryBytes(KiB, `up${n}`) }));
  await writeSecretsFile(secretsFile, files);
  const providerDir = env.path('providers');
  const provider: Proc = await startProvider(env, join(providerDir, 'example.sock'));
  const oursEnv = await driverImageEnv();
  notes.push(
    `ours runs with the driver image's environment: ${Object.entries(oursEnv)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
  );
  const setup: DriverSetup = { kubeconfig: cluster.kubeconfig, providerDir, pollSeconds: UP.pollSeconds, oursEnv };
  const sides = NAMES.map(
    (name) =>
      new Side(
        {
          name,
          nodeId: `upbench-${name}-node`,
          namespace: `upbench-${name}`,
          spc: 'upbench',
          root: env.path(name),
          socket: env.path(`${name}-csi.sock`),
        },
        env,
        upstreamBin,
        setup,
      ),
  );
  td.sides = sides;
  const held = Math.max(UP.sequential, UP.volumes);
  const podsPerSide = UP.warmup + UP.concurrent + Math.max(held, UP.volumesLarge);
  phase(`creating ${podsPerSide} Pod objects per driver`);
  await Promise.all(
    sides.map(async (s) => {
      await cluster.namespaceWithSpc(s.spec.namespace, s.spec.spc, secretsFile);
      s.addPods(await cluster.createPods(s.spec.namespace, s.spec.nodeId, s.spec.spc, 'web', podsPerSide, UP.podConcurrency / 2));
    }),
  );

  const republisher = new Republisher(UP.republishSeconds * 1000);
  td.republisher = republisher;
  const calls = new ProviderCalls(provider, { upstream: sides[0]!.spec.root, ours: sides[1]!.spec.root });
  td.calls = calls;
  const hz = await clockTicks();

  phase(`starting each driver ${UP.starts} time(s)`);
  for (let k = 0; k < Math.max(1, UP.starts); k++) for (const s of k % 2 === 0 ? sides : [...sides].reverse()) await s.start();
  await sleep(3000);
  const rssAfterStartKiB = Object.fromEntries(
    await Promise.all(sides.map(async (s) => [s.name, await rssKiB(s.proc.pid)])),
  ) as PerSide<number>;
  phase(`idle window after start, no volumes (${UP.idleStartSeconds} s)`);
  const idleAtStart = await idleWindow(sides, UP.idleStartSeconds, hz, calls, republisher);

  phase('publish latency');
  await warmUp(sides, UP.warmup);
  const sequential = (await publishUpTo(sides, UP.sequential)).ms;
  phase(`${UP.concurrent} concurrent publishes per driver`);
  const burst = await publishBurst(sides, UP.concurrent);
  const unpublish = await unpublishAlternating(sides, { upstream: burst.upstream.volumes, ours: burst.ours.volumes });
  await publishUpTo(sides, held);

  for (const s of sides) for (const v of s.held) republisher.add(s.name, s.kubelet, v);
  const idle: Array<PerSide<IdleFigures>> = [];
  phase(`idle window, ${held} volumes each (${UP.idleSeconds} s)`);
  await sleep(UP.settleSeconds * 1000);
  idle.push(await idleWindow(sides, UP.idleSeconds, hz, calls, republisher));

  phase('rotation to visibility');
  const fresh = canaryBytes(KiB, 'rotated');
  const rotation = await rotationToVisible(
    sides,
    ROTATED_FILE,
    fresh,
    () =>
      writeSecretsFile(
        secretsFile,
        files.map((f) => (f.path === ROTATED_FILE ? { ...f, contents: fresh } : f)),
      ),
    { probeMs: UP.rotationProbeMs, timeoutMs: (UP.republishSeconds + 2 * UP.pollSeconds + 30) * 1000 },
  );
  for (const s of sides)
    if (rotation[s.name].missed > 0) notes.push(`${s.name}: ${rotation[s.name].missed} volume(s) never showed the rotated secret`);

  let growing: PerSide<number[]> | null = null;
  if (UP.volumesLarge > held) {
    phase(`publishing up to ${UP.volumesLarge} volumes per driver`);
    const grown = await publishUpTo(sides, UP.volumesLarge);
    growing = grown.ms;
    for (const s of sides) for (const v of grown.added[s.name]) republisher.add(s.name, s.kubelet, v);
    phase(`idle window, ${UP.volumesLarge} volumes each (${UP.idleSeconds} s)`);
    await sleep(UP.settleSeconds * 1000);
    idle.push(await idleWindow(sides, UP.idleSeconds, hz, calls, republisher));
  }
  await republisher.stop();
  for (const e of republisher.errors) notes.push(e);
  return {
    readyMs: { upstream: sides[0]!.readyMs, ours: sides[1]!.readyMs },
    rssAfterStartKiB,
    idleAtStart,
    sequential,
    burst,
    unpublish,
    growing,
    republish: republisher.samples,
    idle,
    rotation,
  };
}

async function main(): Promise<number> {
  const started = Date.now();
  const notes: string[] = [];
  const env = await BenchEnv.create();
  const td = new Teardown(env);
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`[bench] ${sig}: cleaning up\n`);
    void td
      .run(notes)
      .catch(() => undefined)
      .finally(() => {
        for (const n of notes) process.stderr.write(`[bench] ${n}\n`);
        process.exit(130);
      });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const machine = {
    kernel: release(),
    node: process.version,
    cpus: availableParallelism(),
    loadAvgAtStart: loadavg().map((x) => round(x, 2)),
  };
  out('upstream Secrets Store CSI driver v1.6.0 vs ours, side by side');
  out(`kernel ${machine.kernel}, ${machine.cpus} CPUs, load average ${machine.loadAvgAtStart.join(' ')}`);
  out(
    `rotation poll ${UP.pollSeconds} s for both, kubelet republish every ${UP.republishSeconds} s, idle windows ${UP.idleSeconds} s; temp dir ${env.root}`,
  );
  let measured: Measured | null = null;
  let failure: Error | null = null;
  try {
    measured = await measure(env, td, notes);
  } catch (e) {
    failure = e as Error;
  } finally {
    if (!interrupted) await td.run(notes);
  }
  if (interrupted) return 130;
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  if (measured) {
    const ls = lines(measured, UP.concurrent);
    out();
    printLines(ls);
    out();
    printMarkdown(ls);
    out();
  }
  if (failure) notes.push(`FAILED: ${failure.message}`);
  if (notes.length > 0) {
    out('Notes');
    for (const n of notes) out(`  - ${n}`);
    out();
  }
  out(`elapsed ${fmt((Date.now() - started) / 1000, 1)} s`);
  out(
    JSON.stringify({
      params: UP,
      machine: { ...machine, loadAvgAtEnd: loadavg().map((x) => round(x, 2)) },
      figures: measured ? json(measured) : null,
      notes,
      ok: failure === null,
      elapsedSeconds: round((Date.now() - started) / 1000, 1),
    }),
  );
  return failure ? 1 : 0;
}

process.exitCode = await main();
