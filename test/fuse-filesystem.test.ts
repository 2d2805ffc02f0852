// The FUSE layer in this process against real mounts, read by separate
// reader processes (a pod's view): freshness under rotation, held fds keeping
// their version whole, no torn reads, callers recorded, old versions freed
// and zeroed when the kernel forgets them, unpublish zeroing at once.
//
// This process serves the mount, so it only touches it through child
// processes and async calls, never with synchronous I/O.

import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { SecretsFilesystem, type VolumeHandle } from '../src/fuse/filesystem.js';
import { bindMount, unmount } from '../src/mount/commands.js';
import { nativeForkSyscalls } from '../src/fuse/vfs-steps.js';
import { loadNative } from '../src/native/addon.js';
import { tempDir, execFileP, waitUntil, sleep, NODE, ROOT, type Tap } from './helpers/harness.js';

const log = { warn: () => undefined, debug: () => undefined };

class Reader {
  private seq = 0;
  private readonly pending = new Map<number, (v: Record<string, unknown>) => void>();
  readonly child = spawn(NODE, [join(ROOT, 'test/fixtures/reader.mjs')], { stdio: ['pipe', 'pipe', 'inherit'] });
  constructor() {
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      const m = JSON.parse(l) as { seq: number };
      this.pending.get(m.seq)?.(m);
      this.pending.delete(m.seq);
    });
  }
  ask(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const seq = ++this.seq;
    return new Promise((r) => {
      this.pending.set(seq, r);
      this.child.stdin!.write(`${JSON.stringify({ seq, ...cmd })}\n`);
    });
  }
  stop(): void {
    this.child.kill();
  }
}

async function setup(t: Tap, vfsSteps = false): Promise<{ fs: SecretsFilesystem; vol: VolumeHandle; target: string; reader: Reader }> {
  const dir = await tempDir(t);
  const fs = await SecretsFilesystem.mount({
    mountDir: join(dir, 'fuse'),
    log,
    ...(vfsSteps ? { forkSyscalls: nativeForkSyscalls(loadNative()), retireGraceMs: 0 } : {}),
  });
  const vol = fs.createVolume('vol');
  const target = join(dir, 'target');
  await mkdir(target);
  const reader = new Reader();
  t.teardown(async () => {
    reader.stop();
    await unmount(target, { lazy: true }).catch(() => undefined);
    await fs.close();
  });
  return { fs, vol, target, reader };
}

const file = (path: string, s: string, mode = 0o644) => ({ path, mode, contents: Buffer.from(s, 'latin1') });

t.test('new opens see each new version at once; held fds keep theirs, whole', async (t) => {
  const { fs, vol, target, reader } = await setup(t as Tap);
  await fs.publish(vol, [file('s', 'A'.repeat(70_000))]);
  await bindMount(vol.sourcePath, target);
  t.equal((await reader.ask({ cmd: 'open', path: `${target}/s`, id: 1 })).ok, true);

  const versions = ['B'.repeat(5), 'C'.repeat(200_000), 'D', 'E'.repeat(4096), 'F'.repeat(4097)];
  let fresh = 0;
  for (let round = 0; round < 6; round++) {
    for (const v of versions) {
      const content = `${v}${round}`;
      await fs.publish(vol, [file('s', content)]);
      const got = (await reader.ask({ cmd: 'read', path: `${target}/s` })).data;
      if (got === content) fresh++;
      else
        t.fail(
          `round ${round}: expected ${content.length} bytes of ${content[0]}, got ${String(got).slice(0, 20)}… (${String(got).length})`,
        );
    }
  }
  t.equal(fresh, 30, 'every open after a publish saw that publish');
  const held = (await reader.ask({ cmd: 'readfd', id: 1 })).data as string;
  t.equal(held.length, 70_000, 'the held fd still reads the old version, full length');
  t.ok(held === 'A'.repeat(70_000), 'and intact');
  await reader.ask({ cmd: 'close', id: 1 });
});

t.test('no torn or padded reads while versions of different sizes rotate', async (t) => {
  const { fs, vol, target, reader } = await setup(t as Tap);
  const sizes = [1, 10, 4095, 4096, 4097, 65_536, 70_001, 300_000];
  await fs.publish(vol, [file('s', 'a'.repeat(sizes[0]!))]);
  await bindMount(vol.sourcePath, target);
  const loop = reader.ask({ cmd: 'loop', path: `${target}/s`, ms: 3000 });
  let n = 0;
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const valid = new Set<string>();
  const started = Date.now();
  while (Date.now() - started < 2800) {
    const size = sizes[n % sizes.length]!;
    const ch = letters[n % letters.length]!;
    valid.add(size > 64 ? `${ch}x${size}:true` : ch.repeat(size));
    await fs.publish(vol, [file('s', ch.repeat(size))]);
    n++;
    await sleep(2);
  }
  const res = (await loop) as { seen: Record<string, number>; n: number; errors: number };
  valid.add('a');
  const bad = Object.keys(res.seen).filter((k) => !valid.has(k));
  t.same(bad, [], 'every read returned one whole version');
  t.equal(res.errors, 0, 'no read errors');
  t.ok(n > 50, `rotated ${n} times`);
  t.ok(res.n > 100, `read ${res.n} times`);
  t.ok(Object.keys(res.seen).length > 3, 'the reader saw several versions');
});

