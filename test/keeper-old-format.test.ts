// A new driver with the previous release's keeper (before records; a stand-in
// in test/helpers/old-keeper.ts), real driver processes and real mounts:
// driver A publishes two volumes and is killed with SIGKILL while a reader
// holds a file open and another reads in a loop; driver B takes the
// connection over from the whole-state blob the old keeper hands it (as A
// sent it, or with no inode owners, as the previous release's driver wrote
// it), serves the same bytes with no read failing, rotates, unpublishes, and
// sends that keeper whole SNAPSHOTs only (it would drop RECORDS unread).

import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { Msg } from '../src/takeover/channel.js';
import { decodeState } from '../src/takeover/state.js';
import { ROOT_ID } from '../src/fuse/inode-table.js';
import { OldKeeper } from './helpers/old-keeper.js';
import { Harness, NODE, ROOT, mountsUnder, sleep, tempDir, track, waitUntil, type Tap } from './helpers/harness.js';

const SIZES = { a: 1024, b: 65536 };
const content = (v: number, size: number): string => `V${v}|`.padEnd(size, 'x');
const files = (v: number) => ({
  files: Object.entries(SIZES).map(([path, size]) => ({ path, contents: content(v, size) })),
});

/** test/fixtures/reader.mjs: a pod's process holding files open; one JSON command per line. */
function heldReader(t: Tap): (cmd: Record<string, unknown>) => Promise<Record<string, unknown>> {
  const child = track(spawn(NODE, [join(ROOT, 'test/fixtures/reader.mjs')], { stdio: ['pipe', 'pipe', 'inherit'] }));
  t.teardown(() => child.kill('SIGKILL'));
  const pending = new Map<number, (v: Record<string, unknown>) => void>();
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const m = JSON.parse(l) as { seq: number };
    pending.get(m.seq)?.(m);
    pending.delete(m.seq);
  });
  let seq = 0;
  return (cmd) =>
    new Promise((r) => {
      pending.set(++seq, r);
      child.stdin!.write(`${JSON.stringify({ seq, ...cmd })}\n`);
    });
}

/** test/fixtures/chaos-reader.mjs reading `paths` in a loop until stopped; its result counts errors and torn reads. */
function loopReader(t: Tap, paths: string[]): { child: ChildProcess; done: Promise<{ reads: number; errors: object; invalid: number }> } {
  const child = track(
    spawn(NODE, [join(ROOT, 'test/fixtures/chaos-reader.mjs'), JSON.stringify(SIZES), ...paths], { stdio: ['pipe', 'pipe', 'inherit'] }),
  );
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<{ reads: number; errors: object; invalid: number }>((resolve, reject) =>
    child.on('exit', () => {
      try {
        resolve(JSON.parse(out) as { reads: number; errors: object; invalid: number });
      } catch {
        reject(new Error(`reader printed ${out}`));
      }
    }),
  );
  return { child, done };
}

