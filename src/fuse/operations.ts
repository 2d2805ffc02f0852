// Answers FUSE requests from the inode table. Pure: bytes in, bytes out, so
// every operation can be tested without a mount. The session does the I/O.

import { constants as os } from 'node:os';
import {
  Op,
  InitFlag,
  FUSE_KERNEL_VERSION,
  FUSE_OUR_MINOR,
  IN_HEADER_SIZE,
  decodeInHeader,
  decodeInitIn,
  decodeReadIn,
  decodeName,
  decodeForgetIn,
  decodeBatchForget,
  encodeReply,
  encodeEntryOut,
  encodeAttrOut,
  encodeInitOut,
  encodeDirents,
  encodeStatfs,
  decodeMknodIn,
  decodeWriteIn,
  encodeWriteOut,
  encodeOpenOut,
  FOPEN,
  decodeSetattrIn,
  decodeRenameIn,
  FATTR,
  S_IFMT,
  S_IFREG,
  decodeMkdirIn,
  decodeSymlinkIn,
  type InHeader,
  type InitIn,
} from './protocol.js';
import { ROOT_ID, type Inode, type InodeTable } from './inode-table.js';
import type { RotationStep } from './volume-tree.js';
import type { WriteWindow } from './write-window.js';

const E = os.errno;

/** Who made a request: the kernel stamps every request with the caller's ids. */
export interface Caller {
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
}

export interface OperationsOptions {
  /** Seconds the kernel may cache names and attributes of immutable inodes. */
  readonly entryTtl: number;
  readonly attrTtl: number;
  /** Seconds for the root and volume directories, whose listing changes. */
  readonly dirAttrTtl: number;
  readonly maxWrite: number;
  /** Called for every request, after it was answered (metrics). */
  readonly onRequest?: (opcode: number, nodeid: number, caller: Caller) => void;
  /**
   * Answer OPEN instead of ENOSYS. ENOSYS turns on the kernel's no_open mode
   * for the whole connection, for good: opens never reach us again. Answered,
   * every open(2) of a file costs a round trip, and reaches onOpen (read audit).
   */
  readonly answerOpens?: boolean;
  /** Called for every file open answered (answerOpens), before the reply goes out; `pid` is the calling thread's id. */
  readonly onOpen?: (nodeid: number, caller: Caller) => void;
}

export interface Negotiated {
  readonly major: number;
  readonly minor: number;
  readonly flags: number;
  readonly maxReadahead: number;
}

/** Flags we want, if the kernel offers them. */
const WANTED_FLAGS =
  InitFlag.ASYNC_READ |
  InitFlag.NO_OPEN_SUPPORT |
  InitFlag.NO_OPENDIR_SUPPORT |
  InitFlag.CACHE_SYMLINKS |
  InitFlag.PARALLEL_DIROPS |
  InitFlag.EXPLICIT_INVAL_DATA |
  InitFlag.MAX_PAGES |
  InitFlag.BIG_WRITES;

// Mutations nobody may make. MKNOD, WRITE, SETATTR, RENAME(2) and UNLINK go
// through windowed() (EROFS outside a window); MKDIR, SYMLINK, RENAME, UNLINK
// and RMDIR also through own() (the driver's rotation steps, EROFS for anyone
// else). CREATE answers ENOSYS, so the kernel creates files with MKNOD (then
// opens them without asking us, as with every open), the one creation path a
// window handles.
const READ_ONLY_OPS: ReadonlySet<number> = new Set([Op.LINK, Op.SETXATTR, Op.REMOVEXATTR, Op.FALLOCATE, Op.TMPFILE, Op.COPY_FILE_RANGE]);

/**
 * The driver's rotation steps in flight through the VFS (vfs-steps.ts):
 * applies one if this request is the next step of a batch, from the child
 * making that batch, and returns the new entry's inode (mkdir, symlink), null
 * (done, no entry), or undefined (not ours).
 */
export interface OwnSteps {
  take(kind: RotationStep['kind'], parent: number, name: string, extra: string, tgid: number): Inode | null | undefined;
}

/** Where the open write windows are (see write-window.ts). */
export interface WindowLookup {
  forDir(dirId: number): WriteWindow | undefined;
  forInode(id: number): WriteWindow | undefined;
}

/** Directories whose content changes (root and volume dirs) get a short attribute TTL. */
export type MutableDirCheck = (id: number) => boolean;

export class Operations {
  negotiated: Negotiated | null = null;

  constructor(
    private readonly table: InodeTable,
    private readonly opts: OperationsOptions,
    /** Parent of each volume dir for `..` in listings; everything else reports the root. */
    private readonly isMutableDir: MutableDirCheck = (id) => id === ROOT_ID,
    private readonly windows: WindowLookup | null = null,
    /** Thread id (what the kernel stamps) to process id. */
    private readonly tgidOf: (tid: number) => number = (tid) => tid,
    private readonly ownSteps: OwnSteps | null = null,
  ) {}

  get answersOpens(): boolean {
    return this.opts.answerOpens === true;
  }

