// The in-memory inode table behind the FUSE connection. Pure data, no I/O.
//
// Rules that make rotation safe without locks:
// - inodes are immutable once linked: a new version of a file is a new inode,
//   so the kernel page cache of an old inode never has to be invalidated and a
//   reader holding the old one reads it whole;
// - an inode lives while it is linked into a directory (links > 0) or the
//   kernel still references it (nlookup > 0, counted from LOOKUP replies and
//   decremented by FORGET). When both reach zero it is freed and its bytes are
//   zeroed;
// - node ids come from a counter that is part of the table's state, never
//   reused, so a process that takes the table over answers with the same ids.

import { S_IFDIR, S_IFLNK, S_IFREG, DT_DIR, DT_LNK, DT_REG, type Attr, type Dirent } from './protocol.js';
import { inodeState, type InodeState, type TableState } from './inode-state.js';

export const ROOT_ID = 1;

/**
 * The mode bits a node is served with: permission bits only. Setuid, setgid
 * and sticky bits from a provider (in its response or by chmod in a write
 * window) are dropped, as upstream's atomic writer drops them: a secret file
 * must never become a setuid program on the node.
 */
export function servedMode(mode: number): number {
  return mode & 0o777;
}

/**
 * The group a volume is served to (the pod's fsGroup, from the publish's
 * volume_mount_group), or null: owned by root:root with the provider's modes.
 */
export type VolumeGroup = number | null;

/**
 * The mode a node of a volume served to `group` gets: the provider's bits
 * plus group read (and search on directories), as kubelet's
 * SetVolumeOwnership adds for other volume types. Without setgid: the
 * volumes are read-only, so no new file could inherit the group, and
 * servedMode never serves the bit. Idempotent.
 */
export function ownedMode(kind: InodeKind, mode: number, group: VolumeGroup): number {
  const m = servedMode(mode);
  if (group === null) return m;
  return m | (kind === 'dir' ? 0o050 : kind === 'file' ? 0o040 : 0);
}

export type InodeKind = 'dir' | 'file' | 'symlink';

export interface Inode {
  readonly id: number;
  readonly kind: InodeKind;
  /** Permission bits only (0777, see servedMode). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  mtimeMs: number;
  /** File content or symlink target. Zeroed and dropped when freed or scrubbed. */
  data: Buffer | null;
  readonly children: Map<string, number> | null;
  links: number;
  nlookup: number;
  /** Set when the volume was unpublished: the node answers ENOENT/EIO until forgotten. */
  scrubbed: boolean;
  /** The volume directory the node belongs to (its own id for one), 0 for none: its keeper record (records.ts). */
  owner: number;
}

export { inodeState, type InodeState, type TableState } from './inode-state.js';

/**
 * The kernel's reference count of an inherited inode is unknown to a process
 * that took the connection over: it is treated as "referenced" until the
 * kernel's FORGET for it arrives (the kernel sends all its references at once
 * when it evicts an inode), so nothing it may still use is freed early.
 */
export const UNKNOWN_LOOKUPS = 2 ** 40;

export interface InodeTableStats {
  inodes: number;
  fileBytes: number;
}

export interface InodeTableOptions {
  /** Called after an inode was freed (its bytes already zeroed). */
  onFree?: (inode: Inode) => void;
  /**
   * Memory for file contents. The default keeps each file outside Node's
   * shared pool, so zeroing it clears exactly that secret; the driver passes
   * locked, non-dumpable pages (native allocSecure).
   */
  alloc?: (size: number) => Buffer;
}

export class InodeTable {
  private readonly nodes = new Map<number, Inode>();
  private nextId = ROOT_ID + 1;
  private fileBytes = 0;
  /** Staged files' whole allocations, of which `data` is the used part (see resize). */
  private readonly backing = new Map<number, Buffer>();
  private readonly onFree: ((inode: Inode) => void) | undefined;
  private readonly alloc: (size: number) => Buffer;
  /** Ids of nodes created, changed or freed since takeChanges, when tracked (the keeper's records). */
  private changes: Set<number> | null = null;

