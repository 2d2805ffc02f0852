// A rotation's directory changes made through the VFS, so that inotify sees
// them. Changes the server makes inside its own table reach the kernel only as
// cache invalidations, which fire no inotify event; reloaders that watch a
// secrets volume (for `..data` to be moved, or a watched file to go) then never
// hear of a rotation. So the driver performs each step as a real syscall on
// its own mount of the connection (mkdir, symlink, rename, unlink, rmdir),
// asynchronously (never on the serving thread), and applies the step in the
// table when the kernel's request for it arrives. Watchers see the atomic
// writer's own sequence of events, whichever view of the volume they watch.
//
// One step at a time, for every volume: each parks a libuv threadpool thread
// in the kernel until the serving thread answers it, and the two readers of
// /dev/fuse and the notification writer must always find threads of their
// own (Node's default pool has four).

import { mkdir, rename, rmdir, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Inode } from './inode-table.js';
import type { OwnSteps } from './operations.js';
import type { RotationStep } from './volume-tree.js';

/** How a step was made: by the kernel's request, by the kernel's request but the syscall still failed, or not at all. */
export type StepOutcome = 'vfs' | 'applied-call-failed' | 'not-applied';

interface Pending {
  readonly step: RotationStep;
  applied: boolean;
}

/** The syscall that makes `step` in the directory at `dirPath`. */
export function syscall(step: RotationStep, dirPath: string): Promise<void> {
  const path = join(dirPath, step.name);
  switch (step.kind) {
    case 'mkdir': return mkdir(path);
    case 'symlink': return symlink(step.target, path);
    case 'rename': return rename(path, join(dirPath, step.to));
    case 'unlink': return unlink(path);
    case 'rmdir': return rmdir(path);
  }
}

export class VfsSteps implements OwnSteps {
  private pending: Pending | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    /**
     * The driver's process id as the connection sees it. 0 is accepted too: a
     * process in a pid namespace the connection cannot see (a driver that took
     * the connection over from another pod) reads as 0, and only a root
     * process of the host's mount namespace can reach the connection's own
     * mount, where these names are asked for.
     */
    private readonly selfPid: number,
    private readonly call: (step: RotationStep, dirPath: string) => Promise<void> = syscall,
  ) {}

  take(kind: RotationStep['kind'], parent: number, name: string, extra: string, tgid: number): Inode | null | undefined {
    const p = this.pending;
    if (!p || p.applied || (tgid !== this.selfPid && tgid !== 0)) return undefined;
    const s = p.step;
    if (s.kind !== kind || s.parent !== parent || s.name !== name) return undefined;
    if ((s.kind === 'symlink' && s.target !== extra) || (s.kind === 'rename' && s.to !== extra)) return undefined;
    p.applied = true;
    return s.apply();
  }

  /** Makes `step` with a syscall on `dirPath` (the path of the step's parent directory). */
  run(step: RotationStep, dirPath: string): Promise<StepOutcome> {
    const next = this.chain.then(async (): Promise<StepOutcome> => {
      const p: Pending = { step, applied: false };
      this.pending = p;
      try {
        await this.call(step, dirPath);
        return p.applied ? 'vfs' : 'not-applied';
      } catch {
        return p.applied ? 'applied-call-failed' : 'not-applied';
      } finally {
        this.pending = null;
      }
    });
    this.chain = next;
    return next;
  }

  /** Resolves once every step asked for so far is done. */
  settled(): Promise<void> {
    return this.chain.then(() => undefined);
  }
}
