// The bench's own Kubernetes control plane (testkit/control-plane.ts, on
// tmpfs, stopped and removed at the end), the CRDs from deploy/, and the
// objects kubelet would find there: a namespace per driver, its
// SecretProviderClass and the Pod objects whose volumes the bench publishes.

import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { PodRef } from '../../testkit/csi.js';
import { startControlPlane, stopControlPlaneAt, type ControlPlane } from '../../testkit/control-plane.js';
import { adminConfig, apply, applyCrds, manifests } from '../../testkit/kube.js';
import { REPO_ROOT } from '../lib/paths.js';

export const VOLUME_NAME = 'secrets-store-inline';
const CSI_DRIVER = 'secrets-store.csi.k8s.io';

export class Cluster {
  private readonly core: CoreV1Api;

  private constructor(
    readonly cp: ControlPlane,
    private readonly kc: KubeConfig,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  /** Starts a control plane in /dev/shm and installs the CRDs; `onStarted` gets it before anything can fail, for cleanup. */
  static async start(onStarted: (cp: ControlPlane) => void): Promise<Cluster> {
    const dir = `/dev/shm/ssbench-cp-${randomBytes(4).toString('hex')}`;
    // A start that fails has stopped its processes already; its directory is ours to remove.
    const cp = await startControlPlane(REPO_ROOT, dir).catch(async (e: unknown) => {
      await rm(dir, { recursive: true, force: true });
      throw e;
    });
    onStarted(cp);
    const kc = adminConfig(cp);
    await applyCrds(kc, await manifests(join(REPO_ROOT, 'deploy')));
    return new Cluster(cp, kc);
  }

  get kubeconfig(): string {
    return this.cp.adminKubeconfig;
  }

  /** A namespace with an SPC `spc` for the example provider reading `secretsFile`. */
  async namespaceWithSpc(ns: string, spc: string, secretsFile: string): Promise<void> {
    await this.core.createNamespace({ body: { metadata: { name: ns } } });
    await apply(this.kc, [
      {
        apiVersion: 'secrets-store.csi.x-k8s.io/v1',
        kind: 'SecretProviderClass',
        metadata: { name: spc, namespace: ns },
        spec: { provider: 'example', parameters: { secretsFile } },
      } as KubernetesObject,
    ]);
  }

  /** `count` Pods on `node` with the inline volume of SPC `spc` (kubelet never runs them: they stay Pending). */
  async createPods(ns: string, node: string, spc: string, prefix: string, count: number, concurrency: number): Promise<PodRef[]> {
    const pods: PodRef[] = new Array<PodRef>(count);
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < count; i = next++) {
        const name = `${prefix}-${i}`;
        const p = await this.core.createNamespacedPod({
          namespace: ns,
          body: {
            metadata: { name, labels: { app: 'upbench' } },
            spec: {
              nodeName: node,
              serviceAccountName: 'default',
              containers: [
                { name: 'app', image: 'busybox', volumeMounts: [{ name: VOLUME_NAME, mountPath: '/mnt/secrets', readOnly: true }] },
              ],
              volumes: [{ name: VOLUME_NAME, csi: { driver: CSI_DRIVER, readOnly: true, volumeAttributes: { secretProviderClass: spc } } }],
            },
          },
        });
        pods[i] = { name, namespace: ns, uid: p.metadata!.uid! };
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
    return pods;
  }

  stop(): Promise<void> {
    return stopControlPlaneAt(this.cp);
  }
}