  constructor(opts: InodeTableOptions = {}) {
    this.onFree = opts.onFree;
    this.alloc = opts.alloc ?? ((n) => Buffer.allocUnsafeSlow(n));
    // The connection root lists every volume: only root may enter it. Pods
    // reach their volume through a bind mount of its own directory, which
    // never walks through the root.
    this.nodes.set(ROOT_ID, this.make(ROOT_ID, 'dir', 0o700, null, Date.now(), null));
    this.get(ROOT_ID)!.links = 1; // the mount itself holds the root
  }

  private make(id: number, kind: InodeKind, mode: number, data: Buffer | null, mtimeMs: number, group: VolumeGroup, owner = 0): Inode {
    return {
      owner,
      id,
      kind,
      mode: ownedMode(kind, mode, group),
      uid: 0,
      gid: group ?? 0,
      mtimeMs,
      data,
      children: kind === 'dir' ? new Map() : null,
      links: 0,
      nlookup: 0,
      scrubbed: false,
    };
  }

  private add(kind: InodeKind, mode: number, data: Buffer | null, mtimeMs: number, group: VolumeGroup, owner: number): Inode {
    const node = this.make(this.nextId++, kind, mode, data, mtimeMs, group, owner);
    this.nodes.set(node.id, node);
    this.changes?.add(node.id);
    if (kind === 'file' && data) this.fileBytes += data.length;
    return node;
  }

  get(id: number): Inode | undefined {
    return this.nodes.get(id);
  }

  /**
   * `group`: the volume's group (see ownedMode); `owner`: see Inode.owner, for
   * a node not linked at once (linking one with none gives it its parent's).
   * Every maker below takes both.
   */
  mkdir(mode: number, mtimeMs: number, group: VolumeGroup = null, owner = 0): Inode {
    return this.add('dir', mode, null, mtimeMs, group, owner);
  }

  /** The content is copied; the caller may zero its own buffer afterwards. */
  mkfile(content: Uint8Array, mode: number, mtimeMs: number, group: VolumeGroup = null, owner = 0): Inode {
    const own = this.alloc(content.length);
    own.set(content);
    return this.add('file', mode, own, mtimeMs, group, owner);
  }

  /**
   * A file a provider writes during its Mount call (see write-window.ts): the
   * only inodes whose bytes change, and only until the window closes. Held
   * by the window (one link) so it survives until released.
   */
  mkstaged(mode: number, mtimeMs: number, group: VolumeGroup = null, owner = 0): Inode {
    const node = this.add('file', mode, this.alloc(0), mtimeMs, group, owner);
    node.links = 1;
    return node;
  }

  /**
   * Writes `bytes` at `offset` of a staged file, growing it (zero-filled gap).
   * `room`: the largest size the file may reach (the window's limit), which
   * bounds the spare capacity a growth allocates.
   */
  writeStaged(id: number, offset: number, bytes: Uint8Array, mtimeMs: number, room = offset + bytes.length): void {
    const node = this.staged(id);
    const end = offset + bytes.length;
    if (end > node.data!.length) this.resize(node, end, room);
    node.data!.set(bytes, offset);
    node.mtimeMs = mtimeMs;
    this.changes?.add(id);
  }

  truncateStaged(id: number, size: number, mtimeMs: number, room = size): void {
    const node = this.staged(id);
    if (size !== node.data!.length) this.resize(node, size, room);
    node.mtimeMs = mtimeMs;
    this.changes?.add(id);
  }

  chmodStaged(id: number, mode: number, group: VolumeGroup = null): void {
    (this.staged(id) as { mode: number }).mode = ownedMode('file', mode, group);
    this.changes?.add(id);
  }

  /** Counts a kernel reference handed out outside LOOKUP (an entry reply for a staged file). */
  ref(id: number): void {
    const node = this.nodes.get(id);
    if (node) node.nlookup++;
  }

  /** Drops the window's hold on a staged file; freed (zeroed) once the kernel forgets it too. */
  releaseStaged(id: number): void {
    this.drop(id);
  }

  private staged(id: number): Inode {
    const node = this.nodes.get(id);
    if (!node || node.kind !== 'file' || !node.data) throw new Error(`inode ${id} is not a staged file`);
    return node;
  }

