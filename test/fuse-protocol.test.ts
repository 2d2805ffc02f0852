// Unit tests of the FUSE wire layouts (src/fuse/protocol.ts) against the
// struct layouts of Linux include/uapi/linux/fuse.h.

import t from 'tap';

type Tap = typeof t;
import {
  FUSE_KERNEL_VERSION,
  FUSE_OUR_MINOR,
  IN_HEADER_SIZE,
  OUT_HEADER_SIZE,
  MIN_READ_BUFFER,
  Op,
  InitFlag,
  Notify,
  S_IFDIR,
  S_IFREG,
  S_IFLNK,
  DT_DIR,
  DT_REG,
  DT_LNK,
  decodeInHeader,
  encodeInHeader,
  encodeReply,
  encodeNotify,
  encodeEntryOut,
  encodeAttrOut,
  decodeInitIn,
  encodeInitOut,
  decodeReadIn,
  decodeName,
  decodeForgetIn,
  decodeBatchForget,
  encodeDirents,
  encodeStatfs,
  encodeInvalEntry,
  encodeInvalInode,
  encodeResend,
  opName,
  type Attr,
  type Dirent,
  type InHeader,
} from '../src/fuse/protocol.js';

const attr: Attr = {
  ino: 0x1_0000_0002, // above 2^32, so a u32 write would be caught
  size: 1025,
  mode: S_IFREG | 0o640,
  nlink: 3,
  uid: 1001,
  gid: 2002,
  mtimeSec: 1_700_000_000,
  mtimeNsec: 123_456_789,
};

/** Checks the 88-byte struct fuse_attr at `off`. */
function checkAttr(t: Pick<Tap, 'equal'>, b: Buffer, off: number, a: Attr): void {
  t.equal(b.readBigUInt64LE(off), BigInt(a.ino), 'attr.ino');
  t.equal(b.readBigUInt64LE(off + 8), BigInt(a.size), 'attr.size');
  t.equal(b.readBigUInt64LE(off + 16), BigInt(Math.ceil(a.size / 512)), 'attr.blocks (512-byte units)');
  t.equal(b.readBigUInt64LE(off + 24), BigInt(a.mtimeSec), 'attr.atime');
  t.equal(b.readBigUInt64LE(off + 32), BigInt(a.mtimeSec), 'attr.mtime');
  t.equal(b.readBigUInt64LE(off + 40), BigInt(a.mtimeSec), 'attr.ctime');
  t.equal(b.readUInt32LE(off + 48), a.mtimeNsec, 'attr.atimensec');
  t.equal(b.readUInt32LE(off + 52), a.mtimeNsec, 'attr.mtimensec');
  t.equal(b.readUInt32LE(off + 56), a.mtimeNsec, 'attr.ctimensec');
  t.equal(b.readUInt32LE(off + 60), a.mode, 'attr.mode');
  t.equal(b.readUInt32LE(off + 64), a.nlink, 'attr.nlink');
  t.equal(b.readUInt32LE(off + 68), a.uid, 'attr.uid');
  t.equal(b.readUInt32LE(off + 72), a.gid, 'attr.gid');
  t.equal(b.readUInt32LE(off + 76), 0, 'attr.rdev');
  t.equal(b.readUInt32LE(off + 80), 4096, 'attr.blksize');
  t.equal(b.readUInt32LE(off + 84), 0, 'attr.flags');
}

