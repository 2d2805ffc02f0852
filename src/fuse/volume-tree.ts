// One volume's directory in the inode table, laid out the way kubelet's atomic
// writer lays out a tmpfs volume, so that apps and tools see the same thing:
//
//   <vol>/..data            -> ..2026_11_28_01_02_03.123456789   (symlink)
//   <vol>/..2026_11_28_…    the current version's files and directories
//   <vol>/<name>            -> ..data/<name>   (one symlink per top-level name)
//
// A new version is a new timestamped directory (new inodes for every changed
// file; unchanged files keep their inode and so their page cache) and a new
// `..data` symlink inode. Pure table manipulation: it returns the directory
// entries the kernel must forget, and the session sends those notifications.

import { randomInt } from 'node:crypto';
import { ownedMode, type InodeTable, type Inode, type VolumeGroup } from './inode-table.js';

export interface VolumeFile {
  /** Validated relative path, elements separated by '/'. */
  readonly path: string;
  readonly mode: number;
  readonly contents: Uint8Array;
}

export interface EntryInvalidation {
  readonly parent: number;
  readonly name: string;
}

/**
 * A version built but not yet switched to (prepare done, commit not yet): in
 * the keeper's state while its steps run, so that a driver taking over after
 * a crash in between can finish the switch (rollForward) and agree with
 * whatever the kernel had already been told.
 */
export interface PendingVersion {
  readonly tsName: string;
  readonly tsDirId: number;
  readonly dataLinkId: number;
  readonly next: Array<[string, number]>;
  readonly added: Array<[string, number]>;
  readonly removed: string[];
  readonly at: number;
}

export interface VolumeTreeState {
  readonly dirId: number;
  readonly current: Array<[string, number]>;
  readonly tsDirName: string | null;
  readonly pending?: PendingVersion | null;
  readonly retired: Array<{ name: string; at: number }>;
  /** Absent in states from before volumes had a group, and for volumes without one. */
  readonly group?: number;
}

/**
 * One directory change of a rotation. `apply` makes it in the table (and
 * returns the new entry's inode for mkdir and symlink); the filesystem calls
 * it either when the kernel sends the matching request (the change was made
 * through the VFS, so inotify watchers see it) or directly.
 */
interface StepBase {
  /** Directory the change is made in: its inode id, and its path inside the volume ('' for the volume's own). */
  readonly parent: number;
  readonly dir: string;
  readonly name: string;
}
export type RotationStep =
  | (StepBase & { readonly kind: 'mkdir'; readonly apply: () => Inode })
  | (StepBase & { readonly kind: 'symlink'; readonly target: string; readonly apply: () => Inode })
  | (StepBase & { readonly kind: 'rename'; readonly to: string; readonly apply: () => null })
  | (StepBase & { readonly kind: 'unlink' | 'rmdir'; readonly apply: () => null });

/** Where a served file is: its path in the volume and the version directory (`..<timestamp>`) holding it. */
export interface FileVersion {
  readonly path: string;
  readonly version: string;
}

export interface RotationPlan {
  readonly tsName: string;
  readonly dataLinkId: number;
  readonly steps: readonly RotationStep[];
}

export interface PublishResult {
  /** False when the new files equal what is served (nothing was touched). */
  readonly changed: boolean;
  readonly invalidations: EntryInvalidation[];
  readonly dataDir: string;
}

const DATA_DIR = '..data';
const DATA_TMP = '..data_tmp';
const DIR_MODE = 0o755;

/** `..YYYY_MM_DD_HH_MM_SS.<random>` in UTC, the atomic writer's naming. */
export function timestampDirName(now: Date, random = randomInt(0, 2 ** 32)): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    `..${p(now.getUTCFullYear(), 4)}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_` +
    `${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}.${random}`
  );
}

