// The driver's FUSE connections (docs/fuse-design.md, docs/audit.md). The
// main one never answers OPEN, so the kernel turns its connection-wide
// no_open mode on and opens never reach us (tmpfs-fast reads). Audited
// volumes live on a second connection, mounted next to the first
// (auditMountDir) at the first audited publish, which answers every OPEN so
// each open can be logged. A volume stays on the connection it was created
// on for its life, takeovers included; everything the volume layer does to a
// volume goes to that connection.

import type { VolumeGroup } from './inode-table.js';
import type { Caller } from './operations.js';
import type { SecretsFilesystem, FilesystemOptions, VolumeHandle } from './filesystem.js';
import type { PublishResult, VolumeFile } from './volume-tree.js';
import type { WindowLimits, WindowResult } from './write-window.js';
import type { AbortResult } from './connection-abort.js';

/** Where the audit connection is mounted: a sibling of the main one, so the same host directory holds both. */
export function auditMountDir(mountDir: string): string {
  return `${mountDir}-audit`;
}

/** What the volume layer needs of the filesystem: one connection (tests) or both (Connections). */
export interface VolumeFilesystem {
  /** Whether a volume may ask for read audit here (absent: no, a lone connection that never sees opens). */
  readonly auditAvailable?: boolean;
  createVolume(name: string, group: VolumeGroup, audited: boolean): VolumeHandle | Promise<VolumeHandle>;
  volume(name: string): VolumeHandle | undefined;
  publish(v: VolumeHandle, files: readonly VolumeFile[], now?: Date): Promise<PublishResult>;
  openWindow(v: VolumeHandle, mayWrite: (pid: number) => boolean, limits?: WindowLimits): void;
  closeWindow(v: VolumeHandle): WindowResult | null;
  releaseWindow(v: VolumeHandle): Promise<void>;
  destroyVolume(v: VolumeHandle): Promise<void>;
}

/** How a connection comes to be: mounted afresh, or adopted from a previous process (restart survival). */
export type Mounter = (o: FilesystemOptions) => Promise<SecretsFilesystem>;

export interface ConnectionsOptions {
  /** Options shared by both connections; mountDir is the main one's, answerOpens and onOpen are set per connection. */
  readonly base: Omit<FilesystemOptions, 'answerOpens' | 'onOpen'>;
  /** Whether audited volumes may be served (--audit-reads); false refuses them. */
  readonly auditAllowed: boolean;
  /** Every OPEN answered, with a test for the volumes of the connection it came from (node ids are per connection). */
  readonly onOpen?: (nodeid: number, caller: Caller, owns: (v: VolumeHandle) => boolean) => void;
  /** Mounts the audit connection afresh (SecretsFilesystem.mount); then told of it (the keeper takes its fd). */
  readonly mountAudit: Mounter;
  readonly onAuditMounted?: (fs: SecretsFilesystem) => void;
}

export class Connections implements VolumeFilesystem {
  private auditFs: SecretsFilesystem | null = null;
  private mounting: Promise<SecretsFilesystem> | null = null;
  /** Handles of the audit connection's volumes (both connections may use the same names' shapes and ids). */
  private readonly onAudit = new WeakSet<VolumeHandle>();

  constructor(
    readonly main: SecretsFilesystem,
    private readonly o: ConnectionsOptions,
  ) {}

  /** Options for a connection at `mountDir` that answers OPEN or not. */
  static optionsFor(
    o: ConnectionsOptions,
    mountDir: string,
    answerOpens: boolean,
    owner: () => SecretsFilesystem | null,
  ): FilesystemOptions {
    const onOpen = o.onOpen;
    return {
      ...o.base,
      mountDir,
      answerOpens,
      ...(onOpen ? { onOpen: (id: number, c: Caller) => onOpen(id, c, (v) => Connections.owner(owner(), v)) } : {}),
    };
  }

  private static owner(fs: SecretsFilesystem | null, v: VolumeHandle): boolean {
    return fs !== null && fs.volume(v.name) === v;
  }

