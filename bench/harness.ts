// Benchmark plumbing: a temp dir that is always cleaned up (mounts, child
// processes, /dev/shm files), the driver and the example provider as child
// processes, CSI and provider gRPC clients, metrics scraping, RSS, and the
// readloop C program.
//
// The bench process never reads the FUSE mount itself: every read of it
// happens in a child process (readloop), so a stuck server cannot wedge us.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { IdentityClient, NodeClient, type NodePublishVolumeRequest } from '../src/gen/csi/v1/csi.js';
import { CSIDriverProviderClient, type MountRequest, type MountResponse } from '../src/gen/provider/v1alpha1/service.js';
import { parseMountInfo } from '../src/mount/mountinfo.js';

/** Repository root: this file runs as dist/bench/harness.js. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DRIVER_BIN = join(REPO_ROOT, 'dist/src/bin/driver.js');
const PROVIDER_BIN = join(REPO_ROOT, 'dist/src/bin/example-provider.js');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Monotonic clock in ns (uv_hrtime = CLOCK_MONOTONIC, the clock readloop prints). */
export const monoNs = (): bigint => process.hrtime.bigint();

// ---------------------------------------------------------------------------
// Child processes

export interface RunResult { readonly stdout: string; readonly stderr: string }

/** Runs a command to completion; rejects with its stderr on a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : null;
    child.on('error', (e) => { if (timer) clearTimeout(timer); reject(new Error(`${cmd}: ${e.message}`)); });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) resolvePromise({ stdout, stderr });
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${stderr.trim().slice(0, 2000)}`));
    });
  });
}

/** A long-running child whose stdout and stderr are read line by line (it must never block on a full pipe). */
export class Child {
  readonly proc: ChildProcess;
  private readonly tail: string[] = [];
  private readonly listeners = new Set<(line: string, at: bigint) => void>();
  readonly exited: Promise<number | null>;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private stopRequested = false;

