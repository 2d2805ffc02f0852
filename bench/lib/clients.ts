// gRPC clients of the driver (CSI, as kubelet calls it) and of the provider
// (as the driver calls it).

import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { IdentityClient, NodeClient } from '../../src/gen/csi/v1/csi.js';
import { CSIDriverProviderClient, type MountRequest, type MountResponse } from '../../src/gen/provider/v1alpha1/service.js';
import { kubeletTarget as kubeletTargetIn, nodePublishRequest, podVolumeContext, unary, type PodRef } from '../../testkit/csi.js';
import type { Proc } from '../../testkit/proc.js';
import { sleep } from '../../testkit/wait.js';
import type { BenchEnv } from './env.js';

/** kubelet-shaped target path: <root>/pods/<uid>/volumes/kubernetes.io~csi/<name>/mount. */
export function kubeletTarget(env: BenchEnv, podUid: string, volName: string): string {
  return kubeletTargetIn(env.root, podUid, volName);
}

/** The pod of a bench volume: in namespace `bench`, named after its uid. */
const benchPod = (uid: string): PodRef => ({ name: `pod-${uid.slice(0, 8)}`, namespace: 'bench', uid });

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
  async waitReady(child: Proc, timeoutMs: number): Promise<void> {
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
    const req = nodePublishRequest({
      volumeId: CsiClient.volumeId(s.targetPath),
      targetPath: s.targetPath,
      spc: s.spc,
      pod: benchPod(s.podUid),
    });
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
  const attributes = { secretsFile, ...podVolumeContext('raw', benchPod(podUid)) };
  return { attributes: JSON.stringify(attributes), secrets: 'null', targetPath, permission: '420', currentObjectVersion: [] };
}

export const newPodUid = (): string => randomUUID();
