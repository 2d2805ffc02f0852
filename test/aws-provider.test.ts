// Our driver against the real AWS provider (aws/secrets-store-csi-driver-provider-aws
// 3.1.1, AWS SDK for Go v2) and moto 5.2.5 in server mode, both from
// test/peers/aws/build.sh, with the Pod Identity path: the pod's token for
// audience pods.eks.amazonaws.com is minted by the real control plane
// (TokenRequest for a Pod we create), handed over the way kubelet does in
// csi.storage.k8s.io/serviceAccount.tokens, and the provider trades it at a
// stub Pod Identity agent of ours for static credentials it then signs its
// Secrets Manager and SSM calls to moto with.
//
// Everything of the AWS side lives in a network namespace of the test's own,
// held by the stub agent process (so it vanishes with the processes, and
// nothing is left behind by name): loopback up, 169.254.170.23 (the agent's
// fixed address in the provider) on lo, moto on 127.0.0.1:5000, and the
// provider. The provider's unix socket is on the shared filesystem, so our
// driver stays outside.
//
// The provider calls rest.InClusterConfig at start, which reads a fixed path
// (/var/run/secrets/kubernetes.io/serviceaccount/token): it runs in a mount
// namespace of its own with a temp dir bound there. That namespace is a
// slave of a shared bind mount holding the pod volumes, because on a
// rotation poll the provider reads the served Secrets Manager files back
// through the target path when their version is still current.
//
// Both of the provider's modes: --driver-writes-secrets=true (as its Helm
// chart sets it), where it returns the files, and its default, where it
// writes them into the target path itself (temp file, chmod, write, fsync,
// rename) through our FUSE write window during its Mount call.
//
// Without the built peers the test is skipped, unless SSCSI_REQUIRE_AWS=1
// (.ci/run, when build.sh could build them), where it fails and names the build script; without the control
// plane likewise, with SSCSI_REQUIRE_K8S.

import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiException, CoreV1Api } from '@kubernetes/client-node';
import { Harness, NODE, Proc, canary, execFileP, mountsUnder, tempDir, waitUntil, type Tap } from './helpers/harness.js';
import { controlPlaneOrSkip } from './helpers/control-plane.js';
import { checkPeer } from './helpers/peers.js';
import { skipFile } from './helpers/skip.js';
import { adminConfig, eventually, token } from './helpers/kube.js';

const BUILD_SCRIPT = 'test/peers/aws/build.sh';
const AGENT_IP = '169.254.170.23';
const MOTO = 'http://127.0.0.1:5000';
const REGION = 'us-east-1';
const POD_IDENTITY_AUDIENCE = 'pods.eks.amazonaws.com';
const NS = 'aws-provider';
const NODE_NAME = 'aws-node-1';
const VOLUME = 'aws-secrets';

async function hasCommand(cmd: string): Promise<boolean> {
  return execFileP('sh', ['-c', `command -v ${cmd}`]).then(
    () => true,
    () => false,
  );
}

const peer = await checkPeer(BUILD_SCRIPT, 'the AWS provider and moto (Go 1.26+, Python 3.10+)');
if (!peer.built) skipFile('SSCSI_REQUIRE_AWS', `the AWS provider test needs its peers: ${peer.why}`);
for (const cmd of ['unshare', 'nsenter', 'ip', 'mount']) {
  if (!(await hasCommand(cmd))) {
    skipFile(
      'SSCSI_REQUIRE_AWS',
      `the AWS provider test runs its peers in namespaces of its own: ${cmd} is missing (util-linux, iproute2)`,
    );
  }
}
const peers = peer.stdout.trim().split('\n').pop()!;

const cp = await controlPlaneOrSkip("the AWS provider test mints the pod's token with the control plane");

const PROVIDER_BIN = join(peers, 'bin/secrets-store-csi-driver-provider-aws');
const MOTO_SERVER = join(peers, 'venv/bin/moto_server');
const PYTHON = join(peers, 'venv/bin/python');
const kc = adminConfig(cp);
const core = kc.makeApiClient(CoreV1Api);

/**
 * The stub Pod Identity agent: static credentials in the container-credentials
 * JSON shape for any request that carries an Authorization header. It logs a
 * hash of that header, so the test can tell the pod's token arrived without
 * the token being printed anywhere.
 */
