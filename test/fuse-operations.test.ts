// Unit tests of the FUSE request handlers (src/fuse/operations.ts): requests
// are built as the kernel sends them (in header + body), replies are parsed
// back. No mount involved.

import { constants } from 'node:os';
import t from 'tap';
import { InodeTable, ROOT_ID } from '../src/fuse/inode-table.js';
import { Operations, type Caller, type OperationsOptions } from '../src/fuse/operations.js';
import { VolumeTree } from '../src/fuse/volume-tree.js';
import { VfsSteps, type ForkSyscalls } from '../src/fuse/vfs-steps.js';
import { Op, InitFlag, IN_HEADER_SIZE, S_IFDIR, S_IFREG, S_IFLNK, DT_DIR, DT_REG, DT_LNK, encodeInHeader } from '../src/fuse/protocol.js';

const E = constants.errno;

interface ReqOpts {
  unique?: bigint;
  uid?: number;
  gid?: number;
  pid?: number;
}
let nextUnique = 100n;

function req(opcode: number, nodeid: number, body: Buffer = Buffer.alloc(0), o: ReqOpts = {}): Buffer {
  const h = encodeInHeader({
    len: IN_HEADER_SIZE + body.length,
    opcode,
    unique: o.unique ?? nextUnique++,
    nodeid: BigInt(nodeid),
    uid: o.uid ?? 1000,
    gid: o.gid ?? 1000,
    pid: o.pid ?? 4321,
  });
  return Buffer.concat([h, body]);
}

interface Reply {
  len: number;
  error: number;
  unique: bigint;
  body: Buffer;
}
function parse(r: Buffer | null): Reply {
  if (r === null) throw new Error('no reply');
  return { len: r.readUInt32LE(0), error: r.readInt32LE(4), unique: r.readBigUInt64LE(8), body: r.subarray(16) };
}

const nameBody = (n: string): Buffer => Buffer.from(`${n}\0`);

function initBody(major: number, minor: number, maxReadahead: number, flags: number): Buffer {
  const b = Buffer.alloc(64); // a 7.36+ kernel sends 64 bytes (flags2 + unused)
  b.writeUInt32LE(major, 0);
  b.writeUInt32LE(minor, 4);
  b.writeUInt32LE(maxReadahead, 8);
  b.writeUInt32LE(flags >>> 0, 12);
  return b;
}

function readBody(offset: number, size: number): Buffer {
  const b = Buffer.alloc(40);
  b.writeBigUInt64LE(77n, 0); // fh, ignored
  b.writeBigUInt64LE(BigInt(offset), 8);
  b.writeUInt32LE(size, 16);
  return b;
}

function forgetBody(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n), 0);
  return b;
}

function batchForgetBody(items: Array<[number, number]>): Buffer {
  const b = Buffer.alloc(8 + items.length * 16);
  b.writeUInt32LE(items.length, 0);
  items.forEach(([id, n], i) => {
    b.writeBigUInt64LE(BigInt(id), 8 + i * 16);
    b.writeBigUInt64LE(BigInt(n), 16 + i * 16);
  });
  return b;
}

function parseDirents(b: Buffer): Array<{ ino: number; off: number; name: string; type: number }> {
  const out: Array<{ ino: number; off: number; name: string; type: number }> = [];
  for (let p = 0; p < b.length;) {
    const namelen = b.readUInt32LE(p + 16);
    out.push({
      ino: Number(b.readBigUInt64LE(p)),
      off: Number(b.readBigUInt64LE(p + 8)),
      type: b.readUInt32LE(p + 20),
      name: b.toString('utf8', p + 24, p + 24 + namelen),
    });
    p += (24 + namelen + 7) & ~7;
  }
  return out;
}

const OPTS: OperationsOptions = { entryTtl: 3600, attrTtl: 3600, dirAttrTtl: 1.5, maxWrite: 131072 };

