// The operator (src/operator, dist/src/bin/operator.js) as a real child
// process, authenticated as its own ServiceAccount bound to
// deploy/operator/rbac.yaml, against a control plane of this file's own (it
// creates cluster-scoped objects with fixed names that other test files
// apply to the shared one): install from a ClusterCSIDriver, spec changes,
// an invalid spec, no writes when nothing changed (also across a restart),
// Unmanaged, Removed and deletion with a pod still using the driver.

import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { Proc } from '../testkit/proc.js';
import { sleep } from '../testkit/wait.js';
import { NODE, ROOT } from './helpers/harness.js';
import { ControlPlaneUnavailable, startPrivateControlPlane, stopPrivateControlPlane, type ControlPlane } from './helpers/control-plane.js';
import { adminConfig, apply, applyCrds, eventually, manifests, serviceAccountKubeconfig } from './helpers/kube.js';
import { skipFile } from './helpers/skip.js';

const NS = 'secrets-store-csi-driver';
const NAME = 'secrets-store.csi.k8s.io';
const CR = { group: 'operator.openshift.io', version: 'v1', plural: 'clustercsidrivers' };
const IMAGE = 'registry.example.com/sscsi-driver:test';
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

let cp: ControlPlane;
try {
  cp = await startPrivateControlPlane();
} catch (e) {
  if (!(e instanceof ControlPlaneUnavailable)) throw e;
  skipFile('SSCSI_REQUIRE_K8S', `the operator test needs the control plane (test/control-plane/build.sh): ${e.message}`);
}
t.teardown(() => stopPrivateControlPlane(cp));

const kc = adminConfig(cp);
const objs = KubernetesObjectApi.makeApiClient(kc);
const apps = kc.makeApiClient(AppsV1Api);
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);

const opDir = join(ROOT, 'deploy/operator');
const opManifests = await manifests(opDir);
await applyCrds(kc, opManifests);
// rbac.yaml: the namespace, the ServiceAccount and its roles.
await apply(
  kc,
  opManifests.filter((o) => !['CustomResourceDefinition', 'Deployment', 'ClusterCSIDriver'].includes(o.kind!)),
);
// The Deployment and the example ClusterCSIDriver validate against the API (dry run: the test runs its own operator).
await apply(
  kc,
  opManifests.filter((o) => o.kind === 'Deployment' || o.kind === 'ClusterCSIDriver'),
  { dryRun: true },
);
const opKubeconfig = await serviceAccountKubeconfig(cp, kc, NS, 'secrets-store-csi-driver-operator', join(cp.dir, 'operator.kubeconfig'));