const AGENT_JS = `
const { createServer } = require('node:http');
const { createHash } = require('node:crypto');
createServer((req, res) => {
  const auth = req.headers.authorization || '';
  console.log('agent ' + req.method + ' ' + req.url + ' auth-sha256=' + createHash('sha256').update(auth).digest('hex'));
  if (req.method !== 'GET' || req.url !== '/v1/credentials') return res.writeHead(404).end();
  if (!auth) return res.writeHead(401).end();
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
    AccessKeyId: 'AKIDSSCSITEST', SecretAccessKey: 'sscsi-test-secret-key', Token: 'sscsi-test-session-token',
    Expiration: new Date(Date.now() + 3600e3).toISOString(),
  }));
}).listen(80, '${AGENT_IP}', () => console.log('agent listening'));
`;

/** boto3 calls against moto: argv[2] is a JSON list of [service, operation, params]; prints the results. */
const BOTO_PY = `
import boto3, json, sys
kw = dict(endpoint_url=sys.argv[1], region_name="${REGION}", aws_access_key_id="seed", aws_secret_access_key="seed")
out = []
for service, op, params in json.loads(sys.argv[2]):
    r = getattr(boto3.client(service, **kw), op)(**params)
    r.pop("ResponseMetadata", None)
    out.append(r)
print(json.dumps(out, default=str))
`;

interface AwsSide {
  /** The stub agent; its process holds the network namespace. */
  agent: Proc;
  moto: Proc;
  /** argv that runs `argv` inside the network namespace. */
  inNetns(argv: string[]): string[];
  aws(calls: Array<[string, string, Record<string, unknown>]>): Promise<Array<Record<string, unknown>>>;
}

