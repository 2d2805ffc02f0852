// A write window: while a provider's Mount call for a volume is in flight,
// the provider (and only it) may write files into the volume's directory the
// way the AWS provider does by default: create a temp file, chmod, write,
// fsync, rename it over the final name. What it writes is staged in memory,
// in an overlay of names above the published version; nothing of it is
// served as a version until the call returns and the volume manager
// publishes the result (atomic-writer layout, as for returned files). At
// every other time, and for every other caller, the volume stays read-only.
//
// Pure: names and inodes in, errno out. The FUSE operations call it.

import { constants as os } from 'node:os';
import type { Inode, InodeTable, VolumeGroup } from './inode-table.js';

const E = os.errno;

/** A staged file by its final name, as the window ended. */
export interface StagedFile {
  readonly name: string;
  readonly mode: number;
  /** A view of the staged bytes: copy before the window is released. */
  readonly contents: Buffer;
}

export interface WindowResult {
  /** Whether the provider changed anything at all. */
  readonly wrote: boolean;
  /** Files the provider left in the directory, by name. */
  readonly files: readonly StagedFile[];
  /** Published top-level names the provider removed or replaced. */
  readonly removed: readonly string[];
}

export class WriteWindow {
  /** Staged name → inode id. */
  private readonly names = new Map<string, number>();
  private readonly ids = new Set<number>();
  /** Published names hidden by an unlink or a rename over them. */
  private readonly hidden = new Set<string>();
  /** Names whose kernel dentries may now point at staged inodes. */
  readonly touched = new Set<string>();
  private wrote = false;
  private closed = false;

  constructor(
    private readonly table: InodeTable,
    /** The volume directory the window opens. */
    readonly dirId: number,
    /** Whether the process (thread group id) may write: the provider's. */
    private readonly mayWrite: (pid: number) => boolean,
    /** The volume's group: staged files are served to it too, as its published files are. */
    private readonly group: VolumeGroup = null,
  ) {}

  /** Whether `id` is an inode this window staged. */
  owns(id: number): boolean {
    return this.ids.has(id);
  }

  /** Whether a caller may change anything now. */
  allows(pid: number): boolean {
    return !this.closed && this.mayWrite(pid);
  }

  /** LOOKUP in the window's directory: a staged inode, 'hidden', or undefined (ask the published tree). */
  lookup(name: string): Inode | 'hidden' | undefined {
    const id = this.names.get(name);
    if (id !== undefined) {
      this.table.ref(id);
      return this.table.get(id);
    }
    return this.hidden.has(name) ? 'hidden' : undefined;
  }

  /** MKNOD of a regular file (open with O_CREAT lands here: we answer CREATE with ENOSYS). */
  mknod(name: string, mode: number, exists: boolean, now: number): Inode | number {
    if (this.names.has(name) || (exists && !this.hidden.has(name))) return E.EEXIST;
    if (!validName(name)) return E.EINVAL;
    const node = this.table.mkstaged(mode, now, this.group);
    this.table.ref(node.id);
    this.ids.add(node.id);
    this.names.set(name, node.id);
    this.hidden.delete(name);
    this.touched.add(name);
    this.wrote = true;
    return node;
  }

  write(id: number, offset: number, bytes: Uint8Array, now: number): number {
    this.table.writeStaged(id, offset, bytes, now);
    this.wrote = true;
    return bytes.length;
  }

  setattr(id: number, change: { mode?: number; size?: number }, now: number): void {
    if (change.mode !== undefined) this.table.chmodStaged(id, change.mode, this.group);
    if (change.size !== undefined) this.table.truncateStaged(id, change.size, now);
    this.wrote = true;
  }

  /** RENAME within the directory: only staged files move; whatever was at the new name goes. */
  rename(from: string, to: string, targetPublished: boolean): number {
    const id = this.names.get(from);
    if (id === undefined) return E.EROFS; // the published version is never moved
    if (!validName(to)) return E.EINVAL;
    const replaced = this.names.get(to);
    if (replaced !== undefined && replaced !== id) this.table.releaseStaged(replaced);
    this.names.delete(from);
    this.names.set(to, id);
    if (targetPublished) this.hidden.add(to);
    this.touched.add(from);
    this.touched.add(to);
    this.wrote = true;
    return 0;
  }

  unlink(name: string, published: boolean): number {
    const id = this.names.get(name);
    if (id !== undefined) {
      this.names.delete(name);
      this.table.releaseStaged(id);
    } else if (published && !this.hidden.has(name)) {
      this.hidden.add(name);
    } else {
      return E.ENOENT;
    }
    this.touched.add(name);
    this.wrote = true;
    return 0;
  }

  /** Ends the window: no more writes; the staged files as they are now (views). */
  close(): WindowResult {
    this.closed = true;
    const files: StagedFile[] = [];
    for (const [name, id] of this.names) {
      const node = this.table.get(id);
      if (node?.data) files.push({ name, mode: node.mode, contents: node.data });
    }
    files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { wrote: this.wrote, files, removed: [...this.hidden].sort() };
  }

  /**
   * Lets go of the staged inodes: each is zeroed and freed once the kernel
   * forgets it too (a reader may still hold one open; it reads what it opened).
   */
  release(): void {
    this.closed = true;
    for (const id of this.names.values()) this.table.releaseStaged(id);
    this.names.clear();
  }
}

/** A single path element a provider may create: no separators, not `.`/`..`, within NAME_MAX bytes. */
function validName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0') && Buffer.byteLength(name) <= 255;
}
