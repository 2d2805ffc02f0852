// SecretProviderClassPodStatus objects, written exactly as upstream writes
// them (pkg/secrets-store/utils.go): one per pod and SPC, named
// <pod>-<namespace>-<spc>, labelled with this node, owned by the Pod (so it is
// garbage-collected with it), status.objects sorted by id. Written after a
// successful mount and after every rotation.

import type { VolumeStatus } from '../volume/types.js';
import { apiErrorText, apiStatus, type KubeApi } from './api.js';

export const NODE_LABEL = 'internal.secrets-store.csi.k8s.io/node-name';
export const GROUP = 'secrets-store.csi.x-k8s.io';
export const SPCPS_PLURAL = 'secretproviderclasspodstatuses';

export function podStatusName(podName: string, namespace: string, spcName: string): string {
  return `${podName}-${namespace}-${spcName}`;
}

export interface PodStatusObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string }>;
  };
  status: {
    podName: string;
    secretProviderClassName: string;
    mounted: boolean;
    targetPath: string;
    objects: Array<{ id: string; version: string }>;
  };
}

export function buildPodStatus(v: VolumeStatus, nodeId: string): PodStatusObject {
  return {
    apiVersion: `${GROUP}/v1`,
    kind: 'SecretProviderClassPodStatus',
    metadata: {
      name: podStatusName(v.podName, v.podNamespace, v.spcName),
      namespace: v.podNamespace,
      labels: { [NODE_LABEL]: nodeId },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: v.podName, uid: v.podUid }],
    },
    status: {
      podName: v.podName,
      secretProviderClassName: v.spcName,
      mounted: true,
      targetPath: v.targetPath,
      objects: [...v.objectVersions]
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .map((o) => ({ id: o.id, version: o.version })),
    },
  };
}

export class PodStatusWriter {
  constructor(
    private readonly api: KubeApi,
    private readonly nodeId: string,
  ) {}

  /** Create, or on AlreadyExists take the object over: node label, status and owner set anew. */
  async write(v: VolumeStatus): Promise<PodStatusObject> {
    const want = buildPodStatus(v, this.nodeId);
    const ns = want.metadata.namespace;
    try {
      return await this.api.secretsStore.create(SPCPS_PLURAL, ns, want);
    } catch (e) {
      if (apiStatus(e) !== 409)
        throw new Error(`failed to create secret provider class pod status for pod ${ns}/${v.podName}, err: ${apiErrorText(e)}`, {
          cause: e,
        });
    }
    for (let attempt = 0; ; attempt++) {
      try {
        const cur = await this.api.secretsStore.get<PodStatusObject>(SPCPS_PLURAL, ns, want.metadata.name);
        cur.metadata.labels = { ...(cur.metadata.labels ?? {}), [NODE_LABEL]: this.nodeId };
        cur.metadata.ownerReferences = want.metadata.ownerReferences!;
        cur.status = want.status;
        return await this.api.secretsStore.replace(SPCPS_PLURAL, ns, want.metadata.name, cur);
      } catch (e) {
        if (apiStatus(e) === 409 && attempt < 4) continue; // lost an update race: read again
        throw new Error(`failed to update secret provider class pod status for pod ${ns}/${v.podName}, err: ${apiErrorText(e)}`, {
          cause: e,
        });
      }
    }
  }
}