t.test('constants', async (t) => {
  t.equal(FUSE_KERNEL_VERSION, 7);
  t.equal(FUSE_OUR_MINOR, 31);
  t.equal(IN_HEADER_SIZE, 40, 'sizeof(struct fuse_in_header)');
  t.equal(OUT_HEADER_SIZE, 16, 'sizeof(struct fuse_out_header)');
  t.equal(MIN_READ_BUFFER, 8192);
  t.equal(S_IFDIR, 0o040000);
  t.equal(S_IFREG, 0o100000);
  t.equal(S_IFLNK, 0o120000);
  t.equal(DT_DIR, 4);
  t.equal(DT_REG, 8);
  t.equal(DT_LNK, 10);
  // A few opcodes and flags against fuse.h.
  t.equal(Op.LOOKUP, 1);
  t.equal(Op.READ, 15);
  t.equal(Op.INIT, 26);
  t.equal(Op.READDIR, 28);
  t.equal(Op.BATCH_FORGET, 42);
  t.equal(Op.STATX, 52);
  t.equal(InitFlag.ASYNC_READ, 1);
  t.equal(InitFlag.BIG_WRITES, 32);
  t.equal(InitFlag.NO_OPEN_SUPPORT, 1 << 17);
  t.equal(InitFlag.MAX_PAGES, 1 << 22);
  t.equal(InitFlag.CACHE_SYMLINKS, 1 << 23);
  t.equal(InitFlag.NO_OPENDIR_SUPPORT, 1 << 24);
  t.equal(InitFlag.EXPLICIT_INVAL_DATA, 1 << 25);
  t.equal(Notify.INVAL_INODE, 2);
  t.equal(Notify.INVAL_ENTRY, 3);
  t.equal(Notify.DELETE, 6);
  t.equal(Notify.RESEND, 7);
});

t.test('in header encode/decode round-trip', async (t) => {
  const h: InHeader = {
    len: 0x0102_0304,
    opcode: Op.READ,
    unique: 0xfedc_ba98_7654_3210n,
    nodeid: 0x1_0000_0001n,
    uid: 0xffff_fffe,
    gid: 65534,
    pid: 4242,
  };
  const b = encodeInHeader(h);
  t.equal(b.length, 40);
  t.equal(b.readUInt32LE(0), h.len, 'len @0');
  t.equal(b.readUInt32LE(4), Op.READ, 'opcode @4');
  t.equal(b.readBigUInt64LE(8), h.unique, 'unique @8');
  t.equal(b.readBigUInt64LE(16), h.nodeid, 'nodeid @16');
  t.equal(b.readUInt32LE(24), h.uid, 'uid @24');
  t.equal(b.readUInt32LE(28), h.gid, 'gid @28');
  t.equal(b.readUInt32LE(32), h.pid, 'pid @32');
  t.equal(b.readUInt32LE(36), 0, 'padding @36');
  t.strictSame(decodeInHeader(b), h);
  // Decoding ignores whatever follows the header.
  t.strictSame(decodeInHeader(Buffer.concat([b, Buffer.from('trailing body')])), h);
});

t.test('encodeReply', async (t) => {
  const body = Buffer.from('hello');
  const r = encodeReply(77n, 0, body);
  t.equal(r.length, 16 + 5);
  t.equal(r.readUInt32LE(0), 21, 'len covers header and body');
  t.equal(r.readInt32LE(4), 0, 'error');
  t.equal(r.readBigUInt64LE(8), 77n, 'unique');
  t.equal(r.subarray(16).toString(), 'hello');
  body.write('HELLO');
  t.equal(r.subarray(16).toString(), 'hello', 'the body is copied');

  const e = encodeReply(0xffff_ffff_ffff_ffffn, -2);
  t.equal(e.length, 16);
  t.equal(e.readUInt32LE(0), 16);
  t.equal(e.readInt32LE(4), -2, 'negative errno');
  t.equal(e.readBigUInt64LE(8), 0xffff_ffff_ffff_ffffn);

  const empty = encodeReply(5n, 0, Buffer.alloc(0));
  t.equal(empty.length, 16);
  t.equal(empty.readUInt32LE(0), 16);
});

t.test('encodeNotify: unique 0 and the code in the error field', async (t) => {
  const n = encodeNotify(Notify.DELETE, Buffer.from([1, 2, 3]));
  t.equal(n.readUInt32LE(0), 19);
  t.equal(n.readInt32LE(4), 6);
  t.equal(n.readBigUInt64LE(8), 0n);
  t.same([...n.subarray(16)], [1, 2, 3]);
});

