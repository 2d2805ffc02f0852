// Reloaders that watch a secrets volume with inotify (for `..data` to be
// replaced, or for a watched file to be deleted) must hear of every rotation,
// as they do with kubelet's atomic writer on tmpfs. The driver makes a
// rotation's directory changes through the VFS for that; a separate watcher
// process (test/helpers/inotify-watch.py, inotify through ctypes) watches the
// target path, a private bind of it (a container's view, in a watcher of its
// own) and two files.

import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, rename, symlink, unlink, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Harness, Proc, ROOT, containerView, waitUntil, sleep, type Tap } from './helpers/harness.js';

interface WatchEvent {
  watch: string;
  name: string;
  events: string[];
}

class Watcher {
  private readonly proc: Proc;
  constructor(paths: string[]) {
    this.proc = new Proc(spawn('python3', [join(ROOT, 'test/helpers/inotify-watch.py'), ...paths], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }
  ready(): Promise<void> {
    return this.proc.waitFor(/"ready": true/);
  }
  events(watch?: string): WatchEvent[] {
    return this.proc.out
      .split('\n')
      .filter((l) => l.startsWith('{"watch"'))
      .map((l) => JSON.parse(l) as WatchEvent)
      .filter((e) => watch === undefined || e.watch === watch);
  }
  stop(): Promise<void> {
    return this.proc.stop('SIGKILL');
  }
}

const line = (e: WatchEvent): string => `${e.events.join('|')} ${e.name}`;
const isTs = (name: string): boolean => /^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+$/.test(name);

t.test("a rotation fires the atomic writer's inotify events, on the target and in a container's private view", async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=300ms'] });
  await h.source('s.json', {
    files: [
      { path: 'pw', contents: 'v1' },
      { path: 'user', contents: 'admin' },
      { path: 'conf/app.json', contents: '{"a":1}' },
    ],
  });
  await h.spc('app', 's.json');
  const target = h.target('watched');
  await h.publish(h.publishRequest(target, 'app'));
  const view = await containerView(target, join(h.dir, 'container-view'), 'private');

  // One watcher per path: the target and the view are one inode, and one inotify
  // instance would give both paths the same watch.
  const paths = [target, view, join(target, 'pw'), join(target, 'user')];
  const watchers = new Map(paths.map((p) => [p, new Watcher([p])]));
  t.teardown(() => Promise.all([...watchers.values()].map((x) => x.stop())));
  await Promise.all([...watchers.values()].map((x) => x.ready()));
  const w = { events: (p: string) => watchers.get(p)!.events(p) };
  const firstData = (await readdir(target)).find(isTs)!;

  // Rotation 1: pw changes, user stays the same, a new top-level name appears.
  await h.source('s.json', {
    files: [
      { path: 'pw', contents: 'v2' },
      { path: 'user', contents: 'admin' },
      { path: 'conf/app.json', contents: '{"a":1}' },
      { path: 'extra', contents: 'x' },
    ],
  });
  await waitUntil(() => w.events(view).some((e) => e.name === 'extra'), 10_000, 'the view to see the rotation');
  t.equal(await readFile(join(target, 'pw'), 'utf8'), 'v2');
  for (const watch of [target, view]) {
    const seq = w.events(watch).map(line);
    const tsCreate = seq.findIndex((l) => /^CREATE\|ISDIR \.\.\d{4}_/.test(l));
    t.ok(tsCreate >= 0, `${watch === view ? 'view' : 'target'}: the new version's directory created`);
    t.same(
      seq.slice(tsCreate + 1, tsCreate + 5),
      ['CREATE ..data_tmp', 'MOVED_FROM ..data_tmp', 'MOVED_TO ..data', 'CREATE extra'],
      'then ..data_tmp made and moved over ..data, then the new name linked, as the atomic writer does',
    );
  }

  // After the 2 s grace the old version goes, file by file: a changed file's watch sees it deleted; an unchanged one is not.
  await waitUntil(
    () => w.events(target).some((e) => e.name === firstData && e.events.includes('DELETE')),
    10_000,
    'the old version to be removed',
  );
  t.same(w.events(target).find((e) => e.name === firstData)?.events, ['DELETE', 'ISDIR'], 'the old version directory deleted');
  // (Each path has its own watcher process: this one may print a moment later.)
  await waitUntil(
    () => w.events(join(target, 'pw')).some((e) => e.events.includes('DELETE_SELF')),
    5000,
    'DELETE_SELF on the rotated file',
  );
  t.pass('a watch on the rotated file sees DELETE_SELF (reloaders re-add it and re-read)');
  t.notOk(
    w.events(join(target, 'user')).some((e) => e.events.includes('DELETE_SELF')),
    'the unchanged file is still the same file: no DELETE_SELF',
  );
  t.equal(await readFile(join(target, 'user'), 'utf8'), 'admin');

  // Rotation 2: a name goes away.
  await h.source('s.json', {
    files: [
      { path: 'pw', contents: 'v3' },
      { path: 'user', contents: 'admin' },
      { path: 'conf/app.json', contents: '{"a":1}' },
    ],
  });
  await waitUntil(() => w.events(view).some((e) => e.name === 'extra' && e.events.includes('DELETE')), 10_000, 'the removed name');
  t.equal(await readFile(join(view, 'pw'), 'utf8'), 'v3', 'the container view reads the new version');
  t.same(
    w
      .events(target)
      .filter((e) => e.name === 'extra')
      .map(line),
    ['CREATE extra', 'DELETE extra'],
  );

  // Rotation 3: the file that stayed the same twice changes now; once its last old version goes, its watch hears of it.
  await h.source('s.json', {
    files: [
      { path: 'pw', contents: 'v3' },
      { path: 'user', contents: 'root' },
      { path: 'conf/app.json', contents: '{"a":1}' },
    ],
  });
  await waitUntil(
    () => w.events(join(target, 'user')).some((e) => e.events.includes('DELETE_SELF')),
    15_000,
    'DELETE_SELF on the changed file',
  );
  t.equal(await readFile(join(target, 'user'), 'utf8'), 'root');
  await h.unpublish(target);
});

t.test("nobody but the driver makes directory changes, not even root on the driver's own mount", async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=200ms'] });
  await h.source('s.json', { files: [{ path: 'pw', contents: 'v1' }] });
  await h.spc('app', 's.json');
  const target = h.target('guarded');
  await h.publish(h.publishRequest(target, 'app'));
  const fuseRoot = join(h.dir, 'fuse');
  const [vol] = await readdir(fuseRoot);
  const dir = join(fuseRoot, vol!);
  const tsName = (await readdir(dir)).find(isTs)!;
  // Rotations keep going meanwhile, so the driver's own steps are in flight around these attempts.
  let n = 0;
  const rotate = setInterval(() => {
    void h.source('s.json', { files: [{ path: 'pw', contents: `v${++n}` }] });
  }, 100);
  t.teardown(() => clearInterval(rotate));
  const attempts: Array<[string, () => Promise<unknown>]> = [
    ['mkdir', () => mkdir(join(dir, '..2030_01_01_00_00_00.1'))],
    ['symlink ..data_tmp', () => symlink(tsName, join(dir, '..data_tmp'))],
    ['rename over ..data', () => rename(join(dir, 'pw'), join(dir, '..data'))],
    ['unlink a name', () => unlink(join(dir, 'pw'))],
    ['rmdir a version', () => rmdir(join(dir, tsName))],
    ['symlink on the target', () => symlink('x', join(target, 'evil'))],
  ];
  // Besides our EROFS, the kernel itself may refuse first: ENOENT once the old version is gone, EEXIST while the
  // driver's own ..data_tmp exists for an instant mid-switch. Neither changes anything; each op must still reach
  // the server and be refused by it at least once.
  const kernelFirst: Record<string, string> = { 'rmdir a version': 'ENOENT', 'symlink ..data_tmp': 'EEXIST' };
  const refusedByUs = new Map<string, number>();
  for (let round = 0; round < 20; round++) {
    for (const [what, op] of attempts) {
      const code = await op().then(
        () => 'succeeded',
        (e: NodeJS.ErrnoException) => e.code,
      );
      if (code === 'EROFS') refusedByUs.set(what, (refusedByUs.get(what) ?? 0) + 1);
      else if (code !== kernelFirst[what]) t.fail(`${what}: ${code}`);
    }
    await sleep(20);
  }
  for (const [what] of attempts) t.ok((refusedByUs.get(what) ?? 0) > 0, `${what}: refused with EROFS by the server`);
  t.pass('every attempt refused');
  t.match(await readFile(join(target, 'pw'), 'utf8'), /^v\d+$/, 'the volume is intact');
  t.ok((await readdir(target)).includes('..data'));
  clearInterval(rotate);
  await h.unpublish(target);
});

t.test('--inotify-events=false: rotations still reach the files, silently for inotify', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=300ms', '--inotify-events=false'] });
  await h.source('s.json', { files: [{ path: 'pw', contents: 'v1' }] });
  await h.spc('app', 's.json');
  const target = h.target('silent');
  await h.publish(h.publishRequest(target, 'app'));
  const w = new Watcher([target]);
  t.teardown(() => w.stop());
  await w.ready();
  await h.source('s.json', { files: [{ path: 'pw', contents: 'v2' }] });
  await waitUntil(async () => (await readFile(join(target, 'pw'), 'utf8')) === 'v2', 10_000, 'the rotated value');
  await sleep(2500); // past the old version's removal too
  t.same(w.events(), [], 'no inotify event: the switch happened inside the driver');
  await h.unpublish(target);
});
