// Kernel FUSE wire protocol (include/uapi/linux/fuse.h): opcodes, flags and
// the byte layouts we read and write. Pure encode/decode, no I/O, so every
// layout is unit-testable without a mount. All integers are host-endian;
// Linux on x86_64/arm64 is little-endian, which is all we support.

export const FUSE_KERNEL_VERSION = 7;
/** Highest protocol minor we speak; the kernel's minor may be higher. */
export const FUSE_OUR_MINOR = 31;

export const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
  TMPFILE: 51,
  STATX: 52,
} as const;

const opNames = new Map<number, string>(Object.entries(Op).map(([k, v]) => [v, k.toLowerCase()]));
/** Stable lower-case name of an opcode, for metrics labels. */
export function opName(opcode: number): string {
  return opNames.get(opcode) ?? 'unknown';
}

export const InitFlag = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  AUTO_INVAL_DATA: 1 << 12,
  NO_OPEN_SUPPORT: 1 << 17,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  NO_OPENDIR_SUPPORT: 1 << 24,
  EXPLICIT_INVAL_DATA: 1 << 25,
} as const;

export const Notify = { INVAL_INODE: 2, INVAL_ENTRY: 3, DELETE: 6, RESEND: 7 } as const;

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const DT_DIR = 4;
export const DT_REG = 8;
export const DT_LNK = 10;

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
const ATTR_SIZE = 88;
const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
const ATTR_OUT_SIZE = 16 + ATTR_SIZE;
const INIT_OUT_SIZE = 64;
const KSTATFS_SIZE = 80;
/** Minimum read buffer the kernel accepts (FUSE_MIN_READ_BUFFER). */
export const MIN_READ_BUFFER = 8192;

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: bigint;
  uid: number;
  gid: number;
  pid: number;
}

export function decodeInHeader(buf: Buffer): InHeader {
  return {
    len: buf.readUInt32LE(0),
    opcode: buf.readUInt32LE(4),
    unique: buf.readBigUInt64LE(8),
    nodeid: buf.readBigUInt64LE(16),
    uid: buf.readUInt32LE(24),
    gid: buf.readUInt32LE(28),
    pid: buf.readUInt32LE(32),
  };
}

export function encodeInHeader(h: InHeader): Buffer {
  const b = Buffer.alloc(IN_HEADER_SIZE);
  b.writeUInt32LE(h.len, 0);
  b.writeUInt32LE(h.opcode, 4);
  b.writeBigUInt64LE(h.unique, 8);
  b.writeBigUInt64LE(h.nodeid, 16);
  b.writeUInt32LE(h.uid, 24);
  b.writeUInt32LE(h.gid, 28);
  b.writeUInt32LE(h.pid, 32);
  return b;
}

/** A reply: out header followed by `body`. `error` is a negative errno or 0. */
export function encodeReply(unique: bigint, error: number, body?: Buffer): Buffer {
  const len = OUT_HEADER_SIZE + (body?.length ?? 0);
  const b = Buffer.allocUnsafe(len);
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(error, 4);
  b.writeBigUInt64LE(unique, 8);
  if (body) body.copy(b, OUT_HEADER_SIZE);
  return b;
}

/** A notification is an out header with unique 0 and the notify code in `error`. */
export function encodeNotify(code: number, body: Buffer): Buffer {
  return encodeReply(0n, code, body);
}

export interface Attr {
  ino: number;
  size: number;
  mode: number; // including the S_IF* type bits
  nlink: number;
  uid: number;
  gid: number;
  mtimeSec: number;
  mtimeNsec: number;
}

function writeAttr(b: Buffer, off: number, a: Attr): void {
  b.writeBigUInt64LE(BigInt(a.ino), off);
  b.writeBigUInt64LE(BigInt(a.size), off + 8);
  b.writeBigUInt64LE(BigInt(Math.ceil(a.size / 512)), off + 16);
  for (const t of [24, 32, 40]) b.writeBigUInt64LE(BigInt(a.mtimeSec), off + t); // atime, mtime, ctime
  for (const t of [48, 52, 56]) b.writeUInt32LE(a.mtimeNsec, off + t);
  b.writeUInt32LE(a.mode, off + 60);
  b.writeUInt32LE(a.nlink, off + 64);
  b.writeUInt32LE(a.uid, off + 68);
  b.writeUInt32LE(a.gid, off + 72);
  b.writeUInt32LE(0, off + 76); // rdev
  b.writeUInt32LE(4096, off + 80); // blksize
  b.writeUInt32LE(0, off + 84); // flags
}