t.test('encodeEntryOut layout (struct fuse_entry_out)', async (t) => {
  const b = encodeEntryOut(attr, 9, 1.5, 2.25);
  t.equal(b.length, 40 + 88, 'sizeof(struct fuse_entry_out)');
  t.equal(b.readBigUInt64LE(0), BigInt(attr.ino), 'nodeid @0');
  t.equal(b.readBigUInt64LE(8), 9n, 'generation @8');
  t.equal(b.readBigUInt64LE(16), 1n, 'entry_valid seconds @16');
  t.equal(b.readBigUInt64LE(24), 2n, 'attr_valid seconds @24');
  t.equal(b.readUInt32LE(32), 500_000_000, 'entry_valid_nsec @32');
  t.equal(b.readUInt32LE(36), 250_000_000, 'attr_valid_nsec @36');
  checkAttr(t, b, 40, attr);
  t.equal(b.readUInt32LE(40 + 60), S_IFREG | 0o640, 'mode at 40+60');
  t.equal(b.readUInt32LE(40 + 64), 3, 'nlink at 40+64');
});

t.test('validity: whole seconds, zero, and rounding that never reaches 1e9 ns', async (t) => {
  const whole = encodeEntryOut(attr, 0, 3600, 0);
  t.equal(whole.readBigUInt64LE(16), 3600n);
  t.equal(whole.readUInt32LE(32), 0);
  t.equal(whole.readBigUInt64LE(24), 0n);
  t.equal(whole.readUInt32LE(36), 0);
  const almost = encodeEntryOut(attr, 0, 0.9999999999, 0.001);
  t.equal(almost.readBigUInt64LE(16), 0n);
  t.equal(almost.readUInt32LE(32), 999_999_999, 'nsec is capped below one second');
  t.equal(almost.readUInt32LE(36), 1_000_000);
});

t.test('encodeAttrOut layout (struct fuse_attr_out)', async (t) => {
  const dir: Attr = { ino: 1, size: 4096, mode: S_IFDIR | 0o755, nlink: 2, uid: 0, gid: 0, mtimeSec: 5, mtimeNsec: 6 };
  const b = encodeAttrOut(dir, 0.75);
  t.equal(b.length, 16 + 88, 'sizeof(struct fuse_attr_out)');
  t.equal(b.readBigUInt64LE(0), 0n, 'attr_valid seconds @0');
  t.equal(b.readUInt32LE(8), 750_000_000, 'attr_valid_nsec @8');
  t.equal(b.readUInt32LE(12), 0, 'dummy @12');
  checkAttr(t, b, 16, dir);
  t.equal(b.readBigUInt64LE(16 + 16), 8n, 'blocks of 4096 bytes = 8');
});

t.test('attr blocks round up', async (t) => {
  for (const [size, blocks] of [
    [0, 0n],
    [1, 1n],
    [512, 1n],
    [513, 2n],
  ] as const) {
    const b = encodeAttrOut({ ...attr, size }, 0);
    t.equal(b.readBigUInt64LE(16 + 16), blocks, `size ${size}`);
  }
});

t.test('decodeInitIn', async (t) => {
  const full = Buffer.alloc(64);
  full.writeUInt32LE(7, 0);
  full.writeUInt32LE(38, 4);
  full.writeUInt32LE(131072, 8);
  full.writeUInt32LE(0x8000_0001, 12);
  t.strictSame(decodeInitIn(full), { major: 7, minor: 38, maxReadahead: 131072, flags: 0x8000_0001 });
  // Old kernels send only major and minor.
  const short = Buffer.alloc(8);
  short.writeUInt32LE(7, 0);
  short.writeUInt32LE(5, 4);
  t.strictSame(decodeInitIn(short), { major: 7, minor: 5, maxReadahead: 0, flags: 0 });
  const twelve = Buffer.alloc(12);
  twelve.writeUInt32LE(7, 0);
  twelve.writeUInt32LE(6, 4);
  twelve.writeUInt32LE(4096, 8);
  t.strictSame(decodeInitIn(twelve), { major: 7, minor: 6, maxReadahead: 4096, flags: 0 });
});

