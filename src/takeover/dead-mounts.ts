// The honest fallback when nothing survived (keeper and driver both gone, or a
// node reboot with stale mount entries): find the mounts of ours whose server
// is gone. A statfs of such a mount fails with ENOTCONN.
//
// Only mounts made from this driver's own connection mount directory count
// (the mount source names it), so a second driver on the machine, or a test
// beside another one, never reports or probes the other's mounts. Each stat
// runs in a child process with a deadline: a mount whose server is alive but
// not answering (a connection the keeper holds while no driver serves it)
// would block a statfs forever, and must not tie up a threadpool thread.

import { spawn } from 'node:child_process';
import { readMountInfo, type MountInfoEntry } from '../mount/mountinfo.js';
import { fuseSource, SUBTYPE } from '../fuse/filesystem.js';

const TARGET_RE = /\/pods\/([^/]+)\/volumes\/kubernetes\.io~csi\/([^/]+)\/mount$/;

export interface DeadMount {
  readonly targetPath: string;
  /** From kubelet's target path layout, when it follows it. */
  readonly podUid: string | null;
  readonly volumeName: string | null;
}

export type Liveness = 'alive' | 'dead' | 'unresponsive' | 'gone';

/**
 * `stat -f` (statfs, which always asks the server; a plain stat may be
 * answered from cached attributes after the server died) in a child: 'dead'
 * on ENOTCONN and friends, 'unresponsive' past the deadline.
 */
export function probeInChild(path: string, deadlineMs: number): Promise<Liveness> {
  return new Promise((resolve) => {
    const child = spawn('stat', ['-f', '-c', '%t', '--', path], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    // A stat waiting on a FUSE answer sleeps killably: SIGKILL always ends it.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve('unresponsive');
    }, deadlineMs);
    child.on('error', () => {
      clearTimeout(timer);
      resolve('unresponsive');
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve('alive');
      else if (/No such file/.test(stderr)) resolve('gone');
      else if (/not connected|Software caused connection abort|Stale file handle|Input\/output error/.test(stderr)) resolve('dead');
      else resolve('unresponsive');
    });
  });
}

/** Pure: which mount table entries belong to the driver whose connection is mounted at mountDir. */
export function candidateMounts(table: readonly MountInfoEntry[], mountDir: string): MountInfoEntry[] {
  const source = fuseSource(mountDir);
  return table.filter((m) => m.fsType === `fuse.${SUBTYPE}` && m.source === source && m.mountPoint !== mountDir);
}

export interface FindDeadMountsOptions {
  /** Per-mount stat deadline. */
  readonly deadlineMs?: number;
  /** How many stats run at once. */
  readonly concurrency?: number;
  readonly onUnresponsive?: (mountPoint: string) => void;
}

/** Mounts of this driver's filesystem (other than the live root at mountDir) whose connection is dead. */
export async function findDeadMounts(mountDir: string, o: FindDeadMountsOptions = {}): Promise<DeadMount[]> {
  const todo = candidateMounts(await readMountInfo(), mountDir);
  const dead: DeadMount[] = [];
  const worker = async (): Promise<void> => {
    for (let m = todo.shift(); m; m = todo.shift()) {
      const state = await probeInChild(m.mountPoint, o.deadlineMs ?? 5000);
      if (state === 'unresponsive') o.onUnresponsive?.(m.mountPoint);
      if (state !== 'dead') continue;
      const k = TARGET_RE.exec(m.mountPoint);
      dead.push({ targetPath: m.mountPoint, podUid: k?.[1] ?? null, volumeName: k?.[2] ?? null });
    }
  };
  await Promise.all(Array.from({ length: o.concurrency ?? 4 }, worker));
  return dead.sort((a, b) => a.targetPath.localeCompare(b.targetPath));
}
