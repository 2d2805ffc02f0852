// The honest fallback when nothing survived (keeper and driver both gone, or a
// node reboot with stale mount entries): find the mounts of ours whose server
// is gone. A stat of such a mount fails with ENOTCONN; the stat runs in the
// threadpool, never on the thread that serves our own mounts.

import { readMountInfo, probeMountPoint } from '../fuse/mount.js';
import { SUBTYPE } from '../fuse/filesystem.js';

const TARGET_RE = /\/pods\/([^/]+)\/volumes\/kubernetes\.io~csi\/([^/]+)\/mount$/;

export interface DeadMount {
  readonly targetPath: string;
  /** From kubelet's target path layout, when it follows it. */
  readonly podUid: string | null;
  readonly volumeName: string | null;
}

/** Mounts of this driver's filesystem, other than `except` (the live root), whose connection is dead. */
export async function findDeadMounts(except: string): Promise<DeadMount[]> {
  const ours = (await readMountInfo()).filter((m) => m.fsType === `fuse.${SUBTYPE}` && m.mountPoint !== except);
  const dead: DeadMount[] = [];
  for (const m of ours) {
    if ((await probeMountPoint(m.mountPoint).catch(() => 'stale' as const)) !== 'stale') continue;
    const k = TARGET_RE.exec(m.mountPoint);
    dead.push({ targetPath: m.mountPoint, podUid: k?.[1] ?? null, volumeName: k?.[2] ?? null });
  }
  return dead;
}
