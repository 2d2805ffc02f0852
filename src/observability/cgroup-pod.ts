// Which pod and container a process runs in, from its /proc/<pid>/cgroup:
// kubelet puts every container in a cgroup under kubepods, named after the
// pod's UID and the container's id. Both cgroup versions (v1: one line per
// hierarchy, v2: the single `0::` line) and both kubelet cgroup drivers:
//
//   systemd:  /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid, '_' for '-'>.slice/cri-containerd-<id>.scope
//   cgroupfs: /kubepods/burstable/pod<uid>/<id>
//
// (Guaranteed pods have no QoS level: kubepods-pod<uid>.slice, /kubepods/pod<uid>.)

import { readFileSync } from 'node:fs';

export interface PodCgroup {
  readonly podUid: string;
  /** The container's runtime id (64 hex digits), or '' when the path stops at the pod. */
  readonly containerId: string;
}

const UID = '[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}';
const CGROUPFS_POD = new RegExp(`^pod(${UID})$`);
const SYSTEMD_POD = new RegExp(`^kubepods(?:-[a-z]+)?-pod(${UID})\\.slice$`);
// containerd / CRI-O / docker scopes under systemd, the bare id under cgroupfs.
const CONTAINER = /^(?:[a-z][a-z0-9-]*-)?([0-9a-f]{64})(?:\.scope)?$/;

/** The pod and container a cgroup path names, or null outside kubepods. */
export function podOfCgroupPath(path: string): PodCgroup | null {
  const parts = path.split('/');
  if (!parts.some((p) => p === 'kubepods' || p.startsWith('kubepods.') || p.startsWith('kubepods-'))) return null;
  for (let i = 0; i < parts.length; i++) {
    const m = CGROUPFS_POD.exec(parts[i]!) ?? SYSTEMD_POD.exec(parts[i]!);
    if (!m) continue;
    const c = CONTAINER.exec(parts[i + 1] ?? '');
    return { podUid: m[1]!.replace(/_/g, '-'), containerId: c ? c[1]! : '' };
  }
  return null;
}

/**
 * The pod of the first hierarchy (line of /proc/<pid>/cgroup) that names one;
 * one with a container id wins over one that stops at the pod.
 */
export function podOfCgroupFile(text: string): PodCgroup | null {
  let found: PodCgroup | null = null;
  for (const line of text.split('\n')) {
    // hierarchy-id:controllers:path; the path may itself contain ':'.
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (b < 0) continue;
    const pod = podOfCgroupPath(line.slice(b + 1));
    if (pod?.containerId) return pod;
    found ??= pod;
  }
  return found;
}

/** The pod of process `pid`, null outside kubepods or once it exited. procfs: never a FUSE mount, safe to read synchronously. */
export function podOfProcess(pid: number, procRoot = '/proc'): PodCgroup | null {
  if (pid <= 0) return null;
  try {
    return podOfCgroupFile(readFileSync(`${procRoot}/${pid}/cgroup`, 'latin1'));
  } catch {
    return null;
  }
}