export class VolumeTree {
  /** path -> inode id of the file currently served under that path. */
  private current = new Map<string, number>();
  private tsDirName: string | null = null;
  /** Previous timestamped dirs, kept by name for a grace period after `..data` moved on. */
  private retired: Array<{ name: string; at: number }> = [];
  private pending: PendingVersion | null = null;
  /** inode id -> path in the served version; built on first use after each switch. */
  private byId: Map<number, string> | null = null;
  /** Files only a retired version still holds, by inode id (in this process; not handed over). */
  private readonly pastFiles = new Map<number, FileVersion>();

  constructor(
    private readonly table: InodeTable,
    /** Inode id of the volume's directory (the bind-mount source). */
    readonly dirId: number,
    /**
     * How long an old version's directory stays reachable by name after a
     * rotation. A reader that resolved `..data` just before the switch walks
     * on into the old directory; removing it at once (as kubelet's atomic
     * writer does on tmpfs) makes that reader fail with ENOENT.
     */
    private readonly retireGraceMs = 0,
    /** The group every node of the volume is served to (fixed for the volume's life); null: root:root. */
    readonly group: VolumeGroup = null,
  ) {}

  exportState(): VolumeTreeState {
    return {
      dirId: this.dirId,
      current: [...this.current.entries()],
      tsDirName: this.tsDirName,
      retired: [...this.retired],
      pending: this.pending,
      ...(this.group !== null ? { group: this.group } : {}),
    };
  }

  static restore(table: InodeTable, s: VolumeTreeState, retireGraceMs: number): VolumeTree {
    const v = new VolumeTree(table, s.dirId, retireGraceMs, s.group ?? null);
    v.current = new Map(s.current);
    v.tsDirName = s.tsDirName;
    v.pending = s.pending ?? null;
    v.retired = [...s.retired];
    return v;
  }

  /** Unlinks retired version directories older than the grace period; returns what to invalidate. */
  sweep(nowMs: number): EntryInvalidation[] {
    return this.dueRetired(nowMs).map((name) => {
      this.table.unlink(this.dirId, name);
      this.removed(name);
      return { parent: this.dirId, name };
    });
  }

  /** Milliseconds until the next retired directory is due, or null when none is waiting. */
  nextSweepIn(nowMs: number): number | null {
    if (this.retired.length === 0) return null;
    return Math.max(0, Math.min(...this.retired.map((r) => r.at + this.retireGraceMs - nowMs)));
  }

  get dataDir(): string | null {
    return this.tsDirName;
  }

  /** Paths currently served, for status and secret sync. */
  paths(): string[] {
    return [...this.current.keys()];
  }

  /** Every served file with its mode; contents are views, not copies. */
  files(): VolumeFile[] {
    const out: VolumeFile[] = [];
    for (const [path, id] of this.current) {
      const node = this.table.get(id);
      if (node?.data) out.push({ path, mode: node.mode, contents: node.data });
    }
    return out;
  }

  /** The path and version of a file inode of this volume (served, or in a retired version still reachable); null otherwise. */
  describe(id: number): FileVersion | null {
    this.byId ??= new Map([...this.current].map(([path, i]) => [i, path]));
    const path = this.byId.get(id);
    if (path !== undefined && this.tsDirName !== null) return { path, version: this.tsDirName };
    return this.pastFiles.get(id) ?? null;
  }

  /** The current bytes of a served file (a view, not a copy). */
  read(path: string): Buffer | null {
    const id = this.current.get(path);
    return id === undefined ? null : (this.table.get(id)?.data ?? null);
  }

