// The operator's pure parts, without a cluster: the ClusterCSIDriver spec
// checked as a whole, the live-versus-desired comparison that keeps resyncs
// from writing, and the assets made from deploy/ (test/operator.test.ts
// runs the operator itself against a control plane), and its flags.

import t from 'tap';
import { join } from 'node:path';
import type { V1DaemonSet } from '@kubernetes/client-node';
import { ROOT } from './helpers/harness.js';
import { parseSpec } from '../src/operator/spec.js';
import { contains } from '../src/operator/apply.js';
import { loadManifests, renderAssets } from '../src/operator/assets.js';
import { daemonSetConditions } from '../src/operator/status.js';
import { parseOperatorFlags } from '../src/operator/flags.js';
import { execFileP } from '../testkit/run.js';

const ss = (secretsStore: unknown, rest: Record<string, unknown> = {}) => ({
  ...rest,
  driverConfig: { driverType: 'SecretsStore', secretsStore },
});

t.test('spec: defaults, log levels, rotation and token audiences', async (t) => {
  const empty = parseSpec({});
  t.same(empty, {
    ok: true,
    spec: {
      managementState: 'Managed',
      operatorLogLevel: 'info',
      driver: { logLevel: 'info', rotation: { enabled: true, pollInterval: null }, tokenRequests: null },
    },
  });
  const full = parseSpec(
    ss(
      {
        secretRotation: { type: 'Custom', custom: { minimumRefreshAge: '90s' } },
        tokenRequests: { type: 'Managed', managed: { audiences: [{ audience: 'vault', expirationSeconds: 900 }] } },
      },
      { managementState: 'Removed', logLevel: 'TraceAll', operatorLogLevel: 'Debug' },
    ),
  );
  t.ok(full.ok);
  if (full.ok) {
    t.equal(full.spec.managementState, 'Removed');
    t.equal(full.spec.driver.logLevel, 'trace', 'TraceAll is the driver trace level');
    t.equal(full.spec.operatorLogLevel, 'debug');
    t.same(full.spec.driver.rotation, { enabled: true, pollInterval: '90s' });
    t.same(full.spec.driver.tokenRequests, [{ audience: 'vault', expirationSeconds: 900 }]);
  }
  const none = parseSpec(ss({ secretRotation: { type: 'None' }, tokenRequests: { type: 'Managed' } }));
  t.same(
    none.ok && none.spec.driver,
    { logLevel: 'info', rotation: { enabled: false }, tokenRequests: [] },
    'None; Managed without audiences empties the list',
  );
});

t.test('spec: every problem is reported, and nothing is returned to apply', async (t) => {
  const bad = parseSpec(
    ss(
      {
        secretRotation: { type: 'Custom', custom: { minimumRefreshAge: '10ms' } },
        tokenRequests: {
          type: 'Managed',
          managed: { audiences: [{ audience: 'a' }, { audience: 'a' }, { audience: 'b', expirationSeconds: 60 }] },
        },
      },
      { logLevel: 'Loud', managementState: 'Sometimes' },
    ),
  );
  t.notOk(bad.ok);
  const errors = bad.ok ? [] : bad.errors;
  for (const re of [
    /logLevel: "Loud"/,
    /managementState: "Sometimes"/,
    /10ms is shorter than 1s/,
    /"a" is listed twice/,
    /expirationSeconds: must be an integer of at least 600/,
  ]) {
    t.ok(
      errors.some((e) => re.test(e)),
      `reports ${re}`,
    );
  }
  const noType = parseSpec({ driverConfig: { secretsStore: {} } });
  t.match(noType.ok ? [] : noType.errors, [/needs driverType SecretsStore/]);
  const custom = parseSpec(ss({ secretRotation: { type: 'Custom' } }));
  t.match(custom.ok ? [] : custom.errors, [/minimumRefreshAge: required/]);
});

t.test('contains: server defaults and extra fields ignored, values and list lengths compared', async (t) => {
  t.ok(contains({ a: 1, b: { c: 'x' } }, { a: 1, b: { c: 'x', d: 2 }, e: 3 }));
  t.notOk(contains({ a: 1 }, { a: 2 }));
  t.notOk(contains({ l: ['x'] }, { l: ['x', 'y'] }), 'a list with an extra item differs');
  t.ok(contains({ l: [{ n: 1 }] }, { l: [{ n: 1, default: true }] }));
  t.ok(contains({ l: [] }, {}), 'an empty list matches an absent one');
  t.notOk(contains({ l: ['x'] }, {}));
});

