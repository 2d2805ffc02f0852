// What a provider may write into its write window is bounded like a
// response: --max-call-recv-msg-size bytes in all, at most 10,000 files. Past
// a limit its write, truncate or create fails (EFBIG for one file, ENOSPC for
// the total or the count), the call fails with ResourceExhausted naming the
// limit, the driver's memory stays small, and nothing of the window is ever
// served. The example provider in writeFiles mode is the real separate
// process writing through the real mount (as in provider-writes.test.ts).

import t from 'tap';
import { status } from '@grpc/grpc-js';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Harness, grepDisk, grpcCode, waitUntil, type Tap } from './helpers/harness.js';

const GIB = 2 ** 30;
const MIB = 2 ** 20;

const errCode = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'ok',
    (e: NodeJS.ErrnoException) => e.code ?? String(e),
  );

async function publishError(h: Harness, target: string, spc: string): Promise<Error & { code?: number }> {
  const e = await h.publish(h.publishRequest(target, spc), 120_000).then(
    () => null,
    (x: Error) => x,
  );
  if (!e) throw new Error('the publish succeeded');
  return e;
}

/** A process's memory in bytes, from /proc/PID/status (VmRSS, VmLck, VmHWM). */
async function memoryOf(pid: number): Promise<Record<string, number>> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const out: Record<string, number> = {};
  for (const key of ['VmRSS', 'VmLck', 'VmHWM']) {
    const m = new RegExp(`^${key}:\\s*(\\d+) kB$`, 'm').exec(text);
    out[key] = m ? Number(m[1]) * 1024 : NaN;
  }
  return out;
}

async function mounted(target: string): Promise<boolean> {
  return (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((l) => l.split(' ')[4] === target);
}

t.test(
  'a provider that ftruncates a file to 1 GiB gets EFBIG; the publish fails with ResourceExhausted and the driver stays small',
  async (t) => {
    const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=1h'] });
    await h.source('s.json', {
      files: [
        { path: 'small', contents: 'canary-limit-small' },
        { path: 'huge1', contents: 'x', truncateTo: GIB },
        { path: 'huge2', contents: 'y', truncateTo: GIB },
      ],
    });
    await h.spc('app', 's.json', { writeFiles: 'true' });
    const target = h.target('huge');
    const e = await publishError(h, target, 'app');
    t.equal(grpcCode(e), status.RESOURCE_EXHAUSTED, 'ResourceExhausted');
    t.match(
      e.message,
      /a file of 1073741824 bytes, over the limit of 4194304 bytes \(refused with EFBIG\)/,
      'names the size and the limit',
    );
    t.match(e.message, /--max-call-recv-msg-size/, 'and the flag that sets it');
    t.match(e.message, /EFBIG|file too large/i, "the provider's ftruncate got EFBIG");
    t.notMatch(h.driver.out, /RangeError/, 'no RangeError anywhere');
    t.match(h.driver.out, /ERR_WINDOW_TOO_LARGE/, 'the typed error is logged');
    const mem = await memoryOf(h.driver.pid);
    t.ok(mem.VmRSS! < 300 * MIB, `driver RSS ${Math.round(mem.VmRSS! / MIB)} MiB`);
    t.ok(mem.VmHWM! < 300 * MIB, `driver peak RSS ${Math.round(mem.VmHWM! / MIB)} MiB`);
    t.ok(mem.VmLck! < 300 * MIB, `driver locked memory ${Math.round(mem.VmLck! / MIB)} MiB`);
    t.notOk(await mounted(target), 'nothing is mounted at the target');
    t.same(await grepDisk(h.dir, 'canary-limit-small'), [], "nothing of the window reached the node's disk");

    // The limit is per window: the same provider, within limits, publishes normally afterwards.
    await h.source('s.json', { files: [{ path: 'small', contents: 'canary-limit-ok' }] });
    await h.publish(h.publishRequest(target, 'app'));
    t.equal(await readFile(join(target, 'small'), 'utf8'), 'canary-limit-ok');
    await h.unpublish(target);
  },
);

t.test('more files than a window may hold: ENOSPC, ResourceExhausted', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=1h'] });
  const files = Array.from({ length: 10_001 }, (_, i) => ({ path: `f${i}`, contents: 'c' }));
  await h.source('s.json', { files });
  await h.spc('app', 's.json', { writeFiles: 'true' });
  const target = h.target('many');
  const e = await publishError(h, target, 'app');
  t.equal(grpcCode(e), status.RESOURCE_EXHAUSTED);
  t.match(e.message, /more than 10000 files \(file 10001 refused with ENOSPC\)/);
  t.match(e.message, /ENOSPC|no space left/i, "the provider's create got ENOSPC");
  t.notOk(await mounted(target), 'nothing is mounted at the target');
});

