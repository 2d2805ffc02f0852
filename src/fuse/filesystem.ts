// One FUSE connection per node (docs/fuse-design.md says why): the connection
// root is mounted once in a directory only the driver sees, each volume is a
// directory of it, and that directory (sourcePath) is bind-mounted read-only
// onto the kubelet's target path (src/mount/target-lifecycle.ts).

import { openSync, closeSync } from 'node:fs';
import { mkdir, realpath } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { InodeTable, ROOT_ID, type Inode, type TableState, type VolumeGroup } from './inode-table.js';
import { Operations, type Caller, type Negotiated } from './operations.js';
import { FuseSession, type SessionLogger, type CallerRecord } from './session.js';
import {
  VolumeTree,
  type VolumeFile,
  type PublishResult,
  type VolumeTreeState,
  type EntryInvalidation,
  type RotationStep,
} from './volume-tree.js';
import { mountFuse, unmount } from '../mount/commands.js';
import { readMountInfo } from '../mount/mountinfo.js';
import { abortFuseConnection, fuseConnectionId, type AbortResult } from './connection-abort.js';
import { WriteWindow, type WindowLimits, type WindowResult } from './write-window.js';
import { VfsSteps, type ForkSyscalls } from './vfs-steps.js';
import { threadGroupOf } from './thread-group.js';

export const FSNAME = 'secrets-store';
/**
 * The mount source: names the directory the connection is mounted at, so
 * every bind of it (each volume's target path) says which driver it came
 * from, and a driver recognises its own mounts among others'.
 */
export function fuseSource(mountDir: string): string {
  return `${FSNAME}@${mountDir}`;
}
export const SUBTYPE = 'secrets-store-csi';
/** Largest request the kernel may send us (WRITE payload), and our read buffer. */
const MAX_WRITE = 128 * 1024;
const BUFFER_SIZE = MAX_WRITE + 64 * 1024;

export interface FilesystemOptions {
  /** Directory where the connection root is mounted (private to the driver). */
  readonly mountDir: string;
  readonly log: SessionLogger;
  /** Seconds the kernel caches names and attributes (invalidated explicitly on rotation). */
  readonly cacheTtl?: number;
  readonly readers?: number;
  readonly onRequest?: (opcode: number, nodeid: number, caller: Caller) => void;
  /**
   * Answer every file OPEN (see OperationsOptions.answerOpens), so that opens
   * reach onOpen (read audit). A property of the connection: a process taking
   * one over keeps what it was mounted with.
   */
  readonly answerOpens?: boolean;
  /** Every file open, when answerOpens (`pid` is the calling thread's id, see thread-group.ts). */
  readonly onOpen?: (nodeid: number, caller: Caller) => void;
  readonly onFree?: (inode: Inode) => void;
  /** Memory for file contents (locked, non-dumpable pages in the driver). */
  readonly alloc?: (size: number) => Buffer;
  /** How long a replaced version stays reachable by its directory name (see VolumeTree). */
  readonly retireGraceMs?: number;
  /**
   * Called synchronously after new inodes were created, before the kernel can
   * learn their ids: the keeper's snapshot must hold every id the kernel may
   * ask about, or a process taking over would not know them.
   */
  readonly onMutation?: () => void;
  /**
   * Makes a rotation's directory changes through the VFS, in a forked child,
   * so that inotify watchers see them (vfs-steps.ts); the native addon's
   * forkSyscalls (nativeForkSyscalls). Without it the switch happens inside
   * the table and only the kernel's caches are invalidated.
   */
  readonly forkSyscalls?: ForkSyscalls;
}

/** The whole filesystem state a process taking the connection over needs (bytes in `data`). */
export interface FilesystemState {
  readonly mountDir: string;
  readonly negotiated: Negotiated | null;
  /** Whether this connection answers OPEN (absent: it does not; the kernel may have turned no_open on). */
  readonly answersOpens?: boolean;
  readonly table: TableState;
  readonly volumes: Array<{ name: string; tree: VolumeTreeState }>;
}

export interface VolumeHandle {
  readonly name: string;
  readonly tree: VolumeTree;
  /** Path of the volume directory under the connection root. */
  readonly sourcePath: string;
}

export class SecretsFilesystem {
  private readonly volumes = new Map<string, VolumeHandle>();

  private constructor(
    readonly mountDir: string,
    readonly table: InodeTable,
    readonly ops: Operations,
    readonly session: FuseSession,
    /** Volume directory ids: their listing changes, so their attributes are cached briefly. */
    private readonly volumeDirIds: Set<number>,
    private readonly retireGraceMs: number,
    private readonly onMutation: (() => void) | undefined,
    /** Open write windows by volume directory id (see write-window.ts). */
    private readonly windows: Map<number, WriteWindow>,
    private readonly steps: VfsSteps | null,
    private readonly log: SessionLogger,
  ) {}

