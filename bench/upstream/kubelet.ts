// The kubelet's part against one driver's CSI socket: where a pod's volume is
// mounted, NodePublishVolume / NodeUnpublishVolume as kubelet sends them for
// an inline secrets-store volume (timed), and Probe for readiness.

import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { IdentityClient, NodeClient, type NodePublishVolumeRequest } from '../../src/gen/csi/v1/csi.js';
import { kubeletTarget, nodePublishRequest, unary, type PodRef } from '../../testkit/csi.js';
import { VOLUME_NAME } from './cluster.js';

export interface Volume {
  readonly pod: PodRef;
  readonly target: string;
  readonly request: NodePublishVolumeRequest;
}

/** A grpc-js client that retries a refused connection within milliseconds (the default first backoff is 1 s). */
const FAST_RECONNECT = { 'grpc.initial_reconnect_backoff_ms': 10, 'grpc.max_reconnect_backoff_ms': 100 };

/** Probe, once, on a fresh connection: true when the driver answered. */
export async function probeOnce(socket: string, timeoutMs = 1000): Promise<boolean> {
  const identity = new IdentityClient(`unix:${socket}`, credentials.createInsecure(), FAST_RECONNECT);
  try {
    await unary(identity.probe.bind(identity), {}, timeoutMs);
    return true;
  } catch {
    return false;
  } finally {
    identity.close();
  }
}

export class Kubelet {
  private readonly node: NodeClient;

  /** `root` is this kubelet's directory (its pods/ hold the targets). */
  constructor(
    socket: string,
    readonly root: string,
    private readonly spc: string,
  ) {
    this.node = new NodeClient(`unix:${socket}`, credentials.createInsecure(), FAST_RECONNECT);
  }

  volume(pod: PodRef): Volume {
    const target = kubeletTarget(this.root, pod.uid, VOLUME_NAME);
    return { pod, target, request: nodePublishRequest({ volumeId: `csi-${pod.uid}`, targetPath: target, spc: this.spc, pod }) };
  }

  /** NodePublishVolume (a first publish or a republish); resolves with its latency in ms. kubelet makes the target's parent first. */
  async publish(v: Volume, timeoutMs = 60_000): Promise<number> {
    await mkdir(dirname(v.target), { recursive: true });
    const t0 = performance.now();
    await unary(this.node.nodePublishVolume.bind(this.node), v.request, timeoutMs);
    return performance.now() - t0;
  }

  /** NodeUnpublishVolume; resolves with its latency in ms. */
  async unpublish(v: Volume, timeoutMs = 60_000): Promise<number> {
    const t0 = performance.now();
    await unary(this.node.nodeUnpublishVolume.bind(this.node), { volumeId: v.request.volumeId, targetPath: v.target }, timeoutMs);
    return performance.now() - t0;
  }

  close(): void {
    this.node.close();
  }
}
