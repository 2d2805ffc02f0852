// Unit tests of the atomic-writer layout of one volume (src/fuse/volume-tree.ts)
// on a real InodeTable.

import t from 'tap';
import { InodeTable, ROOT_ID, type Inode } from '../src/fuse/inode-table.js';
import { VolumeTree, timestampDirName, type VolumeFile, type EntryInvalidation } from '../src/fuse/volume-tree.js';

const TS_RE = /^\.\.(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{2})\.(\d+)$/;

function file(path: string, contents: string, mode = 0o644): VolumeFile {
  return { path, mode, contents: Buffer.from(contents) };
}

function setup(): { table: InodeTable; vol: Inode; tree: VolumeTree; freed: number[] } {
  const freed: number[] = [];
  const table = new InodeTable({ onFree: (n) => freed.push(n.id) });
  const vol = table.mkdir(0o755, 0);
  table.link(ROOT_ID, 'vol-1', vol.id);
  return { table, vol, tree: new VolumeTree(table, vol.id), freed };
}

/** Resolves a path inside the volume the way the kernel would, following symlinks, without counting lookups. */
function resolve(table: InodeTable, dirId: number, path: string, depth = 0): Inode | undefined {
  if (depth > 10) throw new Error('symlink loop');
  let dir = dirId;
  let node: Inode | undefined;
  const parts = path.split('/');
  for (let i = 0; i < parts.length; i++) {
    node = table.child(dir, parts[i]!);
    if (!node) return undefined;
    if (node.kind === 'symlink') {
      const rest = [node.data!.toString(), ...parts.slice(i + 1)].join('/');
      return resolve(table, dir, rest, depth + 1);
    }
    dir = node.id;
  }
  return node;
}

function names(table: InodeTable, id: number): string[] {
  return [...table.get(id)!.children!.keys()].sort();
}

const T0 = new Date(Date.UTC(2026, 10, 28, 1, 2, 3, 456));
const T1 = new Date(Date.UTC(2026, 10, 28, 1, 4, 3));

t.test('timestampDirName', async (t) => {
  t.equal(timestampDirName(new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), 42), '..2026_01_02_03_04_05.42');
  t.equal(timestampDirName(new Date(Date.UTC(1999, 11, 31, 23, 59, 59, 999)), 0), '..1999_12_31_23_59_59.0');
  t.equal(timestampDirName(new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), 4294967295), '..2026_01_02_03_04_05.4294967295');
  // UTC regardless of the local time zone: built from an offset string.
  t.equal(timestampDirName(new Date('2026-06-30T23:30:00-05:00'), 7), '..2026_07_01_04_30_00.7');
  const r = timestampDirName(new Date(Date.UTC(2026, 0, 2, 3, 4, 5)));
  const m = TS_RE.exec(r);
  t.ok(m, `default random matches the format: ${r}`);
  t.ok(r.startsWith('..2026_01_02_03_04_05.'));
  const n = Number(m![7]);
  t.ok(n >= 0 && n < 2 ** 32, 'random in [0, 2^32)');
});

