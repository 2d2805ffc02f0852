// The Helm chart (charts/secrets-store-csi-driver): lint; deploy/ equal to
// its default render, object by object, so the two never drift; a values
// file in the shape of upstream's chart rendering the flags, token audiences
// and RBAC it asks for; rbac.install and linux.crds.enabled switching their
// objects; and a real install, upgrade and uninstall against a control plane
// of this test's own (the chart's cluster-wide objects have fixed names that
// the other test files apply to the shared one).
//
// Helm is built by test/peers/helm/build.sh; without it the file is skipped,
// unless SSCSI_REQUIRE_HELM=1 makes that a failure.

import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import {
  ApiException,
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  StorageV1Api,
  type KubernetesObject,
  type V1DaemonSet,
} from '@kubernetes/client-node';
import { ROOT } from './helpers/harness.js';
import { ControlPlaneUnavailable, startPrivateControlPlane, stopPrivateControlPlane } from './helpers/control-plane.js';
import { adminConfig, eventually, manifests } from './helpers/kube.js';
import { skipFile, skipRest } from './helpers/skip.js';

const execFileP = promisify(execFile);
const CHART = join(ROOT, 'charts/secrets-store-csi-driver');
const UPSTREAM_VALUES = join(ROOT, 'test/fixtures/helm/upstream-values.yaml');
const SYNC_FILE = 'rbac-secretprovidersyncing.yaml';

let helm: string;
try {
  helm = (await execFileP('bash', [join(ROOT, 'test/peers/helm/build.sh'), '--check'])).stdout.trim().split('\n').pop()!;
} catch {
  skipFile('SSCSI_REQUIRE_HELM', 'the Helm chart test needs helm: not built (run test/peers/helm/build.sh)');
}

// Helm's own cache, config and data stay out of $HOME.
const helmHome = await mkdtemp(join(tmpdir(), 'sscsi-helm-'));
t.teardown(() => rm(helmHome, { recursive: true, force: true }));
const helmEnv = {
  ...process.env,
  HELM_CACHE_HOME: join(helmHome, 'cache'),
  HELM_CONFIG_HOME: join(helmHome, 'config'),
  HELM_DATA_HOME: join(helmHome, 'data'),
};
const runHelm = async (args: string[]): Promise<string> => (await execFileP(helm, args, { env: helmEnv, maxBuffer: 64 << 20 })).stdout;

