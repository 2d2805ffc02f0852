// The built-in kubelet plugin registrar (--kubelet-registration-path): the
// real driver binary, and this test in kubelet's place, calling the
// pluginregistration API over the unix socket with grpc-js as kubelet's
// plugin watcher does: GetInfo, then NotifyRegistrationStatus; again after
// a "kubelet restart"; and after the socket file or its whole directory was
// removed, which the driver notices through inotify and binds anew.

import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { mkdir, rename, rm, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { RegistrationClient, type PluginInfo } from '../src/gen/pluginregistration/v1/api.js';
import { parseFlags } from '../src/cli/flags.js';
import { csiPluginInfo, entryState, registrationSocketPath } from '../src/registrar/plugin-info.js';
import { unary } from '../testkit/csi.js';
import { Harness, NODE, Proc, ROOT, freePort, sleep, tempDir, waitUntil, type Tap } from './helpers/harness.js';

const DRIVER = 'secrets-store.csi.k8s.io';
const KUBELET_ENDPOINT = '/var/lib/kubelet/plugins/csi-secrets-store/csi.sock';

t.test('pure parts: socket name, PluginInfo, entry states, flags', async (t) => {
  t.equal(registrationSocketPath('/var/lib/kubelet/plugins_registry', DRIVER), `/var/lib/kubelet/plugins_registry/${DRIVER}-reg.sock`);
  t.same(csiPluginInfo(DRIVER, KUBELET_ENDPOINT), {
    type: 'CSIPlugin',
    name: DRIVER,
    endpoint: KUBELET_ENDPOINT,
    supportedVersions: ['1.0.0'],
  });
  const sock = { dev: 1, ino: 2, isSocket: () => true };
  t.equal(entryState({ dev: 1, ino: 2 }, sock), 'ours');
  t.equal(entryState({ dev: 1, ino: 2 }, null), 'gone');
  t.equal(entryState(null, null), 'gone');
  t.equal(entryState({ dev: 1, ino: 3 }, sock), 'foreign', 'another socket (a successor) is not ours');
  t.equal(entryState(null, sock), 'foreign');
  t.equal(entryState({ dev: 1, ino: 2 }, { ...sock, isSocket: () => false }), 'foreign', 'same inode number but not a socket: reused');

  const off = parseFlags([]);
  t.equal(off.kubeletRegistrationPath, '', 'off by default');
  t.equal(off.pluginRegistrationPath, '/var/lib/kubelet/plugins_registry');
  const on = parseFlags(['--kubelet-registration-path', KUBELET_ENDPOINT, '-plugin-registration-path=/r']);
  t.equal(on.kubeletRegistrationPath, KUBELET_ENDPOINT);
  t.equal(on.pluginRegistrationPath, '/r');
  t.throws(
    () => parseFlags([`--kubelet-registration-path=${KUBELET_ENDPOINT}`, '--plugin-registration-path=']),
    /plugin-registration-path/,
  );
});

interface Running {
  driver: Proc;
  regDir: string;
  sock: string;
  metrics: () => Promise<string>;
}

async function startDriver(t: Tap, dir: string): Promise<Running> {
  for (const d of ['providers', 'spc']) await mkdir(join(dir, d));
  const regDir = join(dir, 'plugins_registry');
  const port = await freePort();
  const driver = new Proc(
    spawn(
      NODE,
      [
        join(ROOT, 'dist/src/bin/driver.js'),
        `--endpoint=unix://${join(dir, 'csi.sock')}`,
        '--nodeid=test-node',
        `--provider-volume=${join(dir, 'providers')}`,
        '--additional-provider-volume-paths=',
        `--fuse-mount-dir=${join(dir, 'fuse')}`,
        `--secret-provider-class-dir=${join(dir, 'spc')}`,
        `--metrics-addr=127.0.0.1:${port}`,
        `--kubelet-root-dir=${dir}`,
        `--kubelet-registration-path=${KUBELET_ENDPOINT}`,
        `--plugin-registration-path=${regDir}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  t.teardown(() => driver.stop('SIGKILL'));
  await driver.waitFor(/serving kubelet plugin registration/, 30_000);
  return {
    driver,
    regDir,
    sock: registrationSocketPath(regDir, DRIVER),
    metrics: async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text(),
  };
}

/** One kubelet plugin-watcher connection: a fresh client, closed in teardown. */
function kubelet(t: Tap, sock: string): RegistrationClient {
  const c = new RegistrationClient(`unix:${sock}`, credentials.createInsecure());
  t.teardown(() => c.close());
  return c;
}

const getInfo = (c: RegistrationClient): Promise<PluginInfo> => unary(c.getInfo.bind(c), {}, 5000);
const notify = (c: RegistrationClient, pluginRegistered: boolean, error = ''): Promise<unknown> =>
  unary(c.notifyRegistrationStatus.bind(c), { pluginRegistered, error }, 5000);

const isOurSocket = (path: string): boolean => {
  try {
    const st = lstatSync(path);
    return st.isSocket() && (st.mode & 0o7777) === 0o600;
  } catch {
    return false;
  }
};

t.test('registers with kubelet, survives kubelet restarts and a cleaned directory, and leaves what is not its own', async (t) => {
  const dir = await tempDir(t as Tap, 'sscsi-reg-');
  const { driver, regDir, sock, metrics } = await startDriver(t as Tap, dir);

  t.ok(isOurSocket(sock), `${sock} is a socket with mode 0600`);
  t.match(await metrics(), /^secrets_store_kubelet_plugin_registered 0$/m, 'not registered until kubelet says so');

  const first = kubelet(t as Tap, sock);
  t.same(await getInfo(first), { type: 'CSIPlugin', name: DRIVER, endpoint: KUBELET_ENDPOINT, supportedVersions: ['1.0.0'] }, 'GetInfo');
  await notify(first, true);
  await driver.waitFor(/kubelet registered the driver/);
  t.match(await metrics(), /^secrets_store_kubelet_plugin_registered 1$/m, 'the registered gauge is 1');

  // A rejection: logged as an error with kubelet's reason, counted, and the driver keeps serving.
  await notify(first, false, 'plugin "x" already registered with a newer version');
  await driver.waitFor(/kubelet could not register the driver/);
  const line = driver.out.split('\n').find((l) => l.includes('kubelet could not register the driver'))!;
  const logged = JSON.parse(line) as { level: number; err: string };
  t.equal(logged.level, 50, 'logged at error level');
  t.equal(logged.err, 'plugin "x" already registered with a newer version', "with kubelet's message");
  const m = await metrics();
  t.match(m, /^secrets_store_kubelet_plugin_registered 0$/m, 'the registered gauge is 0 again');
  t.match(m, /^secrets_store_kubelet_plugin_registration_failures_total 1$/m, 'the rejection is counted');
  t.ok(driver.running, 'the driver still runs');

  // Kubelet restarts: it dials the same socket and asks again, any number of times.
  for (let i = 0; i < 3; i++) {
    const again = kubelet(t as Tap, sock);
    t.equal((await getInfo(again)).name, DRIVER, `GetInfo after kubelet restart ${i + 1}`);
    await notify(again, true);
  }
  t.match(await metrics(), /^secrets_store_kubelet_plugin_registered 1$/m);

  // The socket file is removed: it comes back (inotify) and answers.
  await rm(sock);
  await waitUntil(() => isOurSocket(sock), 5000, 'the registration socket to come back');
  t.equal((await getInfo(kubelet(t as Tap, sock))).endpoint, KUBELET_ENDPOINT, 'the new socket answers');
  await driver.waitFor(/registration socket was removed; binding it again/);

  // The whole directory is removed and made again (kubelet recreates it at start): watched again, socket back.
  // Retried: the driver may be binding in it at that moment, as it may when kubelet's cleanup runs.
  await rm(regDir, { recursive: true, maxRetries: 20, retryDelay: 50 });
  await sleep(200);
  await mkdir(regDir);
  await waitUntil(() => isOurSocket(sock), 10_000, 'the registration socket in the recreated directory');
  t.equal((await getInfo(kubelet(t as Tap, sock))).name, DRIVER, 'answers in the recreated directory');
  // And that new watch works too.
  await rm(sock);
  await waitUntil(() => isOurSocket(sock), 5000, 'the socket back again in the recreated directory');
  t.equal((await getInfo(kubelet(t as Tap, sock))).name, DRIVER);
  t.same(
    readdirSync(regDir).filter((n) => n.startsWith('.sock-')),
    [],
    'no private bind directory left behind',
  );

  // Something else renamed over our socket: it is theirs; neither replaced nor removed at stop.
  const foreign = join(dir, 'foreign');
  await writeFile(foreign, 'not the driver');
  await rename(foreign, sock);
  await driver.waitFor(/something else replaced the registration socket/);
  await sleep(300);
  t.equal(await readFile(sock, 'utf8'), 'not the driver', 'the foreign file is left in place');
  await driver.stop('SIGTERM');
  t.equal(driver.child.exitCode, 0, 'clean exit');
  t.equal(await readFile(sock, 'utf8'), 'not the driver', 'and not removed at stop');
});

t.test('on SIGTERM the registration socket is removed', async (t) => {
  const dir = await tempDir(t as Tap, 'sscsi-reg-');
  const { driver, regDir, sock } = await startDriver(t as Tap, dir);
  // A stale socket of a previous process would have been replaced; this one is ours.
  t.equal((await getInfo(kubelet(t as Tap, sock))).type, 'CSIPlugin');
  await driver.stop('SIGTERM');
  t.equal(driver.child.exitCode, 0, 'clean exit');
  t.notOk(existsSync(sock), 'the socket is gone');
  t.same(readdirSync(regDir), [], 'nothing else left in the registration directory');
});

t.test('a handover to a new driver (keeper) keeps the name registered: the socket is never deleted, the new one answers', async (t) => {
  const regDir = await tempDir(t as Tap, 'sscsi-reg-');
  const sock = registrationSocketPath(regDir, DRIVER);
  const h = await Harness.start(t as Tap, {
    keeper: true,
    driverArgs: [`--kubelet-registration-path=${KUBELET_ENDPOINT}`, `--plugin-registration-path=${regDir}`],
  });
  t.equal((await getInfo(kubelet(t as Tap, sock))).name, DRIVER, 'the first driver answers');
  const watch = new Proc(spawn('python3', [join(ROOT, 'test/helpers/inotify-watch.py'), regDir], { stdio: ['ignore', 'pipe', 'pipe'] }));
  t.teardown(() => watch.stop('SIGKILL'));
  await watch.waitFor(/"ready": true/);

  const old = h.driver;
  await h.startDriver(); // the keeper tells the old one to yield
  t.equal(await Promise.race([old.exited, sleep(10_000).then(() => 'timeout')]), 0, 'the old driver handed over and exited');
  t.match(old.out, /handing over to a new driver/);
  t.ok(isOurSocket(sock), 'a registration socket is there');
  t.equal((await getInfo(kubelet(t as Tap, sock))).endpoint, KUBELET_ENDPOINT, 'and the new driver answers on it');
  await sleep(200);
  const events = watch.out
    .split('\n')
    .filter((l) => l.startsWith('{"watch"'))
    .map((l) => JSON.parse(l) as { name: string; events: string[] })
    .filter((e) => e.name === `${DRIVER}-reg.sock`);
  t.notOk(
    events.some((e) => e.events.includes('DELETE') || e.events.includes('MOVED_FROM')),
    `the name was never removed (kubelet would unregister the driver): ${JSON.stringify(events)}`,
  );
  t.ok(
    events.some((e) => e.events.includes('MOVED_TO')),
    "the new driver's socket was renamed over the old one",
  );
  t.notMatch(h.driver.out, /something else replaced the registration socket/, 'the new driver saw no foreign entry');
});
