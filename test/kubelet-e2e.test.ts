// The driver under a real kubelet: one node on this machine (kubelet,
// containerd + runc, kube-scheduler, the test control plane; see
// docs/kubelet-e2e.md), our driver registered through its built-in registrar,
// the example provider, busybox containers reading the mounted files. Nothing
// here plays kubelet. The scenarios run in order on one node (each a subtest;
// a later one builds on the pods an earlier one started):
//   1. a Deployment's pod reads the file (a hash of it, never the bytes)
//   2. rotation reaches the container, and an inotify watcher in it
//   3. kubelet-minted tokens reach the provider; republishes add no calls
//   5. the driver is SIGKILLed while the container reads: no read error
//   6. kubelet restarts while pods run
//   4. status object and synced Secret while it runs; deleting the
//      Deployment unpublishes and garbage collection removes both
//   8. a missing SecretProviderClass or provider: kubelet shows our error in
//      the pod's events, and the pod starts once it appears
// Scenario 7 (twenty pods, ours against upstream) is test/kubelet-e2e-scale.test.ts.

import t from 'tap';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { canary, grepDisk, mountsUnder, sleep, startProviderAt } from './helpers/harness.js';
import { apply, eventually } from './helpers/kube.js';
import { AUDIENCE, DRIVER_NAME, E2ENode, GROUP, deployment, secretsPodSpec, whyNoNode } from './helpers/kubelet-node.js';
import { skipFile } from './helpers/skip.js';

t.setTimeout(900_000);

const { why, v, kubeletBin } = await whyNoNode();
if (why) skipFile(v, why);

const NS = 'e2e';
const POLL_S = 5;
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

const node = await E2ENode.start(t, kubeletBin, { pollSeconds: POLL_S });
await node.namespace(NS);

/** A pod template mounting `spc` at /mnt/secrets with a reader (hash every 0.2 s) and an inotify watcher. */
function podSpec(spc: string): object {
  return secretsPodSpec(spc, [
    {
      name: 'reader',
      command: [
        'sh',
        '-c',
        'while true; do if h=$(sha256sum /mnt/secrets/password); then echo "hash ${h%% *}"; else echo READ-ERROR; fi; sleep 0.2; done',
      ],
    },
    { name: 'watcher', command: ['inotify-watch', '/mnt/secrets'] },
  ]);
}

async function runningPod(selector: string, ms = 120_000): Promise<V1Pod> {
  return eventually(
    async () => {
      const pods = await node.pods(NS, selector);
      return pods.find((p) => p.status?.phase === 'Running' && p.status.containerStatuses?.every((c) => c.ready)) ?? null;
    },
    ms,
    `a Running pod (${selector})`,
  );
}

async function logHas(pod: V1Pod, container: string, pred: (text: string) => boolean, ms: number): Promise<number> {
  const start = Date.now();
  await eventually(async () => (await node.containerLog(pod, container)).some((l) => pred(l.text)), ms, `${container} log line`);
  return Date.now() - start;
}

/** The target path kubelet gave the pod's volume (under its root dir). */
const targetOf = (pod: V1Pod): string =>
  join(node.kubeletRoot, 'pods', pod.metadata!.uid!, 'volumes', 'kubernetes.io~csi', 'secrets', 'mount');

const secret1 = canary('e2e-v1');
const secret2 = canary('e2e-v2');
const secret3 = canary('e2e-v3');
let pod: V1Pod;

t.test('1. a Deployment mounting an inline volume starts; its container reads the secret', async (t) => {
  const src = await node.writeSource('app', [{ path: 'password', contents: secret1 }]);
  await node.secretProviderClass(NS, 'app-spc', src, {
    secretObjects: [{ secretName: 'app-synced', type: 'Opaque', data: [{ objectName: 'password', key: 'password' }] }],
  });
  const created = Date.now();
  await apply(node.kc, [deployment(NS, 'app', podSpec('app-spc'))]);
  pod = await runningPod('app=app');
  t.comment(`pod Running ${Date.now() - created} ms after the Deployment was created`);
  await logHas(pod, 'reader', (l) => l === `hash ${sha(secret1)}`, 30_000);
  t.pass('the container read the provider value (its hash)');
  t.ok((await mountsUnder(targetOf(pod))).length > 0, 'the target path is mounted on the host');
  t.match(
    node.driverLog,
    /"msg":"registered with kubelet"|plugin registered|registration/i,
    'the built-in registrar registered with kubelet',
  );
  const csiNode = await node.storage().readCSINode({ name: node.cluster.nodeName });
  t.ok(
    csiNode.spec.drivers.some((d) => d.name === DRIVER_NAME && d.nodeID === node.cluster.nodeName),
    'kubelet recorded the driver in the CSINode',
  );
});