  constructor(readonly name: string, cmd: string, args: readonly string[]) {
    this.proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    const reader = (): ((d: Buffer) => void) => {
      let partial = '';
      return (d: Buffer): void => {
        const at = monoNs();
        const lines = (partial + d.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          this.tail.push(line);
          if (this.tail.length > 40) this.tail.shift();
          for (const l of this.listeners) l(line, at);
        }
      };
    };
    this.proc.stdout!.on('data', reader());
    this.proc.stderr!.on('data', reader());
    this.exited = new Promise((r) => this.proc.on('exit', (code, signal) => { this.exit = { code, signal }; r(code); }));
    this.proc.on('error', () => undefined);
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get running(): boolean {
    return this.exit === null;
  }

  /** How it ended, when it ended without being asked to (a crash); null otherwise. */
  unexpectedExit(): string | null {
    if (!this.exit || this.stopRequested) return null;
    return this.exit.signal ? `signal ${this.exit.signal}` : `exit code ${this.exit.code}`;
  }

  /** Last lines of output, for error messages (native stack frames left out). */
  recentOutput(): string {
    return this.tail.filter((l) => !/^\s*\d+: 0x[0-9a-f]+ /.test(l)).slice(-15).map((l) => `  [${this.name}] ${l}`).join('\n');
  }

  onLine(fn: (line: string, at: bigint) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves with the first line matching `pred`; rejects on exit or timeout. */
  waitForLine(pred: (line: string) => boolean, timeoutMs: number): Promise<string> {
    return new Promise((resolvePromise, reject) => {
      const off = this.onLine((line) => {
        if (!pred(line)) return;
        done();
        resolvePromise(line);
      });
      const timer = setTimeout(() => { done(); reject(new Error(`${this.name}: timed out waiting for output\n${this.recentOutput()}`)); }, timeoutMs);
      void this.exited.then((code) => { done(); reject(new Error(`${this.name} exited (${code})\n${this.recentOutput()}`)); });
      const done = (): void => { off(); clearTimeout(timer); };
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.stopRequested = true;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => { if (this.running) this.proc.kill('SIGKILL'); }, graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------
// The bench's temp dir and everything that must be undone

export class BenchEnv {
  private readonly children: Child[] = [];
  private readonly shmFiles: string[] = [];
  private readonly clients: Array<{ close(): void }> = [];

  private constructor(readonly root: string) {}

  static async create(): Promise<BenchEnv> {
    return new BenchEnv(await mkdtemp('/tmp/ssbench-'));
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  track(c: Child): Child {
    this.children.push(c);
    return c;
  }

  trackClient<T extends { close(): void }>(c: T): T {
    this.clients.push(c);
    return c;
  }

  /** A file in /dev/shm (tmpfs), removed by cleanup. */
  shmPath(name: string): string {
    const p = `/dev/shm/${this.root.split('/').pop()}-${name}`;
    this.shmFiles.push(p);
    return p;
  }

  /** Mount points under our temp dir, deepest first. */
  async mountsUnderRoot(): Promise<string[]> {
    const table = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
    return table.map((m) => m.mountPoint)
      .filter((p) => p === this.root || p.startsWith(`${this.root}/`))
      .sort((a, b) => b.length - a.length);
  }

  /**
   * Kills children, lazily unmounts whatever is still mounted under the temp
   * dir, removes the temp dir and the /dev/shm files. Never throws; returns
   * what it had to clean up (a clean run has no leftover mounts).
   */
  async cleanup(): Promise<{ leftoverMounts: string[]; errors: string[]; crashed: string[] }> {
    const errors: string[] = [];
    const crashed = this.crashedChildren();
    for (const c of this.clients.splice(0)) {
      try { c.close(); } catch (e) { errors.push(`client close: ${(e as Error).message}`); }
    }
    await Promise.all(this.children.splice(0).reverse().map((c) => c.stop(4000).catch((e: unknown) => {
      errors.push(`stop ${c.name}: ${(e as Error).message}`);
    })));
    let leftover: string[] = [];
    try {
      leftover = await this.mountsUnderRoot();
      for (let pass = 0; pass < 3; pass++) {
        const now = await this.mountsUnderRoot();
        if (now.length === 0) break;
        for (const m of now) await run('umount', ['-l', m], { timeoutMs: 10_000 }).catch((e: unknown) => errors.push((e as Error).message));
      }
      const still = await this.mountsUnderRoot();
      if (still.length > 0) errors.push(`still mounted, temp dir kept: ${still.join(' ')}`);
      else await rm(this.root, { recursive: true, force: true });
    } catch (e) {
      errors.push(`cleanup: ${(e as Error).message}`);
    }
    for (const f of this.shmFiles.splice(0)) {
      await rm(f, { force: true }).catch(() => undefined);
      await rm(`${f}.tmp`, { force: true }).catch(() => undefined);
    }
    return { leftoverMounts: leftover, errors, crashed };
  }

  /** Children that ended without being stopped, with how and their last output. */
  crashedChildren(): string[] {
    return this.children.flatMap((c) => {
      const how = c.unexpectedExit();
      const tail = c.recentOutput();
      return how ? [`${c.name} (pid ${c.pid}) died: ${how}${tail ? `\n${tail}` : ''}`] : [];
    });
  }
}

// ---------------------------------------------------------------------------
// Secrets: random canary-like ASCII, so content checks and printing are easy

/** `size` bytes: a recognisable canary prefix, then random base64url characters. */
export function canary(size: number, tag: string): Buffer {
  const prefix = Buffer.from(`BENCH-CANARY-${tag}-`);
  const body = randomBytes(size).toString('base64url');
  return Buffer.concat([prefix, Buffer.from(body)]).subarray(0, size);
}

export interface SecretFile { readonly path: string; readonly contents: Buffer }

/** Writes the example provider's source file atomically (temp + rename), so a Mount never sees half of it. */
export async function writeSecretsFile(file: string, files: readonly SecretFile[]): Promise<void> {
  const doc = { files: files.map((f) => ({ path: f.path, contentsBase64: f.contents.toString('base64') })) };
  await writeFile(`${file}.tmp`, JSON.stringify(doc), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

/** A SecretProviderClass manifest for --secret-provider-class-dir. */
export async function writeSpc(dir: string, name: string, secretsFile: string, provider = 'example', extra: Record<string, string> = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const doc = {
    apiVersion: 'secrets-store.csi.x-k8s.io/v1', kind: 'SecretProviderClass',
    metadata: { name, namespace: 'bench' },
    spec: { provider, parameters: { secretsFile, ...extra } },
  };
  await writeFile(join(dir, `${name}.json`), JSON.stringify(doc));
}

// ---------------------------------------------------------------------------
// Provider and driver

export async function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolvePromise(port));
    });
  });
}

export async function startProvider(env: BenchEnv, socketPath: string): Promise<Child> {
  await mkdir(dirname(socketPath), { recursive: true });
  const c = env.track(new Child('provider', process.execPath, [PROVIDER_BIN, '--endpoint', `unix://${socketPath}`]));
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
  readonly child: Child;
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
    `--metrics-addr=127.0.0.1:${port}`,
    `--rotation-poll-interval=${o.rotationPollInterval}`,
    `--log-level=${o.logLevel}`,
    ...(o.lockMemory === false ? ['--lock-memory=false'] : []),
  ];
  if (o.inspect) args.unshift('--inspect=127.0.0.1:0');
  const child = env.track(new Child(`driver:${o.name}`, process.execPath, args));
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

function unary<Req, Res>(
  fn: (req: Req, md: Metadata, opts: { deadline: Date }, cb: (e: ServiceError | null, r: Res) => void) => unknown,
  req: Req, timeoutMs: number,
): Promise<Res> {
  return new Promise((resolvePromise, reject) => {
    fn(req, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (e, r) => (e ? reject(e) : resolvePromise(r)));
  });
}

/** kubelet-shaped target path: <root>/pods/<uid>/volumes/kubernetes.io~csi/<name>/mount. */
export function kubeletTarget(env: BenchEnv, podUid: string, volName: string): string {
  return env.path('pods', podUid, 'volumes', 'kubernetes.io~csi', volName, 'mount');
}

export interface PublishSpec {
  readonly targetPath: string;
  readonly podUid: string;
  readonly spc: string;
}

export class CsiClient {
  private readonly node: NodeClient;
  private readonly identity: IdentityClient;

  constructor(socketPath: string) {
    this.node = new NodeClient(`unix:${socketPath}`, credentials.createInsecure());
    this.identity = new IdentityClient(`unix:${socketPath}`, credentials.createInsecure());
  }

  /** Probes until the driver answers (or exits, or the timeout passes). */
  async waitReady(child: Child, timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < until) {
      if (!child.running) throw new Error(`${child.name} exited during start\n${child.recentOutput()}`);
      try {
        await unary(this.identity.probe.bind(this.identity), {}, 1000);
        return;
      } catch (e) {
        last = (e as Error).message;
      }
      await sleep(100);
    }
    throw new Error(`${child.name} not ready after ${timeoutMs} ms: ${last}\n${child.recentOutput()}`);
  }

  static volumeId(targetPath: string): string {
    return `csi-${Buffer.from(targetPath).toString('hex').slice(-40)}`;
  }

  /** NodePublishVolume as kubelet sends it for an inline secrets-store volume. */
  async publish(s: PublishSpec, timeoutMs = 30_000): Promise<void> {
    const req: NodePublishVolumeRequest = {
      volumeId: CsiClient.volumeId(s.targetPath),
      publishContext: {},
      stagingTargetPath: '',
      targetPath: s.targetPath,
      volumeCapability: { accessType: { $case: 'mount', value: { fsType: '', mountFlags: [], volumeMountGroup: '' } }, accessMode: { mode: 1 } },
      readonly: true,
      secrets: {},
      volumeContext: {
        secretProviderClass: s.spc,
        'csi.storage.k8s.io/pod.name': `pod-${s.podUid.slice(0, 8)}`,
        'csi.storage.k8s.io/pod.namespace': 'bench',
        'csi.storage.k8s.io/pod.uid': s.podUid,
        'csi.storage.k8s.io/serviceAccount.name': 'default',
        'csi.storage.k8s.io/ephemeral': 'true',
      },
    };
    // kubelet creates the parent of the target; the driver creates the target itself.
    await mkdir(dirname(s.targetPath), { recursive: true });
    await unary(this.node.nodePublishVolume.bind(this.node), req, timeoutMs);
  }

  async unpublish(targetPath: string, timeoutMs = 30_000): Promise<void> {
    await unary(this.node.nodeUnpublishVolume.bind(this.node), { volumeId: CsiClient.volumeId(targetPath), targetPath }, timeoutMs);
  }

  close(): void {
    this.node.close();
    this.identity.close();
  }
}

/** Direct client of the provider's socket, as the driver calls it (authority "localhost"). */
export class RawProviderClient {
  private readonly client: CSIDriverProviderClient;

  constructor(socketPath: string) {
    this.client = new CSIDriverProviderClient(`unix:${socketPath}`, credentials.createInsecure(), {
      'grpc.default_authority': 'localhost',
    });
  }

  mount(req: MountRequest, timeoutMs = 30_000): Promise<MountResponse> {
    return unary(this.client.mount.bind(this.client), req, timeoutMs);
  }

  close(): void {
    this.client.close();
  }
}

/** The MountRequest the driver builds for a publish (SPC parameters + volume context, permission 0644). */
export function providerRequest(secretsFile: string, targetPath: string, podUid: string): MountRequest {
  const attributes: Record<string, string> = {
    secretsFile,
    secretProviderClass: 'raw',
    'csi.storage.k8s.io/pod.name': `pod-${podUid.slice(0, 8)}`,
    'csi.storage.k8s.io/pod.namespace': 'bench',
    'csi.storage.k8s.io/pod.uid': podUid,
    'csi.storage.k8s.io/serviceAccount.name': 'default',
    'csi.storage.k8s.io/ephemeral': 'true',
  };
  return { attributes: JSON.stringify(attributes), secrets: 'null', targetPath, permission: '420', currentObjectVersion: [] };
}

export const newPodUid = (): string => randomUUID();

// ---------------------------------------------------------------------------
// Observing the driver

/** Parses Prometheus text into "name{labels}" -> value. */
export async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** secrets_store_fuse_requests_total by op. */
export function fuseRequests(m: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of m) {
    const x = /^secrets_store_fuse_requests_total\{op="([^"]+)"\}$/.exec(k);
    if (x) out[x[1]!] = v;
  }
  return out;
}