function setup(extra: Partial<OperationsOptions> = {}) {
  const table = new InodeTable();
  const vol = table.mkdir(0o755, 0);
  table.link(ROOT_ID, 'vol', vol.id);
  const file = table.mkfile(Buffer.from('0123456789'), 0o640, 1_700_000_000_250);
  table.link(vol.id, 'secret', file.id);
  const link = table.mksymlink('..data/secret', 0);
  table.link(vol.id, 'link', link.id);
  const ops = new Operations(table, { ...OPTS, ...extra }, (id) => id === ROOT_ID || id === vol.id);
  return { table, vol, file, link, ops };
}

t.test('INIT negotiates', async (t) => {
  t.test('kernel minor above ours: 31; only offered wanted flags', async (t) => {
    const { ops } = setup();
    const offered = InitFlag.ASYNC_READ | InitFlag.CACHE_SYMLINKS | InitFlag.AUTO_INVAL_DATA | (1 << 31) | (1 << 30);
    const r = parse(ops.handle(req(Op.INIT, 0, initBody(7, 40, 131072, offered), { unique: 1n })));
    t.equal(r.error, 0);
    t.equal(r.unique, 1n);
    t.equal(r.len, 16 + 64);
    t.equal(r.body.length, 64, 'init_out is 64 bytes');
    t.equal(r.body.readUInt32LE(0), 7, 'major');
    t.equal(r.body.readUInt32LE(4), 31, 'minor = min(40, 31)');
    t.equal(r.body.readUInt32LE(8), 131072, 'max_readahead echoes the kernel');
    t.equal(
      r.body.readUInt32LE(12),
      InitFlag.ASYNC_READ | InitFlag.CACHE_SYMLINKS,
      'only wanted flags the kernel offered (not AUTO_INVAL_DATA, not unknown high bits)',
    );
    t.equal(r.body.readUInt16LE(16), 16, 'max_background');
    t.equal(r.body.readUInt16LE(18), 12, 'congestion_threshold');
    t.equal(r.body.readUInt32LE(20), 131072, 'max_write');
    t.equal(r.body.readUInt32LE(24), 1, 'time_gran');
    t.equal(r.body.readUInt16LE(28), 32, 'max_pages = max_write / 4096');
    t.strictSame(ops.negotiated, {
      major: 7,
      minor: 31,
      flags: InitFlag.ASYNC_READ | InitFlag.CACHE_SYMLINKS,
      maxReadahead: 131072,
    });
  });

  t.test('kernel minor below ours is kept; all wanted flags when all offered', async (t) => {
    const { ops } = setup();
    const wanted =
      InitFlag.ASYNC_READ |
      InitFlag.NO_OPEN_SUPPORT |
      InitFlag.NO_OPENDIR_SUPPORT |
      InitFlag.CACHE_SYMLINKS |
      InitFlag.PARALLEL_DIROPS |
      InitFlag.EXPLICIT_INVAL_DATA |
      InitFlag.MAX_PAGES |
      InitFlag.BIG_WRITES;
    const r = parse(ops.handle(req(Op.INIT, 0, initBody(7, 27, 4096, 0xffff_ffff))));
    t.equal(r.error, 0);
    t.equal(r.body.readUInt32LE(4), 27, 'minor = min(27, 31)');
    t.equal(r.body.readUInt32LE(12), wanted, 'everything we want, nothing more');
    t.equal(ops.negotiated?.minor, 27);
    t.equal(ops.negotiated?.flags, wanted);
  });

  t.test('no flags offered: none taken', async (t) => {
    const { ops } = setup();
    const r = parse(ops.handle(req(Op.INIT, 0, initBody(7, 31, 0, 0))));
    t.equal(r.body.readUInt32LE(12), 0);
    t.equal(r.body.readUInt32LE(4), 31);
  });

  t.test('old 16-byte init_in', async (t) => {
    const { ops } = setup();
    const r = parse(ops.handle(req(Op.INIT, 0, initBody(7, 31, 65536, InitFlag.BIG_WRITES).subarray(0, 16))));
    t.equal(r.error, 0);
    t.equal(r.body.readUInt32LE(8), 65536);
    t.equal(r.body.readUInt32LE(12), InitFlag.BIG_WRITES);
  });

  t.test('max_pages rounds up and is at least 1', async (t) => {
    const a = setup({ maxWrite: 4097 }).ops;
    t.equal(parse(a.handle(req(Op.INIT, 0, initBody(7, 31, 0, 0)))).body.readUInt16LE(28), 2);
    const b = setup({ maxWrite: 0 }).ops;
    t.equal(parse(b.handle(req(Op.INIT, 0, initBody(7, 31, 0, 0)))).body.readUInt16LE(28), 1);
  });

  t.test('a major other than 7 gets -EPROTO and no negotiation', async (t) => {
    for (const major of [6, 8, 0]) {
      const { ops } = setup();
      const r = parse(ops.handle(req(Op.INIT, 0, initBody(major, 31, 0, 0xffff), { unique: 9n })));
      t.equal(r.error, -E.EPROTO, `major ${major}`);
      t.equal(r.unique, 9n);
      t.equal(r.len, 16);
      t.equal(r.body.length, 0);
      t.equal(ops.negotiated, null);
    }
  });
});

