// Rotation through the real driver: polls send the current object versions,
// a changed secret reaches the file within a poll, and a provider that dies
// mid-poll leaves the last good content served (with a metric and a log line)
// until it comes back. And, with the volume manager in this process (to count
// what a poll hands on): a provider that sends one object id twice (an Azure
// secret at its latest version and pinned) rotates only on a real change.

import t from 'tap';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { SecretsFilesystem } from '../src/fuse/filesystem.js';
import { buildPodStatus } from '../src/kube/pod-status.js';
import { DriverMetrics } from '../src/observability/metrics.js';
import { ProviderClients } from '../src/provider/client.js';
import { DirSpcSource } from '../src/spc/dir-source.js';
import { VolumeManager } from '../src/volume/manager.js';
import { VolumeState } from '../src/volume/state.js';
import type { VolumeStatus } from '../src/volume/types.js';
import { startAzureLikeProvider, type FakeVault } from './fixtures/azure-like-provider.js';
import { Harness, freePort, tempDir, waitUntil, sleep, type Tap } from './helpers/harness.js';

async function metric(port: number, name: string): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of body.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.split(' ').pop());
  return sum;
}

t.test('a rotated secret reaches the file within a poll; unchanged polls change nothing', async (t) => {
  const port = await freePort();
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=500ms', `--metrics-addr=127.0.0.1:${port}`] });
  await h.source('s.json', {
    files: [
      { path: 'pw', contents: 'v1' },
      { path: 'user', contents: 'admin' },
    ],
  });
  await h.spc('app', 's.json');
  const target = h.target('rot');
  await h.publish(h.publishRequest(target, 'app'));
  t.equal(await readFile(`${target}/pw`, 'utf8'), 'v1');

  await waitUntil(async () => (await metric(port, 'rotation_reconcile_total')) >= 2, 10_000, 'two polls');
  t.equal(await readFile(`${target}/pw`, 'utf8'), 'v1', 'unchanged content stays');

  await h.source('s.json', {
    files: [
      { path: 'pw', contents: 'v2-rotated' },
      { path: 'user', contents: 'admin' },
    ],
  });
  const changed = Date.now();
  await waitUntil(async () => (await readFile(`${target}/pw`, 'utf8')) === 'v2-rotated', 10_000, 'the rotated value');
  t.ok(Date.now() - changed < 5000, 'visible within a few polls');
  t.equal(await readFile(`${target}/user`, 'utf8'), 'admin');
  t.ok((await metric(port, 'rotation_reconcile_total')) >= 3);
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
  const h = await Harness.start(t as Tap, {
    driverArgs: ['--rotation-poll-interval=400ms', `--metrics-addr=127.0.0.1:${port}`, '--provider-timeout=2s'],
  });
  await h.source('s.json', { files: [{ path: 'pw', contents: 'good-1' }] });
  await h.spc('app', 's.json');
  const target = h.target('dies');
  await h.publish(h.publishRequest(target, 'app'));

  // The provider is killed while it is answering a poll (a slow answer keeps it mid-call).
  await h.source('s.json', { files: [{ path: 'pw', contents: 'never-served' }], delayMs: 3000 });
  await waitUntil(
    () => /"msg":"mount"/.test(h.provider!.out.split('\n').slice(-3).join('\n')) || h.providerMounts() >= 2,
    10_000,
    'a poll to start',
  );
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

t.test(
  'an object id sent twice (latest + pinned): unchanged polls write no status, send no Event or snapshot; changes still rotate',
  async (t) => {
    const dir = await tempDir(t as Tap);
    const providerDir = join(dir, 'providers');
    const spcDir = join(dir, 'spc');
    await mkdir(providerDir);
    await mkdir(spcDir);
    await writeFile(
      join(spcDir, 'spc.yaml'),
      `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: current-previous}
spec:
  provider: azure
  parameters:
    keyvaultName: kvname
    tenantID: tid
    objects: |
      array:
        - |
          objectName: db-password
          objectType: secret
        - |
          objectName: db-password
          objectAlias: db-password-previous
          objectType: secret
          objectVersion: db-v1
        - |
          objectName: api-key
          objectAlias: api-key-previous
          objectType: secret
          objectVersion: api-v1
        - |
          objectName: api-key
          objectType: secret
`,
    );
    const at = (min: number) => new Date(Date.UTC(2026, 0, 1, 0, min));
    const vaults: Record<string, FakeVault> = {
      kvname: {
        principals: [{ tenantID: 'tid', clientID: 'sp', clientSecret: 'sp-secret' }],
        secrets: {
          'db-password': [
            { version: 'db-v1', value: 'db-1', created: at(1) },
            { version: 'db-v2', value: 'db-2', created: at(2) },
          ],
          'api-key': [
            { version: 'api-v1', value: 'api-1', created: at(1) },
            { version: 'api-v2', value: 'api-2', created: at(2) },
          ],
        },
      },
    };
    const azure = await startAzureLikeProvider(join(providerDir, 'azure.sock'), vaults);

    // What the driver does with these hooks (src/cli/driver.ts): onVersion(first=false) writes the
    // SecretProviderClassPodStatus, queues a Secret sync and adds a MountRotationComplete Event;
    // the registry's persist hook (its changes and the filesystem's) sends the keeper a snapshot.
    const lines: string[] = [];
    const log = pino(
      { level: 'debug' },
      {
        write: (l: string) => {
          lines.push(l);
        },
      },
    );
    let snapshots = 0;
    const published: VolumeStatus[] = [];
    const rotations: VolumeStatus[] = [];
    // Wired as src/cli/driver.ts does: every filesystem change persists through the registry's one hook.
    const state = new VolumeState({
      persist: () => {
        snapshots++;
      },
    });
    const fs = await SecretsFilesystem.mount({ mountDir: join(dir, 'fuse'), log, onMutation: () => state.persist() });
    const providers = new ProviderClients({ socketDirs: [providerDir], maxRecvMsgSize: 4 * 1024 * 1024, alloc: (n) => Buffer.alloc(n) });
    const metrics = new DriverMetrics();
    const manager = new VolumeManager({
      fs,
      state,
      spcs: new DirSpcSource(spcDir),
      providers,
      metrics,
      log,
      onVersion: async (st, first) => {
        (first ? published : rotations).push(st);
      },
      // Polled by hand below, one at a time.
      rotation: { enabled: false, intervalMs: 60_000, concurrency: 1, retryBaseMs: 1000 },
      providerTimeoutMs: 10_000,
    });
    const target = join(dir, 'target');
    t.teardown(async () => {
      manager.close();
      await manager.unpublish(target).catch(() => undefined);
      providers.close();
      await azure.close();
      await fs.close();
    });
    const rotatedPolls = async (rotated: boolean): Promise<number> => {
      const m = new RegExp(`^rotation_reconcile_total\\{provider="azure",os_type="linux",rotated="${rotated}"\\} (\\d+)`, 'm').exec(
        await metrics.registry.metrics(),
      );
      return m ? Number(m[1]) : 0;
    };
    const rotationLines = (): number => lines.filter((l) => l.includes('"rotated volume content"')).length;
    const served = (path: string): string | undefined => state.readFile(target, path)?.toString();

    await manager.publish({
      volumeId: 'vol-1',
      targetPath: target,
      readonly: true,
      deadline: null,
      volumeContext: {
        'csi.storage.k8s.io/pod.name': 'pod-a',
        'csi.storage.k8s.io/pod.namespace': 'default',
        'csi.storage.k8s.io/pod.uid': 'uid-a',
        secretProviderClass: 'current-previous',
      },
      secrets: { clientid: 'sp', clientsecret: 'sp-secret' },
    });
    t.strictSame(
      azure.calls.at(-1)!.objectVersion,
      [
        { id: 'secret/db-password', version: 'db-v2' },
        { id: 'secret/db-password', version: 'db-v1' },
        { id: 'secret/api-key', version: 'api-v1' },
        { id: 'secret/api-key', version: 'api-v2' },
      ],
      'the provider sends each id twice',
    );
    t.equal(published.length, 1, 'the mount wrote its status');
    const oneEach = [
      { id: 'secret/api-key', version: 'api-v2' },
      { id: 'secret/db-password', version: 'db-v1' },
    ];
    t.strictSame(published[0]!.objectVersions, oneEach, 'one version per id, the one sent last');
    t.strictSame(buildPodStatus(published[0]!, 'node-1').status.objects, oneEach, 'so one status entry per id');
    t.equal(served('db-password'), 'db-2');
    t.equal(served('db-password-previous'), 'db-1');
    const snapshotsAfterMount = snapshots;
    t.ok(snapshotsAfterMount > 0, 'the mount was snapshotted');

    for (let i = 1; i <= 3; i++) await manager.poll(target);
    t.equal(azure.calls.length, 4, 'three polls reached the provider');
    t.strictSame(azure.calls.at(-1)!.request.currentObjectVersion, oneEach, 'polls send one version per id');
    t.equal(rotations.length, 0, 'unchanged polls: no status write, Secret sync or Event');
    t.equal(snapshots, snapshotsAfterMount, 'unchanged polls: no snapshot');
    t.equal(rotationLines(), 0, 'unchanged polls: no rotation logged');
    t.equal(await rotatedPolls(true), 0, 'no rotated="true" poll');
    t.equal(await rotatedPolls(false), 3, 'three rotated="false" polls');

    // A new latest db-password: its pinned entry comes last, so the content changes and the recorded version does not.
    vaults.kvname!.secrets!['db-password']!.push({ version: 'db-v3', value: 'db-3', created: at(3) });
    await manager.poll(target);
    t.equal(served('db-password'), 'db-3', 'the new latest value is served');
    t.equal(served('db-password-previous'), 'db-1', 'the pinned one stays');
    t.equal(rotations.length, 1, 'a content change is a rotation');
    t.strictSame(rotations[0]!.objectVersions, oneEach, 'with the same versions');
    t.equal(snapshots, snapshotsAfterMount + 1, 'and one snapshot');
    await manager.poll(target);
    t.equal(rotations.length, 1, 'the poll after it: nothing');

    // A new latest api-key: its latest entry comes last, so content and version change.
    vaults.kvname!.secrets!['api-key']!.push({ version: 'api-v3', value: 'api-3', created: at(3) });
    await manager.poll(target);
    t.equal(served('api-key'), 'api-3');
    t.equal(rotations.length, 2, 'a version change is a rotation');
    t.strictSame(rotations[1]!.objectVersions, [
      { id: 'secret/api-key', version: 'api-v3' },
      { id: 'secret/db-password', version: 'db-v1' },
    ]);
    t.equal(snapshots, snapshotsAfterMount + 2);
    for (let i = 0; i < 2; i++) await manager.poll(target);
    t.equal(rotations.length, 2, 'unchanged polls after it: no status write, Secret sync or Event');
    t.equal(snapshots, snapshotsAfterMount + 2, 'and no snapshot');
    t.equal(rotationLines(), 2, 'two rotations logged in all');
    t.equal(await rotatedPolls(true), 2, 'two rotated="true" polls');
    t.equal(await rotatedPolls(false), 6, 'six rotated="false" polls');
    t.strictSame(azure.calls.at(-1)!.request.currentObjectVersion, rotations[1]!.objectVersions, 'polls send what the status names');
    await manager.unpublish(target);
  },
);
