// The honest fallback when nothing survived: keeper and driver killed
// together. A new driver finds the dead mount, records a Warning Event on the
// pod (real API server), and kubelet's next republish stacks a new mount over
// the dead one: a container view with HostToContainer (rslave) propagation
// works again, a private one cannot be repaired and says so.

import t from 'tap';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, type KubernetesObject } from '@kubernetes/client-node';
import { Harness, ROOT, containerView, execFileP, type Tap } from './helpers/harness.js';
import { controlPlaneOrSkip } from './helpers/control-plane.js';
import { adminConfig, apply, eventually, manifests, serviceAccountKubeconfig } from './helpers/kube.js';

const NODE = 'fallback-node';
const NS = 'team-c';
const GROUP = 'secrets-store.csi.x-k8s.io';

const cp = await controlPlaneOrSkip('the dead-mount fallback test needs the control plane');
const kc = adminConfig(cp);
const core = kc.makeApiClient(CoreV1Api);

t.test('keeper and driver killed together: dead mount found, Event recorded, rslave view repaired', async (t) => {
  await apply(kc, await manifests(join(ROOT, 'deploy')));
  await core.createNamespace({ body: { metadata: { name: NS } } }).catch(() => undefined);
  const driverKubeconfig = await serviceAccountKubeconfig(
    cp,
    kc,
    'kube-system',
    'secrets-store-csi-driver',
    join(cp.dir, `driver-fb-${Date.now()}.kubeconfig`),
  );
  const h = await Harness.start(t as Tap, {
    keeper: true,
    kubeconfig: driverKubeconfig,
    nodeId: NODE,
    driverArgs: ['--rotation-poll-interval=2m'],
  });

  // Like /var/lib/kubelet: a shared mount, so mounts below it propagate to slaves.
  const pods = join(h.dir, 'pods');
  await mkdir(pods, { recursive: true });
  await execFileP('mount', ['--bind', pods, pods]);
  await execFileP('mount', ['--make-rshared', pods]);

  await h.source('s.json', { files: [{ path: 'token', contents: 'before-the-crash' }] });
  await apply(kc, [
    {
      apiVersion: `${GROUP}/v1`,
      kind: 'SecretProviderClass',
      metadata: { name: 'app', namespace: NS },
      spec: { provider: 'example', parameters: { secretsFile: join(h.sourceDir, 's.json') } },
    } as KubernetesObject,
  ]);
  const pod = await core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name: 'web' },
      spec: {
        nodeName: NODE,
        containers: [{ name: 'c', image: 'busybox' }],
        volumes: [
          { name: 'sec', csi: { driver: 'secrets-store.csi.k8s.io', readOnly: true, volumeAttributes: { secretProviderClass: 'app' } } },
        ],
      },
    },
  });
  const uid = pod.metadata!.uid!;
  const target = join(pods, uid, 'volumes', 'kubernetes.io~csi', 'sec', 'mount');
  const req = h.publishRequest(target, 'app', {
    volumeContext: {
      secretProviderClass: 'app',
      'csi.storage.k8s.io/pod.name': 'web',
      'csi.storage.k8s.io/pod.namespace': NS,
      'csi.storage.k8s.io/pod.uid': uid,
    },
  });
  await h.publish(req);

  // Two containers' views, made while everything works.
  const views = join(h.dir, 'views');
  const rslave = await containerView(target, join(views, 'rslave'), 'rslave');
  const priv = await containerView(target, join(views, 'private'), 'private');
  t.equal(await readFile(join(rslave, 'token'), 'utf8'), 'before-the-crash');
  t.equal(await readFile(join(priv, 'token'), 'utf8'), 'before-the-crash');

  // Nothing survives: keeper and driver die together.
  await Promise.all([h.driver.stop('SIGKILL'), h.keeper!.stop('SIGKILL')]);
  // Cached names and pages may still answer; anything that needs the server fails.
  await t.rejects(stat(join(rslave, 'not-cached')), { code: 'ENOTCONN' }, 'the views are dead');

  await h.source('s.json', { files: [{ path: 'token', contents: 'after-the-repair' }] });
  await h.startKeeper();
  await h.startDriver();
  await h.driver.waitFor(/found secrets mounts that died with a previous driver/);
  t.pass('the new driver found the dead mount (looked for in the background, after it listens)');
  const ev = await eventually(
    async () =>
      (await core.listNamespacedEvent({ namespace: NS, fieldSelector: 'involvedObject.name=web' })).items.find(
        (e) => e.reason === 'DeadSecretsMount',
      ),
    20_000,
    'a DeadSecretsMount event',
  );
  t.equal(ev.type, 'Warning');
  t.match(ev.message, /HostToContainer/, 'the event names what repairs it');
  t.match(ev.message, /--delete-pods-with-dead-mounts/);

  // kubelet's periodic republish: a new mount is stacked over the dead one.
  await h.publish(req);
  t.equal(await readFile(join(target, 'token'), 'utf8'), 'after-the-repair', 'the host path works again');
  t.equal(await readFile(join(rslave, 'token'), 'utf8'), 'after-the-repair', 'a HostToContainer (rslave) view works again');
  // A private view still sees the dead mount: what needs the server fails, and the kernel's
  // caches (names and attributes looked up before the kill) can only ever give the old content.
  await t.rejects(stat(join(priv, 'not-cached-either')), { code: 'ENOTCONN' }, 'a private view cannot be repaired');
  t.not(
    await readFile(join(priv, 'token'), 'utf8').catch((e: NodeJS.ErrnoException) => e.code),
    'after-the-repair',
    'it never shows the new content',
  );
  await eventually(
    async () =>
      (await core.listNamespacedEvent({ namespace: NS, fieldSelector: 'involvedObject.name=web' })).items.find(
        (e) => e.reason === 'SecretsMountRepaired',
      ),
    20_000,
    'a SecretsMountRepaired event',
  );
  t.pass('the repair is recorded on the pod');

  await h.unpublish(target);
  t.rejects(stat(target), { code: 'ENOENT' }, 'unpublish removed ours and the dead mount below it');
  for (const v of [rslave, priv]) await execFileP('umount', ['-l', v]).catch(() => undefined);
  await core.deleteNamespacedPod({ namespace: NS, name: 'web', gracePeriodSeconds: 0 });
});