t.test('more bytes in all than --max-call-recv-msg-size: ENOSPC, ResourceExhausted naming the flag value', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=1h', '--max-call-recv-msg-size=65536'] });
  const kib40 = 'a'.repeat(40 * 1024);
  await h.source('s.json', {
    files: [
      { path: 'a', contents: kib40 },
      { path: 'b', contents: kib40 },
    ],
  });
  await h.spc('app', 's.json', { writeFiles: 'true' });
  const target = h.target('bytes');
  const e = await publishError(h, target, 'app');
  t.equal(grpcCode(e), status.RESOURCE_EXHAUSTED);
  t.match(e.message, /81920 bytes in all, over the limit of 65536 bytes \(refused with ENOSPC\)/);
  t.match(e.message, /--max-call-recv-msg-size/);
  t.notOk(await mounted(target));
});

t.test('a poll whose provider goes over the limit keeps the last good content; nothing of the failed window is visible', async (t) => {
  // 20 s polls: a failed poll is retried 10 s later (the retry base is min(10 s, interval)), and the retry's
  // provider waits 1.5 s more before it writes, so no newer window's big1 can be there when the checks run,
  // even on a loaded machine (a window's staged names are visible while it is open).
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=20s'] });
  await h.source('s.json', { files: [{ path: 'token', contents: 'canary-good-1' }] });
  await h.spc('app', 's.json', { writeFiles: 'true' });
  const target = h.target('poll-over');
  await h.publish(h.publishRequest(target, 'app'));
  t.equal(await readFile(join(target, 'token'), 'utf8'), 'canary-good-1');

  // big1 lands under its final name in the window, then big2 goes over the limit.
  await h.source('s.json', {
    delayMs: 1500,
    files: [
      { path: 'token', contents: 'canary-bad-token' },
      { path: 'big1', contents: 'canary-failed-window' },
      { path: 'big2', contents: 'z', truncateTo: GIB },
    ],
  });
  const failures = (): number =>
    h.driver.out.split('\n').filter((l) => l.includes('rotation poll failed') && l.includes('ERR_WINDOW_TOO_LARGE')).length;
  await waitUntil(() => failures() > 0, 60_000, 'the failed poll');
  // The failure is reported only once the window's names are gone from the kernel's caches: check at once.
  t.equal(await errCode(stat(join(target, 'big1'))), 'ENOENT', 'big1 of the failed window is not visible');
  t.equal(await readFile(join(target, 'token'), 'utf8'), 'canary-good-1', 'the last good content stays served');
  t.same(
    (await readdir(target)).filter((n) => !n.startsWith('..')),
    ['token'],
    'nothing else in the directory',
  );
  const line = h.driver.out.split('\n').find((l) => l.includes('ERR_WINDOW_TOO_LARGE')) ?? '';
  t.match(line, /--max-call-recv-msg-size/, 'the log names the limit');
  t.notMatch(h.driver.out, /RangeError/);
  t.notMatch(h.driver.out, /canary-/, 'no secret bytes in the driver log');

  // A later poll within the limits rotates as usual.
  await h.source('s.json', { files: [{ path: 'token', contents: 'canary-good-2' }] });
  await waitUntil(async () => (await readFile(join(target, 'token'), 'utf8')) === 'canary-good-2', 60_000, 'the next good version');
  t.equal(await errCode(stat(join(target, 'big1'))), 'ENOENT');
  await h.unpublish(target);
});
