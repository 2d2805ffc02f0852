// End to end against a real API server (etcd + kube-apiserver +
// kube-controller-manager, test/control-plane/): deploy/ applied and
// validated, the driver running under its own ServiceAccount with only the
// RBAC from deploy/, this test playing kubelet. A Pod owned by a ReplicaSet
// mounts an SPC with secretObjects: files served, status object and Secret
// written as upstream writes them, a rotation reaching all three, the Secret
// garbage-collected when its owners go, upstream's error for a namespace
// without the SPC, and Events on the Pod. Also: an object id sent twice by
// the provider (latest + pinned) gives one status entry per id and no
// status write or Event on unchanged polls.

import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  ApiextensionsV1Api,
  ApiException,
  KubeConfig,
  type V1Pod,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { Harness, ROOT, grpcCode, type Tap } from './helpers/harness.js';
import { controlPlaneOrSkip } from './helpers/control-plane.js';
import { adminConfig, apply, applyCrds, eventually, manifests, serviceAccountKubeconfig, token } from './helpers/kube.js';

const NODE = 'k8s-node-1';
const NS = 'team-a';
const GROUP = 'secrets-store.csi.x-k8s.io';
const VOLUME = 'secrets-store-inline';

const cp = await controlPlaneOrSkip('the Kubernetes tests need the control plane');