async function startAwsSide(t: Tap): Promise<AwsSide> {
  // unshare and sh exec in place: the child's pid is the agent's, inside the new netns.
  const agent = new Proc(
    spawn(
      'unshare',
      ['--net', '--', 'sh', '-c', `ip link set lo up && ip addr add ${AGENT_IP}/32 dev lo && exec "$0" -e "$1"`, NODE, AGENT_JS],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  t.teardown(() => agent.stop());
  await agent.waitFor(/agent listening/);
  // nsenter without --pid execs in place too, so every Proc below is the program itself.
  const inNetns = (argv: string[]) => [`--target=${agent.child.pid}`, '--net', '--', ...argv];
  const moto = new Proc(spawn('nsenter', inNetns([MOTO_SERVER, '-H', '127.0.0.1', '-p', '5000']), { stdio: ['ignore', 'pipe', 'pipe'] }));
  t.teardown(() => moto.stop());
  await moto.waitFor(/Running on http:\/\/127\.0\.0\.1:5000/, 60_000);
  const aws = async (calls: Array<[string, string, Record<string, unknown>]>) => {
    const { stdout } = await execFileP('nsenter', inNetns([PYTHON, '-c', BOTO_PY, MOTO, JSON.stringify(calls)]));
    return JSON.parse(stdout) as Array<Record<string, unknown>>;
  };
  return { agent, moto, inNetns, aws };
}

/**
 * The in-cluster files rest.InClusterConfig reads at start, in a temp dir laid
 * out as /var/run/secrets. With usePodIdentity and a region the provider makes
 * no API call, so the token is never used (and the apiserver is not reachable
 * from the namespace anyway).
 */
async function inClusterRoot(t: Tap): Promise<string> {
  const root = await tempDir(t, 'sscsi-aws-sa-');
  const sa = join(root, 'secrets/kubernetes.io/serviceaccount');
  await mkdir(sa, { recursive: true });
  await writeFile(join(sa, 'token'), 'unused-by-the-provider-in-pod-identity-mode');
  await writeFile(join(sa, 'namespace'), 'kube-system');
  await copyFile(cp.caFile, join(sa, 'ca.crt'));
  return root;
}

async function startProvider(t: Tap, side: AwsSide, o: { volumeDir: string; driverWrites: boolean; inCluster: string }): Promise<Proc> {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')));
  const api = new URL(cp.server);
  Object.assign(env, {
    AWS_REGION: REGION,
    AWS_ENDPOINT_URL: MOTO,
    AWS_EC2_METADATA_DISABLED: 'true',
    KUBERNETES_SERVICE_HOST: api.hostname,
    KUBERNETES_SERVICE_PORT: api.port,
  });
  // Bound over /var/run/secrets, or over /var/run when the host has no such
  // dir: the real path is never written. Only in this mount namespace.
  const bindInCluster =
    'if [ -d /var/run/secrets ]; then mount --bind "$1/secrets" /var/run/secrets; else mount --bind "$1" /var/run; fi && shift && exec "$@"';
  const proc = new Proc(
    spawn(
      'nsenter',
      side.inNetns([
        'unshare',
        '--mount',
        '--propagation',
        'slave',
        '--',
        'sh',
        '-c',
        bindInCluster,
        'sh',
        o.inCluster,
        PROVIDER_BIN,
        `--provider-volume=${o.volumeDir}`,
        `--driver-writes-secrets=${o.driverWrites}`,
      ]),
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  t.teardown(() => proc.stop());
  await proc.waitFor(/Listening for connections/, 30_000);
  return proc;
}

/**
 * A dir for the pod volumes, bound on itself and made shared, so the mounts
 * our driver makes there also appear in the provider's mount namespace (a
 * slave): the host's mounts are private here. tempDir's teardown unmounts it.
 */
async function sharedPodsDir(t: Tap): Promise<string> {
  const dir = await tempDir(t, 'sscsi-aws-kubelet-');
  await execFileP('mount', ['--bind', dir, dir]);
  await execFileP('mount', ['--make-shared', dir]);
  await mkdir(join(dir, 'pods'));
  return join(dir, 'pods');
}

async function ensureNamespace(name: string): Promise<void> {
  try {
    await core.createNamespace({ body: { metadata: { name } } });
  } catch (e) {
    if (!(e instanceof ApiException && e.code === 409)) throw e;
  }
  // The serviceaccount controller creates "default" in every namespace.
  await eventually(() => core.readNamespacedServiceAccount({ namespace: name, name: 'default' }), 30_000, `default SA in ${name}`);
}

interface Pod {
  name: string;
  uid: string;
  tokens: string;
  token: string;
}

/** A Pod using the SPC, and (kubelet's part) its token for the Pod Identity audience from TokenRequest. */
async function createPod(t: Tap, spc: string): Promise<Pod> {
  const name = `aws-app-${Math.random().toString(36).slice(2, 8)}`;
  const pod = await core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name },
      spec: {
        nodeName: NODE_NAME,
        serviceAccountName: 'default',
        containers: [{ name: 'app', image: 'busybox' }],
        volumes: [
          { name: VOLUME, csi: { driver: 'secrets-store.csi.k8s.io', readOnly: true, volumeAttributes: { secretProviderClass: spc } } },
        ],
      },
    },
  });
  // No kubelet finishes a graceful deletion: grace period 0.
  t.teardown(() => core.deleteNamespacedPod({ namespace: NS, name, gracePeriodSeconds: 0 }).catch(() => undefined));
  const uid = pod.metadata!.uid!;
  const tok = await token(kc, NS, 'default', { audiences: [POD_IDENTITY_AUDIENCE], pod: { name, uid } });
  return { name, uid, token: tok.token, tokens: JSON.stringify({ [POD_IDENTITY_AUDIENCE]: tok }) };
}