export function diffCounts(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/** A /proc/<pid>/status field in KiB (VmRSS, VmLck, ...). */
export async function statusKiB(pid: number, field = 'VmRSS'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
  if (!m) throw new Error(`no ${field} for ${pid}`);
  return Number(m[1]);
}

export const rssKiB = (pid: number): Promise<number> => statusKiB(pid, 'VmRSS');

// ---------------------------------------------------------------------------
// readloop (C)

/** Compiles bench/readloop.c with cc -O2 into `outDir`; null when there is no C compiler. */
export async function buildReadloop(outDir: string): Promise<{ bin: string | null; reason: string }> {
  const src = join(REPO_ROOT, 'bench', 'readloop.c');
  if (!existsSync(src)) return { bin: null, reason: `${src} is missing` };
  const bin = join(outDir, 'readloop');
  await mkdir(outDir, { recursive: true });
  try {
    await run('cc', ['-O2', '-Wall', '-o', bin, src], { timeoutMs: 60_000 });
  } catch (e) {
    const msg = (e as Error).message;
    return { bin: null, reason: /ENOENT/.test(msg) ? 'no C compiler (cc) found' : `cc failed: ${msg}` };
  }
  return { bin, reason: '' };
}

/** Latencies (µs) of `iterations` open+read+close of `path`, after `warmup` checked ones. */
export async function readLatencies(bin: string, path: string, iterations: number, warmup: number, expectFile: string): Promise<number[]> {
  const { stdout } = await run(bin, ['lat', path, String(iterations), String(warmup), expectFile], { timeoutMs: 120_000 });
  const out: number[] = [];
  for (const line of stdout.split('\n')) if (line) out.push(Number(line) / 1000);
  if (out.length !== iterations) throw new Error(`readloop returned ${out.length} samples, want ${iterations}`);
  return out;
}

export interface WatchResult {
  /** When the new content was seen (CLOCK_MONOTONIC ns, end of the read). */
  readonly monoNs: bigint;
  readonly realMs: number;
  /** How long the open+read+close that returned the new content took, µs. */
  readonly readUs: number;
  readonly content: Buffer;
}

export interface Watcher {
  /** Resolves when the watcher has read the initial content. */
  readonly ready: Promise<void>;
  /** Resolves with the detection time (CLOCK_MONOTONIC ns) and the new content. */
  readonly changed: Promise<WatchResult>;
  kill(): void;
}

/** Starts `readloop watch`: re-reads `path` every `sleepUs` until its content changes. */
export function watchForChange(bin: string, path: string, sleepUs: number, timeoutMs: number): Watcher {
  const proc = spawn(bin, ['watch', path, String(sleepUs), String(timeoutMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  let stderr = '';
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => { readyResolve = r; });
  proc.stdout.on('data', (d: Buffer) => {
    chunks.push(d);
    if (Buffer.concat(chunks).includes('ready\n')) readyResolve();
  });
  proc.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const changed = new Promise<WatchResult>((resolvePromise, reject) => {
    proc.on('error', reject);
    proc.on('close', (code) => {
      const all = Buffer.concat(chunks);
      const start = all.indexOf('ready\n') + 'ready\n'.length;
      const nl = all.indexOf('\n', start);
      const header = all.subarray(start, nl < 0 ? all.length : nl).toString();
      const m = /^changed (\d+) (\d+) (\d+) (\d+)$/.exec(header);
      if (code !== 0 || !m) {
        reject(new Error(`readloop watch exited ${code}: ${header || '(no output)'} ${stderr.trim()}`));
        return;
      }
      resolvePromise({ monoNs: BigInt(m[1]!), realMs: Number(BigInt(m[2]!) / 1_000_000n), readUs: Number(m[4]) / 1000, content: all.subarray(nl + 1) });
    });
  });
  changed.catch(() => undefined);
  return { ready, changed, kill: () => { if (proc.exitCode === null) proc.kill('SIGKILL'); } };
}

// ---------------------------------------------------------------------------
// Locked memory vs V8

/**
 * Why the driver does not mlockall: does a full GC survive in a Node process
 * locked with the addon's lockAll(true) (mlockall MCL_CURRENT|MCL_FUTURE|
 * MCL_ONFAULT)? Runs a throwaway child: lock, make a burst of garbage, gc().
 * Under mlockall V8's madvise(MADV_DONTNEED) fails with EINVAL and V8 CHECKs
 * it, so the child is expected to die.
 */
export async function probeMlockGc(): Promise<{ locked: boolean; survived: boolean; how: string; failedSyscall: string }> {
  const addon = join(REPO_ROOT, 'dist/src/native/addon.js');
  const script = `
    const { loadNative } = await import(${JSON.stringify(addon)});
    loadNative().lockAll(true);
    console.log('locked');
    let keep = [];
    for (let i = 0; i < 200; i++) keep.push(new Array(100000).fill(i));
    keep = null;
    globalThis.gc();
    console.log('survived');`;
  const r = await runCaptured(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { timeoutMs: 30_000 });
  const text = r.stdout + r.stderr;
  const check = /Check failed: [^\n]*/.exec(text)?.[0] ?? '';
  return {
    locked: text.includes('locked'),
    survived: text.includes('survived') && r.code === 0,
    how: r.signal ? `signal ${r.signal}` : `exit code ${r.code}`,
    failedSyscall: check,
  };
}

export interface SecretAllocGcProbe {
  /** The child exited 0 after every allocation and gc(). */
  survived: boolean;
  how: string;
  /** What secretAllocator(loadNative(), true) reported in the child. */
  locked: boolean | null;
  lockError: string | null;
  buffers: number;
  gcCalls: number;
  /** Every live buffer still held its own bytes after the churn. */
  contentIntact: boolean | null;
  /** The child's VmLck: at start, with `buffers` secrets held, after dropping them and gc(). */
  vmLckKiB: { start: number; held: number; afterRelease: number } | null;
  error: string;
}

/**
 * The driver's way: secrets in pages of their own from
 * secretAllocator(loadNative(), true) (mmap + mlock, nothing else locked).
 * A throwaway child under --expose-gc allocates `buffers` secret buffers,
 * churns the heap with garbage bursts and gc() calls while replacing half of
 * the secrets each round (like rotations), checks their bytes, drops them and
 * collects. It must exit 0.
 */
export async function probeSecretAllocGc(buffers = 2000, rounds = 6): Promise<SecretAllocGcProbe> {
  const addon = join(REPO_ROOT, 'dist/src/native/addon.js');
  const script = `
    import { readFileSync } from 'node:fs';
    const { loadNative, secretAllocator } = await import(${JSON.stringify(addon)});
    const vmLck = () => Number(/^VmLck:\\s+(\\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN);
    const tick = () => new Promise((r) => setImmediate(r));
    const s = secretAllocator(loadNative(), true);
    console.log('allocator ' + JSON.stringify({ locked: s.locked, lockError: s.lockError ?? null }));
    const start = vmLck();
    const fresh = (i) => { const b = s.allocate(1024); b.fill(i & 0xff); return b; };
    let secrets = [];
    for (let i = 0; i < ${buffers}; i++) secrets.push(fresh(i));
    const held = vmLck();
    let gcs = 0;
    for (let round = 0; round < ${rounds}; round++) {
      let junk = [];
      for (let i = 0; i < 200; i++) junk.push(new Array(100000).fill(i));
      junk = null;
      globalThis.gc(); gcs++;
      for (let i = round % 2; i < secrets.length; i += 2) secrets[i] = fresh(i);
      await tick();
    }
    const intact = secrets.every((b, i) => b.length === 1024 && b.every((x) => x === (i & 0xff)));
    secrets = null;
    for (let i = 0; i < 3; i++) { globalThis.gc(); gcs++; await tick(); }
    console.log('done ' + JSON.stringify({ intact, gcs, start, held, afterRelease: vmLck() }));`;
  const r = await runCaptured(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { timeoutMs: 60_000 });
  const text = r.stdout + r.stderr;
  const alloc = /^allocator (\{.*\})$/m.exec(r.stdout);
  const done = /^done (\{.*\})$/m.exec(r.stdout);
  const a = alloc ? JSON.parse(alloc[1]!) as { locked: boolean; lockError: string | null } : null;
  const d = done ? JSON.parse(done[1]!) as { intact: boolean; gcs: number; start: number; held: number; afterRelease: number } : null;
  return {
    survived: r.code === 0 && d !== null,
    how: r.timedOut ? 'timed out (killed)' : r.signal ? `signal ${r.signal}` : `exit code ${r.code}`,
    locked: a?.locked ?? null, lockError: a?.lockError ?? null,
    buffers, gcCalls: d?.gcs ?? 0, contentIntact: d?.intact ?? null,
    vmLckKiB: d ? { start: d.start, held: d.held, afterRelease: d.afterRelease } : null,
    error: r.code === 0 ? '' : (/Check failed: [^\n]*/.exec(text)?.[0] ?? text.trim().split('\n').slice(-3).join(' | ')),
  };
}

// ---------------------------------------------------------------------------
// Children with captured output, thread states, mounts outside the temp dir

export interface CapturedRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Killed (SIGKILL) because `timeoutMs` passed. */
  readonly timedOut: boolean;
  readonly pid: number;
}

/**
 * Runs a command to completion and never rejects on its exit status. At
 * `timeoutMs` it calls `beforeKill(pid)` (to look at the stuck process) and
 * then SIGKILLs it. `onSpawn` receives the child, so a signal handler can
 * kill it.
 */
export function runCaptured(cmd: string, args: readonly string[], opts: {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  beforeKill?: (pid: number) => Promise<void>;
  onSpawn?: (c: ChildProcess) => void;
}): Promise<CapturedRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    opts.onSpawn?.(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      const pid = child.pid ?? -1;
      void (opts.beforeKill ? opts.beforeKill(pid).catch(() => undefined) : Promise.resolve()).finally(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
    }, opts.timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`${cmd}: ${e.message}`)); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({
        code, signal, timedOut, pid: child.pid ?? -1,
        stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

/** Name and kernel wait channel of every thread of `pid` (/proc/<pid>/task/<tid>/{comm,wchan}). */
export async function threadStates(pid: number): Promise<Array<{ comm: string; wchan: string }>> {
  const out: Array<{ comm: string; wchan: string }> = [];
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const comm = (await readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8').catch(() => '?')).trim();
    const wchan = (await readFile(`/proc/${pid}/task/${tid}/wchan`, 'utf8').catch(() => '?')).trim();
    out.push({ comm, wchan });
  }
  return out;
}

/** Mount points (deepest first) that `match` accepts. */
export async function mountsWhere(match: (mountPoint: string) => boolean): Promise<string[]> {
  const table = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  return table.map((m) => m.mountPoint).filter(match).sort((a, b) => b.length - a.length);
}

/** `dir` itself or anything below it. */
export const atOrUnder = (dir: string) => (p: string): boolean => p === dir || p.startsWith(`${dir}/`);

/** Lazily unmounts every mount `match` accepts (deepest first, a few passes); returns what it unmounted. */
export async function umountAllWhere(match: (mountPoint: string) => boolean, errors: string[] = []): Promise<string[]> {
  const done: string[] = [];
  for (let pass = 0; pass < 3; pass++) {
    const now = await mountsWhere(match);
    if (now.length === 0) break;
    for (const m of now) {
      await run('umount', ['-l', m], { timeoutMs: 10_000 }).then(() => done.push(m), (e: unknown) => errors.push((e as Error).message));
    }
  }
  const still = await mountsWhere(match);
  if (still.length > 0) errors.push(`still mounted: ${still.join(' ')}`);
  return done;
}

/** The directory bench/mount-strategy.ts creates its mounts in is mkdtemp(`${MOUNT_STRATEGY_PREFIX}XXXXXX`). */
export const MOUNT_STRATEGY_PREFIX = '/tmp/ssbench-mounts-';

/** /tmp/ssbench-mounts-* directories that exist now. */
export async function mountStrategyDirs(): Promise<string[]> {
  const base = dirname(MOUNT_STRATEGY_PREFIX);
  const name = MOUNT_STRATEGY_PREFIX.slice(base.length + 1);
  return (await readdir(base).catch(() => [] as string[])).filter((n) => n.startsWith(name)).map((n) => join(base, n));
}

/**
 * Unmounts everything at or under each of `dirs` and removes them (only when
 * nothing is left mounted there). Returns the mounts it had to undo.
 */
export async function removeMountStrategyDirs(dirs: readonly string[], errors: string[] = []): Promise<string[]> {
  const undone: string[] = [];
  for (const d of dirs) {
    undone.push(...await umountAllWhere(atOrUnder(d), errors));
    if ((await mountsWhere(atOrUnder(d))).length > 0) {
      errors.push(`${d}: still mounted, kept`);
      continue;
    }
    await rm(d, { recursive: true, force: true }).catch((e: unknown) => errors.push(`rm ${d}: ${(e as Error).message}`));
  }
  return undone;
}
