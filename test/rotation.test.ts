// Rotation through the real driver: polls send the current object versions,
// a changed secret reaches the file within a poll, and a provider that dies
// mid-poll leaves the last good content served (with a metric and a log line)
// until it comes back.

import t from 'tap';
import { readFile } from 'node:fs/promises';
import { Harness, freePort, waitUntil, sleep, type Tap } from './helpers/harness.js';

async function metric(port: number, name: string): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of body.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.split(' ').pop());
  return sum;
}

t.test('a rotated secret reaches the file within a poll; unchanged polls change nothing', async (t) => {
  const port = await freePort();
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=500ms', `--metrics-addr=127.0.0.1:${port}`] });
  await h.source('s.json', { files: [{ path: 'pw', contents: 'v1' }, { path: 'user', contents: 'admin' }] });
  await h.spc('app', 's.json');
  const target = h.target('rot');
  await h.publish(h.publishRequest(target, 'app'));
  t.equal(await readFile(`${target}/pw`, 'utf8'), 'v1');

  await waitUntil(async () => (await metric(port, 'rotation_reconcile_total')) >= 2, 10_000, 'two polls');
  t.equal(await readFile(`${target}/pw`, 'utf8'), 'v1', 'unchanged content stays');

  await h.source('s.json', { files: [{ path: 'pw', contents: 'v2-rotated' }, { path: 'user', contents: 'admin' }] });
  const changed = Date.now();
  await waitUntil(async () => (await readFile(`${target}/pw`, 'utf8')) === 'v2-rotated', 10_000, 'the rotated value');
  t.ok(Date.now() - changed < 5000, 'visible within a few polls');
  t.equal(await readFile(`${target}/user`, 'utf8'), 'admin');
  t.ok(await metric(port, 'rotation_reconcile_total') >= 3);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  t.match(metrics, /rotation_reconcile_total\{provider="example",os_type="linux",rotated="true"\} [1-9]/);
  t.match(metrics, /node_publish_total\{provider="example",os_type="linux"\} 1/);
  t.match(metrics, /secrets_store_volumes_mounted 1/);
  t.match(metrics, /rotation_reconcile_duration_sec_count\{os_type="linux"\} [1-9]/);
  t.match(metrics, /secrets_store_provider_mount_duration_seconds_count\{provider="example",result="ok"\} [1-9]/);
  await h.unpublish(target);
  const after = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  t.match(after, /node_unpublish_total\{os_type="linux"\} 1/);
  t.match(after, /secrets_store_volumes_mounted 0/);
});

t.test('a provider that dies mid-poll: last good content stays, errors counted, rotation resumes', async (t) => {
  const port = await freePort();
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=400ms', `--metrics-addr=127.0.0.1:${port}`, '--provider-timeout=2s'] });
  await h.source('s.json', { files: [{ path: 'pw', contents: 'good-1' }] });
  await h.spc('app', 's.json');
  const target = h.target('dies');
  await h.publish(h.publishRequest(target, 'app'));

  // The provider is killed while it is answering a poll (a slow answer keeps it mid-call).
  await h.source('s.json', { files: [{ path: 'pw', contents: 'never-served' }], delayMs: 3000 });
  await waitUntil(() => /"msg":"mount"/.test(h.provider!.out.split('\n').slice(-3).join('\n')) || h.providerMounts() >= 2, 10_000, 'a poll to start');
  await sleep(300);
  await h.provider!.stop('SIGKILL');

  await waitUntil(async () => (await metric(port, 'rotation_reconcile_error_total')) >= 2, 20_000, 'failed polls to be counted');
  t.equal(await readFile(`${target}/pw`, 'utf8'), 'good-1', 'the last good content is still served');
  t.match(h.driver.out, /rotation poll failed; the last good content stays served/);

  await h.source('s.json', { files: [{ path: 'pw', contents: 'good-2' }] });
  await h.startProvider();
  await waitUntil(async () => (await readFile(`${target}/pw`, 'utf8')) === 'good-2', 30_000, 'rotation to resume');
  t.pass('rotation resumed after the provider came back');
  await h.unpublish(target);
});

t.test('polls re-read the SecretProviderClass and send current object versions', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=300ms'] });
  await h.source('a.json', { files: [{ path: 'x', contents: 'from-a' }] });
  await h.source('b.json', { files: [{ path: 'x', contents: 'from-b' }] });
  await h.spc('app', 'a.json');
  const target = h.target('respc');
  await h.publish(h.publishRequest(target, 'app'));
  t.equal(await readFile(`${target}/x`, 'utf8'), 'from-a');
  await h.spc('app', 'b.json');
  await waitUntil(async () => (await readFile(`${target}/x`, 'utf8')) === 'from-b', 10_000, 'the edited SPC to apply');
  t.pass('an SPC edit applies at the next poll');
  await h.unpublish(target);
});
