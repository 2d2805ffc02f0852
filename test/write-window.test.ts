// The write window's rules and the merge of written files, without mounts.

import t from 'tap';
import { constants as os } from 'node:os';
import { InodeTable } from '../src/fuse/inode-table.js';
import { WriteWindow, type WindowLimits } from '../src/fuse/write-window.js';
import { filesAfterWindow } from '../src/volume/written-files.js';

const E = os.errno;
const PROVIDER = 4242;

function setup(limits?: WindowLimits, alloc?: (n: number) => Buffer) {
  const table = new InodeTable(alloc ? { alloc } : {});
  const dir = table.mkdir(0o755, 0);
  const w = new WriteWindow(table, dir.id, (pid) => pid === PROVIDER, null, limits);
  return { table, dir, w };
}

/** An allocator that records every buffer it hands out, to check sizes and zeroing. */
function recordingAlloc() {
  const given: Buffer[] = [];
  return {
    given,
    alloc: (n: number) => {
      const b = Buffer.alloc(n, 0xee); // not zero: the table must clear what it uses
      given.push(b);
      return b;
    },
  };
}

function created(r: ReturnType<WriteWindow['mknod']>) {
  if (typeof r === 'number') throw new Error(`mknod failed: ${r}`);
  return r;
}

t.test('setuid, setgid and sticky bits a provider sets are dropped', (t) => {
  const { table, w } = setup();
  const f = w.mknod('a', 0o4755, false, 1);
  if (typeof f === 'number') throw new Error('mknod failed');
  t.equal(table.get(f.id)!.mode, 0o755, 'created 04755: 0755');
  w.setattr(f.id, { mode: 0o7777 }, 2);
  t.equal(table.get(f.id)!.mode, 0o777, 'chmod 07777: 0777');
  w.setattr(f.id, { mode: 0o2640 }, 3);
  t.same(
    w.close().files.map((x) => [x.name, x.mode]),
    [['a', 0o640]],
  );
  w.release();
  t.end();
});

t.test('the AWS sequence: create temp, chmod, write, rename over the final name', (t) => {
  const { table, w } = setup();
  t.ok(w.allows(PROVIDER));
  t.notOk(w.allows(1), 'another process may not write');
  const tmp = w.mknod('pw123', 0o600, false, 1);
  if (typeof tmp === 'number') throw new Error('mknod failed');
  w.setattr(tmp.id, { mode: 0o640 }, 2);
  t.equal(w.write(tmp.id, 0, Buffer.from('hello'), 3), 0);
  t.equal(w.write(tmp.id, 7, Buffer.from('!'), 4), 0, 'a write past the end leaves a zero-filled gap');
  t.equal(w.rename('pw123', 'pw', true), 0);
  t.equal(w.lookup('pw123'), undefined, 'the temp name is gone');
  t.equal((w.lookup('pw') as { id: number }).id, tmp.id);
  const r = w.close();
  t.notOk(w.allows(PROVIDER), 'closed: nobody writes any more');
  t.equal(r.wrote, true);
  t.same(
    r.files.map((f) => [f.name, f.mode, f.contents.toString('latin1')]),
    [['pw', 0o640, 'hello\0\0!']],
  );
  t.same(r.removed, ['pw'], 'the published pw is replaced');
  const data = table.get(tmp.id)!.data!;
  w.release();
  t.equal(table.get(tmp.id)?.id, tmp.id, 'still there while the kernel holds it');
  table.forget(tmp.id, 2);
  t.equal(table.get(tmp.id), undefined, 'freed once forgotten');
  t.ok(
    data.every((b) => b === 0),
    'and zeroed',
  );
  t.end();
});

t.test('errors: existing names, bad names, published files never move, unknown unlinks', (t) => {
  const { w } = setup();
  t.equal(w.mknod('a', 0o600, true, 0), E.EEXIST, 'a published name exists');
  t.equal(w.mknod('..', 0o600, false, 0), E.EINVAL);
  t.equal(w.mknod('x'.repeat(256), 0o600, false, 0), E.EINVAL, 'over NAME_MAX bytes');
  t.type(w.mknod('b', 0o600, false, 0), 'object');
  t.equal(w.mknod('b', 0o600, false, 0), E.EEXIST, 'a staged name exists');
  t.equal(w.rename('a', 'c', false), E.EROFS, 'a published file cannot be moved');
  t.equal(w.unlink('nope', false), E.ENOENT);
  t.equal(w.unlink('a', true), 0, 'a published file can be removed for the next version');
  t.equal(w.lookup('a'), 'hidden');
  t.type(w.mknod('a', 0o600, true, 0), 'object', 'and created again');
  t.same(w.close().removed, [], 'recreated: no longer removed, now written');
  t.end();
});

