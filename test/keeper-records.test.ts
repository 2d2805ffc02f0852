// Unit tests of the keeper's keyed records (src/takeover/records.ts,
// record-codec.ts) and the change tracking behind them (InodeTable,
// VolumeTree, VolumeState): no mounts, no processes. The keeper is played by
// a Map that applies each delta as keeper.ts does; after every change the
// state rebuilt from it must be exactly the whole state exported.

import t, { type Test } from 'tap';
import { InodeTable, ROOT_ID } from '../src/fuse/inode-table.js';
import { Conn, files, record } from './helpers/record-conn.js';
import { WriteWindow } from '../src/fuse/write-window.js';
import { VolumeState } from '../src/volume/state.js';
import { DriverRecords, stateFromRecords, withOwners } from '../src/takeover/records.js';
import {
  decodeContainer,
  decodeDelta,
  encodeContainer,
  encodeDelta,
  isContainer,
  saysRecords,
  type RecordDelta,
} from '../src/takeover/record-codec.js';
import { decodeState, encodeState } from '../src/takeover/state.js';

const alloc = (n: number): Buffer => Buffer.alloc(n);

/** The keeper's side, as keeper.ts applies a delta. */
function apply(held: Map<string, Buffer>, d: RecordDelta): void {
  if (d.reset) held.clear();
  for (const [k, b] of d.upserts) held.set(k, Buffer.from(b));
  for (const k of d.deletes) held.delete(k);
}

class World {
  readonly main = new Conn('/m');
  audit: Conn | null = null;
  readonly state = new VolumeState({ persist: () => undefined });
  readonly records = new DriverRecords(alloc);
  readonly held = new Map<string, Buffer>();
  last: RecordDelta | null = null;
  /** Sends a delta to `held` through the wire encoding and checks the rebuilt state is the whole one. */
  sync(t: Test): RecordDelta {
    const d = this.records.delta(this.main, this.audit, this.state);
    apply(this.held, decodeDelta(encodeDelta(d, alloc)));
    this.last = d;
    const back = stateFromRecords(decodeContainer(encodeContainer(this.held, alloc)));
    const m = this.main.whole();
    const a = this.audit?.whole();
    const byPath = (x: { targetPath: string }, y: { targetPath: string }): number => (x.targetPath < y.targetPath ? -1 : 1);
    t.strictSame(
      { ...back.state, volumes: [...back.state.volumes].sort(byPath) },
      { version: 1, fs: m.fs, ...(a ? { auditFs: a.fs } : {}), volumes: this.state.export().sort(byPath) },
      'the records rebuild the whole state',
    );
    t.ok(back.blob.equals(Buffer.concat([...m.data, ...(a?.data ?? [])])), 'and its bytes, in order');
    return d;
  }
}
const keys = (d: RecordDelta): string[] => [...d.upserts.map(([k]) => `+${k}`), ...d.deletes.map((k) => `-${k}`)].sort();

t.test('the codec: deltas and containers round-trip, and a whole-state blob is never a container', async (t) => {
  const d: RecordDelta = {
    reset: true,
    upserts: [
      ['vol:m:2', Buffer.from('abc')],
      ['rec:/a/ü', Buffer.alloc(0)],
    ],
    deletes: ['x', 'rest:a'],
  };
  const back = decodeDelta(encodeDelta(d, alloc));
  t.equal(back.reset, true);
  t.strictSame(
    back.upserts.map(([k, b]) => [k, b.toString()]),
    [
      ['vol:m:2', 'abc'],
      ['rec:/a/ü', ''],
    ],
  );
  t.strictSame(back.deletes, ['x', 'rest:a']);
  t.equal(decodeDelta(encodeDelta({ reset: false, upserts: [], deletes: [] }, alloc)).reset, false);
  const c = encodeContainer(new Map([['meta', Buffer.from('{}')]]), alloc);
  t.ok(isContainer(c));
  t.strictSame(
    [...decodeContainer(c)].map(([k, b]) => [k, b.toString()]),
    [['meta', '{}']],
  );
  const table = new InodeTable();
  const blob = encodeState(
    { version: 1, fs: { mountDir: '/m', negotiated: null, table: table.exportState().state, volumes: [] }, volumes: [] },
    [],
    alloc,
  );
  t.notOk(isContainer(blob), 'an old blob is told apart');
  t.ok(saysRecords(Buffer.from('{"records":1}')));
  t.notOk(saysRecords(Buffer.from('{}')), "an old keeper's EMPTY");
  t.notOk(saysRecords(Buffer.from('{"pid":12}')), "an old driver's HELLO");
  t.throws(() => decodeDelta(Buffer.from([0, 1, 0, 0, 0, 1, 0, 0x61, 99, 0, 0, 0])), 'a record past the end is refused');
});

