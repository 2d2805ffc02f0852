// Unit tests of the in-memory inode table (src/fuse/inode-table.ts): link and
// lookup accounting, freeing and zeroing, scrub, and stats.

import t from 'tap';
import { errMsg } from './helpers/errors.js';
import { InodeTable, ROOT_ID, type Inode } from '../src/fuse/inode-table.js';
import { S_IFDIR, S_IFREG, S_IFLNK, DT_DIR, DT_REG, DT_LNK } from '../src/fuse/protocol.js';

const allZero = (b: Buffer): boolean => b.length > 0 && b.every((x) => x === 0);

t.test('a new table has only the root, a linked 0755 directory', async (t) => {
  const tab = new InodeTable();
  t.equal(ROOT_ID, 1);
  const root = tab.get(ROOT_ID)!;
  t.ok(root);
  t.equal(root.kind, 'dir');
  t.equal(root.mode, 0o700, 'the root lists every volume: root only');
  t.equal(root.links, 1, 'the mount holds the root');
  t.equal(root.nlookup, 0);
  t.equal(root.children!.size, 0);
  t.strictSame(tab.stats(), { inodes: 1, fileBytes: 0 });
  t.equal(tab.get(2), undefined);
});

t.test('setuid, setgid and sticky bits are never served, from any source', async (t) => {
  const tab = new InodeTable();
  const d = tab.mkdir(0o1777, 0);
  const f = tab.mkfile(Buffer.from('x'), 0o4755, 0);
  const g = tab.mkfile(Buffer.from('x'), 0o6777, 0);
  const all = tab.mkfile(Buffer.from('x'), 0o7777, 0);
  t.equal(d.mode, 0o777, 'sticky dropped from a directory');
  t.equal(f.mode, 0o755);
  t.equal(g.mode, 0o777);
  t.equal(all.mode, 0o777);
  t.equal(tab.attr(f).mode, S_IFREG | 0o755, 'stat shows 0755 for 04755');
  const staged = tab.mkstaged(0o2644, 0);
  t.equal(staged.mode, 0o644, 'a file the provider creates');
  tab.chmodStaged(staged.id, 0o4700);
  t.equal(tab.get(staged.id)!.mode, 0o700, 'a chmod by the provider');
  t.equal(tab.attr(tab.get(staged.id)!).mode, S_IFREG | 0o700);
  const { state, data } = tab.exportState();
  const old = { ...state, nodes: state.nodes.map((n) => (n.id === f.id ? { ...n, mode: 0o4755 } : n)) };
  t.equal(InodeTable.restore(old, Buffer.concat(data)).get(f.id)!.mode, 0o755, 'nor from a taken-over state');
});

t.test('mk* create unlinked nodes with fresh ids and masked modes', async (t) => {
  const tab = new InodeTable();
  const d = tab.mkdir(0o40755, 1000);
  const f = tab.mkfile(Buffer.from('abc'), 0o100644 | 0o4000, 2000);
  const s = tab.mksymlink('..data/x', 3000);
  t.same([d.id, f.id, s.id], [2, 3, 4]);
  t.equal(d.mode, 0o755, 'type bits dropped');
  t.equal(f.mode, 0o644, 'setuid and type bits dropped');
  t.equal(s.mode, 0o777);
  t.equal(d.kind, 'dir');
  t.equal(f.kind, 'file');
  t.equal(s.kind, 'symlink');
  t.equal(s.data!.toString(), '..data/x');
  t.equal(f.children, null);
  t.equal(s.children, null);
  t.equal(d.links, 0);
  t.equal(f.mtimeMs, 2000);
  t.strictSame(tab.stats(), { inodes: 4, fileBytes: 3 }, 'symlink targets are not file bytes');
});