t.test('2. rotation: the container sees the new version within a poll interval; inotify sees ..data', async (t) => {
  await node.writeSource('app', [{ path: 'password', contents: secret2 }]);
  const ms = await logHas(pod, 'reader', (l) => l === `hash ${sha(secret2)}`, (POLL_S + 15) * 1000);
  t.comment(`the container read the new version ${ms} ms after the provider changed (poll interval ${POLL_S} s)`);
  t.pass('the container read the rotated value');
  await logHas(pod, 'watcher', (l) => l === 'MOVED_TO ..data', 10_000);
  t.pass('the inotify watcher inside the container saw ..data replaced');
  const reader = await node.containerLog(pod, 'reader');
  const watcher = await node.containerLog(pod, 'watcher');
  t.notOk(
    [...reader, ...watcher].some((l) => l.text.includes(secret1) || l.text.includes(secret2)),
    "no secret byte in the containers' logs (hashes only)",
  );
  t.notOk(
    reader.some((l) => l.text === 'READ-ERROR' || l.stream === 'stderr'),
    'no read error in the container across the rotation',
  );
});

t.test('3. kubelet-minted tokens reach the provider; republishes cause no extra provider calls', async (t) => {
  const target = targetOf(pod);
  const mountsFor = (): Array<{ tokens?: Record<string, { sub?: string; pod?: string }> }> =>
    node.provider.out
      .split('\n')
      .filter((l) => l.includes('"msg":"mount"') && l.includes(target))
      .map((l) => JSON.parse(l) as { tokens?: Record<string, { sub?: string; pod?: string }> });
  const calls = mountsFor();
  t.ok(calls.length > 0, 'the provider was called for the pod');
  t.same(
    calls.at(-1)!.tokens,
    { [AUDIENCE]: { sub: `system:serviceaccount:${NS}:default`, pod: pod.metadata!.name } },
    'with a token for the audience, bound to the pod',
  );
  const republishes = (): number =>
    node.driverLog.split('\n').filter((l) => l.includes('refreshed attributes') && l.includes(target)).length;
  const [r0, c0] = [republishes(), mountsFor().length];
  const windowS = 35;
  await sleep(windowS * 1000);
  const [r, c] = [republishes() - r0, mountsFor().length - c0];
  t.comment(`in ${windowS} s: ${r} republishes from kubelet, ${c} provider calls (poll interval ${POLL_S} s)`);
  t.ok(r >= 2, 'kubelet republished the volume (requiresRepublish)');
  t.ok(c <= Math.ceil(windowS / POLL_S) + 1, 'provider calls follow the poll interval, not the republishes');
});

t.test('5. the driver is SIGKILLed while the container reads: no read error, rotation continues', async (t) => {
  const before = (await node.containerLog(pod, 'reader')).length;
  node.driver.child.kill('SIGKILL');
  await node.driver.exited;
  await sleep(3000); // the container keeps reading with no driver at all
  await node.startDriver(POLL_S);
  await sleep(2000);
  const after = (await node.containerLog(pod, 'reader')).slice(before);
  t.ok(after.length > 5, 'the container kept reading');
  t.notOk(
    after.some((l) => l.text !== `hash ${sha(secret2)}`),
    'every read gave the current version, none failed',
  );
  await node.writeSource('app', [{ path: 'password', contents: secret3 }]);
  const ms = await logHas(pod, 'reader', (l) => l === `hash ${sha(secret3)}`, (POLL_S + 15) * 1000);
  t.comment(`after the restart, a rotation reached the container in ${ms} ms`);
});

t.test('6. kubelet restarts while the pod runs: the volume is reconstructed, nothing is lost', async (t) => {
  const before = (await node.containerLog(pod, 'reader')).length;
  const registrations = (): number => node.driverLog.split('\n').filter((l) => l.includes('"msg":"kubelet registered the driver"')).length;
  const registered = registrations();
  await node.cluster.restartKubelet();
  await node.cluster.waitNodeReady(90_000);
  await sleep(12_000); // at least one pod sync of the new kubelet
  const after = (await node.containerLog(pod, 'reader')).slice(before);
  t.ok(after.length > 10, 'the container kept reading');
  t.notOk(
    after.some((l) => l.text !== `hash ${sha(secret3)}`),
    'no read error and no other version',
  );
  const same = await node.core().readNamespacedPod({ namespace: NS, name: pod.metadata!.name! });
  t.equal(same.metadata!.uid, pod.metadata!.uid, 'the same pod');
  t.equal(same.status?.containerStatuses?.find((c) => c.name === 'reader')?.restartCount, 0, 'no container restarted');
  t.ok((await mountsUnder(targetOf(pod))).length > 0, 'the target is still mounted');
  t.ok(registrations() > registered, 'the new kubelet registered the driver again through the built-in registrar');
  t.notMatch(
    node.cluster.kubelet.log,
    /UnmountVolume.*secrets-store|Failed to reconstruct/,
    'kubelet did not unmount or fail to reconstruct the volume',
  );
});