const kc = adminConfig(cp);
const core = kc.makeApiClient(CoreV1Api);
const apps = kc.makeApiClient(AppsV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const ext = kc.makeApiClient(ApiextensionsV1Api);

const exists = async (fn: () => Promise<unknown>): Promise<boolean> => {
  try {
    await fn();
    return true;
  } catch (e) {
    if (e instanceof ApiException && e.code === 404) return false;
    throw e;
  }
};

async function ensureNamespace(name: string): Promise<void> {
  if (!(await exists(() => core.readNamespace({ name })))) await core.createNamespace({ body: { metadata: { name } } });
  // The serviceaccount controller creates "default" in every namespace.
  await eventually(
    () => exists(() => core.readNamespacedServiceAccount({ namespace: name, name: 'default' })),
    30_000,
    `default SA in ${name}`,
  );
}

t.test('deploy/ validates (server-side dry-run) and applies to the real API server', async (t) => {
  const all = await manifests(join(ROOT, 'deploy'));
  const crds = all.filter((o) => o.kind === 'CustomResourceDefinition');
  t.equal(crds.length, 2, 'two CRDs');
  await apply(kc, crds, { dryRun: true });
  await applyCrds(kc, crds);
  const spcCrd = await ext.readCustomResourceDefinition({ name: `secretproviderclasses.${GROUP}` });
  t.same(
    spcCrd.spec.versions.map((v) => [v.name, v.served, v.storage, v.deprecated ?? false]),
    [
      ['v1', true, true, false],
      ['v1alpha1', true, false, true],
    ],
  );
  const rest = all.filter((o) => o.kind !== 'CustomResourceDefinition');
  t.ok(
    rest.some((o) => o.kind === 'CSIDriver') && rest.some((o) => o.kind === 'DaemonSet') && rest.some((o) => o.kind === 'ClusterRole'),
    'CSIDriver, RBAC and DaemonSet are there',
  );
  await apply(kc, rest, { dryRun: true });
  await apply(kc, rest);
  const csiDriver = await kc
    .makeApiClient((await import('@kubernetes/client-node')).StorageV1Api)
    .readCSIDriver({ name: 'secrets-store.csi.k8s.io' });
  t.equal(csiDriver.spec.podInfoOnMount, true);
  t.equal(csiDriver.spec.requiresRepublish, true);
  t.same(csiDriver.spec.volumeLifecycleModes, ['Ephemeral']);
  // A v1alpha1 object is still accepted, as upstream's CRD does.
  await ensureNamespace('alpha-ns');
  await custom
    .createNamespacedCustomObject({
      group: GROUP,
      version: 'v1alpha1',
      namespace: 'alpha-ns',
      plural: 'secretproviderclasses',
      body: {
        apiVersion: `${GROUP}/v1alpha1`,
        kind: 'SecretProviderClass',
        metadata: { name: 'old' },
        spec: { provider: 'x', parameters: { a: 'b' } },
      },
    })
    .catch((e: unknown) => {
      if (!(e instanceof ApiException && e.code === 409)) throw e;
    });
  t.pass('v1alpha1 SecretProviderClass accepted');
});

t.test('the driver end to end, under its own least-privilege account', async (t) => {
  await ensureNamespace(NS);
  await ensureNamespace('negative-ns');

  // The driver authenticates as kube-system/secrets-store-csi-driver with only deploy/'s RBAC.
  const h0dir = cp.dir;
  const driverKubeconfig = await serviceAccountKubeconfig(
    cp,
    kc,
    'kube-system',
    'secrets-store-csi-driver',
    join(h0dir, `driver-${Date.now()}.kubeconfig`),
  );
  const h = await Harness.start(t as Tap, { kubeconfig: driverKubeconfig, nodeId: NODE, driverArgs: ['--rotation-poll-interval=1s'] });

  // What the driver may not do is refused.
  const asDriver = new KubeConfig();
  asDriver.loadFromFile(driverKubeconfig);
  const driverCore = asDriver.makeApiClient(CoreV1Api);
  const code = (p: Promise<unknown>) =>
    p.then(
      () => 200,
      (e: unknown) => (e instanceof ApiException ? e.code : -1),
    );
  t.equal(await code(driverCore.listNode()), 403, 'listing nodes is forbidden to the driver');
  t.equal(
    await code(
      driverCore.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: 'x' }, spec: { containers: [{ name: 'c', image: 'x' }] } },
      }),
    ),
    403,
    'creating pods is forbidden to the driver',
  );
  t.equal(
    await code(driverCore.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${NODE}` })),
    200,
    'listing pods is allowed (its informer)',
  );

  await h.source('s.json', {
    files: [
      { path: 'username', contents: 'app-user' },
      { path: 'password', contents: 'pw-v1' },
    ],
  });
  const spc = {
    apiVersion: `${GROUP}/v1`,
    kind: 'SecretProviderClass',
    metadata: { name: 'app-secrets', namespace: NS },
    spec: {
      provider: 'example',
      parameters: { secretsFile: join(h.sourceDir, 's.json') },
      secretObjects: [
        {
          secretName: 'app-synced',
          type: 'Opaque',
          labels: { environment: 'test' },
          annotations: { team: 'a' },
          data: [
            { objectName: 'username', key: 'user' },
            { objectName: 'password', key: 'pass' },
          ],
        },
      ],
    },
  };
  await apply(kc, [spc as KubernetesObject]);

  const volume = {
    name: VOLUME,
    csi: { driver: 'secrets-store.csi.k8s.io', readOnly: true, volumeAttributes: { secretProviderClass: 'app-secrets' } },
  };
  const rs = await apps.createNamespacedReplicaSet({
    namespace: NS,
    body: {
      metadata: { name: 'web-rs' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'busybox' }], volumes: [volume] } },
      },
    },
  });
  const pod: V1Pod = await core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: {
        name: 'web-rs-x1',
        labels: { app: 'web' },
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-rs', uid: rs.metadata!.uid!, controller: true, blockOwnerDeletion: true },
        ],
      },
      spec: { nodeName: NODE, serviceAccountName: 'default', containers: [{ name: 'app', image: 'busybox' }], volumes: [volume] },
    },
  });
  const uid = pod.metadata!.uid!;

  // kubelet's part: tokens minted for the pod through the TokenRequest API, then NodePublishVolume.
  const tok = await token(kc, NS, 'default', { audiences: ['example-aud'], pod: { name: 'web-rs-x1', uid } });
  const target = join(h.dir, 'pods', uid, 'volumes', 'kubernetes.io~csi', VOLUME, 'mount');
  const req = h.publishRequest(target, 'app-secrets', {
    volumeContext: {
      secretProviderClass: 'app-secrets',
      'csi.storage.k8s.io/pod.name': 'web-rs-x1',
      'csi.storage.k8s.io/pod.namespace': NS,
      'csi.storage.k8s.io/pod.uid': uid,
      'csi.storage.k8s.io/serviceAccount.name': 'default',
      'csi.storage.k8s.io/ephemeral': 'true',
      'csi.storage.k8s.io/serviceAccount.tokens': JSON.stringify({ 'example-aud': tok }),
    },
  });
  await h.publish(req);
  t.equal(await readFile(join(target, 'password'), 'utf8'), 'pw-v1', 'files served');

  // The status object, exactly as upstream writes it.
  const spcpsName = `web-rs-x1-${NS}-app-secrets`;
  const getSpcps = () =>
    custom.getNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace: NS,
      plural: 'secretproviderclasspodstatuses',
      name: spcpsName,
    }) as Promise<{
      metadata: { labels: Record<string, string>; ownerReferences: Array<{ kind: string; name: string; uid: string }> };
      status: {
        podName: string;
        secretProviderClassName: string;
        mounted: boolean;
        targetPath: string;
        objects: Array<{ id: string; version: string }>;
      };
    }>;
  const spcps = await getSpcps();
  t.equal(spcps.metadata.labels['internal.secrets-store.csi.k8s.io/node-name'], NODE);
  t.same(
    spcps.metadata.ownerReferences.map((o) => [o.kind, o.name, o.uid]),
    [['Pod', 'web-rs-x1', uid]],
  );
  t.same(
    { ...spcps.status, objects: spcps.status.objects.map((o) => o.id) },
    { podName: 'web-rs-x1', secretProviderClassName: 'app-secrets', mounted: true, targetPath: target, objects: ['password', 'username'] },
    'status, objects sorted by id',
  );
  const v1Versions = spcps.status.objects;

  // The synced Secret.
  const secret = await eventually(
    () => core.readNamespacedSecret({ namespace: NS, name: 'app-synced' }).catch(() => null),
    20_000,
    'the synced Secret',
  );
  t.equal(secret.type, 'Opaque');
  t.same(secret.data, { user: Buffer.from('app-user').toString('base64'), pass: Buffer.from('pw-v1').toString('base64') });
  t.equal(await readFile(join(target, 'password'), 'utf8'), 'pw-v1', 'syncing the Secret leaves the served file intact');
  t.same(secret.metadata!.labels, { environment: 'test', 'secrets-store.csi.k8s.io/managed': 'true' });
  t.equal(secret.metadata!.annotations?.team, 'a');
  t.same(
    secret.metadata!.ownerReferences!.map((o) => [o.kind, o.name, o.uid]),
    [['ReplicaSet', 'web-rs', rs.metadata!.uid]],
    "owned by the pod's owner",
  );

  // A rotation at the provider reaches the file, the status object and the Secret within a poll or two.
  await h.source('s.json', {
    files: [
      { path: 'username', contents: 'app-user' },
      { path: 'password', contents: 'pw-v2-rotated' },
    ],
  });
  await eventually(async () => (await readFile(join(target, 'password'), 'utf8')) === 'pw-v2-rotated', 10_000, 'the rotated file');
  await eventually(
    async () => {
      const s = await getSpcps();
      return s.status.objects.find((o) => o.id === 'password')!.version !== v1Versions.find((o) => o.id === 'password')!.version;
    },
    10_000,
    'the status object to carry the new version',
  );
  await eventually(
    async () =>
      (await core.readNamespacedSecret({ namespace: NS, name: 'app-synced' })).data?.pass ===
      Buffer.from('pw-v2-rotated').toString('base64'),
    10_000,
    'the Secret to carry the rotated value',
  );
  t.pass('rotation reached file, status object and Secret');

  const events = await eventually(
    async () => {
      const list = await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=web-rs-x1` });
      const reasons = new Set(list.items.map((e) => e.reason));
      return ['SecretSynced', 'MountRotationComplete', 'SecretRotationComplete'].every((r) => reasons.has(r)) ? reasons : null;
    },
    15_000,
    'events on the pod',
  );
  t.ok(
    events.has('SecretSynced') && events.has('MountRotationComplete') && events.has('SecretRotationComplete'),
    `events: ${[...events].join(', ')}`,
  );

  // kubelet's republish refreshes tokens; nothing changes.
  await h.publish(req);

  // A pod whose namespace has no such SPC fails with upstream's message.
  const e = await h
    .publish(
      h.publishRequest(join(h.dir, 'pods', 'neg-uid', 'volumes', 'kubernetes.io~csi', VOLUME, 'mount'), 'app-secrets', {
        volumeContext: {
          secretProviderClass: 'app-secrets',
          'csi.storage.k8s.io/pod.name': 'neg',
          'csi.storage.k8s.io/pod.namespace': 'negative-ns',
          'csi.storage.k8s.io/pod.uid': 'neg-uid',
        },
      }),
    )
    .catch((x: unknown) => x);
  t.equal(grpcCode(e), status.NOT_FOUND);
  t.match((e as Error).message, /failed to get secretproviderclass negative-ns\/app-secrets.*not found/);

  // Every call the driver made was allowed by deploy/'s RBAC.
  t.notMatch(h.driver.out, /\b403\b|forbidden/i, 'the driver was never refused');

  // Unpublish, then owners go: the garbage collector deletes the status object and the Secret.
  await h.unpublish(target);
  await core.deleteNamespacedPod({ namespace: NS, name: 'web-rs-x1', gracePeriodSeconds: 0 });
  await eventually(async () => !(await exists(getSpcps)), 60_000, 'the status object to be garbage-collected with its pod');
  t.ok(
    await exists(() => core.readNamespacedSecret({ namespace: NS, name: 'app-synced' })),
    'the Secret stays while its ReplicaSet exists',
  );
  await apps.deleteNamespacedReplicaSet({ namespace: NS, name: 'web-rs' });
  await eventually(
    async () => !(await exists(() => core.readNamespacedSecret({ namespace: NS, name: 'app-synced' }))),
    60_000,
    'the Secret to be garbage-collected',
  );
  t.pass('the Secret was garbage-collected once its last owner was deleted');
});