/** Writes a cache validity (seconds, may be fractional) as u64 seconds + u32 nanoseconds. */
function writeValid(b: Buffer, secOff: number, nsecOff: number, seconds: number): void {
  const whole = Math.floor(seconds);
  b.writeBigUInt64LE(BigInt(whole), secOff);
  b.writeUInt32LE(Math.min(999_999_999, Math.round((seconds - whole) * 1e9)), nsecOff);
}

export function encodeEntryOut(attr: Attr, generation: number, entryTtl: number, attrTtl: number): Buffer {
  const b = Buffer.alloc(ENTRY_OUT_SIZE);
  b.writeBigUInt64LE(BigInt(attr.ino), 0);
  b.writeBigUInt64LE(BigInt(generation), 8);
  writeValid(b, 16, 32, entryTtl);
  writeValid(b, 24, 36, attrTtl);
  writeAttr(b, 40, attr);
  return b;
}

export function encodeAttrOut(attr: Attr, attrTtl: number): Buffer {
  const b = Buffer.alloc(ATTR_OUT_SIZE);
  writeValid(b, 0, 8, attrTtl);
  writeAttr(b, 16, attr);
  return b;
}

export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
}

export function decodeInitIn(body: Buffer): InitIn {
  return {
    major: body.readUInt32LE(0),
    minor: body.readUInt32LE(4),
    maxReadahead: body.length >= 12 ? body.readUInt32LE(8) : 0,
    flags: body.length >= 16 ? body.readUInt32LE(12) : 0,
  };
}

export interface InitOut {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  timeGran: number;
  maxPages: number;
}

export function encodeInitOut(o: InitOut): Buffer {
  const b = Buffer.alloc(INIT_OUT_SIZE);
  b.writeUInt32LE(o.major, 0);
  b.writeUInt32LE(o.minor, 4);
  b.writeUInt32LE(o.maxReadahead, 8);
  b.writeUInt32LE(o.flags >>> 0, 12);
  b.writeUInt16LE(o.maxBackground, 16);
  b.writeUInt16LE(o.congestionThreshold, 18);
  b.writeUInt32LE(o.maxWrite, 20);
  b.writeUInt32LE(o.timeGran, 24);
  b.writeUInt16LE(o.maxPages, 28);
  return b;
}

export interface ReadIn {
  offset: number;
  size: number;
}

export function decodeReadIn(body: Buffer): ReadIn {
  return { offset: Number(body.readBigUInt64LE(8)), size: body.readUInt32LE(16) };
}

/** Name argument of LOOKUP and friends: NUL-terminated bytes. */
export function decodeName(body: Buffer, start = 0): string {
  const end = body.indexOf(0, start);
  return body.toString('utf8', start, end < 0 ? body.length : end);
}

export function decodeForgetIn(body: Buffer): number {
  return Number(body.readBigUInt64LE(0));
}

export function decodeBatchForget(body: Buffer): Array<{ nodeid: number; nlookup: number }> {
  const count = body.readUInt32LE(0);
  const out: Array<{ nodeid: number; nlookup: number }> = [];
  for (let i = 0, off = 8; i < count && off + 16 <= body.length; i++, off += 16) {
    out.push({ nodeid: Number(body.readBigUInt64LE(off)), nlookup: Number(body.readBigUInt64LE(off + 8)) });
  }
  return out;
}

export interface Dirent {
  ino: number;
  name: string;
  type: number;
}

/**
 * READDIR reply: as many entries from `start` as fit in `size` bytes. Each
 * entry's `off` is the index of the next entry, so the kernel resumes there.
 */
export function encodeDirents(entries: readonly Dirent[], start: number, size: number): Buffer {
  const parts: Buffer[] = [];
  let used = 0;
  for (let i = start; i < entries.length; i++) {
    const e = entries[i]!;
    const name = Buffer.from(e.name, 'utf8');
    const recLen = (24 + name.length + 7) & ~7;
    if (used + recLen > size) break;
    const rec = Buffer.alloc(recLen);
    rec.writeBigUInt64LE(BigInt(e.ino), 0);
    rec.writeBigUInt64LE(BigInt(i + 1), 8);
    rec.writeUInt32LE(name.length, 16);
    rec.writeUInt32LE(e.type, 20);
    name.copy(rec, 24);
    parts.push(rec);
    used += recLen;
  }
  return Buffer.concat(parts, used);
}