t.test('4. status object and synced Secret while the pod runs; deleting the Deployment cleans up', async (t) => {
  const statusName = `${pod.metadata!.name}-${NS}-app-spc`;
  const status = (await node.custom().getNamespacedCustomObject({
    group: GROUP,
    version: 'v1',
    namespace: NS,
    plural: 'secretproviderclasspodstatuses',
    name: statusName,
  })) as { status?: { mounted?: boolean; podName?: string; targetPath?: string } };
  t.equal(status.status?.podName, pod.metadata!.name, 'SecretProviderClassPodStatus names the pod');
  t.equal(status.status?.mounted, true, 'and says mounted');
  const synced = await node.core().readNamespacedSecret({ namespace: NS, name: 'app-synced' });
  t.equal(Buffer.from(synced.data?.password ?? '', 'base64').toString(), secret3, 'the synced Secret holds the current version');
  const target = targetOf(pod);
  await node.apps().deleteNamespacedDeployment({ namespace: NS, name: 'app' });
  await eventually(async () => (await node.pods(NS, 'app=app')).length === 0, 90_000, 'the pod to be gone');
  await eventually(async () => (await mountsUnder(target)).length === 0, 30_000, 'the target to be unmounted');
  t.pass('the pod is gone and its target unmounted on the host');
  t.match(node.driverLog, /node unpublish volume complete|unpublished/, 'through NodeUnpublishVolume');
  await eventually(
    () =>
      node
        .custom()
        .getNamespacedCustomObject({
          group: GROUP,
          version: 'v1',
          namespace: NS,
          plural: 'secretproviderclasspodstatuses',
          name: statusName,
        })
        .then(
          () => false,
          () => true,
        ),
    60_000,
    'the status object to be collected',
  );
  await eventually(
    () =>
      node
        .core()
        .readNamespacedSecret({ namespace: NS, name: 'app-synced' })
        .then(
          () => false,
          () => true,
        ),
    60_000,
    'the synced Secret to be collected',
  );
  t.pass('garbage collection removed the status object and the synced Secret');
});

t.test('8. a missing SecretProviderClass or provider: our error in the pod events, then the pod starts', async (t) => {
  const events = async (name: string): Promise<string[]> =>
    (await node.core().listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` })).items.map(
      (e) => `${e.reason}: ${e.message}`,
    );
  const src = await node.writeSource('late', [{ path: 'password', contents: secret1 }]);
  const bare = (name: string, spc: string): KubernetesObject =>
    ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels: { app: name } }, spec: podSpec(spc) }) as KubernetesObject;

  await apply(node.kc, [bare('no-spc', 'late-spc')]);
  const noSpc = await eventually(
    async () => (await events('no-spc')).find((e) => e.includes('failed to get secretproviderclass e2e/late-spc')),
    60_000,
    'a FailedMount event naming the missing SecretProviderClass',
  );
  t.match(noSpc, /^FailedMount: /, `kubelet shows our error: ${noSpc.slice(0, 200)}`);
  t.equal((await node.core().readNamespacedPod({ namespace: NS, name: 'no-spc' })).status?.phase, 'Pending', 'the pod waits');
  await node.secretProviderClass(NS, 'late-spc', src);
  await runningPod('app=no-spc');
  t.pass('the pod starts once the SecretProviderClass exists');

  await apply(node.kc, [
    {
      apiVersion: `${GROUP}/v1`,
      kind: 'SecretProviderClass',
      metadata: { name: 'other-spc', namespace: NS },
      spec: { provider: 'late-provider', parameters: { secretsFile: src } },
    } as KubernetesObject,
    bare('no-provider', 'other-spc'),
  ]);
  const noProvider = await eventually(
    async () => (await events('no-provider')).find((e) => e.includes('provider not found: provider "late-provider"')),
    60_000,
    'a FailedMount event naming the missing provider',
  );
  t.match(noProvider, /^FailedMount: /, `kubelet shows our error: ${noProvider.slice(0, 200)}`);
  const late = await startProviderAt(join(node.providerDir, 'late-provider.sock'));
  t.teardown(() => late.stop());
  await runningPod('app=no-provider');
  t.pass('the pod starts once the provider is installed');
  for (const name of ['no-spc', 'no-provider']) await node.core().deleteNamespacedPod({ namespace: NS, name, gracePeriodSeconds: 0 });
  await eventually(async () => (await node.pods(NS, 'app in (no-spc,no-provider)')).length === 0, 60_000, 'the pods to be gone');
});

t.test('no secret byte in logs or on disk', async (t) => {
  for (const s of [secret1, secret2, secret3]) {
    t.notOk(node.driverLog.includes(s), "not in the driver's log");
    t.notOk(node.cluster.kubelet.log.includes(s), "not in kubelet's log");
    t.notOk(node.cluster.containerd.log.includes(s), "not in containerd's log");
    t.notOk(node.provider.out.includes(s), "not in the provider's log");
    t.same(await grepDisk(node.dir, s), [], 'not on disk under the node (kubelet, containerd, pod logs)');
    t.same(await grepDisk('/var/log', s), [], 'not under /var/log');
  }
});