t.test('mkfile copies the content', async (t) => {
  const tab = new InodeTable();
  const src = Buffer.from('s3cret');
  const f = tab.mkfile(src, 0o644, 0);
  src.fill(0);
  t.equal(f.data!.toString(), 's3cret', 'zeroing the caller buffer does not change the served bytes');
  src.write('XXXXXX');
  t.equal(f.data!.toString(), 's3cret');
  t.not(f.data!.buffer, src.buffer, 'separate memory');
  // A Uint8Array that is not a Buffer works too.
  const u = new Uint8Array([1, 2, 3]);
  const g = tab.mkfile(u, 0o600, 0);
  u[0] = 9;
  t.same([...g.data!], [1, 2, 3]);
  // A pooled small Buffer's secret must not share the pool: the copy's
  // backing store is exactly its own bytes.
  t.equal(f.data!.byteOffset, 0);
  t.equal(f.data!.buffer.byteLength, 6);
});

t.test('link, child, lookup, unlink', async (t) => {
  const tab = new InodeTable();
  const d = tab.mkdir(0o755, 0);
  const f = tab.mkfile(Buffer.from('x'), 0o644, 0);
  tab.link(ROOT_ID, 'dir', d.id);
  tab.link(d.id, 'file', f.id);
  t.equal(d.links, 1);
  t.equal(f.links, 1);
  t.equal(tab.child(d.id, 'file'), f, 'child resolves');
  t.equal(f.nlookup, 0, 'child does not count a kernel reference');
  t.equal(tab.child(d.id, 'nope'), undefined);
  t.equal(tab.child(f.id, 'x'), undefined, 'child of a file');
  t.equal(tab.child(999, 'x'), undefined, 'child of a missing node');

  t.equal(tab.lookup(d.id, 'file'), f);
  t.equal(f.nlookup, 1);
  t.equal(tab.lookup(d.id, 'file'), f);
  t.equal(f.nlookup, 2, 'each lookup counts');
  t.equal(tab.lookup(d.id, 'missing'), undefined);
  t.equal(tab.lookup(f.id, 'x'), undefined, 'lookup in a file');
  t.equal(tab.lookup(999, 'x'), undefined, 'lookup in a missing node');

  tab.forget(f.id, 2);
  t.equal(f.nlookup, 0);
  t.equal(tab.get(f.id), f, 'still linked, still there');

  // Linking the same child under the same name again is a no-op.
  tab.link(d.id, 'file', f.id);
  t.equal(f.links, 1);

  tab.unlink(d.id, 'file');
  t.equal(tab.get(f.id), undefined, 'unlinked and not looked up: freed');
  t.equal(d.children!.size, 0);
  tab.unlink(d.id, 'file'); // missing name: no-op, no throw
  t.pass('unlink of a missing name does not throw');
});

t.test('link/unlink errors', async (t) => {
  const tab = new InodeTable();
  const f = tab.mkfile(Buffer.from('x'), 0o644, 0);
  t.equal(
    errMsg(() => tab.link(ROOT_ID, 'a', 999)),
    'inode 999 does not exist',
  );
  t.equal(
    errMsg(() => tab.link(f.id, 'a', f.id)),
    `inode ${f.id} is not a directory`,
  );
  t.equal(
    errMsg(() => tab.link(999, 'a', f.id)),
    'inode 999 is not a directory',
  );
  t.equal(
    errMsg(() => tab.unlink(f.id, 'a')),
    `inode ${f.id} is not a directory`,
  );
  t.equal(f.links, 0, 'failed links changed nothing');
});

t.test('an inode linked in two directories survives one unlink', async (t) => {
  const tab = new InodeTable();
  const a = tab.mkdir(0o755, 0);
  const b = tab.mkdir(0o755, 0);
  tab.link(ROOT_ID, 'a', a.id);
  tab.link(ROOT_ID, 'b', b.id);
  const f = tab.mkfile(Buffer.from('shared'), 0o644, 0);
  tab.link(a.id, 'f', f.id);
  tab.link(b.id, 'g', f.id);
  t.equal(f.links, 2);
  tab.unlink(a.id, 'f');
  t.equal(f.links, 1);
  t.equal(tab.get(f.id), f);
  t.equal(f.data!.toString(), 'shared');
  t.equal(tab.child(b.id, 'g'), f);
  tab.unlink(b.id, 'g');
  t.equal(tab.get(f.id), undefined);
});

