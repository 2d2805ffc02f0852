// Providers that write their files themselves (the AWS provider's default
// mode): during its Mount call, and only then, the provider process may
// create, chmod, write, fsync and rename files in the target path; the driver
// stages them in memory and publishes them as the new version when the call
// returns. Everyone else, and everyone at other times, gets EROFS. Here with
// the example provider's writeFiles mode (a real separate process writing
// through the real mount, the way the AWS provider does).

import t from 'tap';
import { readFile, readdir, stat, writeFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Harness, grepDisk, waitUntil, sleep, type Tap } from './helpers/harness.js';

const errCode = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'ok',
    (e: NodeJS.ErrnoException) => e.code ?? String(e),
  );

t.test('files the provider writes are served, with its modes, in the atomic-writer layout', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=400ms'] });
  await h.source('s.json', {
    files: [
      { path: 'db-password', contents: 'canary-written-1', mode: 0o640 },
      { path: 'api-key', contents: 'canary-key' },
    ],
  });
  await h.spc('app', 's.json', { writeFiles: 'true' });
  const target = h.target('writes');
  await h.publish(h.publishRequest(target, 'app'));

  t.equal(await readFile(join(target, 'db-password'), 'utf8'), 'canary-written-1');
  t.equal(await readFile(join(target, 'api-key'), 'utf8'), 'canary-key');
  t.equal((await stat(join(target, 'db-password'))).mode & 0o7777, 0o640, 'the mode the provider set with chmod');
  t.equal((await stat(join(target, 'api-key'))).mode & 0o7777, 0o644, 'the default permission');
  const names = (await readdir(target)).sort();
  t.same(
    names.filter((n) => !n.startsWith('..')),
    ['api-key', 'db-password'],
    'no temp file left',
  );
  t.equal(await readlink(join(target, 'db-password')), '..data/db-password', 'published as a version, not as the staged file');

  // Outside the provider's call the mount is read-only again, for everyone.
  t.equal(await errCode(writeFile(join(target, 'x'), 'y')), 'EROFS', 'no writes between calls');
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  const line = mounts.split('\n').find((l) => l.split(' ')[4] === target) ?? '';
  t.match(line.split(' ')[5] ?? '', /^ro,/, 'the bind mount is read-only again');

  // Rotation: the provider rewrites in place on every poll; new content shows, the layout stays.
  await h.source('s.json', {
    files: [
      { path: 'db-password', contents: 'canary-written-2', mode: 0o640 },
      { path: 'api-key', contents: 'canary-key' },
    ],
  });
  await waitUntil(async () => (await readFile(join(target, 'db-password'), 'utf8')) === 'canary-written-2', 10_000, 'the rotated value');
  t.pass('a rewritten value reaches readers within a poll');
  t.equal((await stat(join(target, 'db-password'))).mode & 0o7777, 0o640);
  await sleep(900); // two more polls: unchanged content stays, nothing leaks
  t.same((await readdir(target)).filter((n) => !n.startsWith('..')).sort(), ['api-key', 'db-password']);
  t.notMatch(h.driver.out, /canary-/, 'no secret bytes in the driver log');

  await h.unpublish(target);
});

t.test('setuid, setgid and sticky bits a writing provider sets are not served', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=1h'] });
  await h.source('s.json', {
    files: [
      { path: 'suid', contents: 'a', mode: 0o4755 },
      { path: 'sgid', contents: 'b', mode: 0o6777 },
      { path: 'all', contents: 'c', mode: 0o7777 },
    ],
  });
  await h.spc('app', 's.json', { writeFiles: 'true' });
  const target = h.target('writes-special-bits');
  await h.publish(h.publishRequest(target, 'app'));
  t.equal(await readFile(join(target, 'all'), 'utf8'), 'c', 'written by the provider');
  const modes = await Promise.all(['suid', 'sgid', 'all'].map(async (n) => (await stat(join(target, n))).mode & 0o7777));
  t.same(modes, [0o755, 0o777, 0o777], 'chmod 04755/06777/07777 served as 0755/0777/0777');
  await h.unpublish(target);
});

