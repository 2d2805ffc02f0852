// The write window's rules and the merge of written files, without mounts.

import t from 'tap';
import { constants as os } from 'node:os';
import { InodeTable } from '../src/fuse/inode-table.js';
import { WriteWindow } from '../src/fuse/write-window.js';
import { filesAfterWindow } from '../src/volume/written-files.js';

const E = os.errno;
const PROVIDER = 4242;

function setup() {
  const table = new InodeTable();
  const dir = table.mkdir(0o755, 0);
  const w = new WriteWindow(table, dir.id, (pid) => pid === PROVIDER);
  return { table, dir, w };
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
  t.equal(w.write(tmp.id, 0, Buffer.from('hello'), 3), 5);
  t.equal(w.write(tmp.id, 7, Buffer.from('!'), 4), 1, 'a write past the end leaves a zero-filled gap');
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
    filesAfterWindow(served, { wrote: false, files: [], removed: [] }, returned).files.map((f) => f.path),
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
  const r = filesAfterWindow([], { wrote: true, removed: [], files: [{ name: '..hidden', mode: 0o644, contents: Buffer.from('x') }] }, []);
  t.match(r.error ?? '', /\.\./);
  t.end();
});
