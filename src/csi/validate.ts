// Argument checks of the Node RPCs, with upstream's messages. Pure, so each
// rule is tested without a server. Returns the first error, or null.

import { isAbsolute } from 'node:path';
import type {
  NodePublishVolumeRequest,
  NodeUnpublishVolumeRequest,
  NodeStageVolumeRequest,
  NodeUnstageVolumeRequest,
} from '../gen/csi/v1/csi.js';
import { errors, type DriverError } from '../errors.js';

const bad = (m: string): DriverError => errors.invalidArgument(m);

/** Beyond upstream: we mount at the path, so it must be absolute and plain. */
function checkTargetPath(p: string): DriverError | null {
  if (!isAbsolute(p) || p.includes('\0') || p.split('/').includes('..')) {
    return bad(`Target path must be an absolute path without '..': ${p}`);
  }
  return null;
}

export function checkPublish(r: NodePublishVolumeRequest): DriverError | null {
  if (!r.volumeCapability) return bad('Volume capability missing in request');
  if (r.volumeId.length === 0) return bad('Volume ID missing in request');
  if (r.targetPath.length === 0) return bad('Target path missing in request');
  if (Object.keys(r.volumeContext).length === 0) return bad('Volume attributes missing in request');
  const target = checkTargetPath(r.targetPath);
  if (target) return target;
  if (r.volumeCapability.accessType?.$case === 'block') return bad('Block access type is not supported, only mount');
  return null;
}

export function checkUnpublish(r: NodeUnpublishVolumeRequest): DriverError | null {
  if (r.volumeId.length === 0) return bad('Volume ID missing in request');
  if (r.targetPath.length === 0) return bad('Target path missing in request');
  return checkTargetPath(r.targetPath);
}

export function checkStage(r: NodeStageVolumeRequest): DriverError | null {
  if (r.volumeId.length === 0) return bad('Volume ID missing in request');
  if (r.stagingTargetPath.length === 0) return bad('Target path missing in request');
  if (!r.volumeCapability) return bad('Volume capability missing in request');
  return null;
}

export function checkUnstage(r: NodeUnstageVolumeRequest): DriverError | null {
  if (r.volumeId.length === 0) return bad('Volume ID missing in request');
  if (r.stagingTargetPath.length === 0) return bad('Target path missing in request');
  return null;
}