t.test('first publish: the atomic-writer layout', async (t) => {
  const { table, vol, tree } = setup();
  t.equal(tree.dataDir, null);
  t.same(tree.paths(), []);
  const res = tree.publish([file('username', 'admin', 0o600), file('certs/tls.crt', 'CERT'), file('certs/deep/key', 'KEY', 0o400)], T0);
  t.equal(res.changed, true);
  t.match(res.dataDir, TS_RE);
  t.ok(res.dataDir.startsWith('..2026_11_28_01_02_03.'), `timestamp from the Date, UTC: ${res.dataDir}`);
  t.equal(tree.dataDir, res.dataDir);
  t.same(tree.paths().sort(), ['certs/deep/key', 'certs/tls.crt', 'username']);

  t.same(names(table, vol.id), ['..data', res.dataDir, 'certs', 'username'].sort());

  const data = table.child(vol.id, '..data')!;
  t.equal(data.kind, 'symlink');
  t.equal(data.data!.toString(), res.dataDir, '..data -> timestamped dir');

  for (const top of ['username', 'certs']) {
    const s = table.child(vol.id, top)!;
    t.equal(s.kind, 'symlink', `${top} is a symlink`);
    t.equal(s.data!.toString(), `..data/${top}`);
  }

  const ts = table.child(vol.id, res.dataDir)!;
  t.equal(ts.kind, 'dir');
  t.equal(ts.mode, 0o755);
  t.equal(ts.mtimeMs, T0.getTime());
  t.same(names(table, ts.id), ['certs', 'username']);
  const certs = table.child(ts.id, 'certs')!;
  t.equal(certs.kind, 'dir', 'nested path: a real directory inside the timestamped dir');
  t.equal(certs.mode, 0o755);
  const deep = table.child(certs.id, 'deep')!;
  t.equal(deep.kind, 'dir');
  t.equal(deep.mode, 0o755);
  t.same(names(table, certs.id), ['deep', 'tls.crt']);

  const user = table.child(ts.id, 'username')!;
  t.equal(user.kind, 'file');
  t.equal(user.mode, 0o600);
  t.equal(user.data!.toString(), 'admin');
  t.equal(user.mtimeMs, T0.getTime());
  t.equal(table.child(deep.id, 'key')!.mode, 0o400);

  // Through the symlinks, as an app would read them.
  t.equal(resolve(table, vol.id, 'username')!.data!.toString(), 'admin');
  t.equal(resolve(table, vol.id, 'certs/tls.crt')!.data!.toString(), 'CERT');
  t.equal(resolve(table, vol.id, 'certs/deep/key')!.data!.toString(), 'KEY');

  t.equal(vol.mtimeMs, T0.getTime(), 'volume dir mtime updated');

  // Invalidations on the first publish: ..data and every new top-level name.
  const inv = res.invalidations.map((i) => `${i.parent}:${i.name}`).sort();
  t.same(inv, [`${vol.id}:..data`, `${vol.id}:certs`, `${vol.id}:username`].sort());
});

t.test('read(path) returns the served bytes', async (t) => {
  const { tree } = setup();
  t.equal(tree.read('a'), null, 'nothing published yet');
  tree.publish([file('a', 'AAA'), file('d/b', 'BBB')], T0);
  t.equal(tree.read('a')!.toString(), 'AAA');
  t.equal(tree.read('d/b')!.toString(), 'BBB');
  t.equal(tree.read('d'), null, 'directories are not files');
  t.equal(tree.read('missing'), null);
  tree.publish([file('a', 'A2')], T1);
  t.equal(tree.read('a')!.toString(), 'A2');
  t.equal(tree.read('d/b'), null, 'removed path');
});

t.test('publish copies the contents', async (t) => {
  const { tree } = setup();
  const src = Buffer.from('original');
  tree.publish([{ path: 'a', mode: 0o644, contents: src }], T0);
  src.fill(0);
  t.equal(tree.read('a')!.toString(), 'original');
});

t.test('republishing identical files changes nothing', async (t) => {
  const { table, vol, tree } = setup();
  const first = tree.publish([file('a', '1'), file('d/b', '2')], T0);
  const before = table.stats();
  const kids = names(table, vol.id);
  const aId = resolve(table, vol.id, 'a')!.id;
  const dataId = table.child(vol.id, '..data')!.id;
  // Same content, different order and fresh buffers.
  const again = tree.publish([file('d/b', '2'), file('a', '1')], T1);
  t.equal(again.changed, false);
  t.same(again.invalidations, []);
  t.equal(again.dataDir, first.dataDir);
  t.equal(tree.dataDir, first.dataDir);
  t.strictSame(table.stats(), before, 'no inode created');
  t.same(names(table, vol.id), kids);
  t.equal(resolve(table, vol.id, 'a')!.id, aId);
  t.equal(table.child(vol.id, '..data')!.id, dataId);
  t.equal(vol.mtimeMs, T0.getTime(), 'volume mtime untouched');
});

t.test('a mode change alone is a change', async (t) => {
  const { table, vol, tree } = setup();
  tree.publish([file('a', 'same', 0o644)], T0);
  const oldId = resolve(table, vol.id, 'a')!.id;
  const res = tree.publish([file('a', 'same', 0o600)], T1);
  t.equal(res.changed, true);
  const now = resolve(table, vol.id, 'a')!;
  t.not(now.id, oldId, 'new inode: inodes are immutable');
  t.equal(now.mode, 0o600);
});

