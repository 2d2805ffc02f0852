// The driver and the example provider as child processes of the bench, and a
// forced GC in the driver through its inspector.

import { mkdir } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { freePort } from '../../testkit/net.js';
import { Proc } from '../../testkit/proc.js';
import { CsiClient } from './clients.js';
import type { BenchEnv } from './env.js';
import { REPO_ROOT } from './paths.js';

const DRIVER_BIN = join(REPO_ROOT, 'dist/src/bin/driver.js');
const PROVIDER_BIN = join(REPO_ROOT, 'dist/src/bin/example-provider.js');

/** A node child of the bench, stopped by env.cleanup(). */
function startNode(env: BenchEnv, name: string, args: readonly string[]): Proc {
  return env.track(new Proc(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }), name));
}

export async function startProvider(env: BenchEnv, socketPath: string): Promise<Proc> {
  await mkdir(dirname(socketPath), { recursive: true });
  const c = startNode(env, 'provider', [PROVIDER_BIN, '--endpoint', `unix://${socketPath}`]);
  await c.waitForLine((l) => l.includes('"listening"'), 15_000);
  return c;
}

export interface DriverOptions {
  readonly name: string;
  readonly providerDir: string;
  readonly spcDir: string;
  readonly rotationPollInterval: string;
  readonly logLevel: string;
  /** Start node with --inspect on a random loopback port (only to force a GC for memory figures). */
  readonly inspect?: boolean;
  /**
   * --lock-memory. The driver's default (true) keeps secret file contents in
   * mlock'ed pages of their own (native allocSecure); it does not mlockall.
   */
  readonly lockMemory?: boolean;
}

export interface Driver {
  readonly child: Proc;
  readonly csi: CsiClient;
  readonly metricsUrl: string;
  readonly fuseMountDir: string;
  /** Inspector WebSocket URL when started with `inspect`. */
  readonly inspectorUrl: string | null;
}

export async function startDriver(env: BenchEnv, o: DriverOptions): Promise<Driver> {
  const socket = env.path(`${o.name}-csi.sock`);
  const fuseMountDir = env.path(`${o.name}-fuse`);
  const port = await freePort();
  const args = [
    DRIVER_BIN,
    `--endpoint=unix://${socket}`,
    '--nodeid=bench',
    `--provider-volume=${o.providerDir}`,
    '--additional-provider-volume-paths=',
    `--secret-provider-class-dir=${o.spcDir}`,
    `--fuse-mount-dir=${fuseMountDir}`,
    // Its targets are under its own root (kubeletTarget), so the check stays on.
    `--kubelet-root-dir=${env.root}`,
    `--metrics-addr=127.0.0.1:${port}`,
    `--rotation-poll-interval=${o.rotationPollInterval}`,
    `--log-level=${o.logLevel}`,
    ...(o.lockMemory === false ? ['--lock-memory=false'] : []),
  ];
  if (o.inspect) args.unshift('--inspect=127.0.0.1:0');
  const child = startNode(env, `driver:${o.name}`, args);
  const inspector = o.inspect ? child.waitForLine((l) => l.includes('Debugger listening on ws://'), 20_000) : null;
  inspector?.catch(() => undefined); // awaited below; a start failure is reported by waitReady
  const csi = env.trackClient(new CsiClient(socket));
  await csi.waitReady(child, 20_000);
  const inspectorUrl = inspector ? /(ws:\/\/\S+)/.exec(await inspector)![1]! : null;
  return { child, csi, metricsUrl: `http://127.0.0.1:${port}/metrics`, fuseMountDir, inspectorUrl };
}

/** A full garbage collection in the driver, through its inspector (HeapProfiler.collectGarbage). */
export async function forceGc(inspectorUrl: string, timeoutMs = 10_000): Promise<void> {
  const ws = new WebSocket(inspectorUrl);
  const timer = setTimeout(() => ws.close(), timeoutMs);
  try {
    await new Promise<void>((resolvePromise, reject) => {
      ws.onerror = () => reject(new Error(`inspector ${inspectorUrl}: connection failed`));
      ws.onclose = () => reject(new Error(`inspector ${inspectorUrl}: closed before GC finished`));
      ws.onopen = () => ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
      ws.onmessage = (ev) => {
        const m = JSON.parse(String(ev.data)) as { id?: number; error?: { message: string } };
        if (m.id !== 1) return;
        if (m.error) reject(new Error(`collectGarbage: ${m.error.message}`));
        else resolvePromise();
      };
    });
  } finally {
    clearTimeout(timer);
    ws.onclose = null;
    ws.close();
  }
}
