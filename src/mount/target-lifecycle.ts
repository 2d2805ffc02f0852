// Everything that happens to a kubelet target path: made ready for a bind
// mount, bound, flipped between read-only and writable, detached after a
// failed publish, and unmounted and removed at unpublish. Nothing here knows
// about FUSE: the source is any directory.

import { rmdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import { bindMountAt, remountBind, remountBindAt, unmount, unmountAt } from './commands.js';
import { errors, isDriverError } from '../errors.js';
import { probeMountPoint, type MountPointState } from './probe.js';
import { makeTargetDir, openTargetDir, refuseSymlinkedTarget } from './target-open.js';

export type TargetLog = Pick<Logger, 'warn'>;

/** Where a (canonical) target really is: the kubelet root may itself be a symlink. */
export type RealPathOf = (target: string) => string;

export class TargetLifecycle {
  constructor(
    private readonly log: TargetLog,
    private readonly realPathOf: RealPathOf = (t) => t,
  ) {}

  /**
   * Makes the target ready for a bind mount. Returns true when a dead mount
   * of a previous driver is there: the new mount is then stacked on top of
   * it rather than replacing it, because only a mount on top propagates to
   * the containers' views of the dead one (those with HostToContainer
   * propagation); a container with a private view cannot be repaired.
   */
  async prepare(target: string): Promise<{ stackedOverDead: boolean }> {
    // Before the probe and any unmount, which would follow a symlink.
    await refuseSymlinkedTarget(target, this.realPathOf(target));
    const state = await this.probe(target);
    if (state === 'stale') {
      this.log.warn({ targetPath: target }, 'a dead mount of a previous driver is at the target path; stacking a new mount over it');
      return { stackedOverDead: true };
    }
    if (state === 'mounted') {
      // Not ours (the caller checked its table), and alive: e.g. a tmpfs of the upstream driver.
      this.log.warn({ targetPath: target }, 'unmounting a foreign mount at the target path');
      await unmount(target, { lazy: true });
    }
    await makeTargetDir(target, this.realPathOf(target));
    return { stackedOverDead: false };
  }

  /**
   * Bind-mounts `source` at the target, read-only unless a provider is about
   * to write into it. Through an fd of the checked directory, never the path.
   * The bind comes with its flags where the kernel has the new mount API;
   * otherwise they are set through an fd of the new mount's root (the first
   * fd still names the directory below it).
   */
  async bind(source: string, target: string, o: { writable: boolean }): Promise<void> {
    const real = this.realPathOf(target);
    const dir = await openTargetDir(target, real);
    let flagsSet: boolean;
    try {
      flagsSet = await bindMountAt(source, dir.fd, o.writable);
    } finally {
      await dir.close();
    }
    if (flagsSet) return;
    try {
      const root = await openTargetDir(target, real);
      try {
        await remountBindAt(root.fd, o.writable);
      } finally {
        await root.close();
      }
    } catch (e) {
      // Never left mounted without its flags, nor where it should not be.
      const again = await openTargetDir(target, real).catch(() => null);
      if (again) {
        await unmountAt(again.fd).catch(() => undefined);
        await again.close();
      }
      throw e;
    }
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
    // The probe follows symlinks: what a symlink points to is never touched.
    await refuseSymlinkedTarget(target, this.realPathOf(target));
    const state = o.mounted ? 'mounted' : await this.probe(target);
    if (state === 'mounted' || state === 'stale') {
      await unmount(target, { lazy: state === 'stale' }).catch(async (e: unknown) => {
        // Busy (a process still has a file open): detach now, the kernel
        // finishes when the last user goes.
        this.log.warn({ targetPath: target, err: (e as Error).message }, 'unmount failed; detaching lazily');
        await unmount(target, { lazy: true });
      });
      // Ours may have been stacked over a dead mount of a previous driver: that goes too.
      for (let i = 0; i < 4; i++) {
        // A target swapped for a symlink meanwhile (DriverError): nothing more is unmounted.
        const below = await this.probe(target).catch((e: unknown) => (isDriverError(e) ? ('plain' as const) : ('stale' as const)));
        if (below !== 'stale' && below !== 'mounted') break;
        await unmount(target, { lazy: true }).catch(() => undefined);
      }
    }
    await this.removeDir(target);
  }

  /**
   * What is at the target, looked at through a descriptor opened without
   * following a symlink. A mount found there pins the path (a mount point
   * cannot be renamed or removed), so the unmount by path that follows
   * reaches that very mount.
   */
  private async probe(target: string): Promise<MountPointState> {
    const dir = await openTargetDir(target, this.realPathOf(target)).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    });
    if (!dir) return 'missing';
    try {
      return await probeMountPoint(target, `/proc/self/fd/${dir.fd}`);
    } finally {
      await dir.close();
    }
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