t.test('LOOKUP', async (t) => {
  const { ops, table, vol, file } = setup();
  const miss = parse(ops.handle(req(Op.LOOKUP, vol.id, nameBody('nope'), { unique: 5n })));
  t.equal(miss.error, -E.ENOENT, 'error field is the negative errno');
  t.equal(miss.error, -2);
  t.equal(miss.unique, 5n);
  t.equal(miss.len, 16);
  t.equal(miss.body.length, 0);

  t.equal(file.nlookup, 0);
  const hit = parse(ops.handle(req(Op.LOOKUP, vol.id, nameBody('secret'), { unique: 6n })));
  t.equal(hit.error, 0);
  t.equal(hit.unique, 6n);
  t.equal(hit.body.length, 128, 'fuse_entry_out');
  t.equal(Number(hit.body.readBigUInt64LE(0)), file.id, 'nodeid');
  t.equal(hit.body.readBigUInt64LE(8), 0n, 'generation');
  t.equal(hit.body.readBigUInt64LE(16), 3600n, 'entry_valid');
  t.equal(hit.body.readBigUInt64LE(24), 3600n, 'attr_valid (immutable file)');
  t.equal(Number(hit.body.readBigUInt64LE(40)), file.id, 'attr.ino');
  t.equal(hit.body.readBigUInt64LE(48), 10n, 'attr.size');
  t.equal(hit.body.readUInt32LE(40 + 60), S_IFREG | 0o640, 'attr.mode');
  t.equal(hit.body.readBigUInt64LE(40 + 32), 1_700_000_000n, 'attr.mtime');
  t.equal(hit.body.readUInt32LE(40 + 52), 250_000_000, 'attr.mtimensec');
  t.equal(file.nlookup, 1, 'LOOKUP counts a kernel reference');
  ops.handle(req(Op.LOOKUP, vol.id, nameBody('secret')));
  t.equal(file.nlookup, 2);

  const dir = parse(ops.handle(req(Op.LOOKUP, ROOT_ID, nameBody('vol'))));
  t.equal(Number(dir.body.readBigUInt64LE(0)), vol.id);
  t.equal(dir.body.readBigUInt64LE(24), 1n, 'mutable dir: dirAttrTtl 1.5 -> 1 s');
  t.equal(dir.body.readUInt32LE(36), 500_000_000, '... + 0.5 s');
  t.equal(dir.body.readBigUInt64LE(16), 3600n, 'entry TTL still entryTtl');
  t.equal(dir.body.readUInt32LE(40 + 60), S_IFDIR | 0o755);

  t.equal(parse(ops.handle(req(Op.LOOKUP, file.id, nameBody('x')))).error, -E.ENOENT, 'lookup inside a file');
  t.equal(parse(ops.handle(req(Op.LOOKUP, 9999, nameBody('x')))).error, -E.ENOENT, 'unknown parent');

  // The body is cut at the header's len: bytes beyond it are not part of the name.
  const trailing = Buffer.concat([req(Op.LOOKUP, vol.id, Buffer.from('secret')), Buffer.from('-junk\0')]);
  const cut = parse(ops.handle(trailing));
  t.equal(cut.error, 0, 'name without NUL ends at len');
  t.equal(Number(cut.body.readBigUInt64LE(0)), file.id);
  t.equal(table.get(file.id)!.nlookup, 3);
});

