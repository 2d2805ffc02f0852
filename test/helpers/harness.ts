// Test harness: the real driver and the real example provider as child
// processes (compiled from dist/, so `npm run build` runs first), talking gRPC
// over unix sockets, with real FUSE mounts. Every mount a test makes under its
// directory is removed in teardown, even when the test failed or a process
// was killed.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rename, writeFile, rm } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, type ServiceError } from '@grpc/grpc-js';
import { IdentityClient, NodeClient, type NodePublishVolumeRequest, VolumeCapability_AccessMode_Mode } from '../../src/gen/csi/v1/csi.js';
import { kubeletTarget, nodePublishRequest, unary } from '../../testkit/csi.js';
import { atOrUnder, deepestFirst, mountPointsIn, umountAllWhere } from '../../testkit/mounts.js';
import { Proc as ChildProc } from '../../testkit/proc.js';
import { execFileP } from '../../testkit/run.js';

export { canary } from '../../testkit/canary.js';
export { freePort } from '../../testkit/net.js';
export { execFileP };
export { sleep, waitUntil } from '../../testkit/wait.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const NODE = process.execPath;
const DRIVER_BIN = join(ROOT, 'dist/src/bin/driver.js');
const PROVIDER_BIN = join(ROOT, 'dist/src/bin/example-provider.js');
const KEEPER_BIN = join(ROOT, 'dist/src/bin/keeper.js');

export interface Tap {
  teardown(fn: () => unknown): void;
}

