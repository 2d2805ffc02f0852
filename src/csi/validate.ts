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

/** gid_t is 32 bits, and (gid_t)-1 is no group at all (chown's "unchanged"). */
const MAX_GID = 2 ** 32 - 2;

function mountGroupText(r: NodePublishVolumeRequest): string {
  const t = r.volumeCapability?.accessType;
  return t?.$case === 'mount' ? t.value.volumeMountGroup : '';
}

/** A volume_mount_group kubelet sends: the pod's fsGroup, in decimal. Leading zeros are refused (octal or decimal?). */
function checkMountGroup(text: string): DriverError | null {
  if (text === '') return null;
  if (!/^(0|[1-9][0-9]{0,9})$/.test(text) || Number(text) > MAX_GID) {
    return bad(`volume_mount_group must be a group id in decimal, 0 to ${MAX_GID}: ${JSON.stringify(text.slice(0, 32))}`);
  }
  return null;
}

/** The group a publish asks its volume to be served to (checkPublish passed), or null when it names none. */
export function volumeMountGroup(r: NodePublishVolumeRequest): number | null {
  const text = mountGroupText(r);
  return text === '' ? null : Number(text);
}

export function checkPublish(r: NodePublishVolumeRequest): DriverError | null {
  if (!r.volumeCapability) return bad('Volume capability missing in request');
  if (r.volumeId.length === 0) return bad('Volume ID missing in request');
  if (r.targetPath.length === 0) return bad('Target path missing in request');
  if (Object.keys(r.volumeContext).length === 0) return bad('Volume attributes missing in request');
  const target = checkTargetPath(r.targetPath);
  if (target) return target;
  if (r.volumeCapability.accessType?.$case === 'block') return bad('Block access type is not supported, only mount');
  return checkMountGroup(mountGroupText(r));
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