  /** Handles one request (header + body); returns the reply, or null when none is due. */
  handle(req: Buffer): Buffer | null {
    const h = decodeInHeader(req);
    const body = req.subarray(IN_HEADER_SIZE, h.len);
    const reply = this.dispatch(h, body);
    this.opts.onRequest?.(h.opcode, Number(h.nodeid), h);
    return reply;
  }

  private dispatch(h: InHeader, body: Buffer): Buffer | null {
    const t = this.table;
    const id = Number(h.nodeid);
    const err = (errno: number): Buffer => encodeReply(h.unique, -errno);
    switch (h.opcode) {
      case Op.INIT:
        return this.init(h, decodeInitIn(body));
      case Op.LOOKUP: {
        const name = decodeName(body);
        const win = this.windows?.forDir(id);
        const staged = win?.seenBy(this.tgidOf(h.pid)) ? win.lookup(name) : undefined;
        if (staged === 'hidden') return err(E.ENOENT);
        if (staged) return encodeReply(h.unique, 0, encodeEntryOut(t.attr(staged), 0, 0, 0));
        const child = t.lookup(id, name);
        if (!child) return err(E.ENOENT);
        const ttl = this.ttl(child.id);
        // While a window is open its directory's names depend on who asks (the
        // kernel's dentry cache is shared): none may be cached.
        return encodeReply(h.unique, 0, encodeEntryOut(t.attr(child), 0, win ? 0 : this.opts.entryTtl, ttl));
      }
      case Op.FORGET:
        t.forget(id, decodeForgetIn(body));
        return null;
      case Op.BATCH_FORGET:
        for (const f of decodeBatchForget(body)) t.forget(f.nodeid, f.nlookup);
        return null;
      case Op.GETATTR: {
        const node = t.get(id);
        if (!node) return err(E.ENOENT);
        return encodeReply(h.unique, 0, encodeAttrOut(t.attr(node), this.ttl(id)));
      }
      case Op.READLINK: {
        const node = t.get(id);
        if (!node || node.kind !== 'symlink' || !node.data) return err(node ? E.EINVAL : E.ENOENT);
        return encodeReply(h.unique, 0, node.data);
      }
      case Op.OPEN:
        if (this.opts.answerOpens) return this.open(h, id);
        // ENOSYS here turns on the kernel's no_open mode: opens never reach us
        // again and the page cache of our immutable inodes is kept.
        return err(E.ENOSYS);
      case Op.OPENDIR:
        return err(E.ENOSYS);
      case Op.READ: {
        const node = t.get(id);
        if (!node) return err(E.ENOENT);
        if (node.kind === 'dir') return err(E.EISDIR);
        if (!node.data) return err(E.EIO); // scrubbed by unpublish: never serve zeros as content
        const { offset, size } = decodeReadIn(body);
        const start = Math.min(offset, node.data.length);
        return encodeReply(h.unique, 0, node.data.subarray(start, Math.min(start + size, node.data.length)));
      }
      case Op.READDIR: {
        const node = t.get(id);
        if (!node?.children) return err(node ? E.ENOTDIR : E.ENOENT);
        const { offset, size } = decodeReadIn(body);
        return encodeReply(h.unique, 0, encodeDirents(t.dirents(node, ROOT_ID), offset, size));
      }
      case Op.RELEASE:
      case Op.RELEASEDIR:
        return encodeReply(h.unique, 0);
      case Op.STATFS:
        return encodeReply(h.unique, 0, encodeStatfs(t.stats().inodes));
      case Op.ACCESS:
        // default_permissions: the kernel already checked the mode bits.
        return encodeReply(h.unique, 0);
      case Op.INTERRUPT:
        // Every request is answered synchronously, so there is nothing to cancel.
        return null;
      case Op.DESTROY:
        return encodeReply(h.unique, 0);
      case Op.CREATE:
        return err(E.ENOSYS);
      case Op.MKDIR:
      case Op.SYMLINK:
      case Op.RMDIR:
        return this.own(h, id, body) ?? err(E.EROFS);
      case Op.RENAME:
      case Op.RENAME2:
      case Op.UNLINK:
        return this.own(h, id, body) ?? this.windowed(h, id, body) ?? err(E.EROFS);
      case Op.MKNOD:
      case Op.WRITE:
      case Op.SETATTR:
        return this.windowed(h, id, body) ?? err(E.EROFS);
      default:
        if (READ_ONLY_OPS.has(h.opcode)) return err(E.EROFS);
        return err(E.ENOSYS);
    }
  }

  /** An answered OPEN: the page cache of immutable inodes is kept, as without OPEN; staged files are not. */
  private open(h: InHeader, id: number): Buffer {
    const node = this.table.get(id);
    if (!node) return encodeReply(h.unique, -E.ENOENT);
    const staged = this.windows?.forInode(id) !== undefined;
    const reply = encodeReply(h.unique, 0, encodeOpenOut(0, staged ? 0 : FOPEN.KEEP_CACHE));
    this.opts.onOpen?.(id, h);
    return reply;
  }