t.test('a bare pod, a kubernetes.io/tls Secret, and a clear message when RBAC forbids syncing', async (t) => {
  const ns = 'team-b';
  await ensureNamespace(ns);
  const driverKubeconfig = await serviceAccountKubeconfig(
    cp,
    kc,
    'kube-system',
    'secrets-store-csi-driver',
    join(cp.dir, `driver-b-${Date.now()}.kubeconfig`),
  );
  const h = await Harness.start(t as Tap, { kubeconfig: driverKubeconfig, nodeId: NODE, driverArgs: ['--rotation-poll-interval=2m'] });

  // A key and certificate as a provider would return them (one PEM file).
  const { execFileSync } = await import('node:child_process');
  const dir = t.testdir({});
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=app.example',
      '-keyout',
      join(dir, 'k.pem'),
      '-out',
      join(dir, 'c.pem'),
    ],
    { stdio: 'ignore' },
  );
  const keyPem = await readFile(join(dir, 'k.pem'), 'utf8');
  const certPem = await readFile(join(dir, 'c.pem'), 'utf8');
  await h.source('tls.json', { files: [{ path: 'bundle.pem', contents: keyPem + certPem }] });
  await apply(kc, [
    {
      apiVersion: `${GROUP}/v1`,
      kind: 'SecretProviderClass',
      metadata: { name: 'tls', namespace: ns },
      spec: {
        provider: 'example',
        parameters: { secretsFile: join(h.sourceDir, 'tls.json') },
        secretObjects: [
          {
            secretName: 'app-tls',
            type: 'kubernetes.io/tls',
            data: [
              { objectName: 'bundle.pem', key: 'tls.key' },
              { objectName: 'bundle.pem', key: 'tls.crt' },
            ],
          },
        ],
      },
    } as KubernetesObject,
  ]);

  const mkPod = async (name: string): Promise<{ uid: string; target: string }> => {
    const pod = await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name },
        spec: {
          nodeName: NODE,
          containers: [{ name: 'app', image: 'busybox' }],
          volumes: [
            { name: VOLUME, csi: { driver: 'secrets-store.csi.k8s.io', readOnly: true, volumeAttributes: { secretProviderClass: 'tls' } } },
          ],
        },
      },
    });
    const uid = pod.metadata!.uid!;
    const target = join(h.dir, 'pods', uid, 'volumes', 'kubernetes.io~csi', VOLUME, 'mount');
    await h.publish(
      h.publishRequest(target, 'tls', {
        volumeContext: {
          secretProviderClass: 'tls',
          'csi.storage.k8s.io/pod.name': name,
          'csi.storage.k8s.io/pod.namespace': ns,
          'csi.storage.k8s.io/pod.uid': uid,
        },
      }),
    );
    return { uid, target };
  };

  const a = await mkPod('bare-pod');
  const secret = await eventually(
    () => core.readNamespacedSecret({ namespace: ns, name: 'app-tls' }).catch(() => null),
    20_000,
    'the TLS Secret',
  );
  t.equal(secret.type, 'kubernetes.io/tls');
  const tlsKey = Buffer.from(secret.data!['tls.key']!, 'base64').toString();
  const tlsCrt = Buffer.from(secret.data!['tls.crt']!, 'base64').toString();
  t.match(tlsKey, /^-----BEGIN RSA PRIVATE KEY-----\n/, 'the key, re-encoded as PKCS#1');
  t.notMatch(tlsKey, /CERTIFICATE/);
  t.equal(tlsCrt.trim(), certPem.trim(), 'the certificate');
  const { createPrivateKey, X509Certificate } = await import('node:crypto');
  t.ok(new X509Certificate(tlsCrt).checkPrivateKey(createPrivateKey(tlsKey)), 'key and certificate belong together');
  t.same(
    secret.metadata!.ownerReferences!.map((o) => [o.kind, o.name]),
    [['SecretProviderClassPodStatus', `bare-pod-${ns}-tls`]],
    "a bare pod's Secret is owned by its status object",
  );

  // Without the syncing role the driver says what is missing, on the Pod.
  const rbac = (await manifests(join(ROOT, 'deploy'))).filter(
    (o) => o.kind === 'ClusterRoleBinding' && o.metadata?.name === 'secretprovidersyncing-rolebinding',
  );
  t.equal(rbac.length, 1);
  const { RbacAuthorizationV1Api } = await import('@kubernetes/client-node');
  const rbacApi = kc.makeApiClient(RbacAuthorizationV1Api);
  await rbacApi.deleteClusterRoleBinding({ name: 'secretprovidersyncing-rolebinding' });
  t.teardown(() => apply(kc, rbac).then(() => undefined));
  await core.deleteNamespacedSecret({ namespace: ns, name: 'app-tls' });
  const b = await mkPod('bare-pod-2');
  const ev = await eventually(
    async () => {
      const list = await core.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=bare-pod-2' });
      return list.items.find((e) => e.reason === 'FailedToCreateSecret');
    },
    20_000,
    'a FailedToCreateSecret event',
  );
  t.equal(ev.type, 'Warning');
  t.match(ev.message, /failed to sync secret team-b\/app-tls: HTTP 403/);
  t.match(ev.message, /secretprovidersyncing-role/, 'the message names the missing role');
  t.match(h.driver.out, /The secret operation failed with forbidden error/, "upstream's warning is logged");

  await apply(kc, rbac);
  await eventually(
    () => core.readNamespacedSecret({ namespace: ns, name: 'app-tls' }).catch(() => null),
    30_000,
    'the Secret once the role is back',
  );
  t.pass('sync recovers once the role is bound again');
  for (const p of [a, b]) await h.unpublish(p.target);
});