export function encodeStatfs(files: number): Buffer {
  const b = Buffer.alloc(KSTATFS_SIZE);
  // blocks, bfree, bavail stay 0: a read-only filesystem with no free space.
  b.writeBigUInt64LE(BigInt(files), 24); // files
  b.writeUInt32LE(4096, 40); // bsize
  b.writeUInt32LE(255, 44); // namelen
  b.writeUInt32LE(4096, 48); // frsize
  return b;
}

export function encodeInvalEntry(parent: number, name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(16 + n.length + 1);
  b.writeBigUInt64LE(BigInt(parent), 0);
  b.writeUInt32LE(n.length, 8);
  n.copy(b, 16);
  return encodeNotify(Notify.INVAL_ENTRY, b);
}

/** off < 0 drops cached attributes only; len 0 means "to the end". */
export function encodeInvalInode(ino: number, off: number, len: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(BigInt(ino), 0);
  b.writeBigInt64LE(BigInt(off), 8);
  b.writeBigInt64LE(BigInt(len), 16);
  return encodeNotify(Notify.INVAL_INODE, b);
}

/** Ask the kernel to queue again every request a previous server had read (Linux 6.9+). */
export function encodeResend(): Buffer {
  return encodeNotify(Notify.RESEND, Buffer.alloc(0));
}

// The write path, used only inside a provider's write window (write-window.ts).

/** fuse_mknod_in: mode, rdev, umask, padding; then the name. */
export function decodeMknodIn(body: Buffer): { mode: number; umask: number; name: string } {
  return { mode: body.readUInt32LE(0), umask: body.readUInt32LE(8), name: decodeName(body, 16) };
}

/** fuse_write_in (40 bytes since 7.9); then the data. */
export function decodeWriteIn(body: Buffer): { offset: number; size: number; data: Buffer } {
  const size = body.readUInt32LE(16);
  return { offset: Number(body.readBigUInt64LE(8)), size, data: body.subarray(40, 40 + size) };
}

/** FOPEN_* flags of fuse_open_out. */
export const FOPEN = { KEEP_CACHE: 1 << 1 } as const;

/** fuse_open_out: file handle, open flags, padding. */
export function encodeOpenOut(fh: number, openFlags: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(fh), 0);
  b.writeUInt32LE(openFlags, 8);
  return b;
}

export function encodeWriteOut(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(size, 0);
  return b;
}

export const FATTR = { MODE: 1, UID: 2, GID: 4, SIZE: 8 } as const;

/** fuse_setattr_in: the fields a write window honours. */
export function decodeSetattrIn(body: Buffer): { valid: number; size: number; mode: number } {
  return { valid: body.readUInt32LE(0), size: Number(body.readBigUInt64LE(16)), mode: body.readUInt32LE(68) };
}

/** fuse_rename_in (newdir) or fuse_rename2_in (newdir, flags, padding); then old and new names. */
export function decodeRenameIn(body: Buffer, v2: boolean): { newdir: number; flags: number; from: string; to: string } {
  const start = v2 ? 16 : 8;
  const end = body.indexOf(0, start);
  return {
    newdir: Number(body.readBigUInt64LE(0)),
    flags: v2 ? body.readUInt32LE(8) : 0,
    from: body.toString('utf8', start, end),
    to: decodeName(body, end + 1),
  };
}

// The driver's own directory changes on a rotation (vfs-steps.ts).

/** fuse_mkdir_in: mode, umask; then the name. */
export function decodeMkdirIn(body: Buffer): { mode: number; name: string } {
  return { mode: body.readUInt32LE(0), name: decodeName(body, 8) };
}

/** SYMLINK: the new entry's name, then the link's target. */
export function decodeSymlinkIn(body: Buffer): { name: string; target: string } {
  const end = body.indexOf(0);
  return { name: body.toString('utf8', 0, end), target: decodeName(body, end + 1) };
}