t.test('filesAfterWindow: nothing written means the response is everything', (t) => {
  const served = [{ path: 'old', mode: 0o644, contents: Buffer.from('o') }];
  const returned = [{ path: 'new', mode: 0o644, contents: Buffer.from('n') }];
  t.same(
    filesAfterWindow(served, null, returned).files.map((f) => f.path),
    ['new'],
  );
  t.same(
    filesAfterWindow(served, { wrote: false, files: [], removed: [], overflow: null }, returned).files.map((f) => f.path),
    ['new'],
  );
  t.end();
});

t.test('filesAfterWindow: served minus removed, plus written, returned files win', (t) => {
  const b = (s: string) => Buffer.from(s);
  const served = [
    { path: 'keep', mode: 0o644, contents: b('k') },
    { path: 'gone', mode: 0o644, contents: b('g') },
    { path: 'dir/inner', mode: 0o644, contents: b('i') },
    { path: 'both', mode: 0o644, contents: b('served') },
  ];
  const r = filesAfterWindow(
    served,
    {
      wrote: true,
      overflow: null,
      removed: ['gone'],
      files: [
        { name: 'dir', mode: 0o600, contents: b('now a file') },
        { name: 'both', mode: 0o600, contents: b('written') },
      ],
    },
    [{ path: 'both', mode: 0o400, contents: b('returned') }],
  );
  t.equal(r.error, null);
  t.same(r.files.map((f) => [f.path, f.mode, f.contents.toString()]).sort(), [
    ['both', 0o400, 'returned'],
    ['dir', 0o600, 'now a file'],
    ['keep', 0o644, 'k'],
  ]);
  t.end();
});

t.test('filesAfterWindow: a written name that breaks the path rules fails the call', (t) => {
  const r = filesAfterWindow(
    [],
    { wrote: true, overflow: null, removed: [], files: [{ name: '..hidden', mode: 0o644, contents: Buffer.from('x') }] },
    [],
  );
  t.match(r.error ?? '', /\.\./);
  t.end();
});

t.test('a truncate past the byte limit is EFBIG before anything is allocated; the window fails and zeroes what it staged', (t) => {
  const rec = recordingAlloc();
  const { table, w } = setup({ maxBytes: 1000, maxFiles: 10 }, rec.alloc);
  const a = created(w.mknod('a', 0o600, false, 1));
  t.equal(w.write(a.id, 0, Buffer.from('secret-bytes'), 2), 0);
  const staged = table.get(a.id)!.data!;
  const before = rec.given.length;
  t.equal(w.setattr(a.id, { size: 2 ** 30 }, 3), E.EFBIG, 'ftruncate to 1 GiB');
  t.ok(
    rec.given.slice(before).every((b) => b.length === 0),
    'nothing but empty buffers allocated',
  );
  t.equal(table.get(a.id)!.data!.length, 0, 'the staged file is emptied at once');
  t.equal(staged.toString('latin1'), '\0'.repeat(12), 'its bytes zeroed');
  t.equal(w.stagedBytes, 0);
  t.equal(w.write(a.id, 0, Buffer.from('x'), 4), E.ENOSPC, 'a failed window takes nothing more');
  t.equal(w.mknod('b', 0o600, false, 5), E.ENOSPC);
  const r = w.close();
  t.same(r.files, [], 'nothing of it to publish');
  t.same(r.overflow, { limit: 'file-size', attempted: `a file of ${2 ** 30} bytes`, limits: { maxBytes: 1000, maxFiles: 10 } });
  w.release();
  t.end();
});

