// The volume layer's types at its boundaries: what the CSI server hands in,
// what status writers and events get out, and the record a process taking
// over receives.

import type { VolumeHandle } from '../fuse/filesystem.js';

export interface PublishRequest {
  readonly volumeId: string;
  readonly targetPath: string;
  readonly readonly: boolean;
  /**
   * The pod's fsGroup (volume_mount_group): the volume's files and
   * directories are served to this group. Absent or null: root:root.
   */
  readonly volumeMountGroup?: number | null;
  readonly volumeContext: Readonly<Record<string, string>>;
  readonly secrets: Readonly<Record<string, string>>;
  /** The caller's deadline; provider calls never outlive it. */
  readonly deadline: Date | null;
  /** Told the provider's name as soon as it is known, so a failed publish can be reported with it. */
  readonly onProvider?: (provider: string) => void;
}

export interface ObjectVersion {
  readonly id: string;
  readonly version: string;
}

/** A volume as handed to a process that takes over (publish secrets and tokens included: memory only). */
export interface VolumeRecordState {
  readonly targetPath: string;
  readonly volumeId: string;
  readonly podName: string;
  readonly podNamespace: string;
  readonly podUid: string;
  readonly spcName: string;
  readonly provider: string;
  readonly volumeContext: Record<string, string>;
  readonly secrets: Record<string, string>;
  readonly objectVersions: ObjectVersion[];
  /** The volume's directory under the FUSE root. */
  readonly dirName: string;
  readonly mock: boolean;
  /**
   * When the volume was last published or polled (ms since the epoch), so
   * that a driver taking over keeps its poll cadence: one restarted more
   * often than the poll interval must still poll.
   */
  readonly lastPolledAt?: number;
  /** Every open of its files is logged and counted (docs/audit.md). Absent: off. */
  readonly auditReads?: boolean;
}

/** What a publish or a poll may change in a served volume (through VolumeState.update). */
export interface VolumeChanges {
  readonly provider: string;
  readonly volumeContext: Readonly<Record<string, string>>;
  readonly secrets: Readonly<Record<string, string>>;
  readonly objectVersions: readonly ObjectVersion[];
  readonly lastPolledAt: number;
}

/** A served volume: who it is for, what may change (VolumeChanges), and its FUSE directory. */
export type Volume = Omit<VolumeRecordState, 'dirName' | keyof VolumeChanges> &
  VolumeChanges & {
    readonly handle: VolumeHandle;
  };

/** Who a volume is for and where its content comes from, known before the provider is called. */
export interface VolumeOwner {
  readonly podName: string;
  readonly podNamespace: string;
  readonly spcName: string;
  readonly provider: string;
}

export interface VolumeStatus {
  readonly targetPath: string;
  readonly podName: string;
  readonly podNamespace: string;
  readonly podUid: string;
  readonly spcName: string;
  readonly provider: string;
  readonly objectVersions: readonly ObjectVersion[];
  readonly files: readonly string[];
}