t.test('GETATTR', async (t) => {
  const { ops, file, vol, link } = setup();
  const r = parse(ops.handle(req(Op.GETATTR, file.id, Buffer.alloc(16), { unique: 11n })));
  t.equal(r.error, 0);
  t.equal(r.unique, 11n);
  t.equal(r.body.length, 104, 'fuse_attr_out');
  t.equal(r.body.readBigUInt64LE(0), 3600n, 'attr_valid');
  t.equal(Number(r.body.readBigUInt64LE(16)), file.id, 'ino');
  t.equal(r.body.readBigUInt64LE(24), 10n, 'size');
  t.equal(r.body.readUInt32LE(16 + 60), S_IFREG | 0o640, 'mode');
  t.equal(r.body.readUInt32LE(16 + 64), 1, 'nlink');

  const root = parse(ops.handle(req(Op.GETATTR, ROOT_ID)));
  t.equal(root.body.readBigUInt64LE(0), 1n, 'root is mutable: short TTL');
  t.equal(root.body.readUInt32LE(8), 500_000_000);
  t.equal(root.body.readUInt32LE(16 + 60), S_IFDIR | 0o700, 'the root is closed to other users');
  t.equal(root.body.readUInt32LE(16 + 64), 3, 'root nlink: 2 + one subdirectory');

  const v = parse(ops.handle(req(Op.GETATTR, vol.id)));
  t.equal(v.body.readBigUInt64LE(0), 1n, 'volume dir is mutable too');

  const l = parse(ops.handle(req(Op.GETATTR, link.id)));
  t.equal(l.body.readUInt32LE(16 + 60), S_IFLNK | 0o777);
  t.equal(l.body.readBigUInt64LE(24), BigInt('..data/secret'.length));

  t.equal(parse(ops.handle(req(Op.GETATTR, 9999))).error, -E.ENOENT);
});

t.test('READLINK', async (t) => {
  const { ops, link, file } = setup();
  const r = parse(ops.handle(req(Op.READLINK, link.id, Buffer.alloc(0), { unique: 12n })));
  t.equal(r.error, 0);
  t.equal(r.unique, 12n);
  t.equal(r.body.toString(), '..data/secret', 'target without NUL');
  t.equal(r.len, 16 + 13);
  t.equal(parse(ops.handle(req(Op.READLINK, file.id))).error, -E.EINVAL, 'not a symlink');
  t.equal(parse(ops.handle(req(Op.READLINK, ROOT_ID))).error, -E.EINVAL, 'a directory');
  t.equal(parse(ops.handle(req(Op.READLINK, 9999))).error, -E.ENOENT);
});

t.test('READ', async (t) => {
  const { ops, file, vol, table } = setup();
  const whole = parse(ops.handle(req(Op.READ, file.id, readBody(0, 4096), { unique: 13n })));
  t.equal(whole.error, 0);
  t.equal(whole.unique, 13n);
  t.equal(whole.body.toString(), '0123456789', 'never padded to the requested size');
  t.equal(whole.len, 16 + 10);

  t.equal(parse(ops.handle(req(Op.READ, file.id, readBody(3, 4)))).body.toString(), '3456', 'partial');
  t.equal(parse(ops.handle(req(Op.READ, file.id, readBody(7, 100)))).body.toString(), '789', 'short at EOF');
  const eof = parse(ops.handle(req(Op.READ, file.id, readBody(10, 100))));
  t.equal(eof.error, 0);
  t.equal(eof.body.length, 0, 'at EOF: empty');
  t.equal(eof.len, 16);
  const past = parse(ops.handle(req(Op.READ, file.id, readBody(1_000_000, 100))));
  t.equal(past.error, 0);
  t.equal(past.body.length, 0, 'past EOF: empty');
  t.equal(parse(ops.handle(req(Op.READ, file.id, readBody(0, 0)))).body.length, 0, 'size 0');

  t.equal(parse(ops.handle(req(Op.READ, vol.id, readBody(0, 10)))).error, -E.EISDIR);
  t.equal(parse(ops.handle(req(Op.READ, 9999, readBody(0, 10)))).error, -E.ENOENT);

  table.scrub(vol.id);
  const scrubbed = parse(ops.handle(req(Op.READ, file.id, readBody(0, 10))));
  t.equal(scrubbed.error, -E.EIO, 'scrubbed: EIO, never zeros');
  t.equal(scrubbed.body.length, 0);
});