t.test('replacing a name drops the old inode', async (t) => {
  const tab = new InodeTable();
  const old = tab.mkfile(Buffer.from('old'), 0o644, 0);
  const data = old.data!;
  const neu = tab.mkfile(Buffer.from('new!'), 0o644, 0);
  tab.link(ROOT_ID, 'f', old.id);
  tab.link(ROOT_ID, 'f', neu.id);
  t.equal(tab.get(old.id), undefined, 'old freed');
  t.ok(allZero(data), 'old bytes zeroed');
  t.equal(tab.child(ROOT_ID, 'f'), neu);
  t.equal(neu.links, 1);
  t.strictSame(tab.stats(), { inodes: 2, fileBytes: 4 });
});

t.test('a freed file is zeroed, its data dropped, and onFree called', async (t) => {
  const freed: Inode[] = [];
  const tab = new InodeTable({
    onFree: (n) => {
      // onFree runs after the bytes were zeroed.
      t.equal(n.data, null, 'data already dropped when onFree runs');
      freed.push(n);
    },
  });
  const f = tab.mkfile(Buffer.from('top secret value'), 0o600, 0);
  tab.link(ROOT_ID, 'f', f.id);
  const bytes = f.data!;
  t.equal(bytes.length, 16);
  tab.unlink(ROOT_ID, 'f');
  t.equal(bytes.length, 16, 'same buffer, same length');
  t.ok(
    bytes.every((x) => x === 0),
    'every byte is 0',
  );
  t.equal(f.data, null);
  t.equal(freed.length, 1);
  t.equal(freed[0], f);
  t.strictSame(tab.stats(), { inodes: 1, fileBytes: 0 });
});

t.test('nlookup keeps an unlinked inode alive until forget', async (t) => {
  const freed: number[] = [];
  const tab = new InodeTable({ onFree: (n) => freed.push(n.id) });
  const f = tab.mkfile(Buffer.from('still readable'), 0o644, 0);
  tab.link(ROOT_ID, 'f', f.id);
  t.equal(tab.lookup(ROOT_ID, 'f'), f);
  t.equal(tab.lookup(ROOT_ID, 'f'), f);
  const bytes = f.data!;
  tab.unlink(ROOT_ID, 'f');
  t.equal(tab.get(f.id), f, 'alive: the kernel still references it');
  t.equal(f.links, 0);
  t.equal(f.data!.toString(), 'still readable');
  t.equal(tab.child(ROOT_ID, 'f'), undefined, 'but no longer reachable by name');
  t.same(freed, []);
  tab.forget(f.id, 1);
  t.equal(tab.get(f.id), f, 'one reference left');
  t.equal(f.nlookup, 1);
  tab.forget(f.id, 1);
  t.equal(tab.get(f.id), undefined, 'freed at zero');
  t.ok(allZero(bytes));
  t.same(freed, [f.id]);
  t.strictSame(tab.stats(), { inodes: 1, fileBytes: 0 });
});

t.test('forget more than was looked up clamps at 0; forget of unknown ids is a no-op', async (t) => {
  const tab = new InodeTable();
  const f = tab.mkfile(Buffer.from('x'), 0o644, 0);
  tab.link(ROOT_ID, 'f', f.id);
  tab.lookup(ROOT_ID, 'f');
  tab.forget(f.id, 10);
  t.equal(f.nlookup, 0);
  t.equal(tab.get(f.id), f, 'still linked');
  tab.forget(12345, 1);
  t.strictSame(tab.stats(), { inodes: 2, fileBytes: 1 });
});