interface Meta {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
type Obj = KubernetesObject & {
  spec?: { template?: { metadata?: Meta }; tokenRequests?: unknown[]; requiresRepublish?: boolean };
  subjects?: unknown[];
};

/** `helm template` (release csi-secrets-store in kube-system, as deploy/ names them) parsed into objects. */
async function render(extra: string[] = []): Promise<Obj[]> {
  const out = await runHelm(['template', 'csi-secrets-store', CHART, '--namespace', 'kube-system', ...extra]);
  return parseAllDocuments(out)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => !!o?.kind);
}
const find = (objs: Obj[], kind: string, name?: string): Obj | undefined =>
  objs.find((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
const names = (objs: Obj[], kind: string): string[] =>
  objs
    .filter((o) => o.kind === kind)
    .map((o) => o.metadata!.name!)
    .sort();

// What Helm adds and deploy/ does not carry: its bookkeeping labels, and the
// annotation that keeps CRDs on uninstall.
const HELM_LABELS = [
  'app.kubernetes.io/name',
  'app.kubernetes.io/instance',
  'app.kubernetes.io/version',
  'app.kubernetes.io/managed-by',
  'helm.sh/chart',
];
function withoutHelmMetadata(o: Obj): Obj {
  const c = structuredClone(o);
  for (const meta of [c.metadata, c.spec?.template?.metadata]) {
    if (!meta) continue;
    for (const l of HELM_LABELS) delete meta.labels?.[l];
    if (meta.labels && Object.keys(meta.labels).length === 0) delete meta.labels;
    delete meta.annotations?.['helm.sh/resource-policy'];
    if (meta.annotations && Object.keys(meta.annotations).length === 0) delete meta.annotations;
  }
  return c;
}
const byKey = (objs: Obj[]): Record<string, Obj> =>
  Object.fromEntries(objs.map((o) => [`${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`, o]));

/** deploy/'s objects; without its secret-sync RBAC file unless withSync. */
async function deployObjects(withSync: boolean): Promise<Obj[]> {
  const all = (await manifests(join(ROOT, 'deploy'))) as Obj[];
  if (withSync) return all;
  const sync = parseAllDocuments(await readFile(join(ROOT, 'deploy', SYNC_FILE), 'utf8'))
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => !!o?.kind);
  if (sync.length !== 2) throw new Error(`deploy/${SYNC_FILE} should hold the secret-sync ClusterRole and binding`);
  const skip = new Set(sync.map((o) => `${o.kind}/${o.metadata?.name}`));
  return all.filter((o) => !skip.has(`${o.kind}/${o.metadata?.name}`));
}

const daemonSet = (objs: Obj[], name: string): V1DaemonSet => find(objs, 'DaemonSet', name) as V1DaemonSet;
const container = (ds: V1DaemonSet, name: string) => ds.spec!.template.spec!.containers.find((c) => c.name === name)!;

t.test('helm lint, with the default values and with an upstream-shaped values file', async (t) => {
  t.match(await runHelm(['lint', '--strict', CHART]), /1 chart\(s\) linted, 0 chart\(s\) failed/);
  t.match(await runHelm(['lint', '--strict', CHART, '-f', UPSTREAM_VALUES]), /0 chart\(s\) failed/);
});

t.test('deploy/ is the default render (release csi-secrets-store, fullnameOverride csi-secrets-store)', async (t) => {
  const base = ['--set', 'fullnameOverride=csi-secrets-store'];
  const chart = byKey((await render(base)).map(withoutHelmMetadata));
  const deploy = byKey(await deployObjects(false));
  t.strictSame(Object.keys(chart).sort(), Object.keys(deploy).sort(), 'the same objects');
  for (const k of Object.keys(deploy)) t.strictSame(chart[k], deploy[k], k);
  // deploy/'s separate secret-sync file is what syncSecret.enabled adds.
  const withSync = byKey((await render([...base, '--set', 'syncSecret.enabled=true'])).map(withoutHelmMetadata));
  const deployAll = byKey(await deployObjects(true));
  t.strictSame(Object.keys(withSync).sort(), Object.keys(deployAll).sort(), `syncSecret.enabled adds the objects of deploy/${SYNC_FILE}`);
  for (const k of Object.keys(deployAll)) t.strictSame(withSync[k], deployAll[k], k);
});

t.test('default values: names as upstream chart, no sync RBAC, empty token audiences, CRDs kept on uninstall', async (t) => {
  const objs = await render();
  t.same(
    names(objs, 'DaemonSet'),
    ['csi-secrets-store-secrets-store-csi-driver', 'csi-secrets-store-secrets-store-csi-driver-keeper'],
    "fullname as upstream's chart",
  );
  t.strictSame(find(objs, 'CSIDriver')!.spec?.tokenRequests, []);
  t.equal(find(objs, 'CSIDriver')!.spec?.requiresRepublish, true);
  t.notOk(find(objs, 'ClusterRole', 'secretprovidersyncing-role'), 'no secret-sync role by default (upstream: syncSecret.enabled false)');
  t.same(names(objs, 'CustomResourceDefinition'), [
    'secretproviderclasses.secrets-store.csi.x-k8s.io',
    'secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io',
  ]);
  for (const crd of objs.filter((o) => o.kind === 'CustomResourceDefinition')) {
    t.equal(crd.metadata?.annotations?.['helm.sh/resource-policy'], 'keep', `${crd.metadata?.name} is kept on uninstall`);
  }
  const args = container(daemonSet(objs, 'csi-secrets-store-secrets-store-csi-driver'), 'secrets-store').args!;
  t.ok(args.includes('--enable-secret-rotation=true') && args.includes('--keeper-socket=/var/run/secrets-store-csi-driver/keeper.sock'));
  t.notOk(
    args.some((a) => a.startsWith('--log-level')),
    'no --log-level at logVerbosity 0',
  );
});

t.test('an upstream-shaped values file: flags, images, scheduling, audiences, sync RBAC; upstream-only keys ignored', async (t) => {
  const objs = await render(['-f', UPSTREAM_VALUES]);
  const ds = daemonSet(objs, 'csi-secrets-store-secrets-store-csi-driver');
  const driver = container(ds, 'secrets-store');
  t.strictSame(
    driver.args,
    [
      '--log-level=trace',
      '--endpoint=$(CSI_ENDPOINT)',
      '--nodeid=$(KUBE_NODE_NAME)',
      '--provider-volume=/var/run/secrets-store-csi-providers',
      '--additional-provider-volume-paths=/etc/kubernetes/secrets-store-csi-providers,/opt/providers',
      '--enable-secret-rotation=true',
      '--rotation-poll-interval=30s',
      '--metrics-addr=:8198',
      '--max-call-recv-msg-size=8388608',
      '--fuse-mount-dir=/var/run/secrets-store-csi-driver/fuse',
      '--kubelet-root-dir=/var/lib/k0s/kubelet',
      '--keeper-socket=/var/run/secrets-store-csi-driver/keeper.sock',
      '--lock-memory=true',
      '--inotify-events=true',
    ],
    'driver flags (logFormatJSON and providerHealthCheck* render nothing)',
  );
  t.equal(driver.image, 'mirror.example.com/sscsi/driver:v0.1.0');
  t.equal(driver.imagePullPolicy, 'Always');
  t.same(
    driver.ports!.map((p) => [p.name, p.containerPort]),
    [
      ['healthz', 9908],
      ['metrics', 8198],
    ],
  );
  t.equal(driver.env![0]!.name, 'HTTPS_PROXY');
  t.same(driver.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '200m', memory: '512Mi' } });
  t.ok(
    driver.volumeMounts!.some((m) => m.name === 'extra-ca') && ds.spec!.template.spec!.volumes!.some((v) => v.name === 'extra-ca'),
    'extra volume and mount',
  );
  t.ok(
    driver.volumeMounts!.some((m) => m.mountPath === '/var/lib/k0s/kubelet/pods'),
    'kubeletRootDir',
  );
  t.ok(
    driver.volumeMounts!.some((m) => m.name === 'providers-dir-1' && m.mountPath === '/opt/providers'),
    'second additional providers dir',
  );
  const registrar = container(ds, 'node-driver-registrar');
  t.equal(registrar.image, 'mirror.example.com/sig-storage/csi-node-driver-registrar:v2.16.0');
  t.ok(
    registrar.args!.includes('--v=2') &&
      registrar.args!.includes('--kubelet-registration-path=/var/lib/k0s/kubelet/plugins/csi-secrets-store/csi.sock'),
  );
  const probe = container(ds, 'liveness-probe');
  t.match(probe.image, /livenessprobe@sha256:0{64}$/, 'digest wins over tag');
  t.ok(probe.args!.includes('--http-endpoint=0.0.0.0:9908') && probe.args!.includes('-v=4'));
  const pod = ds.spec!.template;
  t.same(pod.spec!.nodeSelector, { 'kubernetes.io/os': 'linux', 'node-role.example.com/secrets': 'true' });
  t.same(pod.spec!.tolerations, [{ key: 'dedicated', operator: 'Equal', value: 'secrets', effect: 'NoSchedule' }]);
  t.equal(pod.spec!.priorityClassName, 'system-cluster-critical');
  t.same(pod.spec!.imagePullSecrets, [{ name: 'mirror-credentials' }]);
  t.equal(pod.metadata!.annotations!['prometheus.io/scrape'], 'true');
  t.equal(pod.metadata!.labels!['cost-center'], '42');
  t.equal(ds.metadata!.annotations!.owner, 'platform-team');
  t.equal(ds.metadata!.labels!.team, 'platform', 'commonLabels');
  t.strictSame(ds.spec!.updateStrategy!.rollingUpdate, { maxUnavailable: '10%' }, "upstream's maxUnavailable wins over the default surge");
  const keeper = daemonSet(objs, 'csi-secrets-store-secrets-store-csi-driver-keeper');
  t.equal(keeper.spec!.template.spec!.containers[0]!.image, 'mirror.example.com/sscsi/driver:v0.1.0');
  t.same(keeper.spec!.template.spec!.tolerations, pod.spec!.tolerations, "the keeper follows the driver's scheduling");

  t.strictSame(find(objs, 'CSIDriver')!.spec?.tokenRequests, [
    { audience: 'api://AzureADTokenExchange' },
    { audience: 'vault', expirationSeconds: 3600 },
  ]);
  t.ok(find(objs, 'ClusterRole', 'secretprovidersyncing-role'), 'syncSecret.enabled: the secret-sync role');
  t.same(find(objs, 'ClusterRoleBinding', 'secretprovidersyncing-rolebinding')!.subjects, [
    { kind: 'ServiceAccount', name: 'secrets-store-csi-driver', namespace: 'kube-system' },
  ]);
  t.equal(names(objs, 'CustomResourceDefinition').length, 2);
  // windows.*, linux.crds.image/annotations/podLabels: nothing of them.
  t.same(
    [...new Set(objs.map((o) => o.kind))].sort(),
    ['CSIDriver', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'DaemonSet', 'ServiceAccount'],
    'no Jobs, no Windows DaemonSet',
  );
  t.notOk(JSON.stringify(objs).includes('driver-crds') || JSON.stringify(objs).includes('C:\\\\'), 'upstream-only values leave no trace');
});