t.test('provider modes are served without setuid, setgid and sticky bits', async (t) => {
  const { table, vol, tree } = setup();
  tree.publish([file('suid', 'a', 0o4755), file('both', 'b', 0o6777), file('all', 'c', 0o7777), file('d/x', 'd', 0o1600)], T0);
  t.same(
    ['suid', 'both', 'all', 'd/x'].map((p) => resolve(table, vol.id, p)!.mode),
    [0o755, 0o777, 0o777, 0o600],
  );
  t.same(
    tree
      .files()
      .map((f) => f.mode)
      .sort(),
    [0o600, 0o755, 0o777, 0o777],
  );
  t.equal(
    tree.publish([file('suid', 'a', 0o4755), file('both', 'b', 0o6777), file('all', 'c', 0o7777), file('d/x', 'd', 0o1600)], T1).changed,
    false,
    'the same answer again is no change',
  );
  t.equal(
    tree.publish([file('suid', 'a', 0o755), file('both', 'b', 0o777), file('all', 'c', 0o777), file('d/x', 'd', 0o600)], T1).changed,
    false,
    'nor is the same answer without the special bits',
  );
});

t.test('adding or removing a file is a change even if the rest is equal', async (t) => {
  const { tree } = setup();
  tree.publish([file('a', '1')], T0);
  t.equal(tree.publish([file('a', '1'), file('b', '2')], T1).changed, true);
  t.equal(tree.publish([file('a', '1')], T1).changed, true);
  t.equal(tree.publish([file('b', '1')], T1).changed, true, 'same count, different path');
});

t.test('rotation: changed file gets a new inode, unchanged keeps its id', async (t) => {
  const { table, vol, tree } = setup();
  const r0 = tree.publish([file('keep', 'same'), file('change', 'v1'), file('dir/keep2', 'same2'), file('dir/chg', 'x1')], T0);
  const keepId = resolve(table, vol.id, 'keep')!.id;
  const changeId = resolve(table, vol.id, 'change')!.id;
  const keep2Id = resolve(table, vol.id, 'dir/keep2')!.id;
  const chgId = resolve(table, vol.id, 'dir/chg')!.id;
  const oldData = table.child(vol.id, '..data')!;
  const oldTs = table.child(vol.id, r0.dataDir)!;
  const topKeepLink = table.child(vol.id, 'keep')!.id;

  const r1 = tree.publish([file('keep', 'same'), file('change', 'v2'), file('dir/keep2', 'same2'), file('dir/chg', 'x2')], T1);
  t.equal(r1.changed, true);
  t.not(r1.dataDir, r0.dataDir);
  t.ok(r1.dataDir.startsWith('..2026_11_28_01_04_03.'));

  t.equal(resolve(table, vol.id, 'keep')!.id, keepId, 'unchanged file keeps its inode');
  t.equal(resolve(table, vol.id, 'dir/keep2')!.id, keep2Id, 'unchanged nested file keeps its inode');
  t.not(resolve(table, vol.id, 'change')!.id, changeId, 'changed file: new inode');
  t.not(resolve(table, vol.id, 'dir/chg')!.id, chgId, 'changed nested file: new inode');
  t.equal(resolve(table, vol.id, 'change')!.data!.toString(), 'v2');
  t.equal(resolve(table, vol.id, 'dir/chg')!.data!.toString(), 'x2');
  t.equal(table.get(keepId)!.links, 1, 'the kept file is linked once (old version gone)');

  // The old version is gone from the volume dir, the new one is there.
  t.same(names(table, vol.id), ['..data', r1.dataDir, 'change', 'dir', 'keep'].sort());
  t.equal(table.get(oldTs.id), undefined, 'old timestamped dir freed (nobody looked it up)');
  t.equal(table.get(oldData.id), undefined, 'old ..data symlink freed');
  t.equal(table.get(changeId), undefined, 'old version of a changed file freed');
  t.equal(table.child(vol.id, '..data')!.data!.toString(), r1.dataDir);
  t.equal(table.child(vol.id, 'keep')!.id, topKeepLink, 'top-level symlink of a kept name is untouched');

  const inv = r1.invalidations.map((i) => i.name);
  t.ok(inv.includes('..data'), 'invalidates ..data');
  t.ok(inv.includes(r0.dataDir), 'invalidates the old timestamped dir name');
  t.ok(
    r1.invalidations.every((i) => i.parent === vol.id),
    'all in the volume dir',
  );
  t.same(inv.sort(), ['..data', r0.dataDir].sort(), 'nothing else: top-level names are unchanged');
});