  private ttl(id: number): number {
    if (this.windows?.forInode(id)) return 0; // staged: changes with every write
    return this.isMutableDir(id) ? this.opts.dirAttrTtl : this.opts.attrTtl;
  }

  /** The driver's own rotation step (see OwnSteps); null for anything else. */
  private own(h: InHeader, id: number, body: Buffer): Buffer | null {
    if (!this.ownSteps) return null;
    let kind: RotationStep['kind'];
    let name: string;
    let extra = '';
    switch (h.opcode) {
      case Op.MKDIR:
        kind = 'mkdir';
        name = decodeMkdirIn(body).name;
        break;
      case Op.SYMLINK: {
        const s = decodeSymlinkIn(body);
        kind = 'symlink';
        name = s.name;
        extra = s.target;
        break;
      }
      case Op.RMDIR:
        kind = 'rmdir';
        name = decodeName(body);
        break;
      case Op.UNLINK:
        kind = 'unlink';
        name = decodeName(body);
        break;
      default: {
        const r = decodeRenameIn(body, h.opcode === Op.RENAME2);
        if (r.newdir !== id || r.flags !== 0) return null;
        kind = 'rename';
        name = r.from;
        extra = r.to;
      }
    }
    const res = this.ownSteps.take(kind, id, name, extra, this.tgidOf(h.pid));
    if (res === undefined) return null;
    if (res === null) return encodeReply(h.unique, 0);
    this.table.ref(res.id); // an entry reply is a kernel reference, as with LOOKUP
    return encodeReply(h.unique, 0, encodeEntryOut(this.table.attr(res), 0, this.opts.entryTtl, this.ttl(res.id)));
  }

  /** A mutation inside an open write window, by the provider; null (EROFS) for anything else. */
  private windowed(h: InHeader, id: number, body: Buffer): Buffer | null {
    const t = this.table;
    const isDirOp = h.opcode === Op.MKNOD || h.opcode === Op.RENAME || h.opcode === Op.RENAME2 || h.opcode === Op.UNLINK;
    const win = isDirOp ? this.windows?.forDir(id) : this.windows?.forInode(id);
    if (!win || !win.allows(this.tgidOf(h.pid))) return null;
    const reply = (errno: number, out?: Buffer): Buffer => encodeReply(h.unique, -errno, out);
    const now = Date.now();
    switch (h.opcode) {
      case Op.MKNOD: {
        const m = decodeMknodIn(body);
        if ((m.mode & S_IFMT) !== S_IFREG) return reply(E.EPERM);
        const r = win.mknod(m.name, m.mode & ~m.umask, t.child(id, m.name) !== undefined, now);
        return typeof r === 'number' ? reply(r) : reply(0, encodeEntryOut(t.attr(r), 0, 0, 0));
      }
      case Op.WRITE: {
        const w = decodeWriteIn(body);
        const errno = win.write(id, w.offset, w.data, now);
        return errno !== 0 ? reply(errno) : reply(0, encodeWriteOut(w.data.length));
      }
      case Op.SETATTR: {
        const a = decodeSetattrIn(body);
        if (a.valid & (FATTR.UID | FATTR.GID)) return reply(E.EPERM);
        const errno = win.setattr(
          id,
          {
            ...(a.valid & FATTR.MODE ? { mode: a.mode } : {}),
            ...(a.valid & FATTR.SIZE ? { size: a.size } : {}),
          },
          now,
        );
        return errno !== 0 ? reply(errno) : reply(0, encodeAttrOut(t.attr(t.get(id)!), 0));
      }
      case Op.RENAME:
      case Op.RENAME2: {
        const r = decodeRenameIn(body, h.opcode === Op.RENAME2);
        if (r.newdir !== id) return reply(E.EXDEV);
        if (r.flags !== 0) return reply(E.EINVAL);
        return reply(win.rename(r.from, r.to, t.child(id, r.to) !== undefined));
      }
      case Op.UNLINK: {
        const name = decodeName(body);
        return reply(win.unlink(name, t.child(id, name) !== undefined));
      }
      default:
        return null;
    }
  }

  private init(h: InHeader, init: InitIn): Buffer {
    if (init.major !== FUSE_KERNEL_VERSION) {
      // Protocol 7 is the only major Linux has ever shipped; refuse anything else.
      return encodeReply(h.unique, -E.EPROTO);
    }
    const minor = Math.min(init.minor, FUSE_OUR_MINOR);
    const flags = init.flags & WANTED_FLAGS;
    this.negotiated = { major: FUSE_KERNEL_VERSION, minor, flags, maxReadahead: init.maxReadahead };
    const maxPages = Math.ceil(this.opts.maxWrite / 4096);
    return encodeReply(
      h.unique,
      0,
      encodeInitOut({
        major: FUSE_KERNEL_VERSION,
        minor,
        maxReadahead: init.maxReadahead,
        flags,
        maxBackground: 16,
        congestionThreshold: 12,
        maxWrite: this.opts.maxWrite,
        timeGran: 1,
        maxPages: Math.max(1, maxPages),
      }),
    );
  }
}
