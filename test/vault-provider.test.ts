// Our driver with a real provider nobody on the team wrote: HashiCorp's
// vault-csi-provider (v1.4.0, the last MPL-2.0 release) against an OpenBao
// dev server (the Vault API), both installed by test/peers/vault/build.sh,
// on the real control plane (test/control-plane/).
//
// The provider logs in to OpenBao's jwt auth with the pod's token for audience
// `vault` (minted by TokenRequest, passed in serviceAccount.tokens as kubelet
// would); OpenBao checks it against the apiserver's service-account key and
// issuer. It reads a KV v2 secret, and derives object versions from an HMAC
// key it keeps in a Kubernetes Secret. Checked: the file, a rotation after
// `bao kv put`, the status object's versions, and that no secret value or
// token reaches the driver's logs.
//
// The provider insists on in-cluster config: /var/run/secrets/kubernetes.io/
// serviceaccount/{token,namespace,ca.crt}. It runs in a mount namespace of
// its own where a tmpfs covers /run and our directory is bound there, so the
// host's /var/run is never written.

import t from 'tap';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import { Harness, Proc, ROOT, canary, execFileP, freePort, grepDisk, mountsUnder, type Tap } from './helpers/harness.js';
import { controlPlaneOrSkip } from './helpers/control-plane.js';
import { checkPeer } from './helpers/peers.js';
import { skipFile } from './helpers/skip.js';
import { adminConfig, apply, applyCrds, eventually, manifests, serviceAccountKubeconfig, token } from './helpers/kube.js';

const BUILD_SCRIPT = 'test/peers/vault/build.sh';
const GROUP = 'secrets-store.csi.x-k8s.io';
const NODE_ID = 'vault-node-1';
const VOLUME = 'vault-secrets';
const SA_DIR = 'secrets/kubernetes.io/serviceaccount'; // below /var/run

const peer = await checkPeer(BUILD_SCRIPT, 'vault-csi-provider and OpenBao (Go 1.20+, python3 with venv)');
if (!peer.built) skipFile('SSCSI_REQUIRE_VAULT', `the Vault provider test needs its peers: ${peer.why}`);
let provider = '';
let bao = '';
for (const line of peer.stdout.split('\n')) {
  const m = /^(VAULT_CSI_PROVIDER|BAO)=(.+)$/.exec(line);
  if (m?.[1] === 'VAULT_CSI_PROVIDER') provider = m[2]!;
  if (m?.[1] === 'BAO') bao = m[2]!;
}
if (!provider || !bao) throw new Error(`unexpected output of ${BUILD_SCRIPT} --check: ${peer.stdout}`);

const cp = await controlPlaneOrSkip('the Vault provider test needs the control plane');

const kc = adminConfig(cp);
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);

/** The payload of a JWT, unverified: only to read what the apiserver put in it. */
function jwtClaims(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

/** A loopback port whose successor is free too: a dev server also listens on port+1 (cluster address). */
async function freePortPair(): Promise<number> {
  const free = (p: number) =>
    new Promise<boolean>((res) => {
      const s = createServer()
        .once('error', () => res(false))
        .listen(p, '127.0.0.1', () => s.close(() => res(true)));
    });
  for (let i = 0; i < 20; i++) {
    const p = await freePort();
    if (p < 65535 && (await free(p + 1))) return p;
  }
  throw new Error('no two adjacent free loopback ports');
}

/** The driver's CRDs, RBAC and CSIDriver from deploy/ (idempotent: other test files apply them too). */
async function applyDeploy(): Promise<void> {
  const all = await manifests(join(ROOT, 'deploy'));
  await applyCrds(kc, all);
  await apply(
    kc,
    all.filter((o) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'CSIDriver'].includes(o.kind!)),
  );
}

/** A directory on tmpfs (tokens, the root token's HOME, policies): nothing of it touches the disk. */
async function shmDir(t: Tap, prefix: string): Promise<string> {
  const dir = await mkdtemp(join('/dev/shm', prefix));
  const gone = () => rmSync(dir, { recursive: true, force: true });
  // Also when the file is cut short (tap's timeout) and teardowns do not run.
  process.once('exit', gone);
  t.teardown(() => {
    process.off('exit', gone);
    return rm(dir, { recursive: true, force: true });
  });
  return dir;
}

