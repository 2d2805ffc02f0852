// The real-kubelet suite's node (testkit/node/cluster.ts) with our driver
// installed on it as a DaemonSet would run it, but as host processes: the
// deploy/ objects applied, the example provider, the keeper and the driver,
// which registers itself with kubelet through its built-in registrar.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  StorageV1Api,
  type KubeConfig,
  type KubernetesObject,
  type V1Pod,
} from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { atOrUnder, umountAllWhere } from '../../testkit/mounts.js';
import { BUSYBOX_IMAGE, Cluster } from '../../testkit/node/cluster.js';
import { NODE, Proc, ROOT, execFileP, startKeeperAt, startProviderAt, track } from './harness.js';
import { apply, applyCrds, eventually, manifests, serviceAccountKubeconfig } from './kube.js';
import { checkPeer } from './peers.js';
import type { RequireVar } from './skip.js';

export const DRIVER_NAME = 'secrets-store.csi.k8s.io';
export const GROUP = 'secrets-store.csi.x-k8s.io';
/** The audience the CSIDriver asks kubelet to mint tokens for. */
export const AUDIENCE = 'sscsi-e2e.example';
const KUBELET_BUILD = 'test/peers/kubelet/build.sh';

/** A namespace, once its default ServiceAccount exists (a pod created before it is refused). */
export async function ensureNamespace(kc: KubeConfig, name: string): Promise<void> {
  await apply(kc, [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }]);
  await eventually(
    () => kc.makeApiClient(CoreV1Api).readNamespacedServiceAccount({ namespace: name, name: 'default' }),
    30_000,
    `the default service account of ${name}`,
  );
}

/** A SecretProviderClass `name` for the example provider reading `secretsFile`. */
export async function exampleSpc(kc: KubeConfig, namespace: string, name: string, secretsFile: string, extra: object = {}): Promise<void> {
  await apply(kc, [
    {
      apiVersion: `${GROUP}/v1`,
      kind: 'SecretProviderClass',
      metadata: { name, namespace },
      spec: { provider: 'example', parameters: { secretsFile }, ...extra },
    } as KubernetesObject,
  ]);
}

/** A Deployment of one pod labelled app=`name`, running `spec`. */
export function deployment(namespace: string, name: string, spec: object): KubernetesObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: { replicas: 1, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec } },
  } as KubernetesObject;
}

/**
 * A pod spec of busybox containers running `containers`' commands, each
 * with the inline secrets-store volume of SecretProviderClass `spc` at
 * /mnt/secrets (host network, no API token, 1 s to stop).
 */
export function secretsPodSpec(spc: string, containers: ReadonlyArray<{ name: string; command: string[] }>): object {
  return {
    hostNetwork: true,
    serviceAccountName: 'default',
    automountServiceAccountToken: false,
    terminationGracePeriodSeconds: 1,
    containers: containers.map((c) => ({
      ...c,
      image: BUSYBOX_IMAGE,
      imagePullPolicy: 'Never',
      volumeMounts: [{ name: 'secrets', mountPath: '/mnt/secrets', readOnly: true }],
    })),
    volumes: [{ name: 'secrets', csi: { driver: DRIVER_NAME, readOnly: true, volumeAttributes: { secretProviderClass: spc } } }],
  };
}

/**
 * Why this machine cannot run the suite ('' when it can), and the variable
 * that would require it: the kubelet build (SSCSI_REQUIRE_KUBELET) or the
 * machine's packages, cgroups and overlayfs (SSCSI_REQUIRE_CONTAINERS).
 */