  /**
   * Serves `files` as the new version, switching everything inside the table
   * at once; returns the names the kernel must forget. (The filesystem
   * normally performs the same steps through the VFS instead: see prepare.)
   */
  publish(files: readonly VolumeFile[], now: Date): PublishResult {
    const plan = this.prepare(files, now);
    if (!plan) return { changed: false, invalidations: [], dataDir: this.tsDirName! };
    const inval: EntryInvalidation[] = [];
    for (const step of plan.steps) {
      if (step.kind === 'symlink' && step.name === DATA_TMP) continue; // straight to ..data below
      if (step.kind === 'rename') {
        this.table.link(this.dirId, DATA_DIR, plan.dataLinkId);
      } else {
        step.apply();
      }
      if (step.kind !== 'mkdir') inval.push({ parent: this.dirId, name: step.kind === 'rename' ? DATA_DIR : step.name });
    }
    this.commit();
    inval.splice(1, 0, ...this.sweep(now.getTime()));
    return { changed: true, invalidations: inval, dataDir: plan.tsName };
  }

  /**
   * Builds the new version beside the served one without making it visible,
   * and lists the directory changes that switch to it, in the atomic writer's
   * order: mkdir of the timestamped directory, symlink `..data_tmp`, rename it
   * over `..data`, then symlinks for new top-level names and unlinks of names
   * that went. Null when `files` equal what is served.
   */
  prepare(files: readonly VolumeFile[], now: Date): RotationPlan | null {
    if (this.tsDirName !== null && this.unchanged(files)) return null;
    const t = this.table;
    const ms = now.getTime();
    let tsName = timestampDirName(now);
    while (t.child(this.dirId, tsName)) tsName = timestampDirName(now);

    const group = this.group;
    // Owned by the volume from the start: the keeper's record of it holds the pending version's ids.
    const tsDir = t.mkdir(DIR_MODE, ms, group, this.dirId);
    const next = new Map<string, number>();
    for (const f of files) {
      const parts = f.path.split('/');
      let dir: Inode = tsDir;
      for (const part of parts.slice(0, -1)) {
        const existing = t.child(dir.id, part);
        if (existing) {
          dir = existing;
        } else {
          const d = t.mkdir(DIR_MODE, ms, group, this.dirId);
          t.link(dir.id, part, d.id);
          dir = d;
        }
      }
      const prevId = this.current.get(f.path);
      const prev = prevId === undefined ? undefined : t.get(prevId);
      const reuse = prev?.data && prev.mode === ownedMode('file', f.mode, group) && prev.data.equals(f.contents);
      const file = reuse ? prev : t.mkfile(f.contents, f.mode, ms, group, this.dirId);
      t.link(dir.id, parts[parts.length - 1]!, file.id);
      next.set(f.path, file.id);
    }

    const dataLink = t.mksymlink(tsName, ms, group, this.dirId);
    const oldTop = new Set([...this.current.keys()].map((p) => p.split('/')[0]!));
    const newTop = new Set(files.map((f) => f.path.split('/')[0]!));
    const added: Array<[string, number]> = [...newTop]
      .filter((n) => !oldTop.has(n))
      .map((name) => [name, t.mksymlink(`${DATA_DIR}/${name}`, ms, group, this.dirId).id]);
    const removed = [...oldTop].filter((n) => !newTop.has(n));
    this.pending = { tsName, tsDirId: tsDir.id, dataLinkId: dataLink.id, next: [...next.entries()], added, removed, at: ms };
    t.markChanged(this.dirId);
    return { tsName, dataLinkId: dataLink.id, steps: this.stepsFor(this.pending) };
  }

  /** The directory changes that switch the volume to the pending version `p`. */
  private stepsFor(p: PendingVersion): RotationStep[] {
    const t = this.table;
    const vol = this.dirId;
    const node = (id: number): Inode => t.get(id)!;
    return [
      {
        kind: 'mkdir',
        parent: vol,
        dir: '',
        name: p.tsName,
        apply: () => {
          t.link(vol, p.tsName, p.tsDirId);
          return node(p.tsDirId);
        },
      },
      {
        kind: 'symlink',
        parent: vol,
        dir: '',
        name: DATA_TMP,
        target: p.tsName,
        apply: () => {
          t.link(vol, DATA_TMP, p.dataLinkId);
          return node(p.dataLinkId);
        },
      },
      {
        kind: 'rename',
        parent: vol,
        dir: '',
        name: DATA_TMP,
        to: DATA_DIR,
        apply: () => {
          t.link(vol, DATA_DIR, p.dataLinkId);
          t.unlink(vol, DATA_TMP);
          return null;
        },
      },
      ...p.added.map(([name, id]): RotationStep => ({
        kind: 'symlink',
        parent: vol,
        dir: '',
        name,
        target: `${DATA_DIR}/${name}`,
        apply: () => {
          t.link(vol, name, id);
          return node(id);
        },
      })),
      ...p.removed.map((name): RotationStep => ({
        kind: 'unlink',
        parent: vol,
        dir: '',
        name,
        apply: () => {
          t.unlink(vol, name);
          return null;
        },
      })),
    ];
  }