t.test('READ of an empty file', async (t) => {
  const { ops, table, vol } = setup();
  const f = table.mkfile(Buffer.alloc(0), 0o644, 0);
  table.link(vol.id, 'empty', f.id);
  const r = parse(ops.handle(req(Op.READ, f.id, readBody(0, 10))));
  t.equal(r.error, 0);
  t.equal(r.body.length, 0);
});

t.test('OPEN and OPENDIR -> ENOSYS (no_open mode)', async (t) => {
  const { ops, file, vol } = setup();
  const o = parse(ops.handle(req(Op.OPEN, file.id, Buffer.alloc(8), { unique: 14n })));
  t.equal(o.error, -E.ENOSYS);
  t.equal(o.unique, 14n);
  t.equal(o.body.length, 0);
  t.equal(parse(ops.handle(req(Op.OPENDIR, vol.id, Buffer.alloc(8)))).error, -E.ENOSYS);
});

t.test('answerOpens (read audit): OPEN answered with the page cache kept, onOpen told the caller; OPENDIR still ENOSYS', async (t) => {
  const opens: Array<[number, Caller]> = [];
  const { ops, file, vol } = setup({ answerOpens: true, onOpen: (id, c) => opens.push([id, { uid: c.uid, gid: c.gid, pid: c.pid }]) });
  t.equal(ops.answersOpens, true);
  const o = parse(ops.handle(req(Op.OPEN, file.id, Buffer.alloc(8), { unique: 41n, uid: 7, gid: 8, pid: 999 })));
  t.equal(o.error, 0);
  t.equal(o.unique, 41n);
  t.equal(o.body.length, 16, 'fuse_open_out');
  t.equal(o.body.readBigUInt64LE(0), 0n, 'no file handle');
  t.equal(o.body.readUInt32LE(8), 1 << 1, 'FOPEN_KEEP_CACHE');
  t.same(opens, [[file.id, { uid: 7, gid: 8, pid: 999 }]]);
  t.equal(parse(ops.handle(req(Op.OPEN, 98765, Buffer.alloc(8)))).error, -E.ENOENT, 'unknown inode');
  t.equal(opens.length, 1, 'failed opens are not reported');
  t.equal(parse(ops.handle(req(Op.OPENDIR, vol.id, Buffer.alloc(8)))).error, -E.ENOSYS);
  t.equal(setup().ops.answersOpens, false, 'off by default');
});

t.test('READDIR', async (t) => {
  const { ops, vol, file, link, table } = setup();
  const sub = table.mkdir(0o755, 0);
  table.link(vol.id, 'sub', sub.id);
  const r = parse(ops.handle(req(Op.READDIR, vol.id, readBody(0, 4096), { unique: 15n })));
  t.equal(r.error, 0);
  t.equal(r.unique, 15n);
  t.strictSame(parseDirents(r.body), [
    { ino: vol.id, off: 1, name: '.', type: DT_DIR },
    { ino: ROOT_ID, off: 2, name: '..', type: DT_DIR },
    { ino: file.id, off: 3, name: 'secret', type: DT_REG },
    { ino: link.id, off: 4, name: 'link', type: DT_LNK },
    { ino: sub.id, off: 5, name: 'sub', type: DT_DIR },
  ]);
  const rest = parse(ops.handle(req(Op.READDIR, vol.id, readBody(3, 4096))));
  t.same(
    parseDirents(rest.body).map((d) => d.name),
    ['link', 'sub'],
    'resumes at the offset',
  );
  const small = parse(ops.handle(req(Op.READDIR, vol.id, readBody(0, 64))));
  t.same(
    parseDirents(small.body).map((d) => d.name),
    ['.', '..'],
    'limited by size',
  );
  const end = parse(ops.handle(req(Op.READDIR, vol.id, readBody(5, 4096))));
  t.equal(end.error, 0);
  t.equal(end.body.length, 0, 'past the last entry: empty');

  t.equal(parse(ops.handle(req(Op.READDIR, file.id, readBody(0, 4096)))).error, -E.ENOTDIR);
  t.equal(parse(ops.handle(req(Op.READDIR, 9999, readBody(0, 4096)))).error, -E.ENOENT);

  const root = parseDirents(parse(ops.handle(req(Op.READDIR, ROOT_ID, readBody(0, 4096)))).body);
  t.same(
    root.map((d) => [d.name, d.ino]),
    [
      ['.', ROOT_ID],
      ['..', ROOT_ID],
      ['vol', vol.id],
    ],
  );
});