t.test('removed top-level names disappear and are invalidated; new ones appear', async (t) => {
  const { table, vol, tree } = setup();
  const r0 = tree.publish([file('a', '1'), file('gone', '2'), file('sub/x', '3'), file('sub2/y', '4')], T0);
  const goneLink = table.child(vol.id, 'gone')!;
  const r1 = tree.publish([file('a', '1'), file('new', '5'), file('sub/x', '3')], T1);
  t.equal(table.child(vol.id, 'gone'), undefined, 'removed file name');
  t.equal(table.child(vol.id, 'sub2'), undefined, 'removed directory name');
  t.equal(table.get(goneLink.id), undefined, 'its symlink freed');
  t.equal(resolve(table, vol.id, 'gone'), undefined);
  t.equal(resolve(table, vol.id, 'new')!.data!.toString(), '5');
  t.equal(table.child(vol.id, 'new')!.data!.toString(), '..data/new');
  t.same(names(table, vol.id), ['..data', r1.dataDir, 'a', 'new', 'sub'].sort());
  const inv: EntryInvalidation[] = r1.invalidations;
  t.same(inv.map((i) => i.name).sort(), ['..data', r0.dataDir, 'gone', 'new', 'sub2'].sort());
  t.same(tree.paths().sort(), ['a', 'new', 'sub/x']);
});

t.test('a name can switch from a file to a directory', async (t) => {
  const { table, vol, tree } = setup();
  tree.publish([file('a', 'file')], T0);
  tree.publish([file('a/b', 'nested')], T1);
  const a = resolve(table, vol.id, 'a')!;
  t.equal(a.kind, 'dir');
  t.equal(resolve(table, vol.id, 'a/b')!.data!.toString(), 'nested');
  t.equal(table.child(vol.id, 'a')!.data!.toString(), '..data/a');
});

t.test('old version stays readable while looked up, zeroed after forget', async (t) => {
  const { table, vol, tree, freed } = setup();
  const r0 = tree.publish([file('pw', 'old-password'), file('d/k', 'old-key')], T0);
  // The kernel looked up the old version's files (through ..data/<ts>/...).
  const oldTs = table.lookup(vol.id, r0.dataDir)!;
  const oldPw = table.lookup(oldTs.id, 'pw')!;
  const oldD = table.child(oldTs.id, 'd')!;
  const oldK = table.lookup(oldD.id, 'k')!;
  t.ok(oldPw && oldK);
  const pwBytes = oldPw.data!;
  const kBytes = oldK.data!;

  const r1 = tree.publish([file('pw', 'new-password'), file('d/k', 'new-key')], T1);
  t.equal(r1.changed, true);
  t.equal(tree.read('pw')!.toString(), 'new-password');
  t.equal(table.get(oldPw.id)?.data?.toString(), 'old-password', 'old inode readable by id');
  t.equal(table.get(oldK.id)?.data?.toString(), 'old-key');
  t.equal(table.get(oldTs.id), oldTs, 'old dir kept while looked up');
  t.equal(table.child(vol.id, r0.dataDir), undefined, 'but unreachable by name');
  t.notOk(freed.includes(oldPw.id));

  table.forget(oldTs.id, 1);
  t.equal(table.get(oldTs.id), undefined, 'old dir freed after forget');
  t.equal(table.get(oldPw.id), oldPw, 'pw still looked up');
  t.equal(oldPw.data!.toString(), 'old-password');

  table.forget(oldPw.id, 1);
  t.equal(table.get(oldPw.id), undefined);
  t.ok(
    pwBytes.every((x) => x === 0),
    'old password bytes zeroed',
  );
  t.ok(freed.includes(oldPw.id));

  t.equal(kBytes.toString(), 'old-key', 'k still looked up');
  table.forget(oldK.id, 1);
  t.ok(
    kBytes.every((x) => x === 0),
    'old key bytes zeroed',
  );
  t.equal(tree.read('d/k')!.toString(), 'new-key', 'current version untouched');
});