  /** Takes over the audit connection of a previous process (its volumes stay audited). */
  adoptAudit(fs: SecretsFilesystem, names: readonly string[]): void {
    this.auditFs = fs;
    for (const n of names) {
      const v = fs.volume(n);
      if (v) this.onAudit.add(v);
    }
  }

  get audit(): SecretsFilesystem | null {
    return this.auditFs;
  }

  /** Both connections, the main one first. */
  all(): SecretsFilesystem[] {
    return this.auditFs ? [this.main, this.auditFs] : [this.main];
  }

  get auditAvailable(): boolean {
    return this.o.auditAllowed;
  }

  /** The audit connection, mounted at the first call (concurrent callers share the mount). */
  private async auditConnection(): Promise<SecretsFilesystem> {
    if (this.auditFs) return this.auditFs;
    this.mounting ??= (async () => {
      try {
        let fs: SecretsFilesystem | null = null;
        fs = await this.o.mountAudit(Connections.optionsFor(this.o, auditMountDir(this.main.mountDir), true, () => fs));
        this.auditFs = fs;
        this.o.onAuditMounted?.(fs);
        return fs;
      } finally {
        this.mounting = null;
      }
    })();
    return this.mounting;
  }

  private of(v: VolumeHandle): SecretsFilesystem {
    return this.auditFs && this.onAudit.has(v) ? this.auditFs : this.main;
  }

  async createVolume(name: string, group: VolumeGroup, audited: boolean): Promise<VolumeHandle> {
    if (!audited) {
      if (this.auditFs?.volume(name)) throw new Error(`volume ${name} exists`);
      return this.main.createVolume(name, group);
    }
    if (this.main.volume(name)) throw new Error(`volume ${name} exists`);
    const v = (await this.auditConnection()).createVolume(name, group);
    this.onAudit.add(v);
    return v;
  }

  volume(name: string): VolumeHandle | undefined {
    return this.main.volume(name) ?? this.auditFs?.volume(name);
  }

  publish(v: VolumeHandle, files: readonly VolumeFile[], now?: Date): Promise<PublishResult> {
    return this.of(v).publish(v, files, now);
  }

  openWindow(v: VolumeHandle, mayWrite: (pid: number) => boolean, limits?: WindowLimits): void {
    this.of(v).openWindow(v, mayWrite, limits);
  }

  closeWindow(v: VolumeHandle): WindowResult | null {
    return this.of(v).closeWindow(v);
  }

  releaseWindow(v: VolumeHandle): Promise<void> {
    return this.of(v).releaseWindow(v);
  }

  destroyVolume(v: VolumeHandle): Promise<void> {
    return this.of(v).destroyVolume(v);
  }

  /** Inodes and file bytes of both connections (metrics). */
  stats(): { inodes: number; fileBytes: number } {
    const s = this.all().map((fs) => fs.table.stats());
    return { inodes: s.reduce((n, x) => n + x.inodes, 0), fileBytes: s.reduce((n, x) => n + x.fileBytes, 0) };
  }

  /** Waits for a lazy mount under way (its fd must reach the keeper before a handover or stop). */
  async mounted(): Promise<void> {
    await this.mounting?.catch(() => undefined);
  }

  async settle(): Promise<void> {
    await this.mounted();
    await Promise.all(this.all().map((fs) => fs.settle()));
  }

  /** Stops serving both without unmounting: another process serves them now. */
  detach(): void {
    for (const fs of this.all()) fs.detach();
  }

  /** Unmounts and ends both (see SecretsFilesystem.close); the aborts that were needed, by mount directory. */
  async close(): Promise<Array<{ mountDir: string; aborted: AbortResult }>> {
    await this.mounted();
    const res = await Promise.all(this.all().map(async (fs) => ({ mountDir: fs.mountDir, aborted: await fs.close() })));
    return res.flatMap((r) => (r.aborted ? [{ mountDir: r.mountDir, aborted: r.aborted }] : []));
  }
}