t.test('freeing a directory drops its children recursively', async (t) => {
  const freed: number[] = [];
  const tab = new InodeTable({ onFree: (n) => freed.push(n.id) });
  const top = tab.mkdir(0o755, 0);
  const sub = tab.mkdir(0o755, 0);
  const f1 = tab.mkfile(Buffer.from('one'), 0o644, 0);
  const f2 = tab.mkfile(Buffer.from('two'), 0o644, 0);
  const ln = tab.mksymlink('sub/two', 0);
  tab.link(ROOT_ID, 'top', top.id);
  tab.link(top.id, 'sub', sub.id);
  tab.link(top.id, 'one', f1.id);
  tab.link(sub.id, 'two', f2.id);
  tab.link(top.id, 'ln', ln.id);
  const b1 = f1.data!;
  const b2 = f2.data!;
  t.strictSame(tab.stats(), { inodes: 6, fileBytes: 6 });
  tab.unlink(ROOT_ID, 'top');
  for (const n of [top, sub, f1, f2, ln]) t.equal(tab.get(n.id), undefined, `inode ${n.id} freed`);
  t.ok(allZero(b1));
  t.ok(allZero(b2));
  t.equal(ln.data, null, 'symlink target dropped too');
  t.same(
    freed.sort((a, b) => a - b),
    [top.id, sub.id, f1.id, f2.id, ln.id].sort((a, b) => a - b),
  );
  t.strictSame(tab.stats(), { inodes: 1, fileBytes: 0 });
});

t.test('a child the kernel still references survives its freed directory', async (t) => {
  const tab = new InodeTable();
  const d = tab.mkdir(0o755, 0);
  const f = tab.mkfile(Buffer.from('held'), 0o644, 0);
  const g = tab.mkfile(Buffer.from('gone'), 0o644, 0);
  tab.link(ROOT_ID, 'd', d.id);
  tab.link(d.id, 'f', f.id);
  tab.link(d.id, 'g', g.id);
  tab.lookup(d.id, 'f');
  tab.unlink(ROOT_ID, 'd');
  t.equal(tab.get(d.id), undefined, 'the directory is freed');
  t.equal(tab.get(g.id), undefined, 'the unreferenced child is freed');
  t.equal(tab.get(f.id), f, 'the referenced child lives');
  t.equal(f.links, 0);
  t.equal(f.data!.toString(), 'held');
  tab.forget(f.id, 1);
  t.equal(tab.get(f.id), undefined);
});

t.test('a directory the kernel still references keeps its children', async (t) => {
  const tab = new InodeTable();
  const d = tab.mkdir(0o755, 0);
  const f = tab.mkfile(Buffer.from('kid'), 0o644, 0);
  tab.link(ROOT_ID, 'd', d.id);
  tab.link(d.id, 'f', f.id);
  tab.lookup(ROOT_ID, 'd');
  tab.unlink(ROOT_ID, 'd');
  t.equal(tab.get(d.id), d);
  t.equal(tab.get(f.id), f);
  t.equal(tab.lookup(d.id, 'f'), f, 'still resolvable inside the unlinked directory');
  tab.forget(d.id, 1);
  t.equal(tab.get(d.id), undefined);
  t.equal(tab.get(f.id), f, 'f was looked up, so it outlives d');
  tab.forget(f.id, 1);
  t.equal(tab.get(f.id), undefined);
});