t.test('during the call, only the provider may write; everyone else gets EROFS', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=1h'] });
  await h.source('s.json', { files: [{ path: 'token', contents: 'canary-slow' }], delayMs: 1500 });
  await h.spc('app', 's.json', { writeFiles: 'true' });
  const target = h.target('intruder');
  const publishing = h.publish(h.publishRequest(target, 'app'));
  // The target is mounted (writable for the provider) while the provider sleeps before writing.
  await waitUntil(async () => (await readFile('/proc/self/mountinfo', 'utf8')).includes(` ${target} `), 5000, 'the target mounted');
  const line = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === target) ?? '';
  t.match(line.split(' ')[5] ?? '', /^rw,/, 'the bind is writable during the call: the refusal below comes from the filesystem');
  t.equal(await errCode(writeFile(join(target, 'intruder'), 'x')), 'EROFS', 'another process cannot create files in the window');
  await publishing;
  t.equal(await readFile(join(target, 'token'), 'utf8'), 'canary-slow');
  t.equal(await errCode(stat(join(target, 'intruder'))), 'ENOENT', 'nothing of the intruder is served');
  await h.unpublish(target);
});

t.test('mid-window, every other process sees the published version only: no staged name, no half-written file', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=1s'] });
  await h.source('s.json', { files: [{ path: 'token', contents: 'canary-window-v1' }] });
  await h.spc('app', 's.json', { writeFiles: 'true' });
  const target = h.target('midwindow');
  await h.publish(h.publishRequest(target, 'app'));
  t.equal(await readFile(join(target, 'token'), 'utf8'), 'canary-window-v1');
  // The next poll's provider writes a temp file and waits before renaming it over "token".
  await h.source('s.json', { files: [{ path: 'token', contents: 'canary-window-v2' }], pauseBeforeRenameMs: 3000 });
  const line = await h.provider!.waitForLine((l) => l.includes('paused before rename'), 15_000, 'the provider to pause mid-window');
  const tmp = (JSON.parse(line) as { tmp: string }).tmp;
  t.equal(await errCode(stat(join(target, tmp))), 'ENOENT', "the provider's staged temp name does not exist for another process");
  t.equal(await errCode(readFile(join(target, tmp))), 'ENOENT', 'nor can it be opened');
  t.notOk((await readdir(target)).includes(tmp), 'nor is it listed');
  t.equal(await readFile(join(target, 'token'), 'utf8'), 'canary-window-v1', 'the published version is what others read');
  await waitUntil(async () => (await readFile(join(target, 'token'), 'utf8')) === 'canary-window-v2', 15_000, 'the new version published');
  t.equal(await errCode(stat(join(target, tmp))), 'ENOENT', 'and after the window the temp name is gone');
  await h.unpublish(target);
});

t.test('a provider that returns its files gets no window after its first call', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=300ms', '--log-level=debug'] });
  await h.source('s.json', { files: [{ path: 'a', contents: 'returned-1' }] });
  await h.spc('app', 's.json');
  const target = h.target('returns');
  await h.publish(h.publishRequest(target, 'app'));
  t.equal(await readFile(join(target, 'a'), 'utf8'), 'returned-1');
  await h.source('s.json', { files: [{ path: 'b', contents: 'returned-2' }] });
  await waitUntil(async () => (await errCode(stat(join(target, 'a')))) === 'ENOENT', 10_000, 'a removed by the response');
  t.equal(await readFile(join(target, 'b'), 'utf8'), 'returned-2', 'the response is still the whole content');
  t.notMatch(h.driver.out, /wrote files into the volume/);
  await h.unpublish(target);
});

t.test(
  'a provider known to return its files that starts writing them gets EROFS, never the disk, and a window on its next call',
  async (t) => {
    const h = await Harness.start(t as Tap);
    await h.source('r.json', { files: [{ path: 'a', contents: 'returned' }] });
    await h.spc('returns', 'r.json');
    const first = h.target('first');
    await h.publish(h.publishRequest(first, 'returns'));
    // Same provider process, now in its writing mode (as an AWS provider restarted without --driver-writes-secrets would be).
    await h.source('w.json', { files: [{ path: 'pw', contents: 'canary-switched-mode' }] });
    await h.spc('writes', 'w.json', { writeFiles: 'true' });
    const target = h.target('switched');
    const failed = await h.publish(h.publishRequest(target, 'writes')).then(
      () => null,
      (e: Error) => e,
    );
    t.ok(failed, 'the first publish fails: the target was mounted read-only during the call');
    t.match(failed?.message ?? '', /read-only file system|EROFS/i, "with the provider's EROFS");
    t.same(await grepDisk(h.dir, 'canary-switched-mode'), [], "nothing written to the node's disk under the target");
    await h.publish(h.publishRequest(target, 'writes'));
    t.equal(await readFile(join(target, 'pw'), 'utf8'), 'canary-switched-mode', 'the retry gets a window and serves what it wrote');
    await h.unpublish(target);
    await h.unpublish(first);
  },
);