  /**
   * A staged file's bytes are a view of a larger allocation (`backing`): it
   * grows by doubling, up to `room`, so a file written in 128 KiB pieces is
   * copied O(log n) times, not once per write. Everything past the view is
   * kept zero, so zeroing the view zeroes the whole allocation; a replaced
   * allocation is zeroed at once.
   */
  private resize(node: Inode, size: number, room: number): void {
    const old = node.data!;
    const whole = this.backing.get(node.id) ?? old;
    // Kept: growth within the allocation, or a shrink that leaves it at least a quarter used.
    if (size <= whole.length && (size >= old.length || size * 4 >= whole.length)) {
      if (size < old.length) whole.fill(0, size, old.length);
      node.data = whole.subarray(0, size);
    } else {
      const capacity = size > whole.length ? Math.max(size, Math.min(Math.max(whole.length * 2, 4096), room)) : size;
      const next = this.alloc(capacity);
      next.fill(0);
      whole.copy(next, 0, 0, Math.min(old.length, size));
      whole.fill(0);
      node.data = next.subarray(0, size);
      this.backing.set(node.id, next);
    }
    this.fileBytes += size - old.length;
  }

  mksymlink(target: string, mtimeMs: number, group: VolumeGroup = null, owner = 0): Inode {
    return this.add('symlink', 0o777, Buffer.from(target, 'utf8'), mtimeMs, group, owner);
  }

  /** Links `child` as `name` in `parent`, replacing (and unlinking) what was there. */
  link(parentId: number, name: string, childId: number): void {
    const parent = this.dir(parentId);
    const child = this.nodes.get(childId);
    if (!child) throw new Error(`inode ${childId} does not exist`);
    const old = parent.children.get(name);
    if (old === childId) return;
    parent.children.set(name, childId);
    child.links++;
    // A volume directory (a child of the root) owns itself and what is linked below it.
    if (child.owner === 0) child.owner = parentId === ROOT_ID ? childId : parent.owner;
    this.changes?.add(parentId).add(childId);
    if (old !== undefined) this.drop(old);
  }

  unlink(parentId: number, name: string): void {
    const parent = this.dir(parentId);
    const old = parent.children.get(name);
    if (old === undefined) return;
    parent.children.delete(name);
    this.changes?.add(parentId);
    this.drop(old);
  }

  /** LOOKUP: resolves a name and counts the kernel's new reference. */
  lookup(parentId: number, name: string): Inode | undefined {
    const parent = this.nodes.get(parentId);
    if (!parent?.children || parent.scrubbed) return undefined;
    const id = parent.children.get(name);
    const child = id === undefined ? undefined : this.nodes.get(id);
    if (!child || child.scrubbed) return undefined;
    child.nlookup++;
    return child;
  }

  /** Resolves a name without counting a kernel reference. */
  child(parentId: number, name: string): Inode | undefined {
    const id = this.nodes.get(parentId)?.children?.get(name);
    return id === undefined ? undefined : this.nodes.get(id);
  }

  forget(id: number, nlookup: number): void {
    const node = this.nodes.get(id);
    if (!node || id === ROOT_ID) return;
    node.nlookup = node.nlookup >= UNKNOWN_LOOKUPS ? 0 : Math.max(0, node.nlookup - nlookup);
    this.maybeFree(node);
  }

  /** Everything a process taking the connection over needs; `data` is the inodes' bytes in order. */
  exportState(): { state: TableState; data: Buffer[] } {
    const nodes: InodeState[] = [];
    const data: Buffer[] = [];
    for (const n of this.nodes.values()) {
      nodes.push(inodeState(n));
      if (n.data) data.push(n.data);
    }
    return { state: { nextId: this.nextId, nodes }, data: data };
  }

  get nextNodeId(): number {
    return this.nextId;
  }

  /** Starts (or restarts) tracking changes, every node counting as changed; or stops. */
  trackChanges(on = true): void {
    this.changes = on ? new Set(this.nodes.keys()) : null;
  }

  /** The nodes created, changed (a changed tree too: markChanged) or freed since the last call. */
  takeChanges(): Set<number> {
    const c = this.changes ?? new Set<number>();
    if (this.changes) this.changes = new Set();
    return c;
  }

  /** Marks a node changed by someone else (a volume directory whose tree changed, see VolumeTree). */
  markChanged(id: number): void {
    this.changes?.add(id);
  }