t.test('callers are recorded; old versions are freed and zeroed once forgotten; destroy zeroes at once', async (t) => {
  const { fs, vol, target } = await setup(t as Tap);
  await fs.publish(vol, [file('k', 'OLD-SECRET-BYTES', 0o444)]);
  await bindMount(vol.sourcePath, target);
  const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', `${target}/k`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await new Promise((r) => child.on('exit', r));
  t.equal(out, 'OLD-SECRET-BYTES');
  const callers = fs.recentCallers().filter((c) => c.pid === child.pid);
  t.ok(callers.length > 0, 'requests of the reader were recorded');
  t.ok(
    callers.every((c) => c.uid === 65534 && c.gid === 65534),
    'with its uid and gid',
  );
  t.ok(callers.some((c) => c.op === 'lookup'));

  const oldId = fs.table.child(fs.table.child(vol.tree.dirId, vol.tree.dataDir!)!.id, 'k')!.id;
  const oldBuf = fs.table.get(oldId)!.data!;
  await fs.publish(vol, [file('k', 'NEW-SECRET')]);
  // The old inode goes once the kernel forgets it: the sweep after the grace
  // period unlinks the old version directory and invalidates its entry, and
  // the kernel prunes the unused dentries below it and sends FORGET.
  await waitUntil(() => fs.table.get(oldId) === undefined, 10_000, 'the old version to be forgotten');
  t.ok(
    oldBuf.every((b) => b === 0),
    "the old version's bytes were zeroed",
  );
  t.equal((await execFileP('cat', [`${target}/k`])).stdout, 'NEW-SECRET');

  const curId = fs.table.child(fs.table.child(vol.tree.dirId, vol.tree.dataDir!)!.id, 'k')!.id;
  const curBuf = fs.table.get(curId)!.data!;
  await unmount(target);
  await fs.destroyVolume(vol);
  t.ok(
    curBuf.every((b) => b === 0),
    'destroying the volume zeroed the current bytes at once',
  );
  t.equal(fs.table.stats().fileBytes, 0, 'no file bytes held');
});

t.test('rotations back to back while old versions are being removed: each removal made once, nothing left behind', async (t) => {
  // Regression: a rotation during a removal pass started a second pass over
  // the same retired directory, whose steps then failed in the table and
  // crashed the process. No grace period here, so passes overlap rotations.
  const { fs, vol, target } = await setup(t as Tap, true);
  const version = (i: number) => [file('pw', `v${i}`), file('user', 'root'), file('conf/app.json', `{"n":${i % 3}}`)];
  await fs.publish(vol, version(0));
  await bindMount(vol.sourcePath, target);
  const baseline = fs.table.stats().inodes;
  for (let i = 1; i <= 300; i++) {
    await fs.publish(vol, version(i));
    if (i % 25 === 0) {
      const { stdout } = await execFileP('cat', [join(target, 'pw'), join(target, 'conf/app.json')]);
      t.equal(stdout, `v${i}{"n":${i % 3}}`, `version ${i} served`);
    }
  }
  await waitUntil(() => fs.table.stats().inodes <= baseline, 10_000, 'old versions removed and forgotten');
  t.ok(fs.table.stats().inodes <= baseline, `back to ${baseline} inodes or fewer`);
  const names = (await execFileP('ls', ['-a', target])).stdout.split('\n').filter((n) => n.startsWith('..2'));
  t.equal(names.length, 1, 'one version directory left');
});

t.test('a volume destroyed while its old versions are being removed: no crash, nothing left', async (t) => {
  const { fs, vol } = await setup(t as Tap, true);
  await fs.publish(vol, [file('a', 'x')]);
  for (let i = 0; i < 40; i++) {
    const v = fs.createVolume(`d${i}`);
    await fs.publish(v, [file('a', 'v0'), file('sub/b', 'v0')]);
    await fs.publish(v, [file('a', 'v1'), file('sub/b', 'v1')]);
    await sleep(i % 10); // the removal pass is due 5 ms after the switch
    await fs.destroyVolume(v);
  }
  await sleep(200);
  t.equal(fs.table.stats().fileBytes, 1, "only the other volume's byte is held");
});
