// Everything that happens to a kubelet target path: made ready for a bind
// mount, bound, flipped between read-only and writable, detached after a
// failed publish, and unmounted and removed at unpublish. Nothing here knows
// about FUSE: the source is any directory.

import { mkdir, rmdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import { bindMount, remountBind, unmount } from './commands.js';
import { errors } from '../errors.js';
import { probeMountPoint } from './probe.js';

export type TargetLog = Pick<Logger, 'warn'>;

export class TargetLifecycle {
  constructor(private readonly log: TargetLog) {}

  /**
   * Makes the target ready for a bind mount. Returns true when a dead mount
   * of a previous driver is there: the new mount is then stacked on top of
   * it rather than replacing it, because only a mount on top propagates to
   * the containers' views of the dead one (those with HostToContainer
   * propagation); a container with a private view cannot be repaired.
   */
  async prepare(target: string): Promise<{ stackedOverDead: boolean }> {
    const state = await probeMountPoint(target);
    if (state === 'stale') {
      this.log.warn({ targetPath: target }, 'a dead mount of a previous driver is at the target path; stacking a new mount over it');
      return { stackedOverDead: true };
    }
    if (state === 'mounted') {
      // Not ours (the caller checked its table), and alive: e.g. a tmpfs of the upstream driver.
      this.log.warn({ targetPath: target }, 'unmounting a foreign mount at the target path');
      await unmount(target, { lazy: true });
    }
    await mkdir(target, { recursive: true, mode: 0o750 });
    return { stackedOverDead: false };
  }

  /** Bind-mounts `source` at the target, read-only unless a provider is about to write into it. */
  bind(source: string, target: string, o: { writable: boolean }): Promise<void> {
    return bindMount(source, target, o.writable);
  }

  /** Flips the target's bind mount between read-only and writable (for a write window). */
  setWritable(target: string, writable: boolean): Promise<void> {
    return remountBind(target, writable);
  }

  /** Undoes a bind of a publish that failed: detached at once, errors ignored (the caller reports its own). */
  async detach(target: string): Promise<void> {
    await unmount(target, { lazy: true }).catch(() => undefined);
  }

  /**
   * Unmounts whatever is at the target (ours, a dead one of a previous
   * driver below it, a foreign one) and removes the directory only if it is
   * then empty, as mount-utils' CleanupMountPoint does: files under it are
   * not ours (the driver never writes into a target's own directory), so
   * they are reported and left. `mounted`: the caller knows its mount is
   * there (no probe needed).
   */
  async teardown(target: string, o: { mounted: boolean }): Promise<void> {
    const state = o.mounted ? 'mounted' : await probeMountPoint(target);
    if (state === 'mounted' || state === 'stale') {
      await unmount(target, { lazy: state === 'stale' }).catch(async (e: unknown) => {
        // Busy (a process still has a file open): detach now, the kernel
        // finishes when the last user goes.
        this.log.warn({ targetPath: target, err: (e as Error).message }, 'unmount failed; detaching lazily');
        await unmount(target, { lazy: true });
      });
      // Ours may have been stacked over a dead mount of a previous driver: that goes too.
      for (let i = 0; i < 4; i++) {
        const below = await probeMountPoint(target).catch(() => 'stale' as const);
        if (below !== 'stale' && below !== 'mounted') break;
        await unmount(target, { lazy: true }).catch(() => undefined);
      }
    }
    await this.removeDir(target);
  }

  /** rmdir only: never a recursive delete of what someone else put there. */
  private async removeDir(target: string): Promise<void> {
    try {
      await rmdir(target);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      throw errors.targetNotEmpty(
        `target path ${target} is not empty once unmounted: it holds files this driver did not create, so it is left as it is; remove them and retry`,
        e,
      );
    }
  }
}
