// The driver serves CSI before its informers have listed anything (their
// first lists run in the background; lookups fall back to the API server).
// An API server that refuses those lists (here: a ServiceAccount without the
// driver's RBAC, so 403) is a configuration error: the driver says so and
// stops with status 1, as a failed start would, leaving no mount behind.

import t from 'tap';
import { join } from 'node:path';
import { CoreV1Api, ApiException } from '@kubernetes/client-node';
import { Harness, mountsUnder, sleep, tempDir, type Tap } from './helpers/harness.js';
import { controlPlaneOrSkip } from './helpers/control-plane.js';
import { adminConfig, serviceAccountKubeconfig } from './helpers/kube.js';

const cp = await controlPlaneOrSkip('the informer refusal test needs the control plane');
const kc = adminConfig(cp);
const core = kc.makeApiClient(CoreV1Api);

t.test('a driver whose informers are refused serves first, then stops with status 1', async (t) => {
  const sa = 'sscsi-no-rbac';
  await core.createNamespacedServiceAccount({ namespace: 'default', body: { metadata: { name: sa } } }).catch((e: unknown) => {
    if (!(e instanceof ApiException && e.code === 409)) throw e;
  });
  const kubeconfig = await serviceAccountKubeconfig(cp, kc, 'default', sa, join(await tempDir(t as Tap), 'kubeconfig'));
  const h = await Harness.start(t as Tap, { kubeconfig });
  const code = await Promise.race([h.driver.exited, sleep(30_000).then(() => 'still running' as const)]);
  t.equal(code, 1, 'exits with status 1');
  const out = h.driver.out;
  t.match(out, /refused to list what the driver watches/, 'says why');
  t.match(out, /403/, 'with the server’s answer');
  t.ok(out.indexOf('"msg":"listening"') < out.indexOf('refused to list'), 'it served before the refusal arrived');
  t.same(await mountsUnder(h.dir), [], 'no mount left behind');
});