for (const variant of ['as the new driver sent it', 'as the previous release wrote it (no inode owners)'] as const) {
  t.test(`driver B takes over from an old keeper's whole-state blob ${variant}`, async (t) => {
    const keeperDir = await tempDir(t, 'sscsi-oldkeeper-');
    const keeper = new OldKeeper(join(keeperDir, 'keeper.sock'), { stripOwners: variant.includes('previous') });
    t.teardown(() => keeper.stop());
    const h = await Harness.start(t as Tap, {
      driverArgs: [`--keeper-socket=${keeper.socketPath}`, '--rotation-poll-interval=300ms'],
    });
    await h.source('one.json', files(1));
    await h.source('two.json', files(101));
    await h.spc('one', 'one.json');
    await h.spc('two', 'two.json');
    const targets = [h.target('one'), h.target('two')];
    await h.publish(h.publishRequest(targets[0]!, 'one'));
    await h.publish(h.publishRequest(targets[1]!, 'two'));
    const before = await Promise.all(targets.map((d) => readFile(join(d, 'b'), 'latin1')));
    t.same(
      before.map((s) => s.slice(0, 5)),
      ['V1|xx', 'V101|'],
    );
    // A's last snapshot has both volumes before it dies (it is sent before the publish returns).
    const volumesIn = (s: Buffer | undefined) => (s ? decodeState(s).state.volumes.length : 0);
    await waitUntil(
      () => volumesIn(keeper.received.findLast((r) => r.type === Msg.SNAPSHOT)?.snapshot) === 2,
      5000,
      'a SNAPSHOT with both volumes',
    );
    t.strictSame(
      keeper.typesFrom(0).filter((m) => m !== Msg.SNAPSHOT),
      [Msg.HELLO, Msg.REGISTER],
      'driver A, told `{}`, sent this keeper HELLO, REGISTER and whole SNAPSHOTs only',
    );

    const held = heldReader(t as Tap);
    t.same(await held({ cmd: 'open', id: 1, path: join(targets[0]!, 'a') }), { seq: 1, ok: true }, 'a pod holds a file open');
    const loop = loopReader(t as Tap, [join(targets[0]!, 'a'), join(targets[1]!, 'b')]);
    await sleep(300);

    await h.driver.stop('SIGKILL');
    await h.startDriver();
    t.match(
      h.driver.out,
      /"volumes":2,[^\n]*"records":false[^\n]*took over the FUSE connection from the previous driver/,
      'driver B took the connection over from the whole-state blob',
    );
    t.same((await held({ cmd: 'readfd', id: 1 })).data, content(1, SIZES.a), 'the held file reads the same bytes');
    t.same(await Promise.all(targets.map((d) => readFile(join(d, 'b'), 'latin1'))), before, 'both volumes read the same bytes');

    // A rotation reaches a new open.
    await h.source('one.json', files(2));
    await waitUntil(async () => (await readFile(join(targets[0]!, 'a'), 'latin1')) === content(2, SIZES.a), 10_000, 'V2 served');
    t.pass('the rotation reached a new open');
    loop.child.stdin!.end();
    const res = await loop.done;
    t.ok(res.reads > 50, `${res.reads} reads across the crash and the rotation`);
    t.same(res.errors, {}, 'no read failed');
    t.equal(res.invalid, 0, 'every read one whole version');

    // What B sent the old keeper: whole snapshots, the rotated one among them, never RECORDS.
    await waitUntil(() => keeper.typesFrom(1).length > 1, 5000, 'the state from driver B after the rotation');
    const fromB = keeper.typesFrom(1);
    t.equal(fromB[0], Msg.HELLO);
    t.notOk(fromB.includes(Msg.RECORDS), 'driver B sent no RECORDS');
    t.ok(
      fromB.slice(1).every((m) => m === Msg.SNAPSHOT),
      `driver B sent only whole SNAPSHOTs after HELLO (${fromB.join(',')})`,
    );
    const snap = keeper.received.findLast((r) => r.peer === 1 && r.type === Msg.SNAPSHOT)?.snapshot;
    if (!snap) throw new Error('driver B sent no SNAPSHOT');
    const last = decodeState(snap).state;
    t.equal(last.volumes.length, 2, "B's snapshot has both volumes");
    // Owners derived at adoption (records.ts withOwners): each volume directory owns itself.
    const root = last.fs.table.nodes.find((n) => n.id === ROOT_ID)!;
    const dirs = (root.children ?? []).map(([, id]) => last.fs.table.nodes.find((n) => n.id === id)!);
    t.strictSame(
      dirs.map((n) => n.owner),
      dirs.map((n) => n.id),
      'every volume directory in B’s state has its owner',
    );

    t.equal((await held({ cmd: 'close', id: 1 })).ok, true, 'the pod closes it');
    for (const target of targets) {
      await h.unpublish(target);
      t.same(await mountsUnder(target), [], `unpublish succeeded and unmounted ${target}`);
    }
  });
}