  /**
   * Finishes a switch a previous process had begun (its pending version came
   * with the state): every step made in the table, whichever of them the
   * kernel had already seen, and the names it may hold returned to be
   * invalidated, so the kernel's view and the table agree again.
   */
  rollForward(): EntryInvalidation[] {
    const p = this.pending;
    if (!p) return [];
    for (const step of this.stepsFor(p)) step.apply();
    this.commit();
    return [DATA_DIR, DATA_TMP, p.tsName, ...p.added.map(([n]) => n), ...p.removed].map((name) => ({ parent: this.dirId, name }));
  }

  /** Records the pending version, whose steps have all been made, as the served one. */
  commit(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    if (this.tsDirName !== null) {
      this.retired.push({ name: this.tsDirName, at: p.at });
      const next = new Set(p.next.map(([, id]) => id));
      for (const [path, id] of this.current) if (!next.has(id)) this.pastFiles.set(id, { path, version: this.tsDirName });
    }
    this.byId = null;
    const volNode = this.table.get(this.dirId);
    if (volNode) volNode.mtimeMs = p.at;
    this.table.markChanged(this.dirId); // the tree's state is in the volume directory's record
    this.current = new Map(p.next);
    this.tsDirName = p.tsName;
  }

  /**
   * The steps that remove a retired version directory, deepest first (unlink
   * each file only it holds, rmdir each directory, the version directory
   * last), as `rm -r` would. The directory stays retired until `removed`.
   */
  removalSteps(name: string): RotationStep[] {
    const t = this.table;
    const steps: RotationStep[] = [];
    const walk = (parent: number, dir: string, childName: string): void => {
      const node = t.child(parent, childName);
      if (!node) return;
      if (node.children) for (const n of [...node.children.keys()]) walk(node.id, dir ? `${dir}/${childName}` : childName, n);
      // A file the new version still serves is not deleted: the directory's rmdir takes its name.
      if (!node.children && node.links > 1) return;
      steps.push({
        kind: node.children ? 'rmdir' : 'unlink',
        parent,
        dir,
        name: childName,
        apply: () => {
          t.unlink(parent, childName);
          return null;
        },
      });
    };
    walk(this.dirId, '', name);
    return steps;
  }

  /** Drops a retired directory whose removal steps were all made. */
  removed(name: string): void {
    this.retired = this.retired.filter((r) => r.name !== name);
    this.table.markChanged(this.dirId);
    for (const [id, f] of this.pastFiles) if (f.version === name) this.pastFiles.delete(id);
  }

  /** Retired version directories whose grace period is over (not yet removed). */
  dueRetired(nowMs: number): string[] {
    return this.retired.filter((r) => nowMs - r.at >= this.retireGraceMs).map((r) => r.name);
  }

  private unchanged(files: readonly VolumeFile[]): boolean {
    if (files.length !== this.current.size) return false;
    for (const f of files) {
      const id = this.current.get(f.path);
      const node = id === undefined ? undefined : this.table.get(id);
      if (!node?.data || node.mode !== ownedMode('file', f.mode, this.group) || !node.data.equals(f.contents)) return false;
    }
    return true;
  }
}
