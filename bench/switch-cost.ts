// What a rotation's switch costs inside the driver, measured in one run:
// with the directory changes made as syscalls through the mount (so inotify
// watchers see them, the default) and with the table-only switch (cache
// invalidations, silent for inotify); one volume at a time and many volumes
// rotating at once (a forked child per batch of syscalls). Also the
// keeper snapshot as the node fills up, handed to a real keeper process over
// its socket: the records one change touched (one volume rotated, one more
// published), against the whole state encoded (what an older keeper still
// gets, and what every change cost before records). Run as root:
// `UV_THREADPOOL_SIZE=16 node dist/bench/switch-cost.js [rotations] [volumes]`
// (its two mounts' blocking readers would take all 4 default threads and
// every fs call would wait forever, as in bench section 5). It serves its
// mounts itself, so it never reads them synchronously.

import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { SecretsFilesystem, type VolumeHandle } from '../src/fuse/filesystem.js';
import { unmount } from '../src/mount/commands.js';
import { readMountInfo } from '../src/mount/mountinfo.js';
import { Op } from '../src/fuse/protocol.js';
import { encodeState } from '../src/takeover/state.js';
import { DriverRecords, type RecordVolumes } from '../src/takeover/records.js';
import { encodeDelta } from '../src/takeover/record-codec.js';
import { KeeperClient } from '../src/takeover/keeper-client.js';
import { nativeForkSyscalls, type ForkSyscalls } from '../src/fuse/vfs-steps.js';
import { loadNative } from '../src/native/addon.js';
import { sleep } from '../testkit/wait.js';
import { summarize, round } from './lib/stats.js';

const log = { warn: () => undefined, debug: () => undefined };
const OPNAMES = new Map<number, string>(Object.entries(Op).map(([k, v]) => [v, k.toLowerCase()]));

const files = (version: number) => [
  { path: 'password', mode: 0o400, contents: Buffer.from(`v${version}-${'p'.repeat(1000)}`) },
  { path: 'username', mode: 0o444, contents: Buffer.alloc(1024, 0x61) },
  { path: 'config/app.json', mode: 0o444, contents: Buffer.alloc(1024, 0x62) },
];

export interface ModeFigures {
  /** One volume rotated `rotations` times in a row: fs.publish (the switch; removal of old versions is later), µs. */
  publishUs: { median: number; p95: number; mean: number };
  /** FUSE requests the driver answered per rotation, by kind: the switch alone. */
  switchRequests: Record<string, number>;
  /** The same for the switch plus, a moment later, the old version's removal. */
  withRemovalRequests: Record<string, number>;
  /** `volumes` volumes rotated at once (Promise.all), ms until all were done. */
  concurrentMs: number;
}

export interface SwitchCostResult {
  rotations: number;
  volumes: number;
  vfsSteps: ModeFigures;
  tableOnly: ModeFigures;
  /**
   * Keeper snapshot with this many volumes of 3 x 1 KiB mounted, medians in ms: exportState + encode, and
   * the synchronous hand-over of the encoded state to a keeper process (KeeperClient.snapshot). The driver's
   * JS thread is blocked for the sum. `rotate` and `publish`: the same for the records delta after one
   * change (one volume rotated; one more volume published), which is what a driver sends a keeper that takes
   * records; `resetMs`: every record at once (a driver's first send after it starts serving). Filesystem
   * state only (no volume records) in all of them.
   */
  snapshotMs: Array<SnapshotCost & { volumes: number; resetMs: number; rotate: SnapshotCost; publish: SnapshotCost }>;
}

export interface SnapshotCost {
  bytes: number;
  encodeMs: number;
  sendMs: number;
  ms: number;
}

class Counter {
  private readonly counts = new Map<string, number>();
  on = false;
  readonly hook = (op: number): void => {
    if (!this.on) return;
    const name = OPNAMES.get(op) ?? String(op);
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
  };
  per(n: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, c] of [...this.counts.entries()].sort()) out[k] = round(c / n, 2);
    this.counts.clear();
    return out;
  }
}

async function measureMode(dir: string, vfsSteps: boolean, rotations: number, volumes: number): Promise<ModeFigures> {
  const name = vfsSteps ? 'vfs' : 'table';
  const forkSyscalls: ForkSyscalls | undefined = vfsSteps ? nativeForkSyscalls(loadNative()) : undefined;
  const c = new Counter();
  // Old versions stay for a minute here, so the timed switches are not mixed with removals.
  const fs = await SecretsFilesystem.mount({
    mountDir: join(dir, name),
    log,
    ...(forkSyscalls ? { forkSyscalls } : {}),
    retireGraceMs: 60_000,
    onRequest: c.hook,
  });
  const c2 = new Counter();
  const fs2 = await SecretsFilesystem.mount({
    mountDir: join(dir, `${name}-rm`),
    log,
    ...(forkSyscalls ? { forkSyscalls } : {}),
    retireGraceMs: 0,
    onRequest: c2.hook,
  });
  try {
    const v = fs.createVolume('one');
    await fs.publish(v, files(0));
    for (let i = 1; i <= 20; i++) await fs.publish(v, files(i)); // warm-up
    await sleep(50);
    c.on = true;
    const us: number[] = [];
    for (let i = 0; i < rotations; i++) {
      const t0 = performance.now();
      await fs.publish(v, files(100 + i));
      us.push((performance.now() - t0) * 1000);
      await new Promise((r) => setImmediate(r));
    }
    c.on = false;
    const switchRequests = c.per(rotations);

    // Removal right after each switch (grace 0), each allowed to finish before the next rotation.
    const w = fs2.createVolume('rm');
    await fs2.publish(w, files(0));
    await fs2.publish(w, files(1));
    await sleep(50);
    c2.on = true;
    const n2 = 50;
    for (let i = 0; i < n2; i++) {
      await fs2.publish(w, files(200 + i));
      await sleep(30);
    }
    c2.on = false;
    const withRemovalRequests = c2.per(n2);

    const many: VolumeHandle[] = [];
    for (let i = 0; i < volumes; i++) {
      const h = fs.createVolume(`m${i}`);
      await fs.publish(h, files(0));
      many.push(h);
    }
    const t0 = performance.now();
    await Promise.all(many.map((h, i) => fs.publish(h, files(1000 + i))));
    const concurrentMs = performance.now() - t0;
    const s = summarize(us);
    return {
      publishUs: { median: round(s.median, 1), p95: round(s.p95, 1), mean: round(s.mean, 1) },
      switchRequests,
      withRemovalRequests,
      concurrentMs: round(concurrentMs, 1),
    };
  } finally {
    await fs.close();
    await fs2.close();
  }
}