t.test('mutating operations -> EROFS', async (t) => {
  const { ops, vol, file } = setup();
  const cases: Array<[string, number, number]> = [
    ['WRITE', 16, file.id],
    ['MKDIR', 9, vol.id],
    ['UNLINK', 10, vol.id],
    ['RENAME', 12, vol.id],
    ['SETATTR', 4, file.id],
    ['SYMLINK', Op.SYMLINK, vol.id],
    ['MKNOD', Op.MKNOD, vol.id],
    ['RMDIR', Op.RMDIR, vol.id],
    ['LINK', Op.LINK, vol.id],
    ['SETXATTR', Op.SETXATTR, file.id],
    ['REMOVEXATTR', Op.REMOVEXATTR, file.id],
    ['FALLOCATE', Op.FALLOCATE, file.id],
    ['RENAME2', Op.RENAME2, vol.id],
    ['TMPFILE', Op.TMPFILE, vol.id],
    ['COPY_FILE_RANGE', Op.COPY_FILE_RANGE, file.id],
  ];
  for (const [name, code, node] of cases) {
    const r = parse(ops.handle(req(code, node, Buffer.alloc(64), { unique: 77n })));
    t.equal(r.error, -E.EROFS, `${name} -> -EROFS`);
    t.equal(r.unique, 77n);
    t.equal(r.len, 16);
  }
  // CREATE answers ENOSYS so the kernel creates with MKNOD (answered EROFS above) from then on.
  t.equal(parse(ops.handle(req(35, vol.id, Buffer.alloc(64), { unique: 78n }))).error, -E.ENOSYS, 'CREATE -> -ENOSYS');
  t.equal(file.data!.toString(), '0123456789', 'nothing written');
  t.same([...vol.children!.keys()], ['secret', 'link'], 'nothing created or removed');
});

t.test('unknown and unsupported opcodes -> ENOSYS', async (t) => {
  const { ops, file } = setup();
  for (const code of [999, 7, Op.GETXATTR, Op.LISTXATTR, Op.GETLK, Op.IOCTL, Op.LSEEK, Op.READDIRPLUS, Op.STATX]) {
    const r = parse(ops.handle(req(code, file.id, Buffer.alloc(32), { unique: 3n })));
    t.equal(r.error, -E.ENOSYS, `opcode ${code}`);
    t.equal(r.unique, 3n);
  }
});

t.test('simple acknowledgements', async (t) => {
  const { ops, file, vol, table } = setup();
  for (const code of [Op.RELEASE, Op.RELEASEDIR, Op.ACCESS, Op.DESTROY]) {
    const r = parse(ops.handle(req(code, file.id, Buffer.alloc(16), { unique: 21n })));
    t.equal(r.error, 0, `opcode ${code}`);
    t.equal(r.len, 16);
    t.equal(r.unique, 21n);
  }
  const s = parse(ops.handle(req(Op.STATFS, vol.id)));
  t.equal(s.error, 0);
  t.equal(s.body.length, 80);
  t.equal(Number(s.body.readBigUInt64LE(24)), table.stats().inodes, 'files = inode count');
  t.equal(s.body.readUInt32LE(44), 255, 'namelen');
});