t.test('the table tracks created, changed, linked, scrubbed and freed nodes, only when asked', async (t) => {
  const tab = new InodeTable();
  tab.mkdir(0o755, 0);
  t.strictSame([...tab.takeChanges()], [], 'untracked: nothing kept');
  tab.trackChanges();
  t.strictSame([...tab.takeChanges()].sort(), [1, 2], 'tracking starts with every node');
  const dir = tab.get(2)!;
  tab.link(ROOT_ID, 'v', dir.id);
  t.equal(dir.owner, dir.id, 'a child of the root owns itself');
  const f = tab.mkfile(Buffer.from('x'), 0o444, 0);
  t.equal(f.owner, 0);
  tab.link(dir.id, 'f', f.id);
  t.equal(f.owner, dir.id, 'a node linked below a volume directory is its');
  t.strictSame([...tab.takeChanges()].sort(), [1, 2, 3]);
  const s = tab.mkstaged(0o600, 0, null, dir.id);
  t.equal(s.owner, dir.id, 'an unlinked node gets the owner it is made with');
  tab.takeChanges();
  tab.writeStaged(s.id, 0, Buffer.from('abc'), 1);
  t.strictSame([...tab.takeChanges()], [s.id], 'a staged write');
  tab.lookup(dir.id, 'f');
  t.strictSame([...tab.takeChanges()], [], 'a lookup is not a change (kernel counts are not handed over)');
  tab.scrub(dir.id);
  t.strictSame([...tab.takeChanges()].sort(), [dir.id, f.id], 'a scrub');
  tab.unlink(ROOT_ID, 'v');
  t.strictSame([...tab.takeChanges()].sort(), [1, dir.id, f.id], 'an unlink: parent, child, and what its freeing dropped');
  t.equal(tab.get(dir.id), undefined);
  t.ok(tab.get(f.id), 'the file the kernel still knows stays');
  tab.forget(f.id, 1);
  t.strictSame([...tab.takeChanges()], [f.id], 'freed');
  t.equal(tab.get(f.id), undefined);
});

t.test('a rotation sends its own volume record only, with the pending version before the switch', async (t) => {
  const w = new World();
  const vols = [0, 1, 2].map((i) => w.main.create(`v${i}`));
  for (const v of vols) v.tree.publish(files(0), new Date(1000));
  vols.forEach((v, i) => w.state.add(record(`/t/${i}`, v)));
  const first = w.sync(t);
  t.equal(first.reset, true, 'the first delta replaces everything');
  t.strictSame(
    keys(first),
    ['+meta', '+rec:/t/0', '+rec:/t/1', '+rec:/t/2', '+rest:m', ...vols.map((v) => `+vol:m:${v.tree.dirId}`)].sort(),
  );
  const v1 = vols[1]!;
  const plan = v1.tree.prepare(files(1, true), new Date(2000))!;
  const pending = w.sync(t);
  t.equal(pending.reset, false);
  t.strictSame(keys(pending), ['+meta', `+vol:m:${v1.tree.dirId}`], 'the new ids (meta: nextId) and the volume, pending version included');
  for (const step of plan.steps) step.apply();
  v1.tree.commit();
  t.strictSame(keys(w.sync(t)), [`+vol:m:${v1.tree.dirId}`], 'the switch: that volume alone');
  t.equal(v1.tree.dueRetired(5000).length, 1);
  v1.tree.sweep(5000);
  t.strictSame(keys(w.sync(t)), [`+vol:m:${v1.tree.dirId}`], 'the old version removed');
  w.state.update('/t/1', { lastPolledAt: 99 }, 'with-next');
  t.strictSame(keys(w.sync(t)), ['+rec:/t/1'], 'a volume record');
  t.strictSame(keys(w.sync(t)), [], 'nothing changed: nothing sent');
});