let operator: Proc | null = null;
async function startOperator(): Promise<Proc> {
  const p = new Proc(
    spawn(
      NODE,
      [
        join(ROOT, 'dist/src/bin/operator.js'),
        `--kubeconfig=${opKubeconfig}`,
        `--namespace=${NS}`,
        `--image=${IMAGE}`,
        '--node-selector=example.com/secrets=yes',
        '--resync-interval=1s',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
    'operator',
  );
  await p.waitFor(/operator started/, 30_000);
  return p;
}
t.teardown(() => operator?.stop());

// The objects the operator manages, as deploy/ names them, in NS.
const deploy = await manifests(join(ROOT, 'deploy'));
const managed = deploy
  .filter(
    (o) =>
      !o.metadata!.name!.startsWith('secretprovidersyncing') &&
      !o.metadata!.name!.includes('operator') &&
      !['CustomResourceDefinition', 'Namespace', 'Deployment', 'ClusterCSIDriver'].includes(o.kind!),
  )
  .map((o) => ({ ...o, metadata: { ...o.metadata, ...(o.metadata?.namespace ? { namespace: NS } : {}) } }));
managed.push({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'csi-secrets-store-metrics', namespace: NS } });
const refOf = (o: KubernetesObject) => ({
  apiVersion: o.apiVersion!,
  kind: o.kind!,
  metadata: { name: o.metadata!.name!, namespace: o.metadata?.namespace ?? '' },
});
const read = async (o: KubernetesObject): Promise<KubernetesObject | null> =>
  objs.read(refOf(o)).catch((e: { code?: number }) => {
    if (e.code === 404) return null;
    throw e;
  });

interface Cr extends KubernetesObject {
  spec: Record<string, unknown>;
  status?: {
    observedGeneration?: number;
    conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
    generations?: unknown[];
  };
}
const getCr = async (): Promise<Cr | null> =>
  (custom.getClusterCustomObject({ ...CR, name: NAME }) as Promise<Cr>).catch((e: { code?: number }) => {
    if (e.code === 404) return null;
    throw e;
  });
const patchSpec = (spec: Record<string, unknown>) => custom.patchClusterCustomObject({ ...CR, name: NAME, body: { spec } }, merge);
const condition = (cr: Cr | null, type: string) => cr?.status?.conditions?.find((c) => c.type === type);
const driverDs = () => apps.readNamespacedDaemonSet({ name: 'csi-secrets-store', namespace: NS });
const driverArgs = async () => (await driverDs()).spec!.template.spec!.containers.find((c) => c.name === 'secrets-store')!.args!;
const csiDriver = async () =>
  (await read({ apiVersion: 'storage.k8s.io/v1', kind: 'CSIDriver', metadata: { name: NAME } })) as KubernetesObject & {
    spec: { tokenRequests?: Array<{ audience: string }>; requiresRepublish?: boolean };
  };
const versions = async (): Promise<Record<string, string | undefined>> => {
  const out: Record<string, string | undefined> = {};
  for (const o of managed) out[`${o.kind}/${o.metadata!.name}`] = (await read(o))?.metadata?.resourceVersion;
  out.ClusterCSIDriver = (await getCr())?.metadata?.resourceVersion;
  return out;
};
const allGone = async () => (await Promise.all(managed.map(read))).every((o) => o === null);
const wait = <T>(fn: () => Promise<T | null | undefined | false>, what: string, ms = 30_000): Promise<T> =>
  eventually(fn, ms, what).catch((e: Error) => {
    throw new Error(`${e.message}\n${operator?.recentOutput(25) ?? ''}`);
  });

t.test('a ClusterCSIDriver installs every asset, with the expected content', async (t) => {
  operator = await startOperator();
  await custom.createClusterCustomObject({
    ...CR,
    body: {
      apiVersion: 'operator.openshift.io/v1',
      kind: 'ClusterCSIDriver',
      metadata: { name: NAME },
      spec: { managementState: 'Managed', operatorLogLevel: 'Debug' },
    },
  });
  await wait(async () => (await Promise.all(managed.map(read))).every(Boolean), 'every asset to exist');
  // Every later reconcile (status changes trigger them, and the 1s resync) must write none of these again.
  // DaemonSets are compared by generation: the test writes their status below.
  const notDs = (v: Record<string, string | undefined>) =>
    Object.fromEntries(Object.entries(v).filter(([k]) => !/^(DaemonSet|ClusterCSIDriver)/.test(k)));
  const installed = notDs(await versions());
  const cr = (await getCr())!;
  t.ok(cr.metadata!.finalizers?.includes('operator.secrets-store.csi.k8s.io/uninstall'), 'finalizer added');
  for (const o of managed) {
    const live = (await read(o))!;
    t.equal(
      live.metadata!.labels?.['app.kubernetes.io/managed-by'],
      'secrets-store-csi-driver-operator',
      `${o.kind} ${o.metadata!.name} labeled`,
    );
    t.same(
      live.metadata!.ownerReferences?.map((r) => [r.kind, r.uid]),
      [['ClusterCSIDriver', cr.metadata!.uid]],
      `${o.kind} ${o.metadata!.name} owned by the ClusterCSIDriver`,
    );
  }
  const ds = await driverDs();
  const pod = ds.spec!.template.spec!;
  t.equal(pod.containers.find((c) => c.name === 'secrets-store')!.image, IMAGE, 'driver image from --image');
  t.equal(pod.initContainers![0]!.image, IMAGE, 'init container image from --image');
  t.same(pod.nodeSelector, { 'kubernetes.io/os': 'linux', 'example.com/secrets': 'yes' }, 'node selector from --node-selector, linux kept');
  const args = await driverArgs();
  t.ok(
    args.includes('--log-level=info') && args.includes('--enable-secret-rotation=true') && args.includes('--rotation-poll-interval=2m'),
    'default driver args',
  );
  const keeper = await apps.readNamespacedDaemonSet({ name: 'csi-secrets-store-keeper', namespace: NS });
  t.equal(keeper.spec!.template.spec!.containers[0]!.image, IMAGE, 'keeper image from --image');
  const binding = (await read({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'secretproviderclasses-rolebinding' },
  })) as {
    subjects: Array<{ namespace: string }>;
  } & KubernetesObject;
  t.equal(binding.subjects[0]!.namespace, NS, 'binding names the ServiceAccount in --namespace');
  const svc = await core.readNamespacedService({ name: 'csi-secrets-store-metrics', namespace: NS });
  t.same(
    svc.spec!.ports!.map((p) => p.port),
    [8095],
    'metrics Service on the DaemonSet metrics port',
  );
  const drv = await csiDriver();
  t.same(drv.spec.tokenRequests ?? [], [], 'CSIDriver as deploy/ (no audiences)');
  for (const crd of ['secretproviderclasses', 'secretproviderclasspodstatuses']) {
    t.ok(
      await read({
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: `${crd}.secrets-store.csi.x-k8s.io` },
      }),
      `CRD ${crd} created`,
    );
  }
  // No DaemonSet controller runs here: until one observes the DaemonSets, they are not Available.
  const pending = await wait(async () => {
    const c = await getCr();
    return condition(c, 'SecretsStoreDriverAvailable')?.reason === 'NotObserved' && c;
  }, 'Available=False NotObserved');
  t.equal(condition(pending, 'SecretsStoreDriverProgressing')?.status, 'True', 'Progressing while not observed');
  // Play the DaemonSet controller of a cluster without nodes.
  for (const name of ['csi-secrets-store', 'csi-secrets-store-keeper']) {
    const ds = await apps.readNamespacedDaemonSet({ name, namespace: NS });
    await apps.patchNamespacedDaemonSetStatus(
      {
        name,
        namespace: NS,
        body: {
          status: {
            observedGeneration: ds.metadata!.generation,
            desiredNumberScheduled: 0,
            currentNumberScheduled: 0,
            numberMisscheduled: 0,
            numberReady: 0,
          },
        },
      },
      merge,
    );
  }
  const done = await wait(async () => {
    const c = await getCr();
    return condition(c, 'SecretsStoreDriverAvailable')?.status === 'True' && c!.status!.observedGeneration === c!.metadata!.generation && c;
  }, 'Available=True');
  t.equal(condition(done, 'SecretsStoreDriverProgressing')?.status, 'False', 'not Progressing once observed');
  // Reconciles since the install (status changes trigger them) rewrote nothing.
  await sleep(1500);
  t.same(notDs(await versions()), installed, 'no asset written again');
  t.equal((await driverDs()).metadata!.generation, 1, 'driver DaemonSet written once');
  t.equal(condition(done, 'SecretsStoreDriverDegraded')?.status, 'False', 'not degraded');
  t.equal(done.status!.generations!.length, 2, 'status.generations lists both DaemonSets');
  const events = await core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${NAME}` });
  t.ok(
    events.items.some((e) => e.reason === 'DriverAssetsApplied' && /created DaemonSet/.test(e.message ?? '')),
    'an Event says what was created',
  );
});

t.test('logLevel, secretRotation and tokenRequests reach the DaemonSet and the CSIDriver', async (t) => {
  await patchSpec({
    logLevel: 'Debug',
    driverConfig: {
      driverType: 'SecretsStore',
      secretsStore: {
        secretRotation: { type: 'Custom', custom: { minimumRefreshAge: '30s' } },
        tokenRequests: { type: 'Managed', managed: { audiences: [{ audience: 'vault' }] } },
      },
    },
  });
  await wait(async () => {
    const a = await driverArgs();
    return a.includes('--log-level=debug') && a.includes('--rotation-poll-interval=30s');
  }, 'debug log level and 30s rotation in the args');
  await wait(async () => (await csiDriver()).spec.tokenRequests?.[0]?.audience === 'vault', 'audience vault in the CSIDriver');
  t.equal((await csiDriver()).spec.requiresRepublish, true, 'requiresRepublish stays true');
  await patchSpec({ driverConfig: { secretsStore: { secretRotation: { type: 'None', custom: null } } } });
  await wait(async () => (await driverArgs()).includes('--enable-secret-rotation=false'), 'rotation off');
  t.pass('rotation None: --enable-secret-rotation=false');
});

t.test('an invalid spec changes nothing and says why', async (t) => {
  const before = await driverArgs();
  await patchSpec({
    logLevel: 'Trace',
    driverConfig: { secretsStore: { secretRotation: { type: 'Custom', custom: { minimumRefreshAge: 'soon' } } } },
  });
  const cr = await wait(async () => {
    const c = await getCr();
    return condition(c, 'SecretsStoreDriverDegraded')?.reason === 'InvalidSpec' && c;
  }, 'Degraded InvalidSpec');
  t.match(condition(cr, 'SecretsStoreDriverDegraded')!.message, /minimumRefreshAge: "soon" is not a duration/);
  await sleep(2500);
  t.same(await driverArgs(), before, 'the valid part (logLevel Trace) was not applied either');
  await patchSpec({ logLevel: 'Debug', driverConfig: { secretsStore: { secretRotation: { type: 'None', custom: null } } } });
  await wait(async () => condition(await getCr(), 'SecretsStoreDriverDegraded')?.status === 'False', 'Degraded cleared');
});

t.test('nothing changed: no writes, across resyncs and a restart', async (t) => {
  await sleep(2500);
  const before = await versions();
  await sleep(3500);
  t.same(await versions(), before, 'resyncs wrote nothing');
  await operator!.stop();
  operator = await startOperator();
  await sleep(4000);
  t.same(await versions(), before, 'a restarted operator wrote nothing');
});

t.test('Unmanaged leaves a hand edit alone; Managed reverts it', async (t) => {
  await patchSpec({ managementState: 'Unmanaged' });
  await sleep(2000);
  const edited = (await driverArgs()).map((a) => (a.startsWith('--log-level=') ? '--log-level=warn' : a));
  const idx = (await driverDs()).spec!.template.spec!.containers.findIndex((c) => c.name === 'secrets-store');
  await apps.patchNamespacedDaemonSet(
    {
      name: 'csi-secrets-store',
      namespace: NS,
      body: [{ op: 'replace', path: `/spec/template/spec/containers/${idx}/args`, value: edited }],
    },
    setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
  );
  await sleep(3500);
  t.ok((await driverArgs()).includes('--log-level=warn'), 'hand edit survives while Unmanaged');
  await patchSpec({ managementState: 'Managed' });
  await wait(async () => (await driverArgs()).includes('--log-level=debug'), 'Managed restores the args');
  t.pass('Managed reverted the hand edit');
});

const podUsingDriver = {
  metadata: { name: 'uses-secrets', namespace: 'default' },
  spec: {
    automountServiceAccountToken: false,
    containers: [{ name: 'app', image: 'registry.example.com/app:1', volumeMounts: [{ name: 's', mountPath: '/mnt/secrets' }] }],
    volumes: [{ name: 's', csi: { driver: NAME, readOnly: true, volumeAttributes: { secretProviderClass: 'x' } } }],
  },
};

t.test('Removed: pods using the driver reported by name, assets gone, finalizer dropped, CRDs kept', async (t) => {
  await wait(() => core.createNamespacedPod({ namespace: 'default', body: podUsingDriver }), 'the pod to be created');
  t.teardown(() => core.deleteNamespacedPod({ name: 'uses-secrets', namespace: 'default', gracePeriodSeconds: 0 }).catch(() => undefined));
  await patchSpec({ managementState: 'Removed' });
  await wait(allGone, 'every asset to be deleted');
  const cr = await wait(async () => {
    const c = await getCr();
    return !c?.metadata?.finalizers?.length && condition(c, 'SecretsStoreDriverVolumesInUse')?.status === 'True' && c;
  }, 'finalizer dropped and VolumesInUse reported');
  t.match(condition(cr, 'SecretsStoreDriverVolumesInUse')!.message, /default\/uses-secrets/, 'condition names the pod');
  t.equal(condition(cr, 'SecretsStoreDriverAvailable')?.status, 'False');
  const events = await core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${NAME}` });
  t.ok(
    events.items.some((e) => e.reason === 'VolumesInUse' && /default\/uses-secrets/.test(e.message ?? '')),
    'an Event names the pod',
  );
  t.ok(
    await read({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'secretproviderclasses.secrets-store.csi.x-k8s.io' },
    }),
    'CRD kept',
  );
});

t.test('deleting the ClusterCSIDriver uninstalls through the finalizer', async (t) => {
  await patchSpec({ managementState: 'Managed' });
  await wait(async () => (await Promise.all(managed.map(read))).every(Boolean), 'assets back after Managed');
  await wait(async () => (await getCr())?.metadata?.finalizers?.length, 'finalizer back');
  await custom.deleteClusterCustomObject({ ...CR, name: NAME });
  await wait(allGone, 'every asset to be deleted');
  await wait(async () => (await getCr()) === null, 'the ClusterCSIDriver to be gone');
  t.pass('assets deleted, then the object');
  t.ok(
    await read({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io' },
    }),
    'CRD kept',
  );
  t.equal(operator!.unexpectedExit(), null, 'the operator kept running');
});