export async function whyNoNode(): Promise<{ why: string; v: RequireVar; kubeletBin: string }> {
  const peer = await checkPeer(KUBELET_BUILD, 'kubelet and kube-scheduler (Go 1.26+, the Go module proxy)');
  if (!peer.built) return { why: peer.why, v: 'SSCSI_REQUIRE_KUBELET', kubeletBin: '' };
  const kubeletBin = peer.stdout.trim().split('\n').pop()!;
  const no = (why: string) => ({ why, v: 'SSCSI_REQUIRE_CONTAINERS' as const, kubeletBin });
  for (const tool of ['containerd', 'containerd-shim-runc-v2', 'runc', 'ctr', 'cc'])
    if ((await execFileP('sh', ['-c', `command -v ${tool}`]).catch(() => null)) === null)
      return no(`${tool} is not installed (Debian: containerd, runc; .ci/run installs them)`);
  const file = await execFileP('file', ['-L', '/bin/busybox']).catch(() => ({ stdout: '' }));
  if (!file.stdout.includes('statically linked')) return no("Debian's busybox-static is not installed (/bin/busybox)");
  if (!existsSync('/usr/lib/cni/bridge')) return no("Debian's containernetworking-plugins is not installed (/usr/lib/cni)");
  if (!existsSync('/sys/fs/cgroup/memory') && !existsSync('/sys/fs/cgroup/cgroup.controllers'))
    return no('no cgroup hierarchy is mounted: this machine cannot run containers');
  if (!/\boverlay\b/.test(await readFile('/proc/filesystems', 'utf8')))
    return no('the kernel has no overlayfs: containerd cannot unpack images here');
  return { why: '', v: 'SSCSI_REQUIRE_CONTAINERS', kubeletBin };
}

export interface Tap {
  teardown(fn: () => unknown): void;
}

/** A one-node cluster with our driver on it. */
export class E2ENode {
  readonly cluster: Cluster;
  readonly providerDir: string;
  readonly sourceDir: string;
  provider!: Proc;
  keeper!: Proc;
  driver!: Proc;
  /** Every driver process's output, the dead ones' too. */
  private readonly driverLogs: string[] = [];
  private driverKubeconfig = '';
  private constructor(
    readonly dir: string,
    kubeletBin: string,
  ) {
    this.cluster = new Cluster({
      root: ROOT,
      dir: join(dir, 'node'),
      controlPlaneDir: join('/dev/shm', `sscsi-e2e-cp-${dir.split('/').pop()}`),
      kubeletBin,
      busybox: '/bin/busybox',
      cniBinDir: '/usr/lib/cni',
      track,
    });
    this.providerDir = join(dir, 'providers');
    // The provider's store is on tmpfs: it is the secret's source, not a copy the driver made.
    this.sourceDir = join('/dev/shm', `sscsi-e2e-src-${dir.split('/').pop()}`);
  }

  static async start(t: Tap, kubeletBin: string, o: { pollSeconds: number }): Promise<E2ENode> {
    const dir = await mkdtemp('/tmp/sscsi-e2e-');
    const n = new E2ENode(dir, kubeletBin);
    t.teardown(() => n.stop());
    await mkdir(n.providerDir, { recursive: true });
    await mkdir(n.sourceDir, { recursive: true, mode: 0o700 });
    await n.cluster.start();
    await n.install();
    await n.startProvider();
    await n.startKeeper();
    await n.startDriver(o.pollSeconds);
    return n;
  }

  get kc() {
    return this.cluster.kc;
  }

  get kubeletRoot(): string {
    return this.cluster.kubelet.rootDir;
  }

  get csiSocket(): string {
    return join(this.kubeletRoot, 'plugins', 'csi-secrets-store', 'csi.sock');
  }

  get keeperSocket(): string {
    return join(this.dir, 'keeper.sock');
  }

  /** deploy/'s CRDs, RBAC and CSIDriver (with a token audience), as a user installs them; the DaemonSet is ours to play. */
  private async install(): Promise<void> {
    const all = await manifests(join(ROOT, 'deploy'));
    await applyCrds(this.kc, all);
    const rest = all
      .filter((o) => !['CustomResourceDefinition', 'DaemonSet'].includes(o.kind!))
      .map((o) =>
        o.kind === 'CSIDriver' ? { ...o, spec: { ...(o as { spec: object }).spec, tokenRequests: [{ audience: AUDIENCE }] } } : o,
      );
    await apply(this.kc, rest as KubernetesObject[]);
    await eventually(
      () => this.kc.makeApiClient(CoreV1Api).readNamespacedServiceAccount({ namespace: 'kube-system', name: 'secrets-store-csi-driver' }),
      30_000,
      "the driver's service account",
    );
    this.driverKubeconfig = await serviceAccountKubeconfig(
      this.cluster.cp,
      this.kc,
      'kube-system',
      'secrets-store-csi-driver',
      join(this.cluster.cp.dir, 'driver.kubeconfig'),
    );
  }