t.test('FORGET, BATCH_FORGET and INTERRUPT produce no reply', async (t) => {
  const { ops, table, vol, file, link } = setup();
  for (let i = 0; i < 3; i++) ops.handle(req(Op.LOOKUP, vol.id, nameBody('secret')));
  ops.handle(req(Op.LOOKUP, vol.id, nameBody('link')));
  t.equal(file.nlookup, 3);
  table.unlink(vol.id, 'secret');
  table.unlink(vol.id, 'link');
  t.equal(table.get(file.id), file, 'kept by the kernel reference');

  t.equal(ops.handle(req(Op.FORGET, file.id, forgetBody(2))), null);
  t.equal(file.nlookup, 1);
  t.equal(table.get(file.id), file);

  t.equal(
    ops.handle(
      req(
        Op.BATCH_FORGET,
        0,
        batchForgetBody([
          [file.id, 1],
          [link.id, 1],
        ]),
      ),
    ),
    null,
  );
  t.equal(table.get(file.id), undefined, 'freed by BATCH_FORGET');
  t.equal(table.get(link.id), undefined);

  const intr = Buffer.alloc(8);
  intr.writeBigUInt64LE(5n, 0);
  t.equal(ops.handle(req(Op.INTERRUPT, 0, intr)), null);
});

t.test('onRequest receives opcode, nodeid and the caller from the header', async (t) => {
  const seen: Array<[number, number, Caller]> = [];
  const { ops, file, vol } = setup({ onRequest: (op, id, c) => seen.push([op, id, { uid: c.uid, gid: c.gid, pid: c.pid }]) });
  ops.handle(req(Op.GETATTR, file.id, Buffer.alloc(16), { uid: 0xffff_fffe, gid: 33, pid: 98765 }));
  ops.handle(req(Op.LOOKUP, vol.id, nameBody('missing'), { uid: 7, gid: 8, pid: 9 }));
  ops.handle(req(Op.FORGET, file.id, forgetBody(0), { uid: 0, gid: 0, pid: 0 }));
  ops.handle(req(Op.WRITE, file.id, Buffer.alloc(40), { uid: 1, gid: 2, pid: 3 }));
  t.strictSame(
    seen,
    [
      [Op.GETATTR, file.id, { uid: 0xffff_fffe, gid: 33, pid: 98765 }],
      [Op.LOOKUP, vol.id, { uid: 7, gid: 8, pid: 9 }],
      [Op.FORGET, file.id, { uid: 0, gid: 0, pid: 0 }],
      [Op.WRITE, file.id, { uid: 1, gid: 2, pid: 3 }],
    ],
    'called for answered, failed and unanswered requests alike',
  );
});

t.test('default mutable-dir check: only the root gets the short TTL', async (t) => {
  const table = new InodeTable();
  const d = table.mkdir(0o755, 0);
  table.link(ROOT_ID, 'd', d.id);
  const ops = new Operations(table, OPTS);
  t.equal(parse(ops.handle(req(Op.GETATTR, ROOT_ID))).body.readBigUInt64LE(0), 1n);
  t.equal(parse(ops.handle(req(Op.GETATTR, d.id))).body.readBigUInt64LE(0), 3600n);
});

