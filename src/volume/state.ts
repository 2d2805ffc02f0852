// The registry of served volumes, by target path: get, add, update, delete.
// Every change a process taking over must know is persisted through one
// hook (the keeper snapshot, which also carries the filesystem); the
// filesystem's own changes call the same hook through persist().

import type { VolumeHandle } from '../fuse/filesystem.js';
import type { ObjectVersion, Volume, VolumeChanges, VolumeRecordState, VolumeStatus } from './types.js';

export interface VolumeStateOptions {
  /** The one persistence hook: takes the whole state (export()) wherever it must survive this process. */
  readonly persist: () => void;
  /** Told the number of volumes after every add and delete (the volumes gauge). */
  readonly onCount?: (count: number) => void;
  /** Told each volume added or adopted, and each deleted (read audit). */
  readonly onServed?: (v: Volume) => void;
  readonly onGone?: (v: Volume) => void;
}

/**
 * When an update reaches the persistence hook: 'now'; 'on-flush', at the
 * next flush() unless a persist (a filesystem change) carries it first; or
 * 'with-next', whenever the next persist happens (changes a successor can do
 * without, such as the last poll time).
 */
export type PersistWhen = 'now' | 'on-flush' | 'with-next';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function sameRecord(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

export function sameVersions(a: readonly ObjectVersion[], b: readonly ObjectVersion[]): boolean {
  if (a.length !== b.length) return false;
  const m = new Map(a.map((v) => [v.id, v.version]));
  return b.every((v) => m.get(v.id) === v.version);
}

function changes(v: Volume, patch: Partial<VolumeChanges>): boolean {
  return (
    (patch.provider !== undefined && patch.provider !== v.provider) ||
    (patch.volumeContext !== undefined && !sameRecord(patch.volumeContext, v.volumeContext)) ||
    (patch.secrets !== undefined && !sameRecord(patch.secrets, v.secrets)) ||
    (patch.objectVersions !== undefined && !sameVersions(patch.objectVersions, v.objectVersions)) ||
    (patch.lastPolledAt !== undefined && patch.lastPolledAt !== v.lastPolledAt)
  );
}

export function toStatus(v: Volume): VolumeStatus {
  return {
    targetPath: v.targetPath,
    podName: v.podName,
    podNamespace: v.podNamespace,
    podUid: v.podUid,
    spcName: v.spcName,
    provider: v.provider,
    objectVersions: [...v.objectVersions].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    files: v.handle.tree.paths(),
  };
}

function recordState(v: Volume): VolumeRecordState {
  return {
    targetPath: v.targetPath,
    volumeId: v.volumeId,
    podName: v.podName,
    podNamespace: v.podNamespace,
    podUid: v.podUid,
    spcName: v.spcName,
    provider: v.provider,
    volumeContext: { ...v.volumeContext },
    secrets: { ...v.secrets },
    objectVersions: [...v.objectVersions],
    dirName: v.handle.name,
    mock: v.mock,
    lastPolledAt: v.lastPolledAt,
    ...(v.auditReads ? { auditReads: true } : {}),
  };
}

export class VolumeState {
  /** Records are updated in place: a holder of one (a poll) can tell whether it is still the served one. */
  private readonly volumes = new Map<string, Mutable<Volume>>();
  /** An 'on-flush' change that no persist has carried yet. */
  private pending = false;
  /** Target paths added, changed or deleted since takeChanges, when tracked (the keeper's records). */
  private changed: Set<string> | null = null;

  constructor(private readonly o: VolumeStateOptions) {}

  get(targetPath: string): Volume | undefined {
    return this.volumes.get(targetPath);
  }

  list(): Volume[] {
    return [...this.volumes.values()];
  }

  /** The bytes currently served for a file of a volume (for secret sync); a view, do not keep. */
  readFile(targetPath: string, path: string): Buffer | null {
    return this.volumes.get(targetPath)?.handle.tree.read(path) ?? null;
  }

  add(v: Volume): void {
    const rec = { ...v };
    this.volumes.set(v.targetPath, rec);
    this.changed?.add(v.targetPath);
    this.o.onServed?.(rec);
    this.o.onCount?.(this.volumes.size);
    this.persist();
  }

  /** Applies `patch` to the served volume; persisted (when it changes anything) now or later. Returns whether it changed. */
  update(targetPath: string, patch: Partial<VolumeChanges>, when: PersistWhen = 'now'): boolean {
    const v = this.volumes.get(targetPath);
    if (!v || !changes(v, patch)) return false;
    Object.assign(v, patch);
    this.changed?.add(targetPath);
    if (when === 'now') this.persist();
    else if (when === 'on-flush') this.pending = true;
    return true;
  }

  delete(targetPath: string): Volume | undefined {
    const v = this.volumes.get(targetPath);
    if (!v) return undefined;
    this.volumes.delete(targetPath);
    this.changed?.add(targetPath);
    this.o.onGone?.(v);
    this.o.onCount?.(this.volumes.size);
    this.persist();
    return v;
  }

  /** Runs the persistence hook: after any change here, and after every change of the filesystem. */
  persist(): void {
    this.pending = false;
    this.o.persist();
  }

  /** Persists the 'on-flush' changes that no persist has carried yet. */
  flush(): void {
    if (this.pending) this.persist();
  }

  export(): VolumeRecordState[] {
    return this.list().map(recordState);
  }

  /** Starts (or restarts) tracking changes, every volume counting as changed; or stops. */
  trackChanges(on = true): void {
    this.changed = on ? new Set(this.volumes.keys()) : null;
  }

  /** The records of the volumes changed since the last call; a deleted one's target path maps to null. */
  takeChanges(): Map<string, VolumeRecordState | null> {
    const out = new Map<string, VolumeRecordState | null>();
    for (const path of this.changed ?? []) {
      const v = this.volumes.get(path);
      out.set(path, v ? recordState(v) : null);
    }
    if (this.changed) this.changed = new Set();
    return out;
  }

  /**
   * Adopts the records of a previous process whose FUSE directories `dirs`
   * finds (already restored in the filesystem). Not persisted: the caller
   * sends the whole state once it serves. Returns what was adopted and the
   * target paths that had no directory.
   */
  restore(
    records: readonly VolumeRecordState[],
    dirs: (name: string) => VolumeHandle | undefined,
  ): { adopted: Volume[]; missing: string[] } {
    const adopted: Volume[] = [];
    const missing: string[] = [];
    for (const r of records) {
      const handle = dirs(r.dirName);
      if (!handle) {
        missing.push(r.targetPath);
        continue;
      }
      const { dirName: _dir, ...record } = r;
      // A state from before lastPolledAt was kept: due now.
      const v: Mutable<Volume> = {
        ...record,
        lastPolledAt: r.lastPolledAt ?? 0,
        volumeContext: { ...r.volumeContext },
        secrets: { ...r.secrets },
        objectVersions: [...r.objectVersions],
        handle,
      };
      this.volumes.set(r.targetPath, v);
      this.o.onServed?.(v);
      adopted.push(v);
    }
    this.o.onCount?.(this.volumes.size);
    return { adopted, missing };
  }
}