t.test('assets from deploy/: namespace, image, placement and driver settings patched, nothing else', async (t) => {
  const m = await loadManifests(join(ROOT, 'deploy'));
  const owner = {
    apiVersion: 'operator.openshift.io/v1',
    kind: 'ClusterCSIDriver',
    name: 'secrets-store.csi.k8s.io',
    uid: 'u1',
    controller: true,
  };
  const objs = renderAssets(
    m,
    {
      namespace: 'ns1',
      image: 'img:1',
      placement: { nodeSelector: { pool: 'a' }, tolerations: [{ key: 'k', operator: 'Exists' }], priorityClassName: 'p' },
    },
    { logLevel: 'debug', rotation: { enabled: false }, tokenRequests: [{ audience: 'x' }] },
    owner,
  );
  t.same(objs.map((o) => o.kind).sort(), [
    'CSIDriver',
    'ClusterRole',
    'ClusterRole',
    'ClusterRole',
    'ClusterRole',
    'ClusterRoleBinding',
    'DaemonSet',
    'DaemonSet',
    'Service',
    'ServiceAccount',
  ]);
  for (const o of objs) t.same(o.metadata!.ownerReferences, [owner], `${o.kind} ${o.metadata!.name} owned`);
  const ds = objs.find((o) => o.metadata!.name === 'csi-secrets-store') as V1DaemonSet;
  const pod = ds.spec!.template.spec!;
  const args = pod.containers.find((c) => c.name === 'secrets-store')!.args!;
  t.ok(
    args.includes('--log-level=debug') && args.includes('--enable-secret-rotation=false') && args.includes('--rotation-poll-interval=2m'),
  );
  t.equal(args.filter((a) => a.startsWith('--enable-secret-rotation')).length, 1, 'replaced, not added twice');
  t.equal(
    pod.containers.find((c) => c.name === 'node-driver-registrar')!.image!.startsWith('registry.k8s.io/'),
    true,
    'sidecar images untouched',
  );
  t.same(pod.nodeSelector, { 'kubernetes.io/os': 'linux', pool: 'a' });
  t.same(pod.tolerations, [{ key: 'k', operator: 'Exists' }]);
  t.equal(pod.priorityClassName, 'p');
  t.same(
    (objs.find((o) => o.kind === 'CSIDriver') as unknown as { spec: unknown }).spec,
    {
      ...(m.objects.find((o) => o.kind === 'CSIDriver') as unknown as { spec: object }).spec,
      tokenRequests: [{ audience: 'x' }],
    },
    'CSIDriver: deploy/ with the audiences',
  );
  t.ok(
    m.objects.every((o) => !o.metadata?.ownerReferences),
    "deploy/'s objects are not modified",
  );
});

t.test('DaemonSet conditions: observed and no unavailable pods is Available', async (t) => {
  const ds = (gen: number, observed: number, unavailable = 0): V1DaemonSet => ({
    metadata: { name: 'd', generation: gen },
    status: {
      observedGeneration: observed,
      numberUnavailable: unavailable,
      desiredNumberScheduled: 2,
      updatedNumberScheduled: 2,
      currentNumberScheduled: 2,
      numberMisscheduled: 0,
      numberReady: 2,
    },
  });
  t.match(daemonSetConditions([ds(2, 2)]), [{ status: 'True', reason: 'AsExpected' }, { status: 'False' }]);
  t.match(daemonSetConditions([ds(3, 2)]), [{ status: 'False', reason: 'NotObserved' }, { status: 'True' }]);
  t.match(daemonSetConditions([ds(2, 2, 1)]), [{ status: 'False', reason: 'PodsUnavailable', message: /1 of 2 pods/ }]);
  t.match(daemonSetConditions([ds(2, 2), null]), [{ status: 'False', reason: 'DaemonSetMissing' }]);
});

t.test('operator flags: placement, namespace, resync; --help and a bad flag from the binary', async (t) => {
  const f = parseOperatorFlags([
    '--namespace=ns1',
    '--node-selector=a=1, b=2',
    '--tolerations=[{"key":"k","operator":"Exists"}]',
    '--priority-class-name=p',
    '--resync-interval=30s',
  ])!;
  t.equal(f.assets.namespace, 'ns1');
  t.same(f.assets.placement, { nodeSelector: { a: '1', b: '2' }, tolerations: [{ key: 'k', operator: 'Exists' }], priorityClassName: 'p' });
  t.equal(f.resyncMs, 30_000);
  t.same(parseOperatorFlags([])!.assets, {
    namespace: 'secrets-store-csi-driver',
    image: null,
    placement: { nodeSelector: {}, tolerations: null, priorityClassName: null },
  });
  t.equal(parseOperatorFlags(['--help']), null);
  t.throws(() => parseOperatorFlags(['--node-selector=novalue']), /key=value/);
  t.throws(() => parseOperatorFlags(['--tolerations={}']), /JSON list/);
  t.throws(() => parseOperatorFlags(['--namespace=Bad_NS']), /not a namespace name/);
  t.throws(() => parseOperatorFlags(['--bogus']));

  const bin = join(ROOT, 'dist/src/bin/operator.js');
  const help = await execFileP(process.execPath, [bin, '--help', '--kubeconfig=/nonexistent']);
  t.match(help.stdout, /^Usage of secrets-store-csi-driver-operator:\n/, '--help prints the usage and exits 0 without connecting');
  const bad = await execFileP(process.execPath, [bin, '--bogus']).then(
    () => null,
    (e: { code: number; stderr: string }) => e,
  );
  t.equal(bad?.code, 2, 'an unknown flag exits 2');
  t.match(bad?.stderr, /bogus/);
});