t.test("the driver's own rotation steps: applied only for the matching request from the syscall child", async (t) => {
  const table = new InodeTable();
  const vol = table.mkdir(0o755, 0);
  table.link(ROOT_ID, 'vol', vol.id);
  const tree = new VolumeTree(table, vol.id);
  tree.publish([{ path: 'pw', mode: 0o644, contents: Buffer.from('v1') }], new Date(1000));
  const renameBody = (from: string, to: string, dir = vol.id): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(dir));
    return Buffer.concat([b, Buffer.from(`${from}\0${to}\0`)]);
  };
  const mkdirBody = (name: string): Buffer => Buffer.concat([Buffer.from([0o355, 1, 0, 0, 0o22, 0, 0, 0]), nameBody(name)]);
  // Stands in for the forked child and the kernel (no mount here): the child
  // "runs" once this tick is over and sends the requests in `sent`, each
  // answered by the operations; a syscall fails if its request was refused.
  let sent: Buffer[][] = [];
  const replies: Reply[] = [];
  // eslint-disable-next-line prefer-const -- assigned below, after the fork stand-in that closes over it
  let ops!: Operations;
  let scripts: string[] = [];
  const fork: ForkSyscalls = (script) => {
    scripts.push(script.toString('utf8').replace(/\0/g, '|'));
    const plan = sent;
    return {
      pid: 5000,
      results: Promise.resolve().then(() => {
        const out: number[] = [];
        for (const requests of plan) {
          for (const r of requests) replies.push(parse(ops.handle(r)));
          const last = replies[replies.length - 1]!;
          out.push(-last.error);
          if (last.error !== 0) break;
        }
        return out;
      }),
    };
  };
  const steps = new VfsSteps(fork);
  ops = new Operations(
    table,
    OPTS,
    (id) => id === ROOT_ID || id === vol.id,
    null,
    (tid) => (tid === 5001 ? 5000 : tid),
    steps,
  );
  const plan = tree.prepare(
    [
      { path: 'pw', mode: 0o644, contents: Buffer.from('v2') },
      { path: 'new', mode: 0o644, contents: Buffer.from('n') },
    ],
    new Date(2000),
  )!;

  t.equal(parse(ops.handle(req(Op.MKDIR, vol.id, mkdirBody(plan.tsName), { pid: 5000 }))).error, -E.EROFS, 'no batch under way: EROFS');

  sent = [
    [
      req(Op.MKDIR, vol.id, mkdirBody(plan.tsName), { pid: 999 }),
      req(Op.MKDIR, vol.id, mkdirBody('..other'), { pid: 5001 }),
      req(Op.MKDIR, vol.id, mkdirBody(plan.tsName), { pid: 5001 }),
    ],
    [
      req(Op.SYMLINK, vol.id, Buffer.from(`..data_tmp\0..elsewhere\0`), { pid: 5000 }),
      req(Op.SYMLINK, vol.id, Buffer.from(`..data_tmp\0${plan.tsName}\0`), { pid: 0 }),
    ],
    [
      req(Op.RENAME, vol.id, renameBody('..data_tmp', 'pw'), { pid: 5000 }),
      req(Op.RENAME, vol.id, renameBody('..data_tmp', '..data', ROOT_ID), { pid: 5000 }),
      req(Op.RENAME, vol.id, renameBody('..data_tmp', '..data'), { pid: 5000 }),
    ],
    [req(Op.UNLINK, vol.id, nameBody('new'), { pid: 5000 })], // not the next step (a symlink is): refused, the child stops
  ];
  const outcomes = await steps.run(plan.steps, () => '/m/vol');
  t.same(
    scripts,
    [`d/m/vol/${plan.tsName}|s${plan.tsName}|/m/vol/..data_tmp|r/m/vol/..data_tmp|/m/vol/..data|s..data/new|/m/vol/new|`],
    "one script, in the atomic writer's order",
  );
  t.same(
    replies.map((r) => r.error),
    [-E.EROFS, -E.EROFS, 0, -E.EROFS, 0, -E.EROFS, -E.EROFS, 0, -E.EROFS],
    'another process, another name, another target, another destination, across directories, out of order: EROFS',
  );
  t.same(outcomes, ['vfs', 'vfs', 'vfs', 'not-applied'], 'made: the three the kernel asked for; the caller applies the rest');
  const dir = table.child(vol.id, plan.tsName)!;
  t.equal(Number(replies[2]!.body.readBigUInt64LE(0)), dir.id, 'the mkdir entry reply names the new directory');
  t.equal(dir.nlookup, 1, 'an entry reply counts as a kernel reference');
  t.equal(table.child(vol.id, '..data')!.data!.toString(), plan.tsName, '..data names the new version');
  t.notOk(table.child(vol.id, '..data_tmp'));
  t.equal(
    parse(ops.handle(req(Op.SYMLINK, vol.id, Buffer.from(`new\0..data/new\0`), { pid: 5000 }))).error,
    -E.EROFS,
    'after the batch: EROFS again',
  );

  scripts = [];
  const broken = new VfsSteps(() => {
    throw new Error('fork failed');
  });
  t.same(
    await broken.run(plan.steps.slice(3), () => '/m/vol'),
    ['not-applied'],
    'no child: nothing applied (the caller applies it itself)',
  );
  await steps.settled();
});
