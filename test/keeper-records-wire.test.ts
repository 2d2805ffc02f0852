// The keeper's records over its real socket (a real keeper process, a real
// SeqChannel): deltas applied and handed to the next driver as a container
// it rebuilds the exact state from, and compatibility both ways. An "old"
// peer is simulated by speaking the messages of a release before records
// over a real channel: an old driver sends HELLO {pid} and whole SNAPSHOTs;
// an old keeper (served by this test) answers EMPTY `{}` and never learns of
// RECORDS. No FUSE mount: the fd handed around is /dev/null's, as in the bench.

import t from 'tap';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { loadNative } from '../src/native/addon.js';
import { SeqChannel, Msg, type Message } from '../src/takeover/channel.js';
import { KeeperClient } from '../src/takeover/keeper-client.js';
import { KeeperSnapshots } from '../src/takeover/snapshots.js';
import type { Connections } from '../src/fuse/connections.js';
import { decodeContainer, isContainer } from '../src/takeover/record-codec.js';
import { stateFromRecords } from '../src/takeover/records.js';
import { decodeState, encodeState, type DriverState } from '../src/takeover/state.js';
import { VolumeState } from '../src/volume/state.js';
import { startKeeperAt, tempDir, waitUntil, type Proc } from './helpers/harness.js';
import { Conn, files, record } from './helpers/record-conn.js';
import pino from 'pino';

const native = loadNative();
const alloc = (n: number): Buffer => Buffer.alloc(n);
const log = pino({ level: 'silent' });

/** A driver's world without mounts: a connection, volume records, and the snapshots sender over `client`. */
function driverWorld(client: KeeperClient): { conn: Conn; state: VolumeState; snaps: KeeperSnapshots; whole(): DriverState } {
  const conn = new Conn('/m');
  const state = new VolumeState({ persist: () => undefined });
  const snaps = new KeeperSnapshots(client, alloc, log);
  snaps.serve({ fs: { main: conn, audit: null } as unknown as Connections, volumes: state });
  return { conn, state, snaps, whole: () => ({ version: 1, fs: conn.whole().fs, volumes: state.export() }) };
}

/** A raw channel to `socket`, speaking whatever messages the test sends; received messages are queued. */
function rawPeer(fd: number): { ch: SeqChannel; next(type: number): Promise<Message> } {
  const inbox: Message[] = [];
  const ch = new SeqChannel(native, fd, 5);
  ch.start(
    (m) => inbox.push(m),
    () => undefined,
  );
  return {
    ch,
    async next(type) {
      await waitUntil(() => inbox.some((m) => m.type === type), 5000);
      return inbox.splice(
        inbox.findIndex((m) => m.type === type),
        1,
      )[0]!;
    },
  };
}

async function keeper(t: Tap): Promise<{ socket: string; proc: Proc }> {
  const dir = await tempDir(t, 'sscsi-records-');
  const socket = join(dir, 'keeper.sock');
  const proc = await startKeeperAt(socket);
  t.teardown(() => proc.stop());
  return { socket, proc };
}
type Tap = Parameters<typeof tempDir>[0];

async function connect(socket: string): Promise<KeeperClient> {
  const c = await KeeperClient.connect(native, socket, 5000);
  if (!c) throw new Error('no keeper');
  return c;
}

t.test('a new keeper takes deltas and hands over records the next driver rebuilds the exact state from', async (t) => {
  const { socket } = await keeper(t);
  const c1 = await connect(socket);
  t.equal((await c1.hello()).kind, 'empty');
  t.ok(c1.takesRecords, "the keeper's EMPTY says it takes records");
  const stand = openSync('/dev/null', 'r');
  t.teardown(() => closeSync(stand));
  c1.register(stand);
  const w = driverWorld(c1);
  const vols = [0, 1, 2].map((i) => w.conn.create(`v${i}`));
  for (const v of vols) v.tree.publish(files(0), new Date(1000));
  vols.forEach((v, i) => w.state.add(record(`/t/${i}`, v)));
  w.snaps.send(); // the reset
  vols[1]!.tree.publish(files(1, true), new Date(2000));
  w.snaps.send(); // a delta: one volume
  w.conn.destroy(vols[2]!);
  w.state.delete('/t/2');
  w.snaps.send(); // a delta with deletions
  const expected = w.whole();
  c1.close();

  const c2 = await connect(socket);
  const hello = await c2.hello();
  if (hello.kind !== 'state') throw new Error('no state handed over');
  t.ok(isContainer(hello.state), 'handed over as records');
  t.ok(c2.takesRecords);
  const back = stateFromRecords(decodeContainer(hello.state));
  t.strictSame(back.state, expected, 'the same state as the driver had');
  t.ok(back.blob.equals(Buffer.concat(w.conn.whole().data)), 'and the same bytes');
  closeSync(hello.fd);
  c2.close();
});