t.test('encodeInitOut layout (struct fuse_init_out)', async (t) => {
  const b = encodeInitOut({
    major: 7,
    minor: 31,
    maxReadahead: 0x20000,
    flags: (1 << 31) | InitFlag.ASYNC_READ,
    maxBackground: 16,
    congestionThreshold: 12,
    maxWrite: 0x100000,
    timeGran: 1,
    maxPages: 256,
  });
  t.equal(b.length, 64);
  t.equal(b.readUInt32LE(0), 7, 'major @0');
  t.equal(b.readUInt32LE(4), 31, 'minor @4');
  t.equal(b.readUInt32LE(8), 0x20000, 'max_readahead @8');
  t.equal(b.readUInt32LE(12), 0x8000_0001, 'flags @12 (bit 31 survives as unsigned)');
  t.equal(b.readUInt16LE(16), 16, 'max_background @16');
  t.equal(b.readUInt16LE(18), 12, 'congestion_threshold @18');
  t.equal(b.readUInt32LE(20), 0x100000, 'max_write @20');
  t.equal(b.readUInt32LE(24), 1, 'time_gran @24');
  t.equal(b.readUInt16LE(28), 256, 'max_pages @28');
  t.ok(
    b.subarray(30).every((x) => x === 0),
    'map_alignment, flags2 and unused stay 0',
  );
});

t.test('decodeReadIn (struct fuse_read_in)', async (t) => {
  const b = Buffer.alloc(40);
  b.writeBigUInt64LE(0xdeadn, 0); // fh
  b.writeBigUInt64LE(0x1_0000_0010n, 8); // offset
  b.writeUInt32LE(4096, 16); // size
  b.writeUInt32LE(0xffff_ffff, 20); // read_flags
  t.strictSame(decodeReadIn(b), { offset: 0x1_0000_0010, size: 4096 });
});

t.test('decodeName', async (t) => {
  t.equal(decodeName(Buffer.from('secret.txt\0')), 'secret.txt', 'NUL-terminated');
  t.equal(decodeName(Buffer.from('secret.txt')), 'secret.txt', 'no NUL: whole buffer');
  t.equal(decodeName(Buffer.from('a\0b\0')), 'a', 'stops at the first NUL');
  t.equal(decodeName(Buffer.from('\0')), '', 'empty name');
  t.equal(decodeName(Buffer.alloc(0)), '');
  t.equal(decodeName(Buffer.from('old\0new\0'), 4), 'new', 'from a start offset (RENAME-style bodies)');
  t.equal(decodeName(Buffer.from('x\0tail'), 2), 'tail', 'from a start offset without NUL');
  t.equal(decodeName(Buffer.from('héllo\0', 'utf8')), 'héllo', 'UTF-8');
});

t.test('decodeForgetIn', async (t) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(12345n, 0);
  t.equal(decodeForgetIn(b), 12345);
});

t.test('decodeBatchForget (struct fuse_batch_forget_in + fuse_forget_one[])', async (t) => {
  const b = Buffer.alloc(8 + 3 * 16);
  b.writeUInt32LE(3, 0);
  b.writeUInt32LE(0xffff_ffff, 4); // dummy
  const items = [
    [2n, 1n],
    [0x1_0000_0000n, 7n],
    [99n, 0n],
  ] as const;
  items.forEach(([id, n], i) => {
    b.writeBigUInt64LE(id, 8 + i * 16);
    b.writeBigUInt64LE(n, 16 + i * 16);
  });
  t.strictSame(decodeBatchForget(b), [
    { nodeid: 2, nlookup: 1 },
    { nodeid: 0x1_0000_0000, nlookup: 7 },
    { nodeid: 99, nlookup: 0 },
  ]);
  // count larger than the body: only complete entries are decoded.
  const truncated = Buffer.alloc(8 + 16 + 8);
  truncated.writeUInt32LE(5, 0);
  truncated.writeBigUInt64LE(4n, 8);
  truncated.writeBigUInt64LE(2n, 16);
  t.strictSame(decodeBatchForget(truncated), [{ nodeid: 4, nlookup: 2 }]);
  // count smaller than the body: extra entries ignored.
  const fewer = Buffer.from(b);
  fewer.writeUInt32LE(1, 0);
  t.strictSame(decodeBatchForget(fewer), [{ nodeid: 2, nlookup: 1 }]);
  const zero = Buffer.alloc(8);
  t.strictSame(decodeBatchForget(zero), []);
});

