// The bench's temp dir and everything that must be undone: children, gRPC
// clients, /dev/shm files and whatever is still mounted under the temp dir.

import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { atOrUnder, mountsWhere, umountAllWhere } from '../../testkit/mounts.js';
import type { Proc } from '../../testkit/proc.js';

export class BenchEnv {
  private readonly children: Proc[] = [];
  /** Run-to-completion children (bench/mount-strategy.js, ...), killed at once on a signal. */
  private readonly spawned = new Set<ChildProcess>();
  private readonly shmFiles: string[] = [];
  private readonly clients: Array<{ close(): void }> = [];

  private constructor(readonly root: string) {}

  static async create(): Promise<BenchEnv> {
    return new BenchEnv(await mkdtemp('/tmp/ssbench-'));
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  track(c: Proc): Proc {
    this.children.push(c);
    return c;
  }

  /** Registers a run-to-completion child (runCaptured's onSpawn). */
  readonly trackSpawned = (c: ChildProcess): void => {
    this.spawned.add(c);
    c.on('close', () => this.spawned.delete(c));
  };

  /** SIGKILLs the run-to-completion children still running (on SIGINT/SIGTERM). */
  killSpawned(): void {
    for (const c of this.spawned) c.kill('SIGKILL');
  }

  trackClient<T extends { close(): void }>(c: T): T {
    this.clients.push(c);
    return c;
  }

  /** A file in /dev/shm (tmpfs), removed by cleanup. */
  shmPath(name: string): string {
    const p = `/dev/shm/${this.root.split('/').pop()}-${name}`;
    this.shmFiles.push(p);
    return p;
  }

  /** Mount points under our temp dir, deepest first. */
  mountsUnderRoot(): Promise<string[]> {
    return mountsWhere(atOrUnder(this.root));
  }

  /**
   * Kills children, lazily unmounts whatever is still mounted under the temp
   * dir, removes the temp dir and the /dev/shm files. Never throws; returns
   * what it had to clean up (a clean run has no leftover mounts).
   */
  async cleanup(): Promise<{ leftoverMounts: string[]; errors: string[]; crashed: string[] }> {
    const errors: string[] = [];
    const crashed = this.crashedChildren();
    for (const c of this.clients.splice(0)) {
      try {
        c.close();
      } catch (e) {
        errors.push(`client close: ${(e as Error).message}`);
      }
    }
    await Promise.all(
      this.children
        .splice(0)
        .reverse()
        .map((c) =>
          c.stop('SIGTERM', 4000).catch((e: unknown) => {
            errors.push(`stop ${c.name}: ${(e as Error).message}`);
          }),
        ),
    );
    let leftover: string[] = [];
    try {
      leftover = await this.mountsUnderRoot();
      const umountErrors: string[] = [];
      await umountAllWhere(atOrUnder(this.root), umountErrors);
      errors.push(...umountErrors.map((e) => (e.startsWith('still mounted: ') ? `still mounted, temp dir kept: ${e.slice(15)}` : e)));
      if ((await this.mountsUnderRoot()).length === 0) await rm(this.root, { recursive: true, force: true });
    } catch (e) {
      errors.push(`cleanup: ${(e as Error).message}`);
    }
    for (const f of this.shmFiles.splice(0)) {
      await rm(f, { force: true }).catch(() => undefined);
      await rm(`${f}.tmp`, { force: true }).catch(() => undefined);
    }
    return { leftoverMounts: leftover, errors, crashed };
  }

  /** Children that ended without being stopped, with how and their last output. */
  crashedChildren(): string[] {
    return this.children.flatMap((c) => {
      const how = c.unexpectedExit();
      const tail = c.recentOutput();
      return how ? [`${c.name} (pid ${c.pid}) died: ${how}${tail ? `\n${tail}` : ''}`] : [];
    });
  }
}