  async startProvider(): Promise<void> {
    this.provider = await startProviderAt(join(this.providerDir, 'example.sock'));
  }

  async startKeeper(): Promise<void> {
    this.keeper = await startKeeperAt(this.keeperSocket);
  }

  async startDriver(pollSeconds: number): Promise<void> {
    if (this.driver) this.driverLogs.push(this.driver.out);
    this.driver = new Proc(
      spawn(
        NODE,
        [
          join(ROOT, 'dist/src/bin/driver.js'),
          `--endpoint=unix://${this.csiSocket}`,
          `--kubelet-registration-path=${this.csiSocket}`,
          `--plugin-registration-path=${join(this.kubeletRoot, 'plugins_registry')}`,
          `--nodeid=${this.cluster.nodeName}`,
          `--provider-volume=${this.providerDir}`,
          '--additional-provider-volume-paths=',
          `--kubeconfig=${this.driverKubeconfig}`,
          `--kubelet-root-dir=${this.kubeletRoot}`,
          `--fuse-mount-dir=${join(this.dir, 'fuse')}`,
          `--keeper-socket=${this.keeperSocket}`,
          '--enable-secret-rotation=true',
          `--rotation-poll-interval=${pollSeconds}s`,
          '--metrics-addr=',
          '--log-level=debug',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    await this.driver.waitFor(/"msg":"listening"/, 30_000);
  }

  /** Every log line the driver processes wrote so far. */
  get driverLog(): string {
    return this.driverLogs.join('') + (this.driver?.out ?? '');
  }

  /** Writes the provider's store for `name` (used as the SPC's secretsFile). */
  async writeSource(name: string, files: Array<{ path: string; contents: string; mode?: number }>): Promise<string> {
    const file = join(this.sourceDir, `${name}.yaml`);
    await writeFile(`${file}.tmp`, stringify({ files }), { mode: 0o600 });
    await execFileP('mv', [`${file}.tmp`, file]);
    return file;
  }

  secretProviderClass(namespace: string, name: string, secretsFile: string, extra: object = {}): Promise<void> {
    return exampleSpc(this.kc, namespace, name, secretsFile, extra);
  }

  namespace(name: string): Promise<void> {
    return ensureNamespace(this.kc, name);
  }

  core(): CoreV1Api {
    return this.kc.makeApiClient(CoreV1Api);
  }
  apps(): AppsV1Api {
    return this.kc.makeApiClient(AppsV1Api);
  }
  custom(): CustomObjectsApi {
    return this.kc.makeApiClient(CustomObjectsApi);
  }
  storage(): StorageV1Api {
    return this.kc.makeApiClient(StorageV1Api);
  }

  async pods(namespace: string, selector: string): Promise<V1Pod[]> {
    return (await this.core().listNamespacedPod({ namespace, labelSelector: selector })).items;
  }

  /** What a container wrote to stdout/stderr, from the files kubelet writes (CRI format: time, stream, tag, text). */
  async containerLog(pod: V1Pod, container: string): Promise<Array<{ stream: string; text: string }>> {
    const dir = join(this.cluster.kubelet.podLogsDir, `${pod.metadata!.namespace}_${pod.metadata!.name}_${pod.metadata!.uid}`, container);
    const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => /^\d+\.log/.test(f)).sort();
    const out: Array<{ stream: string; text: string }> = [];
    for (const f of files)
      for (const line of (await readFile(join(dir, f), 'utf8').catch(() => '')).split('\n')) {
        const m = /^\S+ (stdout|stderr) [FP] (.*)$/.exec(line);
        if (m) out.push({ stream: m[1]!, text: m[2]! });
      }
    return out;
  }

  async stop(): Promise<void> {
    // Pods first (kubelet unpublishes through the driver), then the driver
    // (its registrar would re-create its socket in a directory being removed), then the node.
    const errors = await this.cluster.deletePods();
    await this.driver?.stop();
    await this.keeper?.stop();
    await this.provider?.stop();
    errors.push(...(await this.cluster.stop()));
    await rm(this.sourceDir, { recursive: true, force: true });
    await umountAllWhere(atOrUnder(this.dir), errors);
    await rm(this.dir, { recursive: true, force: true });
    if (errors.length > 0) throw new Error(`the node did not stop cleanly: ${errors.join('; ')}`);
  }
}