t.test('an unpublish keeps the record while the kernel knows a node of it, then deletes it', async (t) => {
  const w = new World();
  const v = w.main.create('v');
  v.tree.publish(files(0), new Date(1000));
  w.state.add(record('/t/v', v));
  w.sync(t);
  const dirId = v.tree.dirId;
  const pwId = w.main.table.child(w.main.table.child(dirId, v.tree.dataDir!)!.id, 'password')!.id;
  w.main.table.ref(pwId); // the kernel holds the file
  w.main.destroy(v);
  w.state.delete('/t/v');
  t.strictSame(keys(w.sync(t)), ['+rest:m', `+vol:m:${dirId}`, '-rec:/t/v'], 'the scrubbed node, without the tree');
  const kept = stateFromRecords(w.held).state.fs.table.nodes.filter((n) => n.owner === dirId);
  t.strictSame(
    kept.map((n) => [n.id, n.scrubbed, n.dataLen]),
    [[pwId, true, -1]],
    'only the node the kernel knows, its bytes gone',
  );
  w.main.table.forget(pwId, 1);
  const d = w.sync(t);
  t.ok(d.deletes.includes(`vol:m:${dirId}`), 'no node left: the record goes');
  t.notOk(w.held.has(`vol:m:${dirId}`));
});

t.test("a write window's staged files are in their volume's record", async (t) => {
  const w = new World();
  const v = w.main.create('v');
  v.tree.publish(files(0), new Date(1000));
  w.sync(t);
  const win = new WriteWindow(w.main.table, v.tree.dirId, () => true);
  const node = win.mknod('tmp', 0o600, false, 1);
  if (typeof node === 'number') throw new Error('mknod failed');
  win.write(node.id, 0, Buffer.from('written'), 2);
  t.strictSame(keys(w.sync(t)), ['+meta', `+vol:m:${v.tree.dirId}`]);
  const staged = stateFromRecords(w.held).state.fs.table.nodes.find((n) => n.id === node.id);
  t.equal(staged?.dataLen, 7, 'with its bytes');
  win.release();
  w.main.table.forget(node.id, 1);
  t.strictSame(keys(w.sync(t)), [`+vol:m:${v.tree.dirId}`], 'freed: gone from the record');
});

t.test('the audit connection gets records of its own when it appears', async (t) => {
  const w = new World();
  w.main.create('m1').tree.publish(files(0), new Date(1000));
  w.sync(t);
  w.audit = new Conn('/m-audit');
  const a = w.audit.create('a1');
  a.tree.publish(files(0), new Date(1000));
  w.state.add({ ...record('/t/a', a), auditReads: true });
  const d = w.sync(t);
  t.equal(d.reset, false);
  t.strictSame(keys(d), ['+meta', '+rec:/t/a', '+rest:a', `+vol:a:${a.tree.dirId}`]);
});

t.test('owners are derived for a whole state from a driver before records', async (t) => {
  const c = new Conn('/m');
  const v = c.create('v');
  v.tree.publish(files(0), new Date(1000));
  v.tree.prepare(files(1), new Date(2000)); // pending: its nodes are not linked yet
  const { fs, data } = c.whole();
  const old = { ...fs.table, nodes: fs.table.nodes.map(({ owner: _o, ...n }) => n) };
  const { state } = decodeState(encodeState({ version: 1, fs: { ...fs, table: old }, volumes: [] }, data, alloc));
  t.strictSame(withOwners(state.fs.table, state.fs.volumes), fs.table, 'the same owners as the table has');
});