t.test('unchanged file kept while old dir is still looked up is linked twice, then once', async (t) => {
  const { table, vol, tree } = setup();
  const r0 = tree.publish([file('same', 's'), file('chg', '1')], T0);
  const oldTs = table.lookup(vol.id, r0.dataDir)!;
  tree.publish([file('same', 's'), file('chg', '2')], T1);
  const same = resolve(table, vol.id, 'same')!;
  t.equal(table.child(oldTs.id, 'same'), same, 'the old dir still holds the shared inode');
  t.equal(same.links, 2, 'in the old (looked-up) dir and the new dir');
  t.equal(oldTs.links, 0);
  t.equal(table.get(oldTs.id), oldTs);
  // Forget the old dir: the shared file loses one link but stays.
  table.forget(oldTs.id, 1);
  t.equal(table.get(oldTs.id), undefined);
  t.equal(same.links, 1);
  t.equal(table.get(same.id), same);
  t.equal(tree.read('same')!.toString(), 's');
});

t.test('three versions in a row keep exactly one timestamped dir', async (t) => {
  const { table, vol, tree } = setup();
  const base = table.stats().inodes;
  for (let i = 0; i < 3; i++) {
    tree.publish([file('a', `v${i}`), file('b/c', 'fixed')], new Date(T0.getTime() + i * 1000));
  }
  const ts = names(table, vol.id).filter((n) => TS_RE.test(n));
  t.equal(ts.length, 1);
  t.equal(ts[0], tree.dataDir);
  // vol children: ..data, ts, a, b (4 symlink/dirs) + ts contents: a, b, b/c
  t.equal(table.stats().inodes, base + 2 /* ..data, ts */ + 2 /* a, b links */ + 3 /* a, b, c */);
  t.equal(table.stats().fileBytes, 2 + 5);
});

t.test('empty file set publishes an empty version', async (t) => {
  const { table, vol, tree } = setup();
  tree.publish([file('a', '1')], T0);
  const r = tree.publish([], T1);
  t.equal(r.changed, true);
  t.same(names(table, vol.id), ['..data', r.dataDir].sort());
  t.same(tree.paths(), []);
  t.same(tree.publish([], T1).changed, false, 'empty again: unchanged');
});

t.test('retire grace: the old version stays reachable by name until swept', async (t) => {
  const table = new InodeTable();
  const vol = table.mkdir(0o755, 0);
  table.link(ROOT_ID, 'vol', vol.id);
  const tree = new VolumeTree(table, vol.id, 1000);
  const t0 = T0.getTime();
  t.equal(tree.nextSweepIn(t0), null, 'nothing retired yet');
  const r1 = tree.publish([file('pw', 'one'), file('same', 's')], new Date(t0));
  t.equal(tree.nextSweepIn(t0), null, 'the first publish retires nothing');
  const oldPw = resolve(table, vol.id, 'pw')!;
  const oldBytes = oldPw.data!;

  const r2 = tree.publish([file('pw', 'two'), file('same', 's')], new Date(t0 + 100));
  t.same(
    r2.invalidations.map((i) => i.name),
    ['..data'],
    'the old dir is not invalidated yet',
  );
  t.ok(table.child(vol.id, r1.dataDir), 'old dir still reachable by name');
  t.equal(
    table.child(table.child(vol.id, r1.dataDir)!.id, 'pw')!.data!.toString(),
    'one',
    'a reader that resolved the old ..data still reads the old version',
  );
  t.equal(resolve(table, vol.id, 'pw')!.data!.toString(), 'two', 'new readers see the new version');
  t.equal(tree.nextSweepIn(t0 + 100), 1000);
  t.equal(tree.nextSweepIn(t0 + 600), 500);
  t.equal(tree.nextSweepIn(t0 + 5000), 0, 'overdue: 0, never negative');

  t.same(tree.sweep(t0 + 1099), [], 'before the grace period ends');
  t.ok(table.child(vol.id, r1.dataDir));
  t.same(tree.sweep(t0 + 1100), [{ parent: vol.id, name: r1.dataDir }], 'due: unlinked and invalidated');
  t.equal(table.child(vol.id, r1.dataDir), undefined);
  t.equal(table.get(oldPw.id), undefined, 'old file freed');
  t.ok(
    oldBytes.every((x) => x === 0),
    'and zeroed',
  );
  t.equal(tree.read('same')!.toString(), 's', 'the shared unchanged file survives');
  t.equal(tree.nextSweepIn(t0 + 1100), null);
  t.same(tree.sweep(t0 + 99_999), [], 'nothing left');
  t.same(names(table, vol.id), ['..data', r2.dataDir, 'pw', 'same'].sort());
});