interface OpenBao {
  proc: Proc;
  addr: string;
  cli(args: string[]): Promise<string>;
}

async function startOpenBao(t: Tap, home: string): Promise<OpenBao> {
  const port = await freePortPair();
  const addr = `http://127.0.0.1:${port}`;
  // A throwaway root token for a throwaway in-memory server; -dev-no-store-token
  // keeps it out of any token-helper file.
  const rootToken = `root-${Math.random().toString(36).slice(2)}`;
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home };
  const proc = new Proc(
    spawn(bao, ['server', '-dev', '-dev-no-store-token', `-dev-root-token-id=${rootToken}`, `-dev-listen-address=127.0.0.1:${port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    }),
  );
  t.teardown(() => proc.stop());
  await proc.waitFor(/root token generated|Development mode should NOT be used/, 30_000);
  await eventually(async () => (await fetch(`${addr}/v1/sys/health`)).status === 200, 20_000, 'OpenBao healthy');
  const cli = async (args: string[]): Promise<string> => {
    try {
      return (await execFileP(bao, args, { env: { ...env, BAO_ADDR: addr, BAO_TOKEN: rootToken } })).stdout;
    } catch (e) {
      const x = e as { stderr?: string; message: string };
      throw new Error(`bao ${args[0]} ${args[1] ?? ''}: ${x.stderr || x.message}`, { cause: e });
    }
  };
  return { proc, addr, cli };
}

/**
 * vault-csi-provider with in-cluster config: KUBERNETES_SERVICE_HOST/PORT,
 * and saDir (token, namespace, ca.crt) bound at /var/run/secrets/... inside
 * a private mount namespace. unshare and sh exec in place, so the child's
 * pid is the provider's; the namespace and its mounts end with it.
 */
async function startProvider(t: Tap, socket: string, saDir: string): Promise<{ proc: Proc; health: string }> {
  const runDir = await realpath('/var/run');
  const healthPort = await freePort();
  const api = new URL(cp.server);
  const script = [
    'mount -t tmpfs -o mode=0755,size=1m sscsi-vault-run "$1"',
    `mkdir -p "$1/${SA_DIR}"`,
    `mount --bind "$2" "$1/${SA_DIR}"`,
    'shift 2',
    'exec "$@"',
  ].join(' && ');
  const proc = new Proc(
    spawn(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        '--',
        'sh',
        '-c',
        script,
        'sh',
        runDir,
        saDir,
        provider,
        `-endpoint=${socket}`,
        `-health-addr=127.0.0.1:${healthPort}`,
        '-debug',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', KUBERNETES_SERVICE_HOST: api.hostname, KUBERNETES_SERVICE_PORT: api.port },
      },
    ),
  );
  t.teardown(() => proc.stop());
  await proc.waitFor(/Starting gRPC server/, 20_000);
  const health = `http://127.0.0.1:${healthPort}/health/ready`;
  await eventually(async () => (await fetch(health)).status === 200, 10_000, "the provider's health endpoint");
  return { proc, health };
}

t.test("vault-csi-provider + OpenBao: jwt login with the pod's token, KV v2 read, rotation, status versions", async (t) => {
  const sfx = Math.random().toString(36).slice(2, 8);
  const appNs = `vault-app-${sfx}`;
  const provNs = `vault-csi-${sfx}`;
  const v1 = canary('vault-v1');
  const v2 = canary('vault-v2');

  await applyDeploy();
  for (const name of [appNs, provNs]) await core.createNamespace({ body: { metadata: { name } } });
  t.teardown(async () => {
    for (const name of [appNs, provNs]) await core.deleteNamespace({ name }).catch(() => undefined);
  });
  await core.createNamespacedServiceAccount({ namespace: appNs, body: { metadata: { name: 'app' } } });
  await core.createNamespacedServiceAccount({ namespace: provNs, body: { metadata: { name: 'vault-csi-provider' } } });
  // Only what the provider does with the API: get, else create, its HMAC key Secret.
  await apply(kc, [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'vault-csi-provider', namespace: provNs },
      rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create'] }],
    } as KubernetesObject,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'vault-csi-provider', namespace: provNs },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'vault-csi-provider' },
      subjects: [{ kind: 'ServiceAccount', name: 'vault-csi-provider', namespace: provNs }],
    } as KubernetesObject,
  ]);

  const shm = await shmDir(t as Tap, 'sscsi-vault-');
  const saDir = join(shm, 'serviceaccount');
  await mkdir(saDir, { mode: 0o755 });
  const providerToken = (await token(kc, provNs, 'vault-csi-provider')).token;
  await writeFile(join(saDir, 'token'), providerToken, { mode: 0o600 });
  await writeFile(join(saDir, 'namespace'), provNs);
  await copyFile(cp.caFile, join(saDir, 'ca.crt'));

  // The driver under its own least-privilege account (deploy/rbac.yaml), as kubernetes.test.ts runs it.
  const driverKubeconfig = await serviceAccountKubeconfig(
    cp,
    kc,
    'kube-system',
    'secrets-store-csi-driver',
    join(shm, 'driver.kubeconfig'),
  );
  const h = await Harness.start(t as Tap, {
    kubeconfig: driverKubeconfig,
    nodeId: NODE_ID,
    startProvider: false,
    providerName: 'vault',
    driverArgs: ['--enable-secret-rotation=true', '--rotation-poll-interval=2s'],
  });

  // The pod, and its token for audience "vault" bound to it, as kubelet mints it.
  const pod = await core.createNamespacedPod({
    namespace: appNs,
    body: {
      metadata: { name: 'db-client' },
      spec: {
        nodeName: NODE_ID,
        serviceAccountName: 'app',
        containers: [{ name: 'app', image: 'busybox' }],
        volumes: [
          {
            name: VOLUME,
            csi: { driver: 'secrets-store.csi.k8s.io', readOnly: true, volumeAttributes: { secretProviderClass: 'vault-db' } },
          },
        ],
      },
    },
  });
  const uid = pod.metadata!.uid!;
  t.teardown(() => core.deleteNamespacedPod({ namespace: appNs, name: 'db-client', gracePeriodSeconds: 0 }).catch(() => undefined));
  const vaultToken = await token(kc, appNs, 'app', { audiences: ['vault'], pod: { name: 'db-client', uid } });
  const claims = jwtClaims(vaultToken.token);

  // OpenBao: jwt auth trusting the apiserver's service-account key and issuer
  // (read from a token it minted, so it is exactly --service-account-issuer).
  const ob = await startOpenBao(t as Tap, shm);
  await writeFile(join(shm, 'csi-read.hcl'), 'path "secret/data/*" { capabilities = ["read"] }\n');
  await ob.cli(['policy', 'write', 'csi-read', join(shm, 'csi-read.hcl')]);
  await ob.cli(['auth', 'enable', 'jwt']);
  await ob.cli(['write', 'auth/jwt/config', `jwt_validation_pubkeys=@${join(cp.dir, 'sa.pub')}`, `bound_issuer=${String(claims.iss)}`]);
  await ob.cli([
    'write',
    'auth/jwt/role/csi',
    'role_type=jwt',
    'user_claim=sub',
    'bound_audiences=vault',
    `bound_subject=system:serviceaccount:${appNs}:app`,
    'token_policies=csi-read',
    'token_ttl=20m',
  ]);
  await ob.cli(['kv', 'put', 'secret/db', `password=${v1}`, 'username=app-user']);

  const socket = join(h.providerDir, 'vault.sock');
  const prov = await startProvider(t as Tap, socket, saDir);
  t.pass(`vault-csi-provider serves ${socket}, health ${prov.health}`);

  await apply(kc, [
    {
      apiVersion: `${GROUP}/v1`,
      kind: 'SecretProviderClass',
      metadata: { name: 'vault-db', namespace: appNs },
      spec: {
        provider: 'vault',
        parameters: {
          vaultAddress: ob.addr,
          roleName: 'csi',
          vaultAuthMountPath: 'jwt',
          objects: [
            '- objectName: db-password',
            '  secretPath: secret/data/db',
            '  secretKey: password',
            '- objectName: db-username',
            '  secretPath: secret/data/db',
            '  secretKey: username',
            '',
          ].join('\n'),
        },
      },
    } as KubernetesObject,
  ]);

  const target = join(h.dir, 'pods', uid, 'volumes', 'kubernetes.io~csi', VOLUME, 'mount');
  const req = h.publishRequest(target, 'vault-db', {
    volumeContext: {
      secretProviderClass: 'vault-db',
      'csi.storage.k8s.io/pod.name': 'db-client',
      'csi.storage.k8s.io/pod.namespace': appNs,
      'csi.storage.k8s.io/pod.uid': uid,
      'csi.storage.k8s.io/serviceAccount.name': 'app',
      'csi.storage.k8s.io/ephemeral': 'true',
      'csi.storage.k8s.io/serviceAccount.tokens': JSON.stringify({ vault: vaultToken }),
    },
  });
  await h.publish(req);
  t.equal(await readFile(join(target, 'db-password'), 'utf8'), v1, 'the KV v2 value, through our mount');
  t.equal(await readFile(join(target, 'db-username'), 'utf8'), 'app-user', 'the second object');
  t.match(prov.proc.out, /using token from mount request for login/, 'the provider logged in with the token the driver passed on');
  t.notMatch(prov.proc.out, /Error generating HMAC key/, 'the provider could read or create its HMAC key');
  const hmacSecret = await core.readNamespacedSecret({ namespace: provNs, name: 'vault-csi-provider-hmac-key' });
  t.equal(hmacSecret.immutable, true, 'the provider created its HMAC key Secret in its own namespace');

  type Spcps = {
    status: { mounted: boolean; targetPath: string; secretProviderClassName: string; objects: Array<{ id: string; version: string }> };
  };
  const spcpsName = `db-client-${appNs}-vault-db`;
  const getSpcps = () =>
    custom.getNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace: appNs,
      plural: 'secretproviderclasspodstatuses',
      name: spcpsName,
    }) as Promise<Spcps>;
  const versionsOf = (s: Spcps) => Object.fromEntries(s.status.objects.map((o) => [o.id, o.version]));
  const first = await getSpcps();
  t.same(
    {
      mounted: first.status.mounted,
      targetPath: first.status.targetPath,
      spc: first.status.secretProviderClassName,
      ids: first.status.objects.map((o) => o.id),
    },
    { mounted: true, targetPath: target, spc: 'vault-db', ids: ['db-password', 'db-username'] },
    'the status object lists both objects',
  );
  const before = versionsOf(first);
  // The provider's versions: base64url of an HMAC-SHA256 over the object's config and content.
  for (const [id, v] of Object.entries(before)) t.match(v, /^[A-Za-z0-9_-]{43}=$/, `${id} has the provider's HMAC version`);

  // Rotation: a new value in OpenBao shows through the mount within a poll or two.
  await ob.cli(['kv', 'put', 'secret/db', `password=${v2}`, 'username=app-user']);
  await eventually(async () => (await readFile(join(target, 'db-password'), 'utf8')) === v2, 15_000, 'the rotated value in the mount');
  t.pass('the new value is served after a rotation poll');
  const after = versionsOf(
    await eventually(
      async () => {
        const s = await getSpcps();
        return versionsOf(s)['db-password'] !== before['db-password'] ? s : null;
      },
      10_000,
      'the status object to carry the new version',
    ),
  );
  t.not(after['db-password'], before['db-password'], 'db-password: a new version');
  t.equal(after['db-username'], before['db-username'], 'db-username: same content, same version');
  t.equal(await readFile(join(target, 'db-username'), 'utf8'), 'app-user');

  await h.unpublish(target);
  t.same(await mountsUnder(join(h.dir, 'pods')), [], 'unmounted');

  // Canaries: neither value nor any token reached the driver's logs or its disk.
  await h.driver.stop();
  for (const [what, needle] of [
    ['first value', v1],
    ['rotated value', v2],
    ['pod token', vaultToken.token],
    ['provider token', providerToken],
  ] as const) {
    t.notOk(h.driver.out.includes(needle), `the ${what} is not in the driver's logs`);
  }
  for (const needle of [v1, v2]) t.same(await grepDisk(h.dir, needle), [], "nor on disk under the driver's directory");
  t.ok(h.driver.out.length > 0, 'the driver did log (debug level)');
});