t.test('scrub zeroes at once; lookups fail; forget accounting continues', async (t) => {
  const tab = new InodeTable();
  const vol = tab.mkdir(0o755, 0);
  const sub = tab.mkdir(0o755, 0);
  const f = tab.mkfile(Buffer.from('aaaa'), 0o644, 0);
  const g = tab.mkfile(Buffer.from('bbbbbbbb'), 0o644, 0);
  const s = tab.mksymlink('..data/f', 0);
  tab.link(ROOT_ID, 'vol', vol.id);
  tab.link(vol.id, 'sub', sub.id);
  tab.link(vol.id, 'f', f.id);
  tab.link(sub.id, 'g', g.id);
  tab.link(vol.id, 's', s.id);
  tab.lookup(vol.id, 'f');
  const fb = f.data!;
  const gb = g.data!;
  t.strictSame(tab.stats(), { inodes: 6, fileBytes: 12 });

  const touched = tab.scrub(vol.id);
  t.same(
    touched.sort((a, b) => a - b),
    [vol.id, sub.id, f.id, g.id, s.id].sort((a, b) => a - b),
  );
  t.ok(allZero(fb), 'f zeroed immediately');
  t.ok(allZero(gb), 'g zeroed immediately');
  t.equal(f.data, null);
  t.equal(g.data, null);
  t.equal(s.data, null);
  t.ok(f.scrubbed && g.scrubbed && vol.scrubbed && sub.scrubbed && s.scrubbed);
  t.strictSame(tab.stats(), { inodes: 6, fileBytes: 0 }, 'nodes remain for FORGET, bytes are gone');

  t.equal(tab.lookup(vol.id, 'f'), undefined, 'a scrubbed parent answers as if empty');
  t.equal(tab.lookup(ROOT_ID, 'vol'), undefined, 'a scrubbed child answers as gone');
  t.equal(f.nlookup, 1, 'failed lookups do not count');
  t.same(
    tab.dirents(vol, ROOT_ID).map((e) => e.name),
    ['.', '..'],
    'a scrubbed dir lists nothing',
  );
  t.equal(tab.attr(f).size, 0, 'scrubbed file has size 0');

  t.same(tab.scrub(vol.id), [], 'scrubbing again touches nothing');
  t.same(tab.scrub(4242), [], 'scrubbing a missing id touches nothing');

  tab.unlink(ROOT_ID, 'vol');
  t.equal(tab.get(vol.id), undefined);
  t.equal(tab.get(g.id), undefined);
  t.equal(tab.get(f.id), f, 'f waits for its FORGET');
  tab.forget(f.id, 1);
  t.equal(tab.get(f.id), undefined);
  t.strictSame(tab.stats(), { inodes: 1, fileBytes: 0 }, 'fileBytes not subtracted twice');
});

t.test('root is never freed', async (t) => {
  const tab = new InodeTable();
  tab.forget(ROOT_ID, 100);
  t.ok(tab.get(ROOT_ID), 'forget does not free the root');
  const d = tab.mkdir(0o755, 0);
  tab.link(ROOT_ID, 'd', d.id);
  tab.link(d.id, 'up', ROOT_ID);
  t.equal(tab.get(ROOT_ID)!.links, 2);
  tab.unlink(d.id, 'up');
  t.equal(tab.get(ROOT_ID)!.links, 1);
  tab.link(d.id, 'up', ROOT_ID);
  tab.unlink(ROOT_ID, 'd'); // d freed, drops its link to root
  t.equal(tab.get(d.id), undefined);
  t.ok(tab.get(ROOT_ID), 'root survives');
  t.equal(tab.get(ROOT_ID)!.links, 1);
  // Even at links 0 the root stays.
  const root = tab.get(ROOT_ID)!;
  root.links = 0;
  tab.forget(ROOT_ID, 1);
  t.equal(tab.get(ROOT_ID), root);
  const d2 = tab.mkdir(0o755, 0);
  tab.link(ROOT_ID, 'd2', d2.id);
  tab.link(d2.id, 'up', ROOT_ID);
  tab.unlink(d2.id, 'up'); // root back at links 0, nlookup 0: still not freed
  t.equal(root.links, 0);
  t.equal(tab.get(ROOT_ID), root, 'root survives reaching zero links');
  t.equal(tab.child(ROOT_ID, 'd2'), d2, 'and keeps its children');
});