interface ParsedDirent {
  ino: bigint;
  off: bigint;
  namelen: number;
  type: number;
  name: string;
  recStart: number;
  recLen: number;
}
function parseDirents(b: Buffer): ParsedDirent[] {
  const out: ParsedDirent[] = [];
  let p = 0;
  while (p < b.length) {
    const namelen = b.readUInt32LE(p + 16);
    const recLen = (24 + namelen + 7) & ~7;
    out.push({
      ino: b.readBigUInt64LE(p),
      off: b.readBigUInt64LE(p + 8),
      namelen,
      type: b.readUInt32LE(p + 20),
      name: b.toString('utf8', p + 24, p + 24 + namelen),
      recStart: p,
      recLen,
    });
    p += recLen;
  }
  return out;
}

t.test('encodeDirents', async (t) => {
  const entries: Dirent[] = [
    { ino: 1, name: '.', type: DT_DIR }, // 24+1 -> 32
    { ino: 1, name: '..', type: DT_DIR }, // 24+2 -> 32
    { ino: 5, name: '12345678', type: DT_REG }, // 24+8 = 32 exactly
    { ino: 6, name: '123456789', type: DT_LNK }, // 24+9 -> 40
    { ino: 0x1_0000_0007, name: 'é', type: DT_REG }, // 2 UTF-8 bytes -> 32
  ];

  t.test('everything fits', async (t) => {
    const b = encodeDirents(entries, 0, 4096);
    t.equal(b.length, 32 + 32 + 32 + 40 + 32);
    const d = parseDirents(b);
    t.equal(d.length, 5);
    d.forEach((e, i) => {
      t.equal(e.recStart % 8, 0, `record ${i} is 8-byte aligned`);
      t.equal(e.off, BigInt(i + 1), `off of record ${i} is index+1`);
      t.equal(e.ino, BigInt(entries[i]!.ino));
      t.equal(e.type, entries[i]!.type);
      t.equal(e.name, entries[i]!.name);
      // padding after the name is zero
      t.ok(
        b.subarray(e.recStart + 24 + e.namelen, e.recStart + e.recLen).every((x) => x === 0),
        `padding ${i} zero`,
      );
    });
    t.equal(d[4]!.namelen, 2, 'namelen counts UTF-8 bytes');
  });

  t.test('stops when the size budget is exceeded', async (t) => {
    t.equal(encodeDirents(entries, 0, 31).length, 0, 'not even the first record fits');
    t.equal(encodeDirents(entries, 0, 32).length, 32, 'exactly one record');
    t.equal(encodeDirents(entries, 0, 63).length, 32, 'the second does not fit in 63');
    t.equal(encodeDirents(entries, 0, 96 + 39).length, 96, 'the 40-byte fourth does not fit in 39');
    const d = parseDirents(encodeDirents(entries, 0, 96 + 40));
    t.same(
      d.map((e) => e.name),
      ['.', '..', '12345678', '123456789'],
    );
  });

  t.test('does not skip a too-large record to take a later smaller one', async (t) => {
    const b = encodeDirents(entries, 3, 32 + 8);
    t.equal(parseDirents(b).length, 1);
    const small = encodeDirents(entries, 3, 39);
    t.equal(small.length, 0, 'entry 3 (40 bytes) does not fit; entry 4 (32) must not be sent instead');
  });

  t.test('resumes from a start index', async (t) => {
    const d = parseDirents(encodeDirents(entries, 2, 4096));
    t.same(
      d.map((e) => e.name),
      ['12345678', '123456789', 'é'],
    );
    t.same(
      d.map((e) => e.off),
      [3n, 4n, 5n],
    );
    t.equal(encodeDirents(entries, 5, 4096).length, 0, 'start at the end: empty');
    t.equal(encodeDirents(entries, 99, 4096).length, 0, 'start past the end: empty');
  });

  t.test('paging with off reaches every entry exactly once', async (t) => {
    const seen: string[] = [];
    let start = 0;
    for (let guard = 0; guard < 10; guard++) {
      const d = parseDirents(encodeDirents(entries, start, 64));
      if (d.length === 0) break;
      seen.push(...d.map((e) => e.name));
      start = Number(d[d.length - 1]!.off);
    }
    t.same(
      seen,
      entries.map((e) => e.name),
    );
  });
});