t.test('rbac.install, syncSecret.enabled, crds, keeper, lockMemory, builtinRegistrar switch their parts', async (t) => {
  const off = await render([
    '--set',
    'rbac.install=false',
    '--set',
    'linux.crds.enabled=false',
    '--set',
    'keeper.enabled=false',
    '--set',
    'lockMemory=false',
  ]);
  t.notOk(find(off, 'ServiceAccount'), 'no ServiceAccount');
  t.same(names(off, 'ClusterRole'), [], 'no ClusterRoles');
  t.same(names(off, 'ClusterRoleBinding'), []);
  t.same(names(off, 'CustomResourceDefinition'), [], 'no CRDs');
  t.same(names(off, 'DaemonSet'), ['csi-secrets-store-secrets-store-csi-driver'], 'no keeper');
  const driver = container(daemonSet(off, 'csi-secrets-store-secrets-store-csi-driver'), 'secrets-store');
  t.notOk(
    driver.args!.some((a) => a.startsWith('--keeper-socket')),
    'no keeper socket',
  );
  t.ok(driver.args!.includes('--lock-memory=false'));
  t.same(driver.securityContext!.capabilities!.add, ['SYS_ADMIN'], 'no IPC_LOCK without memory locking');
  const on = await render();
  t.same(names(on, 'ClusterRole'), [
    'secretproviderclasses-admin-role',
    'secretproviderclasses-role',
    'secretproviderclasses-viewer-role',
    'secretproviderclasspodstatuses-viewer-role',
  ]);
  t.same(names(on, 'ClusterRoleBinding'), ['secretproviderclasses-rolebinding']);
  const syncOnly = await render(['--set', 'rbac.install=false', '--set', 'syncSecret.enabled=true']);
  t.same(
    names(syncOnly, 'ClusterRole'),
    ['secretprovidersyncing-role'],
    'syncSecret.enabled without rbac.install: only the sync role, as upstream',
  );
  const levels = await render(['--set', 'logVerbosity=2']);
  t.ok(
    container(daemonSet(levels, 'csi-secrets-store-secrets-store-csi-driver'), 'secrets-store').args!.includes('--log-level=debug'),
    'logVerbosity 2: debug',
  );
  const builtin = daemonSet(await render(['--set', 'linux.builtinRegistrar.enabled=true']), 'csi-secrets-store-secrets-store-csi-driver');
  t.same(
    builtin.spec!.template.spec!.containers.map((c) => c.name),
    ['secrets-store', 'liveness-probe'],
    'linux.builtinRegistrar.enabled: no node-driver-registrar sidecar',
  );
  const registering = container(builtin, 'secrets-store');
  t.same(
    registering.args!.filter((a) => /registration-path/.test(a)),
    ['--kubelet-registration-path=/var/lib/kubelet/plugins/csi-secrets-store/csi.sock', '--plugin-registration-path=/registration'],
    'the driver registers itself',
  );
  t.ok(
    registering.volumeMounts!.some((m) => m.name === 'registration-dir' && m.mountPath === '/registration'),
    'and mounts the registration directory',
  );
  t.notOk(
    container(daemonSet(on, 'csi-secrets-store-secrets-store-csi-driver'), 'secrets-store').args!.some((a) => /registration-path/.test(a)),
    'off by default',
  );
  const noLinux = await render(['--set', 'linux.enabled=false']);
  t.same(names(noLinux, 'DaemonSet'), [], 'linux.enabled=false: no DaemonSets');
});