/** Medians of `runs` (the first 5 dropped as warm-up) of prepare (untimed), encode, then send. */
async function timed(
  runs: number,
  prepare: (i: number) => Promise<void>,
  encode: () => Buffer,
  send: (b: Buffer) => boolean,
): Promise<SnapshotCost> {
  const enc: number[] = [];
  const snd: number[] = [];
  let bytes = 0;
  for (let i = 0; i < runs; i++) {
    await prepare(i);
    const t0 = performance.now();
    const buf = encode();
    const t1 = performance.now();
    if (!send(buf)) throw new Error('the keeper did not take the snapshot');
    snd.push(performance.now() - t1);
    enc.push(t1 - t0);
    bytes = buf.length;
    buf.fill(0);
    await sleep(30); // as between rotations: the keeper has read the last one
  }
  const e = summarize(enc.slice(5)).median;
  const w = summarize(snd.slice(5)).median;
  return { bytes, encodeMs: round(e, 3), sendMs: round(w, 3), ms: round(e + w, 3) };
}

async function measureSnapshots(dir: string, sizes: number[]): Promise<SwitchCostResult['snapshotMs']> {
  const keeperJs = fileURLToPath(new URL('../src/bin/keeper.js', import.meta.url));
  const socket = join(dir, 'keeper.sock');
  const keeper = spawn(process.execPath, [keeperJs, '--socket', socket, '--lock-memory', 'false'], { stdio: 'ignore' });
  // Old versions removed at once (between two changes below), so a volume rotated again and again is one with
  // the version it serves and the one it replaced, as after a rotation with the default grace.
  const fs = await SecretsFilesystem.mount({ mountDir: join(dir, 'snap'), log, retireGraceMs: 0 });
  const out: SwitchCostResult['snapshotMs'] = [];
  const stand = openSync('/dev/null', 'r'); // the keeper holds an fd as it would /dev/fuse
  const alloc = (k: number): Buffer => Buffer.alloc(k);
  const noRecords: RecordVolumes = { trackChanges: () => undefined, takeChanges: () => new Map() };
  try {
    const client = await KeeperClient.connect(loadNative(), socket, 10_000);
    if (!client) throw new Error('the keeper did not start');
    await client.hello();
    if (!client.takesRecords) throw new Error('the keeper does not take records');
    client.register(stand);
    let n = 0;
    for (const target of sizes) {
      for (; n < target; n++) await fs.publish(fs.createVolume(`s${n}`), files(n));
      const whole = await timed(
        15,
        () => Promise.resolve(),
        () => {
          const { state, data } = fs.exportState();
          return encodeState({ version: 1, fs: state, volumes: [] }, data, alloc);
        },
        (b) => client.snapshot(b),
      );
      // The keeper holds a whole state now: records start again, as in a driver that starts serving, with
      // every record (reset), then the deltas.
      const records = new DriverRecords(alloc);
      const delta = (): Buffer => {
        const d = records.delta(fs, null, noRecords);
        const buf = encodeDelta(d, alloc);
        for (const [, b] of d.upserts) b.fill(0);
        return buf;
      };
      const send = (b: Buffer): boolean => client.sendRecords(b);
      const t0 = performance.now();
      const first = delta();
      if (!send(first)) throw new Error('the keeper did not take the records');
      const resetMs = performance.now() - t0;
      first.fill(0);
      const rotated = fs.volume('s0')!;
      const rotate = await timed(15, async (i) => void (await fs.publish(rotated, files(1000 + i))), delta, send);
      const publish = await timed(15, async () => void (await fs.publish(fs.createVolume(`s${n++}`), files(n))), delta, send);
      out.push({ volumes: target, ...whole, resetMs: round(resetMs, 2), rotate, publish });
    }
  } finally {
    closeSync(stand);
    keeper.kill();
    await fs.close();
  }
  return out;
}

export async function measureSwitchCost(rotations: number, volumes: number): Promise<SwitchCostResult> {
  const dir = await mkdtemp('/tmp/ssbench-switch-');
  try {
    const tableOnly = await measureMode(dir, false, rotations, volumes);
    const vfsSteps = await measureMode(dir, true, rotations, volumes);
    const snapshotMs = await measureSnapshots(dir, [1, 100, 1000]);
    return { rotations, volumes, vfsSteps, tableOnly, snapshotMs };
  } finally {
    for (const m of (await readMountInfo()).reverse()) {
      if (m.mountPoint.startsWith(dir)) await unmount(m.mountPoint, { lazy: true }).catch(() => undefined);
    }
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await measureSwitchCost(Number(process.argv[2] ?? 300), Number(process.argv[3] ?? 50));
  console.log(JSON.stringify(r, null, 2));
}
