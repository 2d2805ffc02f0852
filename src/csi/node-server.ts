// CSI Node service: argument checks here, the work in the volume manager.

import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { NodeServiceCapability_RPC_Type, type NodeServer } from '../gen/csi/v1/csi.js';
import { DriverError, isDriverError } from '../errors.js';
import type { DriverMetrics } from '../observability/metrics.js';
import type { VolumeManager } from '../volume/manager.js';
import { MOCK_TARGET_PATH, POD_NAME, POD_NAMESPACE } from './volume-context.js';
import { callDeadline, unary } from './handler.js';
import { checkPublish, checkStage, checkUnpublish, checkUnstage, volumeMountGroup } from './validate.js';
import { canonicalTargetPath, checkUnderKubeletRoot, type KubeletRoot } from './target-path.js';

export interface NodeServerOptions {
  readonly nodeId: string;
  readonly manager: VolumeManager;
  readonly metrics: DriverMetrics;
  readonly log: Logger;
  /** --kubelet-root-dir: targets outside it are refused; null turns the check off. */
  readonly kubeletRoot: KubeletRoot | null;
}

const unimplemented = (m: string): DriverError => new DriverError(m, 'ERR_UNIMPLEMENTED', status.UNIMPLEMENTED);

/** The one spelling of a target the layers below see (registry key, mount point), checked against the kubelet root. */
function targetOf(path: string, root: KubeletRoot | null, o: { unpublish: boolean }): string {
  const target = canonicalTargetPath(path);
  // Unpublish of csi-sanity's mock path stays the no-op it is upstream (the manager returns at once).
  if (!(o.unpublish && target === MOCK_TARGET_PATH)) checkUnderKubeletRoot(target, root);
  return target;
}

export function nodeServer(o: NodeServerOptions): NodeServer {
  return {
    nodePublishVolume: unary(async (req, call) => {
      const started = performance.now();
      const pod = `${req.volumeContext[POD_NAMESPACE] ?? ''}/${req.volumeContext[POD_NAME] ?? ''}`;
      // Known once the SecretProviderClass is resolved: a publish failing after that is counted with it.
      let provider = '';
      try {
        const invalid = checkPublish(req);
        if (invalid) throw invalid;
        await o.manager.publish({
          volumeId: req.volumeId,
          targetPath: targetOf(req.targetPath, o.kubeletRoot, { unpublish: false }),
          readonly: req.readonly,
          volumeMountGroup: volumeMountGroup(req),
          volumeContext: req.volumeContext,
          secrets: req.secrets,
          deadline: callDeadline(call),
          onProvider: (p) => {
            provider = p;
          },
        });
        o.metrics.publishOk(provider);
        return {};
      } catch (e) {
        const err = isDriverError(e) ? e : null;
        o.metrics.publishError(provider, err?.errorType ?? 'FailedToMount');
        o.log.error(
          {
            targetPath: req.targetPath,
            volumeId: req.volumeId,
            pod,
            code: err?.code,
            err: (e as Error).message,
            ms: Math.round(performance.now() - started),
          },
          'node publish volume failed',
        );
        throw e;
      }
    }),
    nodeUnpublishVolume: unary(async (req) => {
      try {
        const invalid = checkUnpublish(req);
        if (invalid) throw invalid;
        await o.manager.unpublish(targetOf(req.targetPath, o.kubeletRoot, { unpublish: true }));
        o.metrics.unpublishOk();
        return {};
      } catch (e) {
        o.metrics.unpublishError();
        o.log.error({ targetPath: req.targetPath, volumeId: req.volumeId, err: (e as Error).message }, 'node unpublish volume failed');
        throw e;
      }
    }),
    nodeStageVolume: unary(async (req) => {
      const invalid = checkStage(req);
      if (invalid) throw invalid;
      return {};
    }),
    nodeUnstageVolume: unary(async (req) => {
      const invalid = checkUnstage(req);
      if (invalid) throw invalid;
      return {};
    }),
    nodeGetVolumeStats: unary(async () => {
      throw unimplemented('NodeGetVolumeStats is not implemented');
    }),
    nodeExpandVolume: unary(async () => {
      throw unimplemented('NodeExpandVolume is not implemented');
    }),
    nodeGetCapabilities: unary(async () => ({
      capabilities: [
        { type: { $case: 'rpc', value: { type: NodeServiceCapability_RPC_Type.STAGE_UNSTAGE_VOLUME } } },
        // kubelet then hands the pod's fsGroup to NodePublishVolume (volume_mount_group) and leaves ownership to us.
        { type: { $case: 'rpc', value: { type: NodeServiceCapability_RPC_Type.VOLUME_MOUNT_GROUP } } },
      ],
    })),
    nodeGetInfo: unary(async () => ({ nodeId: o.nodeId, maxVolumesPerNode: 0 })),
  };
}
