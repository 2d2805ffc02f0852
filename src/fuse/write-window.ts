// A write window: while a provider's Mount call for a volume is in flight,
// the provider (and only it) may write files into the volume's directory the
// way the AWS provider does by default: create a temp file, chmod, write,
// fsync, rename it over the final name. What it writes is staged in memory,
// in an overlay of names above the published version; nothing of it is
// served as a version until the call returns and the volume manager
// publishes the result (atomic-writer layout, as for returned files). At
// every other time, and for every other caller, the volume stays read-only.
//
// What a window may stage is bounded like a response (WindowLimits): a write,
// truncate or create past a limit fails (EFBIG for one file, ENOSPC for the
// total or the count), every staged byte is zeroed and freed at once, and
// the window refuses everything after; close() says why, and the caller
// fails the call instead of publishing any of it.
//
// Pure: names and inodes in, errno out. The FUSE operations call it.

import { constants as os } from 'node:os';
import type { Inode, InodeTable, VolumeGroup } from './inode-table.js';

const E = os.errno;

/** What one window may stage; see DEFAULT_WINDOW_LIMITS. */
export interface WindowLimits {
  /** Bytes of all staged files together (and so of any one): --max-call-recv-msg-size. */
  readonly maxBytes: number;
  /** Staged files (names) at a time. */
  readonly maxFiles: number;
}

/**
 * 4 MiB is --max-call-recv-msg-size's default, the most a provider could
 * return in a response; 10,000 files is far above any SecretProviderClass
 * (each file is one object the provider fetches) and bounds the inodes and
 * names one call can make.
 */
export const DEFAULT_WINDOW_LIMITS: WindowLimits = { maxBytes: 4 * 1024 * 1024, maxFiles: 10_000 };

/** Why a window went over its limits (no names or bytes of files in it). */
export interface WindowOverflow {
  readonly limit: 'file-size' | 'total-bytes' | 'file-count';
  /** E.g. "a file of 1073741824 bytes": what was refused. */
  readonly attempted: string;
  readonly limits: WindowLimits;
}

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
  /** Files the provider left in the directory, by name (none after an overflow). */
  readonly files: readonly StagedFile[];
  /** Published top-level names the provider removed or replaced. */
  readonly removed: readonly string[];
  /** Set when the provider went over a limit: nothing of the window may be served. */
  readonly overflow: WindowOverflow | null;
}

