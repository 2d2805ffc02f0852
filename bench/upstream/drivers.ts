// The two drivers as root child processes of the bench, each with its own
// CSI socket, node id and kubelet root, both calling the same example
// provider: the upstream driver v1.6.0 (test/peers/upstream-driver/build.sh)
// and ours (dist/src/bin/driver.js). A start is timed from spawn to the first
// Probe answered.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../../testkit/net.js';
import { parseDriverStage } from '../../testkit/node/driver-image.js';
import { Proc } from '../../testkit/proc.js';
import { run } from '../../testkit/run.js';
import { sleep } from '../../testkit/wait.js';
import type { BenchEnv } from '../lib/env.js';
import { REPO_ROOT } from '../lib/paths.js';
import { probeOnce } from './kubelet.js';

export type SideName = 'upstream' | 'ours';

/** What both drivers are started with. */
export interface DriverSetup {
  readonly kubeconfig: string;
  readonly providerDir: string;
  readonly pollSeconds: number;
  /** Ours runs with the driver image's environment (driverImageEnv). */
  readonly oursEnv: Readonly<Record<string, string>>;
}

/** One driver's fixed identity in the bench. */
export interface SideSpec {
  readonly name: SideName;
  readonly nodeId: string;
  readonly namespace: string;
  readonly spc: string;
  /** Its kubelet root (pods/<uid>/volumes/... below it) and socket. */
  readonly root: string;
  readonly socket: string;
}

/** The upstream binary's path, or why it is not there. */
export async function upstreamBinary(): Promise<string> {
  const script = join(REPO_ROOT, 'test/peers/upstream-driver/build.sh');
  try {
    return (await run('bash', [script, '--check'])).stdout.trim().split('\n').pop()!;
  } catch {
    throw new Error(`the upstream driver is not built: run ${script} (needs Go and the Go module proxy)`);
  }
}

/**
 * The environment the driver image sets (the Dockerfile's ENV lines of its
 * `driver` stage: V8's heap sizing, the threadpool), so ours is measured as
 * it is deployed, as upstream's binary is.
 */
export async function driverImageEnv(): Promise<Record<string, string>> {
  const { env } = parseDriverStage(await readFile(join(REPO_ROOT, 'Dockerfile'), 'utf8'));
  if (env.length === 0) throw new Error("no ENV line in the Dockerfile's driver stage");
  return Object.fromEntries(env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

function upstreamArgs(s: SideSpec, d: DriverSetup, metricsPort: number): string[] {
  return [
    `--endpoint=unix://${s.socket}`,
    `--nodeid=${s.nodeId}`,
    `--kubeconfig=${d.kubeconfig}`,
    `--provider-volume=${d.providerDir}`,
    `--additional-provider-volume-paths=${d.providerDir}`,
    `--metrics-addr=127.0.0.1:${metricsPort}`,
    '--enable-secret-rotation=true',
    `--rotation-poll-interval=${d.pollSeconds}s`,
  ];
}

function oursArgs(s: SideSpec, d: DriverSetup, metricsPort: number): string[] {
  return [
    join(REPO_ROOT, 'dist/src/bin/driver.js'),
    `--endpoint=unix://${s.socket}`,
    `--nodeid=${s.nodeId}`,
    `--kubeconfig=${d.kubeconfig}`,
    `--provider-volume=${d.providerDir}`,
    '--additional-provider-volume-paths=',
    `--fuse-mount-dir=${join(s.root, 'fuse')}`,
    // Its kubelet root is the bench's, so the target check stays on.
    `--kubelet-root-dir=${s.root}`,
    `--metrics-addr=127.0.0.1:${metricsPort}`,
    `--rotation-poll-interval=${d.pollSeconds}s`,
  ];
}

export interface Started {
  readonly proc: Proc;
  /** Spawn to the first Probe answered, ms. */
  readonly readyMs: number;
}

/** Starts one driver (tracked by `env` for cleanup) and times it until it answers Probe. */
export async function startSide(env: BenchEnv, upstreamBin: string, s: SideSpec, d: DriverSetup, timeoutMs = 60_000): Promise<Started> {
  await mkdir(s.root, { recursive: true });
  await rm(s.socket, { force: true }); // a stale socket would answer nothing and look like a start
  const port = await freePort();
  const [cmd, args] = s.name === 'upstream' ? [upstreamBin, upstreamArgs(s, d, port)] : [process.execPath, oursArgs(s, d, port)];
  const t0 = performance.now();
  const childEnv = s.name === 'ours' ? { ...process.env, ...d.oursEnv } : process.env;
  const proc = env.track(new Proc(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv }), `driver:${s.name}`));
  for (;;) {
    if (!proc.running) throw new Error(`the ${s.name} driver exited during start\n${proc.recentOutput()}`);
    if (existsSync(s.socket) && (await probeOnce(s.socket))) return { proc, readyMs: performance.now() - t0 };
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`the ${s.name} driver did not answer Probe in ${timeoutMs} ms\n${proc.recentOutput()}`);
    await sleep(5);
  }
}
