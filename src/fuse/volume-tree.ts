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
import type { InodeTable, Inode } from './inode-table.js';

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

export interface VolumeTreeState {
  readonly dirId: number;
  readonly current: Array<[string, number]>;
  readonly tsDirName: string | null;
  readonly retired: Array<{ name: string; at: number }>;
}

export interface PublishResult {
  /** False when the new files equal what is served (nothing was touched). */
  readonly changed: boolean;
  readonly invalidations: EntryInvalidation[];
  readonly dataDir: string;
}

const DATA_DIR = '..data';
const DIR_MODE = 0o755;

/** `..YYYY_MM_DD_HH_MM_SS.<random>` in UTC, the atomic writer's naming. */
export function timestampDirName(now: Date, random = randomInt(0, 2 ** 32)): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `..${p(now.getUTCFullYear(), 4)}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_` +
    `${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}.${random}`;
}

export class VolumeTree {
  /** path -> inode id of the file currently served under that path. */
  private current = new Map<string, number>();
  private tsDirName: string | null = null;
  /** Previous timestamped dirs, kept by name for a grace period after `..data` moved on. */
  private retired: Array<{ name: string; at: number }> = [];

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
  ) {}

  exportState(): VolumeTreeState {
    return { dirId: this.dirId, current: [...this.current.entries()], tsDirName: this.tsDirName, retired: [...this.retired] };
  }

  static restore(table: InodeTable, s: VolumeTreeState, retireGraceMs: number): VolumeTree {
    const v = new VolumeTree(table, s.dirId, retireGraceMs);
    v.current = new Map(s.current);
    v.tsDirName = s.tsDirName;
    v.retired = [...s.retired];
    return v;
  }

  /** Unlinks retired version directories older than the grace period; returns what to invalidate. */
  sweep(nowMs: number): EntryInvalidation[] {
    const out: EntryInvalidation[] = [];
    this.retired = this.retired.filter((r) => {
      if (nowMs - r.at < this.retireGraceMs) return true;
      this.table.unlink(this.dirId, r.name);
      out.push({ parent: this.dirId, name: r.name });
      return false;
    });
    return out;
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

  /** The current bytes of a served file (a view, not a copy). */
  read(path: string): Buffer | null {
    const id = this.current.get(path);
    return id === undefined ? null : (this.table.get(id)?.data ?? null);
  }

  publish(files: readonly VolumeFile[], now: Date): PublishResult {
    if (this.tsDirName !== null && this.unchanged(files)) {
      return { changed: false, invalidations: [], dataDir: this.tsDirName };
    }
    const t = this.table;
    const ms = now.getTime();
    let tsName = timestampDirName(now);
    while (t.child(this.dirId, tsName)) tsName = timestampDirName(now);

    const tsDir = t.mkdir(DIR_MODE, ms);
    const next = new Map<string, number>();
    for (const f of files) {
      const parts = f.path.split('/');
      let dir: Inode = tsDir;
      for (const part of parts.slice(0, -1)) {
        const existing = t.child(dir.id, part);
        if (existing) {
          dir = existing;
        } else {
          const d = t.mkdir(DIR_MODE, ms);
          t.link(dir.id, part, d.id);
          dir = d;
        }
      }
      const prevId = this.current.get(f.path);
      const prev = prevId === undefined ? undefined : t.get(prevId);
      const reuse = prev?.data && prev.mode === (f.mode & 0o7777) && prev.data.equals(f.contents);
      const file = reuse ? prev : t.mkfile(f.contents, f.mode, ms);
      t.link(dir.id, parts[parts.length - 1]!, file.id);
      next.set(f.path, file.id);
    }

    const inval: EntryInvalidation[] = [];
    const vol = this.dirId;
    // New version in place first, then the switch of `..data`, then the old version goes.
    t.link(vol, tsName, tsDir.id);
    t.link(vol, DATA_DIR, t.mksymlink(tsName, ms).id);
    inval.push({ parent: vol, name: DATA_DIR });
    if (this.tsDirName !== null) this.retired.push({ name: this.tsDirName, at: ms });
    inval.push(...this.sweep(ms));

    const oldTop = new Set([...this.current.keys()].map((p) => p.split('/')[0]!));
    const newTop = new Set(files.map((f) => f.path.split('/')[0]!));
    for (const name of newTop) {
      if (oldTop.has(name)) continue;
      t.link(vol, name, t.mksymlink(`${DATA_DIR}/${name}`, ms).id);
      inval.push({ parent: vol, name });
    }
    for (const name of oldTop) {
      if (newTop.has(name)) continue;
      t.unlink(vol, name);
      inval.push({ parent: vol, name });
    }

    const volNode = t.get(vol);
    if (volNode) volNode.mtimeMs = ms;
    this.current = next;
    this.tsDirName = tsName;
    return { changed: true, invalidations: inval, dataDir: tsName };
  }

  private unchanged(files: readonly VolumeFile[]): boolean {
    if (files.length !== this.current.size) return false;
    for (const f of files) {
      const id = this.current.get(f.path);
      const node = id === undefined ? undefined : this.table.get(id);
      if (!node?.data || node.mode !== (f.mode & 0o7777) || !node.data.equals(f.contents)) return false;
    }
    return true;
  }
}