t.test('a new keeper keeps an old driver’s whole SNAPSHOT and hands that blob on', async (t) => {
  const { socket } = await keeper(t);
  const old = rawPeer(native.unixConnect(socket));
  old.ch.send(Msg.HELLO, Buffer.from(JSON.stringify({ pid: process.pid }))); // an old driver's HELLO
  t.equal((await old.next(Msg.EMPTY)).type, Msg.EMPTY);
  const stand = openSync('/dev/null', 'r');
  t.teardown(() => closeSync(stand));
  old.ch.send(Msg.REGISTER, Buffer.from('{}'), [stand]);
  const conn = new Conn('/m');
  conn.create('v').tree.publish(files(0), new Date(1000));
  const { fs, data } = conn.whole();
  const blob = encodeState({ version: 1, fs, volumes: [] }, data, alloc);
  t.ok(old.ch.sendNow(Msg.SNAPSHOT, Buffer.from(blob)));
  await old.ch.drained();
  old.ch.close();

  const c = await connect(socket);
  const hello = await c.hello();
  if (hello.kind !== 'state') throw new Error('no state handed over');
  t.ok(hello.state.equals(blob), 'the blob as the old driver sent it');
  t.notOk(c.takesRecords, 'a whole state: the new driver keeps sending whole snapshots to this keeper');
  closeSync(hello.fd);
  c.close();
});

t.test('a new keeper holding records hands an old driver a whole-state blob (a downgrade)', async (t) => {
  const { socket } = await keeper(t);
  const c1 = await connect(socket);
  await c1.hello();
  const stand = openSync('/dev/null', 'r');
  t.teardown(() => closeSync(stand));
  c1.register(stand);
  const w = driverWorld(c1);
  const v = w.conn.create('v');
  v.tree.publish(files(0), new Date(1000));
  w.state.add(record('/t/v', v));
  w.snaps.send();
  c1.close();

  const old = rawPeer(native.unixConnect(socket));
  old.ch.send(Msg.HELLO, Buffer.from(JSON.stringify({ pid: process.pid })));
  const m = await old.next(Msg.STATE);
  t.notOk(isContainer(m.payload), 'not a container, which an old driver could not read');
  const { state, blob } = decodeState(m.payload);
  t.strictSame(state, w.whole(), 'the whole state, as an old driver reads it');
  t.ok(blob.equals(Buffer.concat(w.conn.whole().data)));
  for (const fd of m.fds) closeSync(fd);
  old.ch.close();
});

t.test('a new driver sends whole SNAPSHOTs to an old keeper (EMPTY `{}`), and RECORDS to a new one', async (t) => {
  const dir = await tempDir(t, 'sscsi-oldkeeper-');
  const socket = join(dir, 'old.sock');
  // The old keeper: answers HELLO with `{}` and keeps what it gets (an old one drops RECORDS unread).
  const listen = native.unixListen(socket);
  const got: Message[] = [];
  let peer: SeqChannel | null = null;
  const accept = setInterval(() => {
    const fd = native.unixAccept(listen);
    if (fd < 0) return;
    peer = new SeqChannel(native, fd, 5);
    const p = peer;
    p.start(
      (m) => {
        got.push(m);
        if (m.type === Msg.HELLO) p.send(Msg.EMPTY, Buffer.from('{}'));
      },
      () => undefined,
    );
  }, 5);
  t.teardown(() => {
    clearInterval(accept);
    peer?.close();
    closeSync(listen);
  });
  const c = await connect(socket);
  t.equal((await c.hello()).kind, 'empty');
  t.notOk(c.takesRecords, 'an old keeper');
  const w = driverWorld(c);
  w.conn.create('v').tree.publish(files(0), new Date(1000));
  w.snaps.send();
  await waitUntil(() => got.some((m) => m.type === Msg.SNAPSHOT), 5000);
  t.notOk(
    got.some((m) => m.type === Msg.RECORDS),
    'no RECORDS',
  );
  const snap = got.find((m) => m.type === Msg.SNAPSHOT)!;
  t.strictSame(decodeState(snap.payload).state, w.whole(), 'the whole state, as before records');
  c.close();

  const { socket: fresh } = await keeper(t);
  const c2 = await connect(fresh);
  await c2.hello();
  t.ok(c2.takesRecords, 'a new keeper');
  c2.close();
});
