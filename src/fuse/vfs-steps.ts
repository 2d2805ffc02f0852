// A rotation's directory changes made through the VFS, so that inotify sees
// them. Changes the server makes inside its own table reach the kernel only as
// cache invalidations, which fire no inotify event; reloaders that watch a
// secrets volume (for `..data` to be moved, or a watched file to go) then never
// hear of a rotation. So each batch of steps (a rotation's switch, or the
// removal of an old version) is made as real syscalls on the driver's own
// mount of the connection (mkdir, symlink, rename, unlink, rmdir), and each
// step is applied in the table when the kernel's request for it arrives.
// Watchers see the atomic writer's own sequence of events, whichever view of
// the volume they watch.
//
// The syscalls are made by a forked child (native forkSyscalls), never by the
// driver's own threads: a thread of the driver waiting in the kernel for an
// answer from the driver's own connection could never finish dying if the
// driver were killed meanwhile (the kernel waits uninterruptibly for requests
// the server had read), and a dying driver that cannot exit is never
// restarted. A child that is left waiting is answered by the next driver
// (after FUSE_NOTIFY_RESEND: EROFS, it is nobody's step any more) and dies.

import { Socket } from 'node:net';
import { join } from 'node:path';
import type { Inode } from './inode-table.js';
import type { OwnSteps } from './operations.js';
import type { RotationStep } from './volume-tree.js';

/** How a step was made: by the kernel's request, by the kernel's request but the syscall still failed, or not at all. */
export type StepOutcome = 'vfs' | 'applied-call-failed' | 'not-applied';

/** A forked child making a script of syscalls: its pid, and the result (0 or errno) of each syscall it made. */
export interface SyscallChild {
  readonly pid: number;
  readonly results: Promise<number[]>;
}
export type ForkSyscalls = (script: Buffer) => SyscallChild;

/** forkSyscalls from the native addon: results read from the child's pipe without a threadpool thread, the child reaped. */
export function nativeForkSyscalls(native: {
  forkSyscalls(script: Buffer): [number, number];
  reapChild(pid: number): number;
}): ForkSyscalls {
  // The child has closed its pipe by exiting; it may take a moment to become
  // reapable. (ECHILD, already reaped, ends the loop like an exit status.)
  const reap = (pid: number, tries = 0): void => {
    let status: number;
    try {
      status = native.reapChild(pid);
    } catch {
      return;
    }
    if (status === -1 && tries < 1000) setTimeout(() => reap(pid, tries + 1), 10).unref();
  };
  return (script) => {
    const [pid, fd] = native.forkSyscalls(script);
    const results = new Promise<number[]>((resolve) => {
      const pipe = new Socket({ fd, readable: true, writable: false });
      const chunks: Buffer[] = [];
      pipe.on('data', (c: Buffer) => chunks.push(c));
      pipe.on('error', () => undefined); // 'close' follows
      pipe.on('close', () => {
        const b = Buffer.concat(chunks);
        const out: number[] = [];
        for (let i = 0; i + 4 <= b.length; i += 4) out.push(b.readInt32LE(i));
        reap(pid);
        resolve(out);
      });
    });
    return { pid, results };
  };
}

const OP: Record<RotationStep['kind'], string> = { mkdir: 'd', symlink: 's', rename: 'r', unlink: 'u', rmdir: 'x' };

/** The script for forkSyscalls: an op byte and NUL-terminated paths per step. */
export function encodeScript(steps: readonly RotationStep[], dirPath: (s: RotationStep) => string): Buffer {
  const parts: string[] = [];
  for (const s of steps) {
    const dir = dirPath(s);
    const path = join(dir, s.name);
    if (s.kind === 'symlink') parts.push(`${OP.symlink}${s.target}\0${path}\0`);
    else if (s.kind === 'rename') parts.push(`${OP.rename}${path}\0${join(dir, s.to)}\0`);
    else parts.push(`${OP[s.kind]}${path}\0`);
  }
  return Buffer.from(parts.join(''), 'utf8');
}

interface Batch {
  readonly pid: number;
  readonly steps: readonly RotationStep[];
  next: number;
  readonly applied: boolean[];
}

export class VfsSteps implements OwnSteps {
  private readonly batches = new Set<Batch>();
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly fork: ForkSyscalls) {}

  /**
   * The next step of a batch, if this request is it, from that batch's child.
   * A tgid of 0 (a pid namespace the connection cannot see, as for a driver
   * that took the connection over from another pod) is accepted too: the
   * names must then match exactly, and only root in the host's mount
   * namespace can reach the connection's own mount, where they are asked for.
   */
  take(kind: RotationStep['kind'], parent: number, name: string, extra: string, tgid: number): Inode | null | undefined {
    for (const b of this.batches) {
      if (tgid !== b.pid && tgid !== 0) continue;
      const s = b.steps[b.next];
      if (!s || s.kind !== kind || s.parent !== parent || s.name !== name) continue;
      if ((s.kind === 'symlink' && s.target !== extra) || (s.kind === 'rename' && s.to !== extra)) continue;
      b.applied[b.next++] = true;
      return s.apply();
    }
    return undefined;
  }

  /** Makes `steps` in order with syscalls in a child; `dirPath` gives the path of a step's directory. */
  run(steps: readonly RotationStep[], dirPath: (s: RotationStep) => string): Promise<StepOutcome[]> {
    if (steps.length === 0) return Promise.resolve([]);
    let child: SyscallChild;
    try {
      child = this.fork(encodeScript(steps, dirPath));
    } catch {
      return Promise.resolve(steps.map(() => 'not-applied' as const));
    }
    // Registered before this tick ends: the child's requests are answered on this thread, later.
    const batch: Batch = { pid: child.pid, steps, next: 0, applied: steps.map(() => false) };
    this.batches.add(batch);
    const done = child.results.then((errs) => {
      this.batches.delete(batch);
      return steps.map((_, i): StepOutcome => (batch.applied[i] ? (errs[i] === 0 ? 'vfs' : 'applied-call-failed') : 'not-applied'));
    });
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
    return done;
  }

  /** Resolves once every batch started so far is done. */
  async settled(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }
}
