// Whoever may connect to the CSI socket may publish and unpublish as root, and
// whoever reaches the keeper's socket may take the FUSE connection: neither
// may follow the umask, not even for a moment. The driver and the keeper run
// under `umask 000` while this test polls their sockets with lstat in a tight
// loop and watches the directory with inotify: every observation must be
// strict, and each socket must appear at its path by a rename (already with
// its mode), never be created there by bind.

import t from 'tap';
import { spawn } from 'node:child_process';
import { lstatSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server as NetServer } from 'node:net';
import { join } from 'node:path';
import { NODE, Proc, ROOT, tempDir, type Tap } from './helpers/harness.js';
import { bindSocketFile } from '../src/util/socket-file.js';

interface WatchEvent {
  name: string;
  events: string[];
}

/** Runs `argv` under umask 000. */
const underUmask000 = (argv: string[]): Proc =>
  new Proc(spawn('sh', ['-c', 'umask 000; exec "$@"', 'sh', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }));

/**
 * Every mode lstat sees at `path` until `done()` holds (and 50 ms more),
 * polling in bursts so the children's output is still read in between.
 */
async function observeModes(path: string, done: () => boolean): Promise<number[]> {
  const seen: number[] = [];
  let doneAt = 0;
  while (doneAt === 0 || Date.now() - doneAt < 50) {
    for (let i = 0; i < 500; i++) {
      try {
        seen.push(lstatSync(path).mode);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    if (doneAt === 0 && done()) doneAt = Date.now();
    await new Promise((r) => setImmediate(r));
  }
  return seen;
}

function watchDir(dir: string): { ready: Promise<void>; events: (name: string) => string[][]; stop: () => Promise<void> } {
  const proc = new Proc(spawn('python3', [join(ROOT, 'test/helpers/inotify-watch.py'), dir], { stdio: ['ignore', 'pipe', 'pipe'] }));
  return {
    ready: proc.waitFor(/"ready": true/),
    events: (name) =>
      proc.out
        .split('\n')
        .filter((l) => l.startsWith('{"watch"'))
        .map((l) => JSON.parse(l) as WatchEvent)
        .filter((e) => e.name === name)
        .map((e) => e.events),
    stop: () => proc.stop('SIGKILL'),
  };
}

t.test('under umask 000 the keeper and CSI sockets are never reachable by others, from the moment they exist', async (t) => {
  const dir = await tempDir(t as Tap, 'sscsi-sock-');
  await mkdir(join(dir, 'providers'));
  await mkdir(join(dir, 'spc'));
  const keeperSock = join(dir, 'keeper.sock');
  const csiSock = join(dir, 'csi.sock');
  // Stale sockets of a previous run are replaced.
  await writeFile(csiSock, 'stale');
  await writeFile(keeperSock, 'stale');
  const watch = watchDir(dir);
  t.teardown(watch.stop);
  await watch.ready;

  const keeper = underUmask000([NODE, join(ROOT, 'dist/src/bin/keeper.js'), '--socket', keeperSock]);
  t.teardown(() => keeper.stop());
  const keeperModes = await observeModes(keeperSock, () => /keeper listening/.test(keeper.out) || keeper.child.exitCode !== null);
  await keeper.waitFor(/keeper listening/);

  const driver = underUmask000([
    NODE,
    join(ROOT, 'dist/src/bin/driver.js'),
    `--endpoint=unix://${csiSock}`,
    '--nodeid=test-node',
    `--provider-volume=${join(dir, 'providers')}`,
    '--additional-provider-volume-paths=',
    `--fuse-mount-dir=${join(dir, 'fuse')}`,
    `--secret-provider-class-dir=${join(dir, 'spc')}`,
    '--metrics-addr=',
    `--keeper-socket=${keeperSock}`,
    `--kubelet-root-dir=${dir}`,
  ]);
  t.teardown(() => driver.stop());
  const csiModes = await observeModes(csiSock, () => /"msg":"listening"/.test(driver.out) || driver.child.exitCode !== null);
  await driver.waitFor(/"msg":"listening"/, 30_000);

  for (const [name, modes, want] of [
    ['keeper', keeperModes, 0o600],
    ['CSI', csiModes, 0o660],
  ] as const) {
    const sockets = modes.filter((m) => (m & 0o170000) === 0o140000);
    t.ok(sockets.length > 0, `the ${name} socket was observed (${sockets.length} times)`);
    const loose = [...new Set(sockets.filter((m) => (m & 0o007) !== 0).map((m) => (m & 0o7777).toString(8)))];
    t.same(loose, [], `no observation of the ${name} socket is open to others`);
    t.equal(lstatSync(name === 'CSI' ? csiSock : keeperSock).mode & 0o7777, want, `the ${name} socket is ${want.toString(8)}`);
  }
  for (const name of ['keeper.sock', 'csi.sock']) {
    const events = watch.events(name);
    t.notOk(
      events.some((e) => e.includes('CREATE')),
      `${name} was not created at its path by bind: ${JSON.stringify(events)}`,
    );
    t.ok(
      events.some((e) => e.includes('MOVED_TO')),
      `${name} was moved into place`,
    );
  }
  t.same(
    readdirSync(dir).filter((n) => n.startsWith('.sock-')),
    [],
    'no private directory left behind',
  );

  // The driver removes its own socket when it stops (as upstream); a socket someone else put there would stay.
  await driver.stop('SIGTERM');
  t.notOk(readdirSync(dir).includes('csi.sock'), 'the CSI socket is removed when the driver stops');
});

t.test('a socket that cannot be moved into place is closed again, and its private directory removed', async (t) => {
  const dir = await tempDir(t as Tap, 'sscsi-sock-');
  const path = join(dir, 'busy');
  await mkdir(join(path, 'not-empty'), { recursive: true });
  let closed = false;
  const listen = (at: string): Promise<NetServer> =>
    new Promise((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(at, () => resolve(s));
    });
  await t.rejects(
    bindSocketFile(path, 0o600, listen, (s) => {
      closed = true;
      s.close();
    }),
    { code: /^(EISDIR|ENOTEMPTY|EEXIST)$/ },
  );
  t.ok(closed, 'the bound socket was closed');
  t.same(readdirSync(dir).sort(), ['busy'], 'nothing else left in the directory');
});