t.test('an object id sent twice (latest + pinned): one status entry per id, no status write or Event on unchanged polls', async (t) => {
  const ns = 'team-c';
  await ensureNamespace(ns);
  const driverKubeconfig = await serviceAccountKubeconfig(
    cp,
    kc,
    'kube-system',
    'secrets-store-csi-driver',
    join(cp.dir, `driver-c-${Date.now()}.kubeconfig`),
  );
  const h = await Harness.start(t as Tap, { kubeconfig: driverKubeconfig, nodeId: NODE, driverArgs: ['--rotation-poll-interval=1s'] });

  // As the Azure provider answers an SPC listing one Key Vault secret pinned
  // (alias db-password-previous) and then at its latest version: the id twice.
  const answer = (latest: string, value: string) => ({
    files: [
      { path: 'db-password-previous', contents: 'pw-v1' },
      { path: 'db-password', contents: value },
    ],
    objectVersions: [
      { id: 'secret/db-password', version: 'v1' },
      { id: 'secret/db-password', version: latest },
    ],
  });
  await h.source('s.json', answer('v2', 'pw-v2'));
  await apply(kc, [
    {
      apiVersion: `${GROUP}/v1`,
      kind: 'SecretProviderClass',
      metadata: { name: 'current-previous', namespace: ns },
      spec: { provider: 'example', parameters: { secretsFile: join(h.sourceDir, 's.json') } },
    } as KubernetesObject,
  ]);
  const name = 'dup-ids';
  const pod = await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name },
      spec: {
        nodeName: NODE,
        containers: [{ name: 'app', image: 'busybox' }],
        volumes: [
          {
            name: VOLUME,
            csi: { driver: 'secrets-store.csi.k8s.io', readOnly: true, volumeAttributes: { secretProviderClass: 'current-previous' } },
          },
        ],
      },
    },
  });
  const uid = pod.metadata!.uid!;
  const target = join(h.dir, 'pods', uid, 'volumes', 'kubernetes.io~csi', VOLUME, 'mount');
  await h.publish(
    h.publishRequest(target, 'current-previous', {
      volumeContext: {
        secretProviderClass: 'current-previous',
        'csi.storage.k8s.io/pod.name': name,
        'csi.storage.k8s.io/pod.namespace': ns,
        'csi.storage.k8s.io/pod.uid': uid,
      },
    }),
  );
  t.equal(await readFile(join(target, 'db-password'), 'utf8'), 'pw-v2');
  t.equal(await readFile(join(target, 'db-password-previous'), 'utf8'), 'pw-v1');

  const getSpcps = () =>
    custom.getNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace: ns,
      plural: 'secretproviderclasspodstatuses',
      name: `${name}-${ns}-current-previous`,
    }) as Promise<{
      metadata: { resourceVersion: string };
      status: { objects: Array<{ id: string; version: string }> };
    }>;
  const rotationEvents = async (): Promise<number> =>
    (await core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${name}` })).items.filter(
      (e) => e.reason === 'MountRotationComplete',
    ).length;
  const rotationsLogged = (): number => h.driver.out.split('\n').filter((l) => l.includes('"rotated volume content"')).length;

  const first = await getSpcps();
  t.strictSame(first.status.objects, [{ id: 'secret/db-password', version: 'v2' }], 'one status entry for the id: the version sent last');
  const polls = h.providerMounts();
  await eventually(async () => h.providerMounts() >= polls + 3, 15_000, 'three polls');
  t.equal(rotationsLogged(), 0, 'unchanged polls: no rotation (no status write, Secret sync or Event)');
  t.equal(await rotationEvents(), 0, 'no MountRotationComplete Event');
  t.equal((await getSpcps()).metadata.resourceVersion, first.metadata.resourceVersion, 'the status object is unchanged');

  // The latest version changes: content and the version sent last.
  await h.source('s.json', answer('v3', 'pw-v3'));
  await eventually(async () => (await readFile(join(target, 'db-password'), 'utf8')) === 'pw-v3', 10_000, 'the new latest value');
  await eventually(async () => (await getSpcps()).status.objects[0]?.version === 'v3', 10_000, 'the status object to carry v3');
  t.strictSame((await getSpcps()).status.objects, [{ id: 'secret/db-password', version: 'v3' }], 'still one entry');
  await eventually(async () => (await rotationEvents()) === 1, 10_000, 'one MountRotationComplete Event');
  const after = h.providerMounts();
  await eventually(async () => h.providerMounts() >= after + 3, 15_000, 'three more polls');
  t.equal(rotationsLogged(), 1, 'one rotation in all');
  t.equal(await rotationEvents(), 1, 'one MountRotationComplete Event in all');
  t.equal(await readFile(join(target, 'db-password-previous'), 'utf8'), 'pw-v1', 'the pinned file stays');

  await h.unpublish(target);
  await core.deleteNamespacedPod({ namespace: ns, name, gracePeriodSeconds: 0 });
});
