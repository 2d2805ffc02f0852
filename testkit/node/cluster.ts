// A one-node cluster, all real, on this machine: the test control plane
// (etcd, kube-apiserver, kube-controller-manager with the controllers
// Deployments need), kube-scheduler, containerd + runc, and kubelet, with a
// pause and a busybox image built here and imported (no registry). Every
// directory is under `dir`; stop() leaves no process, mount, cgroup or file.
// docs/kubelet-e2e.md walks through the same steps by hand.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readlink, rm, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { startControlPlane, stopControlPlaneAt, type ControlPlane } from '../control-plane.js';
import { adminConfig } from '../kube.js';
import { atOrUnder, umountAllWhere } from '../mounts.js';
import { Proc } from '../proc.js';
import { execFileP as run } from '../run.js';
import { waitUntil } from '../wait.js';
import { Containerd } from './containerd.js';
import { Kubelet } from './kubelet.js';
import { buildImageArchive, busyboxFiles } from './oci-image.js';

export const BUSYBOX_IMAGE = 'sscsi.local/busybox:1';
const LOG_LINKS = '/var/log/containers';

export interface NodeBinaries {
  /** Directory holding kubelet and kube-scheduler (test/peers/kubelet/build.sh). */
  readonly kubeletBin: string;
  /** Debian's static busybox. */
  readonly busybox: string;
  readonly cniBinDir: string;
}

export interface ClusterOptions extends NodeBinaries {
  /** The repository (for the control plane's build script and the C sources of the images). */
  readonly root: string;
  /** On disk, as kubelet's directories are on a real node. */
  readonly dir: string;
  /** The control plane's directory (tmpfs: synced Secrets never touch a disk). */
  readonly controlPlaneDir: string;
  readonly nodeName?: string;
  /** The API server's ServiceAccount admission (pods get their token volume): for the chart's pods. */
  readonly serviceAccountAdmission?: boolean;
  readonly track?: (c: ChildProcess) => void;
}

const CONTROLLERS = [
  'garbagecollector',
  'serviceaccount',
  'serviceaccount-token',
  'namespace',
  'deployment',
  'replicaset',
  'daemonset',
  'root-ca-cert-publisher',
  'podgc',
  'nodelifecycle',
];

export class Cluster {
  readonly nodeName: string;
  cp!: ControlPlane;
  kc!: KubeConfig;
  readonly containerd: Containerd;
  readonly kubelet: Kubelet;
  private scheduler: Proc | null = null;
  /** kubelet creates /var/log/containers for its links; removed at the end only if it was not there before. */
  private readonly hadLogLinkDir = existsSync(LOG_LINKS);

  constructor(private readonly o: ClusterOptions) {
    this.nodeName = o.nodeName ?? `sscsi-e2e-${process.pid}`;
    this.containerd = new Containerd({
      dir: join(o.dir, 'containerd'),
      cniConfDir: join(o.dir, 'cni'),
      cniBinDir: o.cniBinDir,
      ...(o.track ? { track: o.track } : {}),
    });
    this.kubelet = new Kubelet({
      bin: join(o.kubeletBin, 'kubelet'),
      dir: join(o.dir, 'kubelet'),
      nodeName: this.nodeName,
      kubeconfig: join(o.controlPlaneDir, 'admin.kubeconfig'),
      runtimeSocket: this.containerd.socket,
      ...(o.track ? { track: o.track } : {}),
    });
  }