t.test('a write at an offset past the limit is EFBIG; the total over the limit is ENOSPC', (t) => {
  {
    const { w } = setup({ maxBytes: 1000, maxFiles: 10 });
    const a = created(w.mknod('a', 0o600, false, 1));
    t.equal(w.write(a.id, 2 ** 52, Buffer.from('x'), 2), E.EFBIG, 'a sparse write far out');
    t.equal(w.close().overflow?.limit, 'file-size');
  }
  {
    const { w } = setup({ maxBytes: 1000, maxFiles: 10 });
    const a = created(w.mknod('a', 0o600, false, 1));
    const b = created(w.mknod('b', 0o600, false, 1));
    t.equal(w.write(a.id, 0, Buffer.alloc(600), 2), 0);
    t.equal(w.write(b.id, 0, Buffer.alloc(400), 3), 0, 'exactly the limit is allowed');
    t.equal(w.stagedBytes, 1000);
    t.equal(w.setattr(b.id, { size: 401 }, 4), E.ENOSPC, 'one byte more in all');
    const r = w.close();
    t.same(r.overflow?.limit, 'total-bytes');
    t.equal(r.overflow?.attempted, '1001 bytes in all');
  }
  t.end();
});

t.test('files are counted by name: unlinked and renamed-over files stop counting, one file over the count is ENOSPC', (t) => {
  const { w } = setup({ maxBytes: 1000, maxFiles: 3 });
  const a = created(w.mknod('a', 0o600, false, 1));
  t.equal(w.write(a.id, 0, Buffer.alloc(500), 2), 0);
  t.equal(w.unlink('a', false), 0);
  t.equal(w.stagedBytes, 0, 'an unlinked file no longer counts');
  t.notOk(w.owns(a.id), 'nor may it be written through an open descriptor');
  const b = created(w.mknod('b', 0o600, false, 3));
  t.equal(w.write(b.id, 0, Buffer.alloc(700), 4), 0);
  const tmp = created(w.mknod('tmp', 0o600, false, 5));
  t.equal(w.write(tmp.id, 0, Buffer.alloc(300), 6), 0);
  t.equal(w.rename('tmp', 'b', false), 0);
  t.equal(w.stagedBytes, 300, 'the replaced b no longer counts');
  created(w.mknod('c', 0o600, false, 7));
  created(w.mknod('d', 0o600, false, 8));
  t.equal(w.mknod('e', 0o600, false, 9), E.ENOSPC, 'a fourth name');
  const r = w.close();
  t.equal(r.overflow?.limit, 'file-count');
  t.same(r.files, []);
  t.end();
});

t.test('staged files grow by doubling, not by one copy per write, and every replaced buffer is zeroed', (t) => {
  const rec = recordingAlloc();
  const { table, w } = setup({ maxBytes: 4 * 1024 * 1024, maxFiles: 10 }, rec.alloc);
  const a = created(w.mknod('a', 0o600, false, 1));
  const chunk = Buffer.alloc(4096, 0x61);
  let refused = 0;
  for (let i = 0; i < 1024; i++) if (w.write(a.id, i * 4096, chunk, 2) !== 0) refused++;
  t.equal(refused, 0, '4 MiB in 4 KiB writes, all within the limit');
  t.ok(rec.given.length < 20, `${rec.given.length} allocations for 1024 writes`);
  const allocated = rec.given.reduce((n, b) => n + b.length, 0);
  t.ok(allocated <= 3 * 4 * 1024 * 1024, `${allocated} bytes allocated for a 4 MiB file (no quadratic copying)`);
  const current = table.get(a.id)!.data!;
  t.equal(current.length, 4 * 1024 * 1024);
  t.ok(
    rec.given.filter((b) => b.buffer !== current.buffer).every((b) => b.every((x) => x === 0)),
    'every buffer it outgrew is zeroed',
  );
  t.equal(w.setattr(a.id, { size: 10 }, 3), 0, 'a shrink');
  t.equal(w.setattr(a.id, { size: 20 }, 4), 0, 'and a regrowth');
  t.equal(table.get(a.id)!.data!.subarray(10).toString('latin1'), '\0'.repeat(10), 'reads zeros past the old end');
  w.close();
  w.release();
  table.forget(a.id, 1);
  t.ok(
    rec.given.every((b) => b.every((x) => x === 0)),
    'once freed, every allocation is zero',
  );
  t.end();
});