export class WriteWindow {
  /** Staged name → inode id. */
  private readonly names = new Map<string, number>();
  /** The staged inodes the provider may still write: those named in `names`. */
  private readonly ids = new Set<number>();
  /** Bytes of the staged files in `ids` together. */
  private bytes = 0;
  private overflow: WindowOverflow | null = null;
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
    readonly limits: WindowLimits = DEFAULT_WINDOW_LIMITS,
  ) {}

  /** Bytes staged now (for tests and metrics). */
  get stagedBytes(): number {
    return this.bytes;
  }

  /** Whether `id` is an inode this window staged. */
  owns(id: number): boolean {
    return this.ids.has(id);
  }

  /** Whether a caller may change anything now. */
  allows(pid: number): boolean {
    return !this.closed && this.mayWrite(pid);
  }

  /**
   * Whether `pid` sees the window's names (its staged files, and published
   * names it removed or replaced): only the writer. Everyone else keeps
   * seeing the published version until the manager publishes the result,
   * so no reader ever opens a temp file or a half-written one.
   */
  seenBy(pid: number): boolean {
    return this.mayWrite(pid);
  }

  /** LOOKUP in the window's directory, for a caller that sees it: a staged inode, 'hidden', or undefined (ask the published tree). */
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
    if (this.overflow) return E.ENOSPC;
    if (this.names.size >= this.limits.maxFiles) return this.fail('file-count', `file ${this.names.size + 1}`, E.ENOSPC, now);
    const node = this.table.mkstaged(mode, now, this.group, this.dirId);
    this.table.ref(node.id);
    this.ids.add(node.id);
    this.names.set(name, node.id);
    this.hidden.delete(name);
    this.touched.add(name);
    this.wrote = true;
    return node;
  }

  /** WRITE to a staged file: 0, or the errno refusing it (the window is over its limits then). */
  write(id: number, offset: number, bytes: Uint8Array, now: number): number {
    const end = offset + bytes.length;
    const refused = this.mayGrow(id, end, now);
    if (refused !== 0) return refused;
    const size = this.sizeOf(id);
    this.table.writeStaged(id, offset, bytes, now, this.room(id));
    this.bytes += Math.max(0, end - size);
    this.wrote = true;
    return 0;
  }

  /** SETATTR of a staged file (chmod, truncate): 0, or the errno refusing it. */
  setattr(id: number, change: { mode?: number; size?: number }, now: number): number {
    if (change.size !== undefined) {
      // Checked before anything is allocated: a sparse truncate to 1 GiB never reaches the allocator.
      const refused = this.mayGrow(id, change.size, now);
      if (refused !== 0) return refused;
    }
    if (change.mode !== undefined) this.table.chmodStaged(id, change.mode, this.group);
    if (change.size !== undefined) {
      const size = this.sizeOf(id);
      this.table.truncateStaged(id, change.size, now, this.room(id));
      this.bytes += change.size - size;
    }
    this.wrote = true;
    return 0;
  }

  /** 0 if file `id` may be `size` bytes long, else the errno (and the window fails). */
  private mayGrow(id: number, size: number, now: number): number {
    if (this.overflow) return E.ENOSPC;
    const current = this.sizeOf(id);
    if (size <= current) return 0;
    if (size > this.limits.maxBytes) return this.fail('file-size', `a file of ${size} bytes`, E.EFBIG, now);
    const total = this.bytes - current + size;
    if (total > this.limits.maxBytes) return this.fail('total-bytes', `${total} bytes in all`, E.ENOSPC, now);
    return 0;
  }

  private sizeOf(id: number): number {
    return this.table.get(id)?.data?.length ?? 0;
  }

  /** The largest file `id` may grow to: its size plus what the byte limit leaves. */
  private room(id: number): number {
    return this.limits.maxBytes - this.bytes + this.sizeOf(id);
  }

  /**
   * Over a limit: every staged byte is zeroed and freed now (the files stay,
   * empty, until released), and the window refuses everything after.
   */
  private fail(limit: WindowOverflow['limit'], attempted: string, errno: number, now: number): number {
    this.overflow = { limit, attempted, limits: this.limits };
    for (const id of this.ids) this.table.truncateStaged(id, 0, now);
    this.bytes = 0;
    this.wrote = true;
    return errno;
  }

  /** Stops counting a staged file the window no longer names (unlinked, or renamed over). */
  private drop(id: number): void {
    this.bytes -= this.sizeOf(id);
    this.ids.delete(id);
    this.table.releaseStaged(id);
  }

  /** RENAME within the directory: only staged files move; whatever was at the new name goes. */
  rename(from: string, to: string, targetPublished: boolean): number {
    const id = this.names.get(from);
    if (id === undefined) return E.EROFS; // the published version is never moved
    if (!validName(to)) return E.EINVAL;
    const replaced = this.names.get(to);
    if (replaced !== undefined && replaced !== id) this.drop(replaced);
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
      this.drop(id);
    } else if (published && !this.hidden.has(name)) {
      this.hidden.add(name);
    } else {
      return E.ENOENT;
    }
    this.touched.add(name);
    this.wrote = true;
    return 0;
  }

  /** Ends the window: no more writes; the staged files as they are now (views), none after an overflow. */
  close(): WindowResult {
    this.closed = true;
    const files: StagedFile[] = [];
    if (this.overflow) return { wrote: true, files, removed: [], overflow: this.overflow };
    for (const [name, id] of this.names) {
      const node = this.table.get(id);
      if (node?.data) files.push({ name, mode: node.mode, contents: node.data });
    }
    files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { wrote: this.wrote, files, removed: [...this.hidden].sort(), overflow: null };
  }

  /**
   * Lets go of the staged inodes: each is zeroed and freed once the kernel
   * forgets it too (a reader may still hold one open; it reads what it opened).
   */
  release(): void {
    this.closed = true;
    for (const id of this.names.values()) this.table.releaseStaged(id);
    this.names.clear();
    this.ids.clear();
    this.bytes = 0;
  }
}

/** A single path element a provider may create: no separators, not `.`/`..`, within NAME_MAX bytes. */
function validName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0') && Buffer.byteLength(name) <= 255;
}