t.test("upstream's own driver image is refused with a message", async (t) => {
  await t.rejects(
    render(['--set', 'linux.image.repository=registry.k8s.io/csi-secrets-store/driver', '--set', 'linux.image.tag=v1.6.0']),
    /upstream's Go driver image/,
  );
});

t.test('helm install, upgrade and uninstall against a real API server', async (t) => {
  let cp;
  try {
    cp = await startPrivateControlPlane();
  } catch (e) {
    if (!(e instanceof ControlPlaneUnavailable)) throw e;
    skipRest(
      t,
      'helm install, upgrade and uninstall',
      'SSCSI_REQUIRE_K8S',
      `needs the control plane (test/control-plane/build.sh): ${e.message}`,
    );
    return;
  }
  t.teardown(() => stopPrivateControlPlane(cp));
  const kc = adminConfig(cp);
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const storage = kc.makeApiClient(StorageV1Api);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  const gone = (p: Promise<unknown>) =>
    p.then(
      () => false,
      (e: unknown) => {
        if (e instanceof ApiException && e.code === 404) return true;
        throw e;
      },
    );

  const suffix = Date.now().toString(36);
  const release = `sscsi-${suffix}`;
  const ns = `sscsi-chart-${suffix}`;
  const kube = ['--kubeconfig', cp.adminKubeconfig, '--namespace', ns];
  await runHelm(['install', release, CHART, ...kube, '--create-namespace', '-f', UPSTREAM_VALUES]);
  const ds = `${release}-secrets-store-csi-driver`;

  const driverDs = await apps.readNamespacedDaemonSet({ namespace: ns, name: ds });
  t.equal(
    driverDs.spec!.template.spec!.containers.find((c) => c.name === 'secrets-store')!.args!.includes('--rotation-poll-interval=30s'),
    true,
    'driver DaemonSet',
  );
  t.ok(await apps.readNamespacedDaemonSet({ namespace: ns, name: `${ds}-keeper` }), 'keeper DaemonSet');
  t.ok(await core.readNamespacedServiceAccount({ namespace: ns, name: 'secrets-store-csi-driver' }), 'ServiceAccount');
  const clusterRoles = [
    'secretproviderclasses-role',
    'secretproviderclasses-admin-role',
    'secretproviderclasses-viewer-role',
    'secretproviderclasspodstatuses-viewer-role',
    'secretprovidersyncing-role',
  ];
  for (const name of clusterRoles) t.ok(await rbac.readClusterRole({ name }), `ClusterRole ${name}`);
  const bindings = ['secretproviderclasses-rolebinding', 'secretprovidersyncing-rolebinding'];
  for (const name of bindings)
    t.equal(
      (await rbac.readClusterRoleBinding({ name })).subjects![0]!.namespace,
      ns,
      `ClusterRoleBinding ${name} binds the release's ServiceAccount`,
    );
  const csi = await storage.readCSIDriver({ name: 'secrets-store.csi.k8s.io' });
  t.same(
    csi.spec.tokenRequests?.map((r) => r.audience),
    ['api://AzureADTokenExchange', 'vault'],
    'CSIDriver with the token audiences',
  );
  const crds = ['secretproviderclasses.secrets-store.csi.x-k8s.io', 'secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io'];
  for (const name of crds) t.ok(await ext.readCustomResourceDefinition({ name }), `CRD ${name}`);

  // An upgrade changes configuration in place: new audiences, sync RBAC off.
  await runHelm([
    'upgrade',
    release,
    CHART,
    ...kube,
    '-f',
    UPSTREAM_VALUES,
    '--set-json',
    'tokenRequests=[{"audience":"sts.amazonaws.com"}]',
    '--set',
    'syncSecret.enabled=false',
  ]);
  t.same(
    (await storage.readCSIDriver({ name: 'secrets-store.csi.k8s.io' })).spec.tokenRequests?.map((r) => r.audience),
    ['sts.amazonaws.com'],
    'upgrade: audiences replaced',
  );
  t.ok(await gone(rbac.readClusterRole({ name: 'secretprovidersyncing-role' })), 'upgrade: sync role removed');

  await runHelm(['uninstall', release, ...kube, '--wait']);
  await eventually(async () => gone(apps.readNamespacedDaemonSet({ namespace: ns, name: ds })), 30_000, 'driver DaemonSet deleted');
  t.ok(await gone(apps.readNamespacedDaemonSet({ namespace: ns, name: `${ds}-keeper` })), 'keeper DaemonSet gone');
  t.ok(await gone(core.readNamespacedServiceAccount({ namespace: ns, name: 'secrets-store-csi-driver' })), 'ServiceAccount gone');
  for (const name of clusterRoles) t.ok(await gone(rbac.readClusterRole({ name })), `ClusterRole ${name} gone`);
  for (const name of bindings) t.ok(await gone(rbac.readClusterRoleBinding({ name })), `ClusterRoleBinding ${name} gone`);
  t.ok(await gone(storage.readCSIDriver({ name: 'secrets-store.csi.k8s.io' })), 'CSIDriver gone');
  // As upstream's chart: CRDs stay, or every SecretProviderClass would go with them.
  for (const name of crds)
    t.equal(
      (await ext.readCustomResourceDefinition({ name })).metadata!.annotations!['helm.sh/resource-policy'],
      'keep',
      `CRD ${name} kept`,
    );

  // Installing again over the kept CRDs works (they still carry the release's ownership).
  await runHelm(['install', release, CHART, ...kube]);
  t.ok(await storage.readCSIDriver({ name: 'secrets-store.csi.k8s.io' }), 'reinstalled over the kept CRDs');
  await runHelm(['uninstall', release, ...kube, '--wait']);
  for (const name of crds) await ext.deleteCustomResourceDefinition({ name });
  await core.deleteNamespace({ name: ns });
});