t.test('retire grace: a later publish sweeps what is due', async (t) => {
  const table = new InodeTable();
  const vol = table.mkdir(0o755, 0);
  table.link(ROOT_ID, 'vol', vol.id);
  const tree = new VolumeTree(table, vol.id, 1000);
  const t0 = T0.getTime();
  const r1 = tree.publish([file('a', '1')], new Date(t0));
  const r2 = tree.publish([file('a', '2')], new Date(t0 + 10));
  const r3 = tree.publish([file('a', '3')], new Date(t0 + 20));
  t.same(names(table, vol.id), ['..data', r1.dataDir, r2.dataDir, r3.dataDir, 'a'].sort(), 'two retired versions');
  t.equal(tree.nextSweepIn(t0 + 20), 990, 'the oldest is due first');
  const r4 = tree.publish([file('a', '4')], new Date(t0 + 1015));
  t.same(
    r4.invalidations.map((i) => i.name).sort(),
    ['..data', r1.dataDir].sort(),
    'r1 (retired at +10) is due, r2 (retired at +20) is not, r3 (retired now) is not',
  );
  t.same(names(table, vol.id), ['..data', r2.dataDir, r3.dataDir, r4.dataDir, 'a'].sort());
  t.equal(tree.nextSweepIn(t0 + 1015), 5);
});

t.test('prepare builds the new version out of sight; its steps, applied in order, switch to it', async (t) => {
  const { table, vol, tree } = setup();
  tree.publish([file('pw', 'v1'), file('user', 'admin'), file('gone', 'x')], new Date(Date.UTC(2026, 0, 1)));
  const before = names(table, vol.id);
  const plan = tree.prepare([file('pw', 'v2'), file('user', 'admin'), file('conf/app.json', '{}')], new Date(Date.UTC(2026, 0, 2)))!;
  t.same(names(table, vol.id), before, 'nothing visible changed yet');
  t.equal(resolve(table, vol.id, 'pw')!.data!.toString(), 'v1');
  t.same(
    plan.steps.map((s) => `${s.kind} ${s.name}${s.kind === 'rename' ? ` ${s.to}` : ''}${s.kind === 'symlink' ? ` -> ${s.target}` : ''}`),
    [
      `mkdir ${plan.tsName}`,
      `symlink ..data_tmp -> ${plan.tsName}`,
      'rename ..data_tmp ..data',
      'symlink conf -> ..data/conf',
      'unlink gone',
    ],
    "the atomic writer's order",
  );
  t.ok(plan.steps.every((s) => s.parent === vol.id && s.dir === ''));
  const [mk, tmp, mv] = plan.steps;
  t.equal(mk!.apply()!.kind, 'dir');
  t.equal(tmp!.apply()!.data!.toString(), plan.tsName);
  t.equal(resolve(table, vol.id, 'pw')!.data!.toString(), 'v1', 'still the old version before the rename');
  t.equal(mv!.apply(), null);
  t.equal(resolve(table, vol.id, 'pw')!.data!.toString(), 'v2', 'the new version after it');
  t.notOk(table.child(vol.id, '..data_tmp'), '..data_tmp is gone (moved)');
  for (const s of plan.steps.slice(3)) s.apply();
  tree.commit();
  t.same(tree.paths().sort(), ['conf/app.json', 'pw', 'user']);
  t.equal(resolve(table, vol.id, 'conf/app.json')!.data!.toString(), '{}');
  t.notOk(table.child(vol.id, 'gone'));
  t.equal(tree.dataDir, plan.tsName);
  t.equal(tree.prepare([file('pw', 'v2'), file('user', 'admin'), file('conf/app.json', '{}')], new Date()), null, 'same files: no plan');
});