// When a test file is cut short (tap's timeout), teardowns may not run: the
// last resort at exit kills every child still alive and lazily unmounts what
// the file mounted, so a hung file never leaves processes or mounts behind.
const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
process.once('exit', () => {
  for (const c of liveChildren) c.kill('SIGKILL');
  if (liveDirs.size === 0) return;
  for (const p of deepestFirst([...new Set(mountPointsUnder(readFileSync('/proc/self/mountinfo', 'utf8'), liveDirs))])) {
    try {
      execFileSync('umount', ['-l', p], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
});

/** Registers a child process to be killed if the test file exits while it runs. */
export function track(child: ChildProcess): ChildProcess {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  return child;
}

/** Mount points (one per mount table entry, stacked ones repeated) at or below any of `dirs`. */
function mountPointsUnder(mountinfo: string, dirs: Iterable<string>): string[] {
  const within = [...dirs].map(atOrUnder);
  return mountPointsIn(mountinfo, (p) => within.some((f) => f(p)));
}

/** Lazily unmounts everything mounted at or below `dir`, deepest first; returns what it unmounted. */
export function cleanupMounts(dir: string): Promise<string[]> {
  return umountAllWhere(atOrUnder(dir));
}

export async function mountsUnder(dir: string): Promise<string[]> {
  return mountPointsUnder(await readFile('/proc/self/mountinfo', 'utf8'), [dir]);
}

/**
 * A container's view of a volume: a bind mount of `target` at `at` with its
 * own propagation (private: sees nothing mounted later; rslave: sees mounts
 * made at the target afterwards, as with mountPropagation HostToContainer).
 */
export async function containerView(target: string, at: string, propagation: 'private' | 'rslave'): Promise<string> {
  await mkdir(at, { recursive: true });
  await execFileP('mount', ['--bind', target, at]);
  await execFileP('mount', [`--make-${propagation}`, at]);
  return at;
}

export async function tempDir(t: Tap, prefix = 'sscsi-'): Promise<string> {
  if (!existsSync(DRIVER_BIN)) throw new Error('dist/ is missing: run `npm run build` before the tests');
  const dir = await mkdtemp(join('/tmp', prefix));
  await chmod(dir, 0o755); // other users (the permission tests) must be able to walk to the mounts
  liveDirs.add(dir);
  t.teardown(async () => {
    await cleanupMounts(dir);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    liveDirs.delete(dir);
  });
  return dir;
}

/** A child process whose output is kept (testkit/proc.ts), killed if the test file exits while it runs. */
export class Proc extends ChildProc {
  constructor(child: ChildProcess) {
    super(track(child));
  }
}

/** The example provider listening on `socket` (a process of this checkout's, or `bin`), once it says so. */
export async function startProviderAt(socket: string, bin = PROVIDER_BIN): Promise<Proc> {
  const p = new Proc(spawn(NODE, [bin, '--endpoint', `unix://${socket}`], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await p.waitFor(/"listening"/);
  return p;
}

/** A keeper listening on `socket`, once it says so. */
export async function startKeeperAt(socket: string, bin = KEEPER_BIN): Promise<Proc> {
  const k = new Proc(spawn(NODE, [bin, '--socket', socket], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await k.waitFor(/keeper listening/);
  return k;
}

export interface ProviderFileSpec {
  path: string;
  contents?: string;
  contentsBase64?: string;
  mode?: number;
  /** With writeFiles: the provider ftruncates the file to this size after writing it. */
  truncateTo?: number;
}

export interface SourceSpec {
  files?: ProviderFileSpec[];
  errorCode?: string;
  grpcError?: { code: number; message: string };
  delayMs?: number;
  pauseBeforeRenameMs?: number;
  objectVersions?: Array<{ id: string; version: string }>;
}

export interface HarnessOptions {
  driverArgs?: string[];
  /** Start the example provider as `<name>.sock` (default: example). */
  providerName?: string;
  startProvider?: boolean;
  /** Run against a Kubernetes API server with this kubeconfig instead of an SPC directory. */
  kubeconfig?: string;
  nodeId?: string;
  /** Start a keeper (restart survival) and point the driver at it. */
  keeper?: boolean;
  /** Where the driver, provider and keeper are run from (default: this checkout); an image's /app, say. */
  appRoot?: string;
}

/** A driver + example provider pair in a temp dir. */
export class Harness {
  driver!: Proc;
  provider: Proc | null = null;
  keeper: Proc | null = null;
  node!: NodeClient;
  identity!: IdentityClient;
  readonly providerDir: string;
  readonly spcDir: string;
  /** The provider's source lives on tmpfs (/dev/shm): it is the store, not something the driver wrote. */
  readonly sourceDir: string;
  private sourceWrites = 0;
  readonly sock: string;

  private constructor(
    readonly dir: string,
    private readonly opts: HarnessOptions,
  ) {
    this.providerDir = join(dir, 'providers');
    this.spcDir = join(dir, 'spc');
    this.sourceDir = join('/dev/shm', `sscsi-src-${dir.split('/').pop()}`);
    this.sock = join(dir, 'csi.sock');
  }

  static async start(t: Tap, opts: HarnessOptions = {}): Promise<Harness> {
    const h = new Harness(await tempDir(t), opts);
    t.teardown(() => h.stop());
    await mkdir(h.providerDir, { recursive: true });
    await mkdir(h.spcDir, { recursive: true });
    await mkdir(h.sourceDir, { recursive: true });
    if (opts.startProvider !== false) await h.startProvider();
    if (opts.keeper) await h.startKeeper();
    await h.startDriver();
    return h;
  }

  /** A bin of this checkout, or the same file under appRoot. */
  private bin(path: string): string {
    return this.opts.appRoot ? join(this.opts.appRoot, path.slice(ROOT.length + 1)) : path;
  }

  get providerName(): string {
    return this.opts.providerName ?? 'example';
  }

  async startProvider(): Promise<void> {
    this.provider = await startProviderAt(join(this.providerDir, `${this.providerName}.sock`), this.bin(PROVIDER_BIN));
  }

  get keeperSocket(): string {
    return join(this.dir, 'keeper.sock');
  }

  async startKeeper(): Promise<void> {
    this.keeper = await startKeeperAt(this.keeperSocket, this.bin(KEEPER_BIN));
  }

  /** Starts a driver process (another one, after a crash or for a handover); waits until it serves CSI. */
  async startDriver(): Promise<void> {
    this.node?.close();
    this.identity?.close();
    const args = [
      this.bin(DRIVER_BIN),
      `--endpoint=unix://${this.sock}`,
      `--nodeid=${this.opts.nodeId ?? 'test-node'}`,
      `--provider-volume=${this.providerDir}`,
      '--additional-provider-volume-paths=',
      `--fuse-mount-dir=${join(this.dir, 'fuse')}`,
      // The tests' kubelet layout is under the test's own directory: the check stays on.
      `--kubelet-root-dir=${this.dir}`,
      this.opts.kubeconfig ? `--kubeconfig=${this.opts.kubeconfig}` : `--secret-provider-class-dir=${this.spcDir}`,
      '--metrics-addr=',
      '--log-level=debug',
      ...(this.keeper ? [`--keeper-socket=${this.keeperSocket}`] : []),
      ...(this.opts.driverArgs ?? []),
    ];
    this.driver = new Proc(spawn(NODE, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    // Generous: a slow start on a loaded machine is not what these tests test (restart-survival measures it).
    await this.driver.waitFor(/"msg":"listening"/, 30_000);
    this.node = new NodeClient(`unix:${this.sock}`, credentials.createInsecure());
    this.identity = new IdentityClient(`unix:${this.sock}`, credentials.createInsecure());
  }

  async stop(): Promise<void> {
    this.node?.close();
    this.identity?.close();
    await this.driver?.stop();
    await this.keeper?.stop();
    await this.provider?.stop();
    await rm(this.sourceDir, { recursive: true, force: true });
  }

  /** Writes an SPC manifest for the example provider reading `source` (a file in sourceDir). */
  async spc(
    name: string,
    source: string,
    extra: Record<string, string> = {},
    namespace = 'default',
    provider = this.providerName,
  ): Promise<void> {
    const params = { secretsFile: join(this.sourceDir, source), ...extra };
    const yaml = [
      'apiVersion: secrets-store.csi.x-k8s.io/v1',
      'kind: SecretProviderClass',
      `metadata: {name: ${name}, namespace: ${namespace}}`,
      'spec:',
      `  provider: ${JSON.stringify(provider)}`,
      '  parameters:',
      ...Object.entries(params).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`),
    ].join('\n');
    await writeFile(join(this.spcDir, `${namespace}-${name}.yaml`), `${yaml}\n`);
  }

  /** Replaced atomically: a poll racing the write must see the old or the new source, never an empty file. */
  async source(name: string, spec: SourceSpec): Promise<void> {
    const tmp = join(this.sourceDir, `.${name}.${process.pid}.${++this.sourceWrites}`);
    await writeFile(tmp, JSON.stringify(spec));
    await rename(tmp, join(this.sourceDir, name));
  }

  target(name: string): string {
    return kubeletTarget(this.dir, `uid-${name}`, name);
  }

  publishRequest(target: string, spcName: string, extra: Partial<NodePublishVolumeRequest> = {}): NodePublishVolumeRequest {
    return {
      ...nodePublishRequest({
        volumeId: `csi-${target.length}-${spcName}`,
        targetPath: target,
        spc: spcName,
        pod: { name: 'pod-a', namespace: 'default', uid: 'uid-1' },
        accessMode: VolumeCapability_AccessMode_Mode.SINGLE_NODE_READER_ONLY,
      }),
      ...extra,
    };
  }

  /** Like kubelet: the volume's directory exists (0755), the `mount` dir inside it is the driver's to create. */
  async publish(req: NodePublishVolumeRequest, timeoutMs = 30_000): Promise<void> {
    if (req.targetPath.startsWith('/')) await mkdir(dirname(req.targetPath), { recursive: true, mode: 0o755 });
    await unary(this.node.nodePublishVolume.bind(this.node), req, timeoutMs);
  }

  unpublish(targetPath: string, volumeId = 'vol'): Promise<void> {
    return new Promise((res, rej) => this.node.nodeUnpublishVolume({ volumeId, targetPath }, (e) => (e ? rej(e) : res())));
  }

  /** Count of Mount calls the provider has answered (it logs one line per call). */
  providerMounts(): number {
    return (this.provider?.out.match(/"msg":"mount"/g) ?? []).length;
  }
}

export function grpcCode(e: unknown): number | undefined {
  return (e as ServiceError | null)?.code;
}

/** The driver's log lines at warn level or above (pino: 40 warn, 50 error, 60 fatal). */
export function warningLines(out: string): string[] {
  return out.split('\n').filter((l) => /"level":(40|50|60)/.test(l));
}

/** Files on disk (not other filesystems, so never our FUSE mounts) below `dir` containing `needle`. */
export async function grepDisk(dir: string, needle: string): Promise<string[]> {
  const { stdout } = await execFileP(
    'sh',
    ['-c', 'find "$1" -xdev -type f -print0 2>/dev/null | xargs -0 -r grep -l -F -e "$2" 2>/dev/null || true', 'sh', dir, needle],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout.split('\n').filter(Boolean);
}