  /** Set by settle/detach: no more directory changes from this process. */
  private stopped = false;

  private readonly sweepTimers = new Map<string, NodeJS.Timeout>();
  /** Volumes whose removal pass (old versions, file by file) is under way. */
  private readonly sweeping = new Set<VolumeHandle>();

  /** Opens /dev/fuse, mounts the root at mountDir and starts serving. */
  static async mount(o: FilesystemOptions): Promise<SecretsFilesystem> {
    // A mount left here by a previous driver process is dead (its connection
    // went with it; even mkdir on it fails with ENOTCONN): detach it first so
    // the new one is not stacked on a corpse.
    // mountinfo shows resolved paths (/var/run is /run on most distributions);
    // resolve the parent, since the directory itself may be a dead mount.
    await mkdir(dirname(o.mountDir), { recursive: true, mode: 0o700 });
    const mountDir = join(await realpath(dirname(o.mountDir)), basename(o.mountDir));
    for (const m of (await readMountInfo()).reverse()) {
      if (m.mountPoint === mountDir) await unmount(mountDir, { lazy: true }).catch(() => undefined);
    }
    await mkdir(mountDir, { recursive: true, mode: 0o700 });
    const table = new InodeTable(SecretsFilesystem.tableOptions(o));
    const fd = openSync('/dev/fuse', 'r+');
    const fs = SecretsFilesystem.assemble(o, mountDir, table, fd, new Set(), o.answerOpens ?? false);
    try {
      await mountFuse(fd, mountDir, { fsname: fuseSource(mountDir), subtype: SUBTYPE });
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    fs.session.start();
    return fs;
  }

  private static tableOptions(o: FilesystemOptions): { onFree?: (inode: Inode) => void; alloc?: (size: number) => Buffer } {
    return { ...(o.onFree ? { onFree: o.onFree } : {}), ...(o.alloc ? { alloc: o.alloc } : {}) };
  }

  private static assemble(
    o: FilesystemOptions,
    mountDir: string,
    table: InodeTable,
    fd: number,
    volumeDirs: Set<number>,
    answerOpens: boolean,
  ): SecretsFilesystem {
    const ttl = o.cacheTtl ?? 86_400;
    const windows = new Map<number, WriteWindow>();
    const lookup = {
      forDir: (dirId: number) => windows.get(dirId),
      forInode: (id: number) => {
        for (const w of windows.values()) if (w.owns(id)) return w;
        return undefined;
      },
    };
    const steps = o.forkSyscalls ? new VfsSteps(o.forkSyscalls) : null;
    const ops = new Operations(
      table,
      {
        entryTtl: ttl,
        attrTtl: ttl,
        dirAttrTtl: 1,
        maxWrite: MAX_WRITE,
        ...(o.onRequest ? { onRequest: o.onRequest } : {}),
        answerOpens,
        ...(o.onOpen ? { onOpen: o.onOpen } : {}),
      },
      (id) => id === ROOT_ID || volumeDirs.has(id),
      lookup,
      threadGroupOf,
      steps,
    );
    const session = new FuseSession(fd, ops, { readers: o.readers ?? 2, bufferSize: BUFFER_SIZE, log: o.log, callerHistory: 256 });
    return new SecretsFilesystem(mountDir, table, ops, session, volumeDirs, o.retireGraceMs ?? 2000, o.onMutation, windows, steps, o.log);
  }

  /**
   * Takes over a live connection from a previous process: the same inode
   * table and volumes, served on `fd` (already mounted and initialised, so no
   * mount and no INIT), then asks the kernel to resend what the previous
   * process had read but not answered.
   */
  static async adopt(o: FilesystemOptions, fd: number, state: FilesystemState, blob: Buffer): Promise<SecretsFilesystem> {
    const table = InodeTable.restore(state.table, blob, SecretsFilesystem.tableOptions(o));
    // Whether OPEN is answered is the connection's, not this process's flag: once
    // answered ENOSYS the kernel never sends OPEN again on it.
    const fs = SecretsFilesystem.assemble(
      o,
      state.mountDir,
      table,
      fd,
      new Set(state.volumes.map((v) => v.tree.dirId)),
      state.answersOpens ?? false,
    );
    fs.ops.negotiated = state.negotiated;
    // A switch the previous process was making when it died is finished here.
    const unfinished: EntryInvalidation[] = [];
    for (const v of state.volumes) {
      const tree = VolumeTree.restore(table, v.tree, fs.retireGraceMs);
      unfinished.push(...tree.rollForward());
      fs.volumes.set(v.name, { name: v.name, tree, sourcePath: join(state.mountDir, v.name) });
      fs.scheduleSweep(fs.volumes.get(v.name)!);
    }
    fs.session.start();
    await fs.session.resend();
    if (unfinished.length > 0) {
      fs.onMutation?.();
      await fs.session.invalidateEntries(unfinished);
    }
    return fs;
  }

  /** The state to hand to a process that takes the connection over; `data` are views, copy them at once. */
  exportState(): { state: FilesystemState; data: Buffer[] } {
    const t = this.table.exportState();
    return {
      state: {
        mountDir: this.mountDir,
        negotiated: this.ops.negotiated,
        answersOpens: this.answersOpens,
        table: t.state,
        volumes: [...this.volumes.values()].map((v) => ({ name: v.name, tree: v.tree.exportState() })),
      },
      data: t.data,
    };
  }

  /** Whether every file open reaches this process (the connection's mode, see FilesystemOptions.answerOpens). */
  get answersOpens(): boolean {
    return this.ops.answersOpens;
  }

  /** The volumes served (the keeper's records find each one's by its directory id). */
  handles(): IterableIterator<VolumeHandle> {
    return this.volumes.values();
  }

  /** The volume directory named `name`, if served. */
  volume(name: string): VolumeHandle | undefined {
    return this.volumes.get(name);
  }

  /** Stops making directory changes and waits for the ones under way (before a handover). */
  async settle(): Promise<void> {
    this.stopped = true;
    for (const t of this.sweepTimers.values()) clearTimeout(t);
    this.sweepTimers.clear();
    await this.steps?.settled();
  }

  /** Stops serving without unmounting anything: another process serves the connection now. */
  detach(): void {
    this.stopped = true;
    for (const t of this.sweepTimers.values()) clearTimeout(t);
    this.sweepTimers.clear();
    this.session.close();
  }

  /** Creates an empty volume directory named `name` under the root, served to `group` (see ownedMode). */
  createVolume(name: string, group: VolumeGroup = null): VolumeHandle {
    if (this.volumes.has(name) || this.table.child(ROOT_ID, name)) throw new Error(`volume ${name} exists`);
    const dir = this.table.mkdir(0o755, Date.now(), group);
    this.table.link(ROOT_ID, name, dir.id);
    this.volumeDirIds.add(dir.id);
    const tree = new VolumeTree(this.table, dir.id, this.retireGraceMs, group);
    const v: VolumeHandle = { name, tree, sourcePath: join(this.mountDir, name) };
    this.volumes.set(name, v);
    return v;
  }

  /**
   * Serves `files` as the volume's new version. Resolves once the kernel has
   * dropped the old names, so every open that starts afterwards sees the new
   * version.
   */
  async publish(v: VolumeHandle, files: readonly VolumeFile[], now = new Date()): Promise<PublishResult> {
    // A volume's first version is linked in the table directly: nobody can
    // watch a volume before kubelet has it, and a switch by syscalls costs a
    // fork and about ten FUSE round trips (bench section 6).
    if (!this.steps || v.tree.dataDir === null) {
      const res = v.tree.publish(files, now);
      if (res.changed) this.onMutation?.();
      if (res.invalidations.length > 0) await this.session.invalidateEntries(res.invalidations);
      this.scheduleSweep(v);
      return res;
    }
    const plan = v.tree.prepare(files, now);
    if (!plan) return { changed: false, invalidations: [], dataDir: v.tree.dataDir! };
    // The new inodes exist now; the kernel learns their ids from the steps'
    // replies. One snapshot, with the version pending: a process taking over
    // finishes the switch from it (rollForward), so none is needed after.
    this.onMutation?.();
    const inval = await this.perform(v, plan.steps);
    v.tree.commit();
    if (inval.length > 0) await this.session.invalidateEntries(inval);
    this.scheduleSweep(v);
    return { changed: true, invalidations: inval, dataDir: plan.tsName };
  }

  /**
   * Makes each step through the VFS; a step the kernel did not ask us for
   * (the syscall failed before reaching us) is applied here instead and its
   * names invalidated, as without VFS steps. Returns those invalidations.
   */
  private async perform(v: VolumeHandle, steps: readonly RotationStep[]): Promise<EntryInvalidation[]> {
    const outcomes = this.stopped
      ? steps.map(() => 'not-applied' as const)
      : await this.steps!.run(steps, (s) => (s.dir ? join(v.sourcePath, s.dir) : v.sourcePath));
    // Destroyed meanwhile (an unpublish during a removal pass): its tree is scrubbed and unlinked, so the
    // steps that failed on the way there have nothing left to apply.
    if (this.volumes.get(v.name) !== v) return [];
    const inval: EntryInvalidation[] = [];
    steps.forEach((step, i) => {
      const outcome = outcomes[i];
      if (outcome === 'vfs') return;
      if (outcome === 'not-applied') step.apply();
      inval.push({ parent: step.parent, name: step.name });
      if (step.kind === 'rename') inval.push({ parent: step.parent, name: step.to });
    });
    return inval;
  }

  /** Removes the names of replaced versions once their grace period is over. */
  private scheduleSweep(v: VolumeHandle): void {
    // One removal pass per volume at a time: a rotation during a pass must not start another on the same
    // retired directory, whose steps would then be made twice.
    if (this.sweepTimers.has(v.name) || this.sweeping.has(v) || this.stopped) return;
    const due = v.tree.nextSweepIn(Date.now());
    if (due === null) return;
    const live = (): boolean => this.volumes.get(v.name) === v && !this.stopped;
    const timer = setTimeout(() => {
      this.sweepTimers.delete(v.name);
      if (!live()) return;
      if (!this.steps) {
        const inval = v.tree.sweep(Date.now());
        void this.session.invalidateEntries(inval).then(() => this.scheduleSweep(v));
        return;
      }
      // Removed file by file, as `rm -r` does: watchers of a file see it deleted.
      this.sweeping.add(v);
      void (async () => {
        try {
          for (const name of v.tree.dueRetired(Date.now())) {
            if (!live()) return; // a handover: the next driver removes it
            const inval = await this.perform(v, v.tree.removalSteps(name));
            v.tree.removed(name);
            if (inval.length > 0) await this.session.invalidateEntries(inval);
          }
        } finally {
          this.sweeping.delete(v);
        }
        if (live()) this.scheduleSweep(v);
      })().catch((e: unknown) => {
        // A bug here must not take the process (and every mount's server) down: the old names stay until the next rotation retries.
        this.log.warn({ err: (e as Error).message, volume: v.name }, 'removing old versions failed');
      });
    }, due + 5);
    timer.unref();
    this.sweepTimers.set(v.name, timer);
  }

  /**
   * Lets the process that `mayWrite` accepts (by pid) create, write, chmod,
   * rename and unlink files in the volume's directory until closeWindow,
   * within `limits`.
   */
  openWindow(v: VolumeHandle, mayWrite: (pid: number) => boolean, limits?: WindowLimits): void {
    this.windows.get(v.tree.dirId)?.release();
    this.windows.set(v.tree.dirId, new WriteWindow(this.table, v.tree.dirId, mayWrite, v.tree.group, limits));
  }

  /** Ends the volume's window: no more writes. The staged files are views until releaseWindow. */
  closeWindow(v: VolumeHandle): WindowResult | null {
    return this.windows.get(v.tree.dirId)?.close() ?? null;
  }

  /** Drops the staged files and has the kernel look every name the provider touched up again. */
  async releaseWindow(v: VolumeHandle): Promise<void> {
    const w = this.windows.get(v.tree.dirId);
    if (!w) return;
    this.windows.delete(v.tree.dirId);
    w.release();
    await this.session.invalidateEntries([...w.touched].map((name) => ({ parent: v.tree.dirId, name })));
  }

  /**
   * Removes a volume: the name goes, every byte is zeroed now, and the kernel
   * is told to drop its cached pages; inodes stay (empty) until forgotten.
   */
  async destroyVolume(v: VolumeHandle): Promise<void> {
    if (this.volumes.get(v.name) !== v) return;
    this.volumes.delete(v.name);
    clearTimeout(this.sweepTimers.get(v.name));
    this.sweepTimers.delete(v.name);
    const dirId = v.tree.dirId;
    const touched = this.table.scrub(dirId);
    this.table.unlink(ROOT_ID, v.name);
    this.volumeDirIds.delete(dirId);
    await this.session.invalidateEntries([{ parent: ROOT_ID, name: v.name }]);
    await Promise.all(touched.map((id) => this.session.invalidateInode(id)));
  }

  recentCallers(): readonly CallerRecord[] {
    return this.session.recentCallers();
  }

  /**
   * Unmounts the root and ends the connection. It ends by itself once no
   * mount refers to it; if one still does after `graceMs` (a pod's bind
   * mount, in any mount namespace), it is aborted: nobody would answer it
   * after us, and our reads of /dev/fuse would block their threads for good.
   * Returns how the abort went, or null when none was needed.
   */
  async close(graceMs = 2000): Promise<AbortResult | null> {
    const id = await fuseConnectionId(this.mountDir).catch(() => null);
    await unmount(this.mountDir, { lazy: true }).catch(() => undefined);
    const wait = (ms: number): Promise<boolean> =>
      Promise.race([this.session.done.then(() => true), new Promise<boolean>((r) => setTimeout(r, ms, false).unref())]);
    let aborted: AbortResult | null = null;
    if (!(await wait(graceMs))) {
      aborted =
        id === null
          ? { method: 'failed', error: `no FUSE mount at ${this.mountDir} to find the connection by` }
          : await abortFuseConnection(id);
      await wait(1000);
    }
    this.session.close();
    return aborted;
  }
}
