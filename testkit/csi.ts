// Playing kubelet's part: where it puts a pod's CSI volume, the volume
// context it sends, NodePublishVolume as it sends it for an inline
// secrets-store volume, and unary gRPC calls with a deadline.

import { join } from 'node:path';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { VolumeCapability_AccessMode_Mode, type NodePublishVolumeRequest } from '../src/gen/csi/v1/csi.js';
import type { PodRef as Pod } from '../src/kube/events.js';

export interface PodRef extends Pod {
  /** Its service account (default: `default`). */
  readonly serviceAccount?: string;
}

/** kubelet's target path for a CSI volume: <root>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount. */
export function kubeletTarget(root: string, podUid: string, volume: string): string {
  return join(root, 'pods', podUid, 'volumes', 'kubernetes.io~csi', volume, 'mount');
}

/** The volume context of an inline secrets-store volume: its SPC and kubelet's pod attributes. */
export function podVolumeContext(spc: string, pod: PodRef): Record<string, string> {
  return {
    secretProviderClass: spc,
    'csi.storage.k8s.io/pod.name': pod.name,
    'csi.storage.k8s.io/pod.namespace': pod.namespace,
    'csi.storage.k8s.io/pod.uid': pod.uid,
    'csi.storage.k8s.io/serviceAccount.name': pod.serviceAccount ?? 'default',
    'csi.storage.k8s.io/ephemeral': 'true',
  };
}

export interface PublishSpec {
  readonly volumeId: string;
  readonly targetPath: string;
  readonly spc: string;
  readonly pod: PodRef;
  /** kubelet sends SINGLE_NODE_WRITER (ReadWriteOnce) for inline volumes, with readonly set. */
  readonly accessMode?: VolumeCapability_AccessMode_Mode;
}

export function nodePublishRequest(s: PublishSpec): NodePublishVolumeRequest {
  return {
    volumeId: s.volumeId,
    targetPath: s.targetPath,
    readonly: true,
    volumeCapability: {
      accessType: { $case: 'mount', value: { fsType: '', mountFlags: [], volumeMountGroup: '' } },
      accessMode: { mode: s.accessMode ?? VolumeCapability_AccessMode_Mode.SINGLE_NODE_WRITER },
    },
    volumeContext: podVolumeContext(s.spc, s.pod),
    secrets: {},
    publishContext: {},
    stagingTargetPath: '',
  };
}

/** A unary call of a grpc-js client method (bound to its client) as a promise, with a deadline. */
export function unary<Req, Res>(
  fn: (req: Req, md: Metadata, opts: { deadline: Date }, cb: (e: ServiceError | null, r: Res) => void) => unknown,
  req: Req,
  timeoutMs: number,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (e, r) => (e ? reject(e) : resolve(r)));
  });
}