t.test('ids are never reused', async (t) => {
  const tab = new InodeTable();
  const seen = new Set<number>([ROOT_ID]);
  let last = ROOT_ID;
  for (let i = 0; i < 20; i++) {
    const f = tab.mkfile(Buffer.from(`v${i}`), 0o644, 0);
    t.notOk(seen.has(f.id), `id ${f.id} is new`);
    t.ok(f.id > last, 'ids increase');
    seen.add(f.id);
    last = f.id;
    tab.link(ROOT_ID, 'f', f.id); // replaces and frees the previous one
  }
  t.strictSame(tab.stats(), { inodes: 2, fileBytes: 3 });
});

t.test('stats track adds and frees', async (t) => {
  const tab = new InodeTable();
  const a = tab.mkfile(Buffer.alloc(100, 1), 0o644, 0);
  const b = tab.mkfile(Buffer.alloc(28, 2), 0o644, 0);
  tab.mkdir(0o755, 0);
  tab.mksymlink('a-long-target-that-is-not-counted', 0);
  tab.mkfile(Buffer.alloc(0), 0o644, 0);
  t.strictSame(tab.stats(), { inodes: 6, fileBytes: 128 });
  tab.link(ROOT_ID, 'a', a.id);
  tab.link(ROOT_ID, 'b', b.id);
  tab.unlink(ROOT_ID, 'a');
  t.strictSame(tab.stats(), { inodes: 5, fileBytes: 28 });
  tab.scrub(b.id);
  t.strictSame(tab.stats(), { inodes: 5, fileBytes: 0 });
});

t.test('attr', async (t) => {
  const tab = new InodeTable();
  const d = tab.mkdir(0o750, 1_700_000_000_123.9);
  const sub1 = tab.mkdir(0o755, 0);
  const sub2 = tab.mkdir(0o755, 0);
  const f = tab.mkfile(Buffer.from('12345'), 0o640, 1500);
  const s = tab.mksymlink('target', 2001);
  tab.link(d.id, 's1', sub1.id);
  tab.link(d.id, 's2', sub2.id);
  tab.link(d.id, 'f', f.id);
  tab.link(d.id, 'l', s.id);
  t.strictSame(
    tab.attr(d),
    {
      ino: d.id,
      size: 4096,
      mode: S_IFDIR | 0o750,
      nlink: 4,
      uid: 0,
      gid: 0,
      mtimeSec: 1_700_000_000,
      mtimeNsec: 123_000_000,
    },
    'dir: nlink = 2 + subdirectories; fractional ms truncated',
  );
  t.strictSame(tab.attr(f), {
    ino: f.id,
    size: 5,
    mode: S_IFREG | 0o640,
    nlink: 1,
    uid: 0,
    gid: 0,
    mtimeSec: 1,
    mtimeNsec: 500_000_000,
  });
  t.strictSame(tab.attr(s), {
    ino: s.id,
    size: 6,
    mode: S_IFLNK | 0o777,
    nlink: 1,
    uid: 0,
    gid: 0,
    mtimeSec: 2,
    mtimeNsec: 1_000_000,
  });
  t.equal(tab.attr(sub1).nlink, 2, 'empty dir');
});

t.test('dirents', async (t) => {
  const tab = new InodeTable();
  const d = tab.mkdir(0o755, 0);
  const sub = tab.mkdir(0o755, 0);
  const f = tab.mkfile(Buffer.from('x'), 0o644, 0);
  const s = tab.mksymlink('x', 0);
  tab.link(ROOT_ID, 'd', d.id);
  tab.link(d.id, 'sub', sub.id);
  tab.link(d.id, 'file', f.id);
  tab.link(d.id, 'link', s.id);
  t.strictSame(tab.dirents(d, ROOT_ID), [
    { ino: d.id, name: '.', type: DT_DIR },
    { ino: ROOT_ID, name: '..', type: DT_DIR },
    { ino: sub.id, name: 'sub', type: DT_DIR },
    { ino: f.id, name: 'file', type: DT_REG },
    { ino: s.id, name: 'link', type: DT_LNK },
  ]);
  t.strictSame(
    tab.dirents(sub, d.id).map((e) => [e.name, e.ino]),
    [
      ['.', sub.id],
      ['..', d.id],
    ],
  );
});