  /** A table taken over from a previous process: same ids, same tree, kernel counts unknown. */
  static restore(state: TableState, blob: Buffer, opts: InodeTableOptions = {}): InodeTable {
    const t = new InodeTable(opts);
    t.nodes.clear();
    t.nextId = state.nextId;
    let off = 0;
    for (const s of state.nodes) {
      let data: Buffer | null = null;
      if (s.dataLen >= 0) {
        data = t.alloc(s.dataLen);
        blob.copy(data, 0, off, off + s.dataLen);
        off += s.dataLen;
        if (s.kind === 'file') t.fileBytes += data.length;
      }
      // The stored mode already has the group's bits (ownedMode is idempotent).
      const node = t.make(s.id, s.kind, s.mode, data, s.mtimeMs, s.gid ?? null, s.owner ?? 0);
      node.links = s.links;
      node.scrubbed = s.scrubbed;
      node.nlookup = s.id === ROOT_ID ? 0 : UNKNOWN_LOOKUPS;
      for (const [name, id] of s.children ?? []) node.children!.set(name, id);
      t.nodes.set(s.id, node);
    }
    return t;
  }

  /**
   * Zeroes every byte below `id` at once, without waiting for the kernel to
   * forget the inodes (unpublish). The nodes stay, empty, for the FORGET
   * accounting, and answer as if gone.
   */
  scrub(id: number): number[] {
    const touched: number[] = [];
    const walk = (node: Inode): void => {
      if (node.scrubbed) return;
      node.scrubbed = true;
      touched.push(node.id);
      this.changes?.add(node.id);
      if (node.data) this.release(node);
      for (const c of node.children?.values() ?? []) {
        const child = this.nodes.get(c);
        if (child) walk(child);
      }
    };
    const node = this.nodes.get(id);
    if (node) walk(node);
    return touched;
  }

  attr(node: Inode): Attr {
    const type = node.kind === 'dir' ? S_IFDIR : node.kind === 'file' ? S_IFREG : S_IFLNK;
    // A file reports one link even while an unchanged file is linked in the old
    // and the new version's directory: the kernel keeps the first count it was
    // told, so a version directory's removal unlinks only files it alone holds
    // (their watchers get IN_DELETE_SELF) and leaves shared ones to its rmdir.
    let nlink = 1;
    if (node.children) {
      nlink = 2;
      for (const c of node.children.values()) if (this.nodes.get(c)?.kind === 'dir') nlink++;
    }
    const ms = Math.floor(node.mtimeMs);
    return {
      ino: node.id,
      size: node.kind === 'dir' ? 4096 : (node.data?.length ?? 0),
      mode: type | node.mode,
      nlink,
      uid: node.uid,
      gid: node.gid,
      mtimeSec: Math.floor(ms / 1000),
      mtimeNsec: (ms % 1000) * 1_000_000,
    };
  }

  dirents(node: Inode, parentId: number): Dirent[] {
    const out: Dirent[] = [
      { ino: node.id, name: '.', type: DT_DIR },
      { ino: parentId, name: '..', type: DT_DIR },
    ];
    if (node.scrubbed) return out;
    for (const [name, id] of node.children ?? []) {
      const c = this.nodes.get(id);
      if (!c) continue;
      out.push({ ino: id, name, type: c.kind === 'dir' ? DT_DIR : c.kind === 'file' ? DT_REG : DT_LNK });
    }
    return out;
  }

  stats(): InodeTableStats {
    return { inodes: this.nodes.size, fileBytes: this.fileBytes };
  }

  private dir(id: number): Inode & { children: Map<string, number> } {
    const node = this.nodes.get(id);
    if (!node?.children) throw new Error(`inode ${id} is not a directory`);
    return node as Inode & { children: Map<string, number> };
  }

  private drop(id: number): void {
    const node = this.nodes.get(id);
    if (!node) return;
    node.links--;
    this.changes?.add(id);
    this.maybeFree(node);
  }

  private release(node: Inode): void {
    if (!node.data) return;
    if (node.kind === 'file') this.fileBytes -= node.data.length;
    node.data.fill(0); // a staged file's spare capacity is zero already
    node.data = null;
    this.backing.delete(node.id);
  }

  private maybeFree(node: Inode): void {
    if (node.id === ROOT_ID || node.links > 0 || node.nlookup > 0) return;
    this.nodes.delete(node.id);
    this.changes?.add(node.id);
    this.release(node);
    if (node.children) {
      const kids = [...node.children.values()];
      node.children.clear();
      for (const c of kids) this.drop(c);
    }
    this.onFree?.(node);
  }
}
