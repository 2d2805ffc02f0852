// Restart survival: with a keeper holding the FUSE connection, a driver
// killed with SIGKILL and started again never breaks a running pod. Four
// reader processes read continuously through the mount and through a private
// bind mount made before the first crash (a container's view) while secrets
// rotate; the driver is killed 20 times at random moments. Every read must
// succeed and return one complete version; the longest stall is reported.
// Also: an upgrade handover between two live drivers.

import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Harness, NODE, ROOT, containerView, execFileP, mountsUnder, sleep, track, waitUntil, type Tap } from './helpers/harness.js';

const SIZES = [1024, 65536];
const content = (v: number, size: number): string => {
  const head = `V${v}|`;
  return head + 'x'.repeat(size - head.length);
};

interface ReaderResult {
  reads: number;
  errors: Record<string, number>;
  invalid: number;
  invalidSample: string;
  slow: Array<[number, number]>;
  versions: Record<string, number>;
}

function startReader(paths: string[]): { child: ChildProcess; done: Promise<ReaderResult> } {
  const child = track(
    spawn(NODE, [join(ROOT, 'test/fixtures/chaos-reader.mjs'), JSON.stringify({ a: SIZES[0], b: SIZES[1] }), ...paths], {
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const done = new Promise<ReaderResult>((resolve, reject) =>
    child.on('exit', () => {
      try {
        resolve(JSON.parse(out) as ReaderResult);
      } catch {
        reject(new Error(`reader printed ${out}`));
      }
    }),
  );
  return { child, done };
}

/**
 * Stops the readers and collects their results. A reader that does not stop
 * within 20 s is stuck in a request nobody answers: fail with what the kernel
 * shows (its stack, the connections' waiting counts) instead of hanging.
 */
async function finishReaders(readers: Array<{ child: ChildProcess; done: Promise<ReaderResult> }>): Promise<ReaderResult[]> {
  for (const r of readers) r.child.stdin!.end();
  const all = Promise.all(readers.map((r) => r.done));
  const stuck = await Promise.race([all.then(() => false), sleep(20_000).then(() => true)]);
  if (!stuck) return all;
  const report: string[] = [];
  for (const r of readers) {
    if (r.child.exitCode !== null) continue;
    // Every thread: the one blocked on the mount need not be the main one.
    const stacks = await execFileP('sh', [
      '-c',
      'for t in /proc/$1/task/*; do echo "$t $(cat $t/comm) $(cat $t/wchan)"; cat $t/stack; done',
      'sh',
      String(r.child.pid),
    ]).then(
      (o) => o.stdout,
      (e: Error) => e.message,
    );
    report.push(`reader ${r.child.pid}:\n${stacks}`);
  }
  // Requests each connection has in flight (fusectl, mounted for the moment if the machine has not).
  const conns = await execFileP('sh', [
    '-c',
    'm=; ls /sys/fs/fuse/connections/*/waiting >/dev/null 2>&1 || { mount -t fusectl none /sys/fs/fuse/connections && m=1; }; ' +
      'grep -H . /sys/fs/fuse/connections/*/waiting; [ -z "$m" ] || umount /sys/fs/fuse/connections',
  ]).then(
    (o) => o.stdout,
    (e: Error) => e.message,
  );
  for (const r of readers) r.child.kill('SIGKILL');
  throw new Error(`readers did not stop: a request was never answered\n${report.join('\n')}\nwaiting: ${conns}`);
}

async function setup(t: Tap, poll: string) {
  const h = await Harness.start(t, { keeper: true, driverArgs: [`--rotation-poll-interval=${poll}`] });
  let version = 1;
  const writeVersion = () =>
    h.source('s.json', {
      files: [
        { path: 'a', contents: content(version, SIZES[0]!) },
        { path: 'b', contents: content(version, SIZES[1]!) },
      ],
    });
  await writeVersion();
  await h.spc('app', 's.json');
  const target = h.target('survive');
  await h.publish(h.publishRequest(target, 'app'));
  // A container's view: a private bind mount of the volume, made before any crash.
  const view = await containerView(target, join(h.dir, 'container-view'), 'private');
  const rotate = setInterval(() => {
    version++;
    void writeVersion();
  }, 700);
  t.teardown(() => clearInterval(rotate));
  return { h, target, view, rotate, versions: () => version };
}

t.test('20 SIGKILLs of the driver: 0 read errors, every read one whole version', async (t) => {
  const { h, target, view, rotate, versions } = await setup(t as Tap, '300ms');
  const readers = [
    startReader([join(target, 'a'), join(target, 'b')]),
    startReader([join(target, 'b'), join(target, 'a')]),
    startReader([join(view, 'a'), join(view, 'b')]),
    startReader([join(view, 'b'), join(view, 'a')]),
  ];
  t.teardown(() => {
    for (const r of readers) r.child.kill();
  });

  const restarts: Array<{ killedAt: number; servingAt: number; tookOverMs: number }> = [];
  for (let i = 0; i < 20; i++) {
    await sleep(200 + Math.floor(Math.random() * 500));
    const killedAt = Date.now();
    await h.driver.stop('SIGKILL');
    await h.startDriver();
    const took = /"ms":(\d+),"msg":"took over the FUSE connection/.exec(h.driver.out);
    t.ok(took, `restart ${i + 1}: the new driver took the connection over`);
    restarts.push({ killedAt, servingAt: Date.now(), tookOverMs: Number(took?.[1] ?? -1) });
  }
  await sleep(1500); // a last rotation seen by everyone
  clearInterval(rotate);
  const results = await finishReaders(readers);

  const reads = results.reduce((n, r) => n + r.reads, 0);
  const errors = results.map((r) => r.errors);
  t.same(errors, [{}, {}, {}, {}], 'no read failed, through the mount or the private view');
  t.same(
    results.map((r) => r.invalid),
    [0, 0, 0, 0],
    `every read returned one whole version ${results.map((r) => r.invalidSample).join(' ')}`,
  );
  const seen = new Set(results.flatMap((r) => Object.keys(r.versions)));
  t.ok(seen.size >= 5, `readers saw ${seen.size} versions across the crashes (of ${versions()} written)`);
  t.ok(
    results.every((r) => Object.keys(r.versions).length >= 3),
    'the private view kept up with rotations too',
  );

  // Stall per restart: the longest read that overlapped the time from the kill to the new driver serving.
  const slow = results.flatMap((r) => r.slow);
  const stalls = restarts.map((rs) =>
    Math.max(0, ...slow.filter(([start, ms]) => start + ms >= rs.killedAt && start <= rs.servingAt + 50).map(([, ms]) => ms)),
  );
  const gaps = restarts.map((rs) => rs.servingAt - rs.killedAt);
  t.comment(`reads: ${reads}; restart-to-serving ms (kill, new process start, takeover): median ${median(gaps)}, max ${Math.max(...gaps)}`);
  t.comment(`longest read stall per restart ms: ${stalls.join(' ')}; max ${Math.max(...stalls)}`);
  t.comment(`takeover inside the new driver ms: ${restarts.map((r) => r.tookOverMs).join(' ')}`);
  t.ok(reads > 1000, `${reads} reads`);

  // Still a working driver: rotation and unpublish.
  const last = content(versions(), SIZES[0]!);
  await waitUntil(async () => (await readFile(join(target, 'a'), 'latin1')) === last, 5000, `the last version (V${versions()}) served`);
  t.pass(`after the crashes the last version written (V${versions()}) is served`);
  await execFileP('umount', ['-l', view]); // the container is gone before kubelet unpublishes
  await h.unpublish(target);
  t.same(await mountsUnder(target), [], 'unpublish succeeded and unmounted the target');
});

t.test('a driver restarted more often than the poll interval still polls on schedule', async (t) => {
  // The cadence goes on from the previous driver's last poll: restarting every
  // second with a 3 s interval must not postpone every poll by another 3 s.
  const h = await Harness.start(t as Tap, { keeper: true, driverArgs: ['--rotation-poll-interval=3s'] });
  await h.source('s.json', { files: [{ path: 'a', contents: 'before' }] });
  await h.spc('app', 's.json');
  const target = h.target('cadence');
  await h.publish(h.publishRequest(target, 'app'));
  await h.source('s.json', { files: [{ path: 'a', contents: 'after' }] });
  const changed = Date.now();
  let seenAfter = -1;
  for (let i = 0; i < 8 && seenAfter < 0; i++) {
    await sleep(1000);
    if ((await readFile(join(target, 'a'), 'utf8')) === 'after') {
      seenAfter = Date.now() - changed;
      break;
    }
    await h.driver.stop('SIGKILL');
    await h.startDriver();
  }
  t.ok(seenAfter >= 0, `the change was served despite a restart every second (after ${seenAfter} ms, interval 3 s)`);
  await h.unpublish(target);
});

t.test('upgrade: a new driver takes over from a running one while readers read', async (t) => {
  const { h, target, view, rotate } = await setup(t as Tap, '300ms');
  const readers = [startReader([join(target, 'a'), join(target, 'b')]), startReader([join(view, 'b'), join(view, 'a')])];
  t.teardown(() => {
    for (const r of readers) r.child.kill();
  });
  await sleep(800);
  const old = h.driver;
  const started = Date.now();
  await h.startDriver(); // the keeper tells the old one to yield; it exits without unmounting
  const code = await Promise.race([old.exited, sleep(10_000).then(() => 'timeout' as const)]);
  t.equal(code, 0, 'the old driver exited cleanly after handing over');
  t.match(old.out, /handing over to a new driver/, 'the old driver says it hands over', { output: old.out.slice(-3000) });
  t.match(h.driver.out, /took over the FUSE connection/);
  t.match(
    h.driver.out,
    /"records":true[^\n]*took over the FUSE connection/,
    'from the records the old driver sent (keeper-records.test.ts)',
  );
  const handoverMs = Date.now() - started;
  await sleep(1500);
  clearInterval(rotate);
  const results = await finishReaders(readers);
  t.same(
    results.map((r) => r.errors),
    [{}, {}],
    'no read failed',
  );
  t.same(
    results.map((r) => r.invalid),
    [0, 0],
    'every read one whole version',
  );
  const slow = results.flatMap((r) => r.slow).filter(([s, ms]) => s + ms >= started && s <= started + handoverMs);
  t.comment(
    `handover (new process start to serving): ${handoverMs} ms; longest read stall during it: ${Math.max(0, ...slow.map(([, ms]) => ms))} ms`,
  );
  await waitUntil(async () => (await readFile(join(target, 'a'), 'latin1')).startsWith('V'), 5000, 'reads after the handover');
  await h.unpublish(target);
  await execFileP('umount', ['-l', view]).catch(() => undefined);
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}