  /** Starts everything and waits for the node to be Ready. */
  async start(): Promise<void> {
    const o = this.o;
    this.cp = await startControlPlane(o.root, o.controlPlaneDir, {
      controllers: CONTROLLERS,
      serviceAccountAdmission: o.serviceAccountAdmission ?? false,
    });
    this.kc = adminConfig(this.cp);
    const sched = spawn(
      join(o.kubeletBin, 'kube-scheduler'),
      [
        `--kubeconfig=${this.cp.adminKubeconfig}`,
        `--authentication-kubeconfig=${this.cp.adminKubeconfig}`,
        `--authorization-kubeconfig=${this.cp.adminKubeconfig}`,
        '--leader-elect=false',
        '--secure-port=0',
        '--v=0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    o.track?.(sched);
    this.scheduler = new Proc(sched, 'kube-scheduler');
    // Pods here use the host's network; a CNI config only has to exist for
    // containerd to report the network ready (and so the node Ready).
    await mkdir(join(o.dir, 'cni'), { recursive: true });
    await writeFile(
      join(o.dir, 'cni', '10-sscsi-e2e.conflist'),
      JSON.stringify({
        cniVersion: '0.4.0',
        name: 'sscsi-e2e',
        plugins: [{ type: 'bridge', bridge: 'sscsi-e2e0', ipam: { type: 'host-local', ranges: [[{ subnet: '10.233.0.0/24' }]] } }],
      }),
    );
    await this.containerd.start();
    await this.importImages();
    await this.kubelet.start();
    await this.waitNodeReady(90_000);
  }

  private async importImages(): Promise<void> {
    const d = join(this.o.dir, 'images');
    await mkdir(d, { recursive: true });
    const cc = async (src: string, out: string): Promise<string> => {
      await run('cc', ['-static', '-Os', '-Wall', '-o', join(d, out), join(this.o.root, 'test/kubelet-e2e', src)]);
      return join(d, out);
    };
    const pause = await cc('pause.c', 'pause');
    const watch = await cc('inotify-watch.c', 'inotify-watch');
    await buildImageArchive(
      { ref: 'sscsi.local/pause:1', files: [{ path: '/pause', from: pause }], entrypoint: ['/pause'] },
      join(d, 'pause.tar'),
    );
    await buildImageArchive(
      {
        ref: BUSYBOX_IMAGE,
        files: [...(await busyboxFiles(this.o.busybox)), { path: '/bin/inotify-watch', from: watch }],
        cmd: ['sh'],
      },
      join(d, 'busybox.tar'),
    );
    await this.containerd.importImage(join(d, 'pause.tar'));
    await this.containerd.importImage(join(d, 'busybox.tar'));
  }

  async nodeReady(): Promise<boolean> {
    const core = this.kc.makeApiClient(CoreV1Api);
    const n = await core.readNode({ name: this.nodeName }).catch(() => null);
    return n?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  }

  async waitNodeReady(ms: number): Promise<void> {
    try {
      await waitUntil(() => this.nodeReady(), ms, `node ${this.nodeName} to be Ready`, 500);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${this.kubelet.log.slice(-4000)}`, { cause: e });
    }
  }

  /** Restarts kubelet (SIGTERM, then a new process with the same directories), as an upgrade or a crash loop would. */
  async restartKubelet(): Promise<void> {
    await this.kubelet.stop();
    await this.kubelet.start();
  }

  /** Deletes every pod on the node (kubelet stops them and unmounts their volumes) and waits until they are gone. */
  async deletePods(errors: string[] = []): Promise<string[]> {
    if (!this.kubelet.running || !this.kc) return errors;
    const core = this.kc.makeApiClient(CoreV1Api);
    const onNode = { fieldSelector: `spec.nodeName=${this.nodeName}` };
    try {
      for (const p of (await core.listPodForAllNamespaces(onNode)).items)
        await core
          .deleteNamespacedPod({ name: p.metadata!.name!, namespace: p.metadata!.namespace!, gracePeriodSeconds: 0 })
          .catch(() => undefined);
      await waitUntil(async () => (await core.listPodForAllNamespaces(onNode)).items.length === 0, 30_000, 'pods to be gone', 500);
    } catch (e) {
      errors.push(`pods: ${(e as Error).message}`);
    }
    return errors;
  }

  /**
   * Stops everything, in the order a node is drained: pods, kubelet,
   * containers, containerd, scheduler, control plane; then mounts, cgroups,
   * kubelet's log links and the directory. Returns what could not be cleaned.
   * Stop the CSI driver between deletePods() and this.
   */
  async stop(): Promise<string[]> {
    const errors = await this.deletePods();
    await this.kubelet.stop();
    await this.containerd.stop(errors);
    await this.scheduler?.stop();
    if (this.cp) await stopControlPlaneAt(this.cp);
    await umountAllWhere(atOrUnder(this.o.dir), errors);
    await this.kubelet.removeCgroups(errors);
    // kubelet links each container's log into /var/log/containers; only links into our directory go.
    for (const name of await readdir(LOG_LINKS).catch(() => [] as string[])) {
      const at = join(LOG_LINKS, name);
      const to = await readlink(at).catch(() => '');
      if (to.startsWith(`${this.o.dir}/`)) await unlink(at).catch(() => undefined);
    }
    if (!this.hadLogLinkDir) await rmdir(LOG_LINKS).catch(() => undefined); // only when empty
    await rm(this.o.dir, { recursive: true, force: true }).catch((e: Error) => errors.push(e.message));
    return errors;
  }
}