function jwtClaims(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

async function writeSpc(h: Harness, name: string, provider: string, objects: string): Promise<void> {
  await writeFile(
    join(h.spcDir, `${NS}-${name}.yaml`),
    [
      'apiVersion: secrets-store.csi.x-k8s.io/v1',
      'kind: SecretProviderClass',
      `metadata: {name: ${name}, namespace: ${NS}}`,
      'spec:',
      `  provider: ${provider}`,
      '  parameters:',
      '    usePodIdentity: "true"',
      `    region: ${REGION}`,
      '    objects: |',
      ...objects
        .trim()
        .split('\n')
        .map((l) => `      ${l}`),
      '',
    ].join('\n'),
  );
}

function publishRequest(h: Harness, pods: string, pod: Pod, spc: string) {
  const target = join(pods, pod.uid, 'volumes', 'kubernetes.io~csi', VOLUME, 'mount');
  return h.publishRequest(target, spc, {
    volumeId: `csi-${pod.uid}`,
    volumeContext: {
      secretProviderClass: spc,
      'csi.storage.k8s.io/pod.name': pod.name,
      'csi.storage.k8s.io/pod.namespace': NS,
      'csi.storage.k8s.io/pod.uid': pod.uid,
      'csi.storage.k8s.io/serviceAccount.name': 'default',
      'csi.storage.k8s.io/ephemeral': 'true',
      'csi.storage.k8s.io/serviceAccount.tokens': pod.tokens,
    },
  });
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const mode = async (p: string) => (await stat(p)).mode & 0o7777;
const read = (p: string) => readFile(p, 'utf8');
/** Mount calls the provider served (it logs one line for each, after the token and region checks). */
const served = (p: Proc) => (p.out.match(/Servicing mount request/g) ?? []).length;

for (const driverWrites of [true, false]) {
  const how = driverWrites
    ? 'driver writes the files (--driver-writes-secrets=true)'
    : 'the provider writes the files into our mount (its default)';
  t.test(`AWS provider, ${how}: Secrets Manager, SSM, aliases, jmesPath, version labels, rotation`, (t) => scenario(t, driverWrites));
}

async function scenario(t: Test, driverWrites: boolean): Promise<void> {
  const spcName = driverWrites ? 'app-aws' : 'app-aws-pw';
  // The API server first: the pod and its token are all this test needs from it.
  await ensureNamespace(NS);
  const pod = await createPod(t as Tap, spcName);
  const claims = jwtClaims(pod.token);
  t.same(claims.aud, [POD_IDENTITY_AUDIENCE], 'the control plane minted the token for the Pod Identity audience');
  t.equal((claims['kubernetes.io'] as { pod?: { uid?: string } }).pod?.uid, pod.uid, 'bound to the pod');

  const side = await startAwsSide(t as Tap);
  const h = await Harness.start(t as Tap, {
    startProvider: false,
    providerName: 'aws',
    driverArgs: ['--enable-secret-rotation=true', '--rotation-poll-interval=2s'],
  });
  const pods = await sharedPodsDir(t as Tap);
  const provider = await startProvider(t as Tap, side, {
    volumeDir: h.providerDir,
    driverWrites,
    inCluster: await inClusterRoot(t as Tap),
  });

  const c = {
    user1: canary('aws-db-user'),
    pass1: canary('aws-db-pass'),
    user2: canary('aws-db-user-rotated'),
    pass2: canary('aws-db-pass-rotated'),
    url1: canary('aws-ssm-url'),
    url2: canary('aws-ssm-url-rotated'),
    featCurrent: canary('aws-feature-current'),
    featBeta: canary('aws-feature-beta'),
    mode1: canary('aws-ssm-mode-v1'),
    mode2: canary('aws-ssm-mode-v2'),
  };
  const db1 = JSON.stringify({ username: c.user1, password: c.pass1 });
  const seeded = await side.aws([
    ['secretsmanager', 'create_secret', { Name: 'app/db', SecretString: db1 }],
    ['secretsmanager', 'create_secret', { Name: 'app/feature', SecretString: c.featCurrent }],
    // A second version that carries only the custom stage BETA: AWSCURRENT stays on the first.
    ['secretsmanager', 'put_secret_value', { SecretId: 'app/feature', SecretString: c.featBeta, VersionStages: ['BETA'] }],
    ['ssm', 'put_parameter', { Name: '/app/config/api-url', Value: c.url1, Type: 'String' }],
    ['ssm', 'put_parameter', { Name: '/app/config/mode', Value: c.mode1, Type: 'SecureString' }],
    ['ssm', 'put_parameter', { Name: '/app/config/mode', Value: c.mode2, Type: 'SecureString', Overwrite: true }],
    ['ssm', 'label_parameter_version', { Name: '/app/config/mode', ParameterVersion: 1, Labels: ['stable'] }],
  ]);
  t.equal(seeded[5]?.Version, 2, 'moto holds two versions of /app/config/mode');

  // As the AWS provider's README documents objects; /app/config/api-url has no
  // alias, so its file name is the object name with "/" translated to "_".
  await writeSpc(
    h,
    spcName,
    'aws',
    `
- objectName: "app/db"
  objectType: "secretsmanager"
  objectAlias: "db.json"
  jmesPath:
    - path: username
      objectAlias: db-username
    - path: password
      objectAlias: db-password
      filePermission: "0400"
- objectName: "/app/config/api-url"
  objectType: "ssmparameter"
- objectName: "app/feature"
  objectType: "secretsmanager"
  objectAlias: feature-beta
  objectVersionLabel: BETA
- objectName: "/app/config/mode"
  objectType: "ssmparameter"
  objectAlias: mode-stable
  objectVersionLabel: stable
`,
  );

  const req = publishRequest(h, pods, pod, spcName);
  const target = req.targetPath;
  await h.publish(req);
  if (driverWrites) {
    t.match(provider.out, /Driver is configured to write secrets/, 'the provider ran in driver-writes mode');
  } else {
    t.match(provider.out, /Provider is configured to write secrets/, 'the provider ran in its default mode: it writes the files');
    t.match(h.driver.out, /the provider wrote files into the volume/, 'through our write window');
    const names = (await readdir(target)).filter((n) => !n.startsWith('..')).sort();
    t.same(
      names,
      ['_app_config_api-url', 'db-password', 'db-username', 'db.json', 'feature-beta', 'mode-stable'],
      'exactly the files, no temp file left',
    );
    t.equal(
      await writeFile(join(target, 'planted'), 'x').then(
        () => 'ok',
        (e: NodeJS.ErrnoException) => e.code,
      ),
      'EROFS',
      'read-only again after the call',
    );
  }
  t.ok(side.agent.out.includes(`GET /v1/credentials auth-sha256=${sha256(pod.token)}`), "the pod's token reached the Pod Identity agent");

  t.equal(await read(join(target, 'db.json')), db1, 'Secrets Manager secret, under its objectAlias');
  t.equal(await mode(join(target, 'db.json')), 0o644, "default mode: the driver's permission (0644)");
  t.equal(await read(join(target, 'db-username')), c.user1, 'jmesPath username');
  t.equal(await mode(join(target, 'db-username')), 0o644, 'jmesPath entry without filePermission: 0644');
  t.equal(await read(join(target, 'db-password')), c.pass1, 'jmesPath password');
  t.equal(await mode(join(target, 'db-password')), 0o400, 'jmesPath filePermission "0400" as the mode through the mount');
  t.equal(await read(join(target, '_app_config_api-url')), c.url1, 'SSM parameter, file named by path translation');
  t.equal(
    await read(join(target, 'feature-beta')),
    c.featBeta,
    'Secrets Manager objectVersionLabel BETA: the staged version, not AWSCURRENT',
  );
  t.equal(await read(join(target, 'mode-stable')), c.mode1, 'SSM objectVersionLabel stable: version 1, not the latest');

  // Polls with nothing changed: for current Secrets Manager versions the
  // provider reads the files back through the target path (our FUSE mount).
  // (The third call's start means the second one was answered and handled.)
  const before = served(provider);
  await waitUntil(() => served(provider) >= before + 3, 20_000, 'two rotation polls');
  t.notMatch(h.driver.out, /rotation poll failed/, 'polls with unchanged versions succeed (the provider read our mount back)');
  t.notMatch(provider.out, /failed to read secret/, 'the provider found the served files');
  t.equal(await read(join(target, 'db-username')), c.user1, 'unchanged after polls');

  // Rotation: new AWSCURRENT version in Secrets Manager, new SSM version.
  const db2 = JSON.stringify({ username: c.user2, password: c.pass2 });
  const started = Date.now();
  await side.aws([
    ['secretsmanager', 'put_secret_value', { SecretId: 'app/db', SecretString: db2 }],
    ['ssm', 'put_parameter', { Name: '/app/config/api-url', Value: c.url2, Type: 'String', Overwrite: true }],
  ]);
  await waitUntil(
    async () => (await read(join(target, 'db.json'))) === db2 && (await read(join(target, '_app_config_api-url'))) === c.url2,
    10_000,
    'the rotated values through the mount',
  );
  t.comment(`rotation visible after ${Date.now() - started} ms (poll interval 2 s)`);
  t.equal(await read(join(target, 'db-username')), c.user2, 'jmesPath username rotated');
  t.equal(await read(join(target, 'db-password')), c.pass2, 'jmesPath password rotated');
  t.equal(await mode(join(target, 'db-password')), 0o400, 'filePermission kept across the rotation');
  t.equal(await read(join(target, 'feature-beta')), c.featBeta, 'the BETA-pinned secret did not move');
  t.equal(await read(join(target, 'mode-stable')), c.mode1, 'the stable-labelled parameter did not move');
  t.notMatch(h.driver.out, /rotation poll failed/, 'no poll failed');

  await h.unpublish(target);
  t.same(await mountsUnder(pods), [], 'unmounted');
  t.notMatch(h.driver.out, /failed to clean and unmount target path/, "no unmount error in the driver's logs");
  for (const [k, v] of Object.entries(c)) t.notOk(h.driver.out.includes(v), `canary ${k} is not in the driver's logs`);
  t.notOk(h.driver.out.includes(pod.token), "the pod's token is not in the driver's logs");
}
