// Who opened which secret file: for volumes with read audit on, one log line
// per open (the caller's pod and container from its cgroup, uid, pid, file
// path and version; never contents) and a counter by the volume's pod and
// file. Opens reach the driver only on a connection that answers OPEN
// (FilesystemOptions.answerOpens, docs/audit.md): the audit connection.

import type { Caller } from '../fuse/operations.js';
import type { VolumeHandle } from '../fuse/filesystem.js';
import { AUDIT_READS_ATTRIBUTE } from '../csi/volume-context.js';
import type { AuditedOpenLabels } from './metrics.js';
import type { PodCgroup } from './cgroup-pod.js';

/** Read audit asked for: "true" under the audit key in any of the sources (volume attributes, SPC parameters). */
export function auditRequested(...sources: ReadonlyArray<Readonly<Record<string, string>>>): boolean {
  return sources.some((s) => s[AUDIT_READS_ATTRIBUTE]?.trim().toLowerCase() === 'true');
}

/** The volume an audited file belongs to. */
export interface AuditedVolume {
  readonly targetPath: string;
  readonly podNamespace: string;
  readonly podName: string;
  readonly podUid: string;
  readonly handle: VolumeHandle;
}

export interface AuditLogger {
  info(obj: object, msg: string): void;
}

export interface AuditMetrics {
  auditedOpen(labels: AuditedOpenLabels): void;
  forgetAuditedOpens(labels: readonly AuditedOpenLabels[]): void;
}

export interface ReadAuditOptions {
  readonly log: AuditLogger;
  readonly metrics?: AuditMetrics;
  /** Thread id (what the kernel stamps on a request) to process id. */
  readonly processOf: (tid: number) => number;
  /** The pod and container of a process (cgroup-pod.ts podOfProcess). */
  readonly podOf: (pid: number) => PodCgroup | null;
}

interface Watched {
  readonly vol: AuditedVolume;
  /** Metric series made for this volume, removed when it goes ("namespace\0pod\0file" keys). */
  readonly series: Map<string, AuditedOpenLabels>;
}

export class ReadAudit {
  /** By handle: node ids are per connection, and there may be two. */
  private readonly watched = new Map<VolumeHandle, Watched>();

  constructor(private readonly o: ReadAuditOptions) {}

  /** Starts auditing opens of `vol`'s files. */
  watch(vol: AuditedVolume): void {
    this.watched.set(vol.handle, { vol, series: new Map() });
  }

  /** Stops auditing `handle`'s volume and drops its metric series. */
  unwatch(handle: VolumeHandle): void {
    const w = this.watched.get(handle);
    if (!w) return;
    this.watched.delete(handle);
    this.o.metrics?.forgetAuditedOpens([...w.series.values()]);
  }

  get size(): number {
    return this.watched.size;
  }

  /**
   * A file open answered by a connection; logs and counts it when the file is
   * in an audited volume of that connection (`owns`: all when absent).
   */
  onOpen(nodeid: number, caller: Caller, owns: (v: VolumeHandle) => boolean = () => true): void {
    if (this.watched.size === 0) return;
    for (const w of this.watched.values()) {
      if (!owns(w.vol.handle)) continue;
      const f = w.vol.handle.tree.describe(nodeid);
      if (!f) continue;
      const pid = this.o.processOf(caller.pid);
      const pod = this.o.podOf(pid);
      const { vol } = w;
      this.o.log.info(
        {
          audit: 'open',
          pod: pod?.podUid ?? '',
          container: pod?.containerId ?? '',
          uid: caller.uid,
          gid: caller.gid,
          pid,
          file: f.path,
          version: f.version,
          volumePod: `${vol.podNamespace}/${vol.podName}`,
          volumePodUid: vol.podUid,
          targetPath: vol.targetPath,
        },
        'secret file opened',
      );
      const labels: AuditedOpenLabels = { namespace: vol.podNamespace, pod: vol.podName, file: f.path };
      w.series.set(`${labels.namespace}\0${labels.pod}\0${labels.file}`, labels);
      this.o.metrics?.auditedOpen(labels);
      return;
    }
  }
}
