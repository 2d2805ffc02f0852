// Sends the keeper the driver state (filesystem and volume records)
// synchronously after every change, so a process taking over after a crash
// knows every node id the kernel may ask about and every served volume: the
// records that changed (records.ts), or to a keeper from before records the
// whole state each time.

import type { Logger } from 'pino';
import type { Connections } from '../fuse/connections.js';
import type { KeeperClient } from './keeper-client.js';
import { encodeState } from './state.js';
import { encodeDelta } from './record-codec.js';
import { DriverRecords, type RecordVolumes } from './records.js';
import type { VolumeRecordState } from '../volume/types.js';

export interface SnapshotSources {
  /** Both connections: the audit one's state and bytes follow the main one's. */
  readonly fs: Connections;
  readonly volumes: RecordVolumes & { export(): VolumeRecordState[] };
}

export class KeeperSnapshots {
  private sources: SnapshotSources | null = null;
  private soon: NodeJS.Immediate | null = null;
  /** Set at the first send to a keeper that takes records: that send has every record (reset). */
  private records: DriverRecords | null = null;

  constructor(
    private readonly keeper: KeeperClient | null,
    /** Memory for the encoded state (locked, non-dumpable). */
    private readonly alloc: (size: number) => Buffer,
    private readonly log: Logger,
  ) {}

  /**
   * What snapshots are made of from now on. Until the driver serves (while a
   * connection is adopted and its volumes restored) nothing is sent: the
   * keeper keeps the previous driver's state, which is still the truth.
   */
  serve(sources: SnapshotSources): void {
    this.sources = sources;
  }

  /**
   * A snapshot soon, once for a burst of calls: for changes that only drop
   * something (inodes the kernel forgot), which a successor need not learn
   * before the next FUSE reply, but which must not outlive the driver's copy
   * in the keeper's memory.
   */
  sendSoon(): void {
    if (this.soon) return;
    this.soon = setImmediate(() => {
      this.soon = null;
      this.send();
    });
  }

  send(): void {
    if (this.records && !this.keeper?.connected) {
      this.records.stop(); // the keeper is gone for good: nothing to track changes for
      this.records = null;
    }
    if (!this.keeper?.connected || !this.sources) return;
    if (this.keeper.takesRecords) {
      this.sendRecords(this.keeper, this.sources);
      return;
    }
    const main = this.sources.fs.main.exportState();
    const audit = this.sources.fs.audit?.exportState();
    const buf = encodeState(
      { version: 1, fs: main.state, ...(audit ? { auditFs: audit.state } : {}), volumes: this.sources.volumes.export() },
      audit ? [...main.data, ...audit.data] : main.data,
      this.alloc,
    );
    if (!this.keeper.snapshot(buf))
      this.log.warn({ bytes: buf.length }, 'the keeper did not take the state in time; a crash now could lose the newest version');
    buf.fill(0);
  }

  private sendRecords(keeper: KeeperClient, src: SnapshotSources): void {
    this.records ??= new DriverRecords(this.alloc);
    const d = this.records.delta(src.fs.main, src.fs.audit, src.volumes);
    if (!d.reset && d.upserts.length === 0 && d.deletes.length === 0) return;
    const buf = encodeDelta(d, this.alloc);
    for (const [, b] of d.upserts) b.fill(0);
    if (!keeper.sendRecords(buf))
      this.log.warn({ bytes: buf.length }, 'the keeper did not take the state in time; a crash now could lose the newest version');
    buf.fill(0);
  }
}