t.test('removal steps delete a retired version deepest first, sparing files the new version still holds', async (t) => {
  const { table, vol } = setup();
  const tree = new VolumeTree(table, vol.id, 60_000);
  tree.publish([file('pw', 'v1'), file('user', 'admin'), file('conf/a', '1'), file('conf/b', '2')], new Date(1000));
  const oldTs = tree.dataDir!;
  tree.publish([file('pw', 'v2'), file('user', 'admin'), file('conf/a', '1'), file('conf/b', '3')], new Date(2000));
  t.same(tree.dueRetired(2000 + 59_999), [], 'not due inside the grace period');
  t.same(tree.dueRetired(2000 + 60_000), [oldTs]);
  const steps = tree.removalSteps(oldTs);
  t.same(
    steps.map((s) => `${s.kind} ${s.dir ? `${s.dir}/` : ''}${s.name}`),
    [`unlink ${oldTs}/pw`, `unlink ${oldTs}/conf/b`, `rmdir ${oldTs}/conf`, `rmdir ${oldTs}`],
    'changed files unlinked, shared ones (user, conf/a) left to the rmdir',
  );
  for (const s of steps) s.apply();
  tree.removed(oldTs);
  t.notOk(table.child(vol.id, oldTs));
  t.same(tree.dueRetired(Number.MAX_SAFE_INTEGER), []);
  t.equal(resolve(table, vol.id, 'user')!.data!.toString(), 'admin', 'shared file still served');
  t.equal(resolve(table, vol.id, 'conf/a')!.data!.toString(), '1');
});

t.test('a switch cut short by a crash is finished by the process that takes over (rollForward)', async (t) => {
  for (let made = 0; made <= 4; made++) {
    const { table, vol } = setup();
    const tree = new VolumeTree(table, vol.id, 2000);
    tree.publish([file('pw', 'v1'), file('gone', 'x')], new Date(1000));
    const plan = tree.prepare([file('pw', 'v2'), file('new', 'n')], new Date(2000))!;
    // The state the keeper got right after prepare, before any step.
    const exported = table.exportState();
    const treeState = tree.exportState();
    t.ok(treeState.pending, 'the pending version is in the state');
    plan.steps.slice(0, made).forEach((s) => s.apply()); // what the dead process had made since (lost with it)
    const table2 = InodeTable.restore(exported.state, Buffer.concat(exported.data));
    const tree2 = VolumeTree.restore(table2, treeState, 2000);
    const inval = tree2.rollForward();
    t.same(
      inval.map((i) => i.name).sort(),
      ['..data', '..data_tmp', plan.tsName, 'gone', 'new'].sort(),
      `${made} steps made: every name the kernel may hold is invalidated`,
    );
    t.equal(resolve(table2, vol.id, 'pw')!.data!.toString(), 'v2', 'the new version is served');
    t.equal(resolve(table2, vol.id, 'new')!.data!.toString(), 'n');
    t.notOk(table2.child(vol.id, 'gone'));
    t.notOk(table2.child(vol.id, '..data_tmp'));
    t.equal(table2.child(vol.id, '..data')!.id, plan.dataLinkId, 'the same ..data inode the kernel may already have');
    t.equal(tree2.dataDir, plan.tsName);
    t.same(tree2.rollForward(), [], 'nothing pending afterwards');
    t.notOk(tree2.exportState().pending);
  }
  const { tree } = setup();
  tree.publish([file('a', '1')], new Date(1000));
  t.same(tree.rollForward(), [], 'nothing pending: nothing to do');
});

t.test('describe: path and version of a served file, of one only a retired version holds, until it is removed', async (t) => {
  const { table, vol } = setup();
  const tree = new VolumeTree(table, vol.id, 60_000); // the old version stays reachable a minute
  const first = tree.publish([file('a', 'A1'), file('d/b', 'B')], new Date(1000)).dataDir;
  const a1 = resolve(table, vol.id, 'a')!.id;
  const b = resolve(table, vol.id, 'd/b')!.id;
  t.same(tree.describe(a1), { path: 'a', version: first });
  t.same(tree.describe(b), { path: 'd/b', version: first });
  t.equal(tree.describe(vol.id), null, 'not a file of the volume');
  const second = tree.publish([file('a', 'A2'), file('d/b', 'B')], new Date(2000)).dataDir;
  t.same(tree.describe(a1), { path: 'a', version: first }, 'the old inode names its version');
  t.same(tree.describe(resolve(table, vol.id, 'a')!.id), { path: 'a', version: second });
  t.same(tree.describe(b), { path: 'd/b', version: second }, 'an unchanged file is in the new version');
  tree.removed(first);
  t.equal(tree.describe(a1), null, 'forgotten with its version');
});