t.test('encodeStatfs (struct fuse_kstatfs)', async (t) => {
  const b = encodeStatfs(42);
  t.equal(b.length, 80);
  t.equal(b.readBigUInt64LE(0), 0n, 'blocks');
  t.equal(b.readBigUInt64LE(8), 0n, 'bfree');
  t.equal(b.readBigUInt64LE(16), 0n, 'bavail');
  t.equal(b.readBigUInt64LE(24), 42n, 'files @24');
  t.equal(b.readBigUInt64LE(32), 0n, 'ffree');
  t.equal(b.readUInt32LE(40), 4096, 'bsize @40');
  t.equal(b.readUInt32LE(44), 255, 'namelen @44');
  t.equal(b.readUInt32LE(48), 4096, 'frsize @48');
});

t.test('encodeInvalEntry (FUSE_NOTIFY_INVAL_ENTRY)', async (t) => {
  const n = encodeInvalEntry(0x1_0000_0003, '..data');
  const bodyLen = 16 + 6 + 1;
  t.equal(n.length, 16 + bodyLen);
  t.equal(n.readUInt32LE(0), 16 + bodyLen, 'len');
  t.equal(n.readInt32LE(4), 3, 'code INVAL_ENTRY in the error field');
  t.equal(n.readBigUInt64LE(8), 0n, 'unique 0');
  t.equal(n.readBigUInt64LE(16), 0x1_0000_0003n, 'parent');
  t.equal(n.readUInt32LE(24), 6, 'namelen (without NUL)');
  t.equal(n.readUInt32LE(28), 0, 'flags');
  t.equal(n.toString('utf8', 32, 38), '..data', 'name');
  t.equal(n[38], 0, 'NUL terminator');

  const u = encodeInvalEntry(1, 'ключ');
  t.equal(u.readUInt32LE(24), 8, 'namelen in UTF-8 bytes');
  t.equal(u.length, 16 + 16 + 8 + 1);
  t.equal(u.toString('utf8', 32, 40), 'ключ');
  t.equal(u[40], 0);
});

t.test('encodeInvalInode (FUSE_NOTIFY_INVAL_INODE)', async (t) => {
  const n = encodeInvalInode(0x1_0000_0009, -1, 0);
  t.equal(n.length, 16 + 24);
  t.equal(n.readUInt32LE(0), 40);
  t.equal(n.readInt32LE(4), 2, 'code INVAL_INODE');
  t.equal(n.readBigUInt64LE(8), 0n, 'unique 0');
  t.equal(n.readBigUInt64LE(16), 0x1_0000_0009n, 'ino');
  t.equal(n.readBigInt64LE(24), -1n, 'off is signed: -1 = attributes only');
  t.equal(n.readBigUInt64LE(24), 0xffff_ffff_ffff_ffffn, 'as unsigned bytes: all ones');
  t.equal(n.readBigInt64LE(32), 0n, 'len');
  const r = encodeInvalInode(5, 4096, 8192);
  t.equal(r.readBigInt64LE(24), 4096n);
  t.equal(r.readBigInt64LE(32), 8192n);
});

t.test('encodeResend (FUSE_NOTIFY_RESEND)', async (t) => {
  const n = encodeResend();
  t.equal(n.length, 16, 'empty body');
  t.equal(n.readUInt32LE(0), 16);
  t.equal(n.readInt32LE(4), 7, 'code RESEND');
  t.equal(n.readBigUInt64LE(8), 0n);
});

t.test('opName', async (t) => {
  t.equal(opName(1), 'lookup');
  t.equal(opName(Op.READ), 'read');
  t.equal(opName(Op.BATCH_FORGET), 'batch_forget');
  t.equal(opName(Op.COPY_FILE_RANGE), 'copy_file_range');
  t.equal(opName(Op.STATX), 'statx');
  t.equal(opName(7), 'unknown', '7 is unused in fuse.h');
  t.equal(opName(0), 'unknown');
  t.equal(opName(4096), 'unknown');
  t.equal(opName(-1), 'unknown');
  // Every opcode maps back to its own name.
  for (const [name, code] of Object.entries(Op)) t.equal(opName(code), name.toLowerCase());
});
