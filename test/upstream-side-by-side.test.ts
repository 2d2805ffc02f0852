// Side by side on the real control plane: the upstream driver
// (sigs.k8s.io/secrets-store-csi-driver v1.6.0, built by
// test/peers/upstream-driver/build.sh) and ours, each with its own node id and
// namespace (status objects are named <pod>-<namespace>-<spc> and filtered by
// node label, so the two must not share either), both calling the same
// provider socket directory. The same scenario runs against each: an SPC with
// secretObjects, a Pod owned by a ReplicaSet on the driver's node, a token
// minted for the pod, NodePublishVolume on the driver's CSI socket (this test
// plays kubelet), then what each produced is compared: the files a container
// would read (names, bytes, modes), the SecretProviderClassPodStatus and the
// synced Secret, after a rotation at the provider too, and after unpublish.
//
// Runs with our example provider always, and with upstream's e2e provider when
// test/peers/e2e-provider/build.sh has built it.
//
// Differences between the two drivers that are behaviour, not bugs, are
// asserted as differences (see the `differs` comments), so a change on either
// side shows up here.

import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { credentials, Metadata } from '@grpc/grpc-js';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubernetesObject, type V1Secret } from '@kubernetes/client-node';
import { IdentityClient, NodeClient, type NodePublishVolumeRequest, VolumeCapability_AccessMode_Mode } from '../src/gen/csi/v1/csi.js';
import { Harness, NODE, Proc, ROOT, execFileP, freePort, mountsUnder, sleep, tempDir, type Tap } from './helpers/harness.js';
import { controlPlaneOrSkip } from './helpers/control-plane.js';
import { checkPeer } from './helpers/peers.js';
import { skipFile, skipUnless } from './helpers/skip.js';
import { adminConfig, apply, applyCrds, eventually, manifests, token } from './helpers/kube.js';

const UPSTREAM_BUILD = 'test/peers/upstream-driver/build.sh';
const E2E_BUILD = 'test/peers/e2e-provider/build.sh';
const GROUP = 'secrets-store.csi.x-k8s.io';
const VOLUME = 'secrets-store-inline';
const POLL = 2; // --rotation-poll-interval, seconds, for both drivers

const upstream = await checkPeer(UPSTREAM_BUILD, 'the upstream driver (Go 1.26+, the Go module proxy)');
if (!upstream.built) skipFile('SSCSI_REQUIRE_UPSTREAM', `the side-by-side test needs the upstream driver: ${upstream.why}`);
const upstreamBin = upstream.stdout.trim().split('\n').pop()!;

const cp = await controlPlaneOrSkip('the side-by-side test needs the control plane');

const e2e = await checkPeer(E2E_BUILD, "upstream's e2e provider");
const e2eBin = e2e.built ? e2e.stdout.trim().split('\n').pop()! : null;

const kc = adminConfig(cp);
const core = kc.makeApiClient(CoreV1Api);
const apps = kc.makeApiClient(AppsV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const RUN = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

type T = Pick<typeof t, 'same' | 'equal' | 'ok' | 'comment' | 'pass' | 'notMatch' | 'teardown'>;

/** One driver under test, as kubelet sees it: a CSI socket, a node name, and (here) a namespace of its own. */
interface Side {
  readonly name: 'upstream' | 'ours';
  readonly node: NodeClient;
  readonly nodeId: string;
  readonly ns: string;
  /** Where this side's pod directories go (the target paths). */
  readonly dir: string;
  readonly proc: Proc;
}

function callPublish(node: NodeClient, req: NodePublishVolumeRequest): Promise<void> {
  return new Promise((res, rej) =>
    node.nodePublishVolume(req, new Metadata(), { deadline: Date.now() + 30_000 }, (e) => (e ? rej(e) : res())),
  );
}

function callUnpublish(node: NodeClient, volumeId: string, targetPath: string): Promise<void> {
  return new Promise((res, rej) => node.nodeUnpublishVolume({ volumeId, targetPath }, (e) => (e ? rej(e) : res())));
}

async function ensureNamespace(t: Tap, name: string): Promise<void> {
  await core.createNamespace({ body: { metadata: { name, labels: { 'sscsi-test': 'side-by-side' } } } });
  t.teardown(() =>
    core.deleteNamespace({ name }).then(
      () => undefined,
      () => undefined,
    ),
  );
  await eventually(
    () => core.readNamespacedServiceAccount({ namespace: name, name: 'default' }).catch(() => null),
    30_000,
    `default SA in ${name}`,
  );
}

/** The upstream driver as a child process, root, CRDs already installed; resolves once it answers GetPluginInfo. */
async function startUpstream(
  t: Tap,
  dir: string,
  providerDir: string,
  nodeId: string,
): Promise<{ proc: Proc; node: NodeClient; vendorVersion: string }> {
  const sock = join(dir, 'upstream-csi.sock');
  const args = [
    `--endpoint=unix://${sock}`,
    `--nodeid=${nodeId}`,
    `--kubeconfig=${cp.adminKubeconfig}`,
    `--provider-volume=${providerDir}`,
    `--additional-provider-volume-paths=${providerDir}`,
    `--metrics-addr=127.0.0.1:${await freePort()}`,
    '--enable-secret-rotation=true',
    `--rotation-poll-interval=${POLL}s`,
    '-v=2',
  ];
  const proc = new Proc(spawn(upstreamBin, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const node = new NodeClient(`unix:${sock}`, credentials.createInsecure());
  const identity = new IdentityClient(`unix:${sock}`, credentials.createInsecure());
  t.teardown(async () => {
    node.close();
    identity.close();
    await proc.stop();
  });
  let vendorVersion = '';
  await eventually(
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`the upstream driver exited (${proc.child.exitCode}):\n${proc.out.slice(-3000)}`);
      if (!existsSync(sock)) return false;
      vendorVersion = await new Promise<string>((res, rej) => identity.getPluginInfo({}, (e, r) => (e ? rej(e) : res(r!.vendorVersion))));
      return true;
    },
    60_000,
    'the upstream driver to serve CSI',
  );
  return { proc, node, vendorVersion };
}

/** Everything a container would see in the volume: visible names (recursively), bytes and modes; plus the top-level layout. */
interface Seen {
  files: Record<string, { b64: string; mode: string }>;
  dirs: Record<string, string>;
  rootMode: string;
  topLevel: Record<string, string>;
}

const octal = (m: number) => (m & 0o7777).toString(8).padStart(4, '0');

async function look(target: string): Promise<Seen> {
  const seen: Seen = { files: {}, dirs: {}, rootMode: octal((await stat(target)).mode), topLevel: {} };
  for (const e of await readdir(target)) {
    const l = await lstat(join(target, e));
    // The atomic writer's payload directory is named after the time of the write.
    seen.topLevel[e.replace(/^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+$/, '..<timestamp>')] = l.isSymbolicLink()
      ? 'symlink'
      : l.isDirectory()
        ? 'dir'
        : l.isFile()
          ? 'file'
          : 'other';
  }
  const walk = async (rel: string): Promise<void> => {
    for (const e of (await readdir(join(target, rel))).filter((n) => !n.startsWith('.')).sort()) {
      const p = rel ? `${rel}/${e}` : e;
      const s = await stat(join(target, p)); // follows symlinks, as a reader does
      if (s.isDirectory()) {
        seen.dirs[p] = octal(s.mode);
        await walk(p);
      } else {
        seen.files[p] = { b64: (await readFile(join(target, p))).toString('base64'), mode: octal(s.mode) };
      }
    }
  };
  await walk('');
  return seen;
}

/** The filesystem type mounted at `target` (mountinfo: after the ` - ` separator), or null. */
async function fsType(target: string): Promise<string | null> {
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const [pre, post] = line.split(' - ');
    const point = pre?.split(' ')[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (point === target && post) return post.split(' ')[0]!.split('.')[0]!;
  }
  return null;
}

interface ProviderCase {
  readonly label: string;
  /** Provider socket name in the shared provider directory. */
  readonly provider: string;
  readonly parameters: Record<string, string>;
  readonly secretData: Array<{ objectName: string; key: string }>;
  /** Expected bytes per visible file, before and after rotation. */
  readonly before: Record<string, string>;
  readonly after: Record<string, string>;
  rotate(): Promise<void>;
}

interface Published {
  side: Side;
  req: NodePublishVolumeRequest;
  target: string;
  uid: string;
  rsUid: string;
  spcpsName: string;
}

/** Creates this side's SPC, ReplicaSet and Pod, mints the token, publishes. */
async function publishOn(side: Side, pc: ProviderCase, pod: string, spcName: string, secretName: string): Promise<Published> {
  await apply(kc, [
    {
      apiVersion: `${GROUP}/v1`,
      kind: 'SecretProviderClass',
      metadata: { name: spcName, namespace: side.ns },
      spec: {
        provider: pc.provider,
        parameters: pc.parameters,
        secretObjects: [
          { secretName, type: 'Opaque', labels: { environment: 'side-by-side' }, annotations: { team: 'a' }, data: pc.secretData },
        ],
      },
    } as KubernetesObject,
  ]);
  const volume = {
    name: VOLUME,
    csi: { driver: 'secrets-store.csi.k8s.io', readOnly: true, volumeAttributes: { secretProviderClass: spcName } },
  };
  const rs = await apps.createNamespacedReplicaSet({
    namespace: side.ns,
    body: {
      metadata: { name: `${pod}-rs` },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: pod } },
        template: { metadata: { labels: { app: pod } }, spec: { containers: [{ name: 'app', image: 'busybox' }], volumes: [volume] } },
      },
    },
  });
  const p = await core.createNamespacedPod({
    namespace: side.ns,
    body: {
      metadata: {
        name: pod,
        labels: { app: pod },
        ownerReferences: [
          {
            apiVersion: 'apps/v1',
            kind: 'ReplicaSet',
            name: `${pod}-rs`,
            uid: rs.metadata!.uid!,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: { nodeName: side.nodeId, serviceAccountName: 'default', containers: [{ name: 'app', image: 'busybox' }], volumes: [volume] },
    },
  });
  const uid = p.metadata!.uid!;
  const tok = await token(kc, side.ns, 'default', { audiences: ['side-by-side-aud'], pod: { name: pod, uid } });
  const target = join(side.dir, 'pods', uid, 'volumes', 'kubernetes.io~csi', VOLUME, 'mount');
  await execFileP('mkdir', ['-p', join(target, '..')]);
  const req: NodePublishVolumeRequest = {
    volumeId: `csi-${uid}`,
    targetPath: target,
    readonly: true,
    secrets: {},
    publishContext: {},
    stagingTargetPath: '',
    volumeCapability: {
      accessType: { $case: 'mount', value: { fsType: '', mountFlags: [], volumeMountGroup: '' } },
      accessMode: { mode: VolumeCapability_AccessMode_Mode.SINGLE_NODE_READER_ONLY },
    },
    volumeContext: {
      secretProviderClass: spcName,
      'csi.storage.k8s.io/pod.name': pod,
      'csi.storage.k8s.io/pod.namespace': side.ns,
      'csi.storage.k8s.io/pod.uid': uid,
      'csi.storage.k8s.io/serviceAccount.name': 'default',
      'csi.storage.k8s.io/ephemeral': 'true',
      'csi.storage.k8s.io/serviceAccount.tokens': JSON.stringify({ 'side-by-side-aud': tok }),
    },
  };
  await callPublish(side.node, req);
  return { side, req, target, uid, rsUid: rs.metadata!.uid!, spcpsName: `${pod}-${side.ns}-${spcName}` };
}

interface Spcps {
  metadata: { name: string; namespace: string; labels?: Record<string, string>; ownerReferences?: Array<Record<string, unknown>> };
  status: {
    podName: string;
    secretProviderClassName: string;
    mounted: boolean;
    targetPath: string;
    objects?: Array<{ id: string; version: string }>;
  };
}

const getSpcps = (p: Published) =>
  custom.getNamespacedCustomObject({
    group: GROUP,
    version: 'v1',
    namespace: p.side.ns,
    plural: 'secretproviderclasspodstatuses',
    name: p.spcpsName,
  }) as Promise<Spcps>;

/** The status object with this side's namespace, node, pod uid and directory replaced by placeholders. */
function normSpcps(p: Published, s: Spcps): unknown {
  const n = (v: string) =>
    v.split(p.side.dir).join('<dir>').split(p.uid).join('<pod-uid>').split(p.side.ns).join('<ns>').split(p.side.nodeId).join('<node>');
  return {
    name: n(s.metadata.name),
    namespace: n(s.metadata.namespace),
    labels: Object.fromEntries(Object.entries(s.metadata.labels ?? {}).map(([k, v]) => [k, n(v)])),
    ownerReferences: (s.metadata.ownerReferences ?? []).map((o) => ({ ...o, uid: o.uid === p.uid ? '<pod-uid>' : o.uid })),
    status: { ...s.status, targetPath: n(s.status.targetPath) },
  };
}

function normSecret(p: Published, s: V1Secret): unknown {
  const m = s.metadata!;
  return {
    type: s.type,
    data: s.data,
    labels: m.labels,
    annotations: m.annotations,
    ownerReferences: (m.ownerReferences ?? []).map((o) => ({
      ...o,
      uid: o.uid === p.rsUid ? '<rs-uid>' : o.uid === p.uid ? '<pod-uid>' : o.uid,
    })),
  };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const sameData = (a: Record<string, string> | undefined, b: Record<string, string>) =>
  JSON.stringify(Object.entries(a ?? {}).sort()) === JSON.stringify(Object.entries(b).sort());

/** The whole comparison for one provider. */
async function sideBySide(t: T, sides: Side[], pc: ProviderCase): Promise<void> {
  const pod = `${pc.label}-web`;
  const spcName = `${pc.label}-spc`;
  const secretName = `${pc.label}-synced`;
  const pubs: Published[] = [];
  for (const s of sides) pubs.push(await publishOn(s, pc, pod, spcName, secretName));
  const [up, ours] = pubs as [Published, Published];

  // Files: what a container reads.
  const seen = await Promise.all(pubs.map((p) => look(p.target)));
  const [upSeen, ourSeen] = seen as [Seen, Seen];
  t.comment(`${pc.label} upstream files: ${JSON.stringify(upSeen)}`);
  t.comment(`${pc.label} ours files: ${JSON.stringify(ourSeen)}`);
  t.same(
    Object.fromEntries(Object.entries(upSeen.files).map(([k, v]) => [k, Buffer.from(v.b64, 'base64').toString()])),
    pc.before,
    'upstream serves the expected bytes',
  );
  t.same(ourSeen.files, upSeen.files, 'same visible files, bytes and modes');
  t.same(ourSeen.dirs, upSeen.dirs, 'same visible directories and modes');
  t.same(ourSeen.topLevel, upSeen.topLevel, 'same top-level layout (atomic-writer symlinks and ..data)');
  // differs: upstream mounts a tmpfs with no mode option, so the volume root is 1777 (tmpfs's default);
  // ours is a FUSE mount whose root is 0755.
  t.same(
    { upstream: upSeen.rootMode, ours: ourSeen.rootMode },
    { upstream: '1777', ours: '0755' },
    'volume root mode: upstream 1777 (tmpfs), ours 0755',
  );

  // The status objects.
  const spcps = await Promise.all(pubs.map(getSpcps));
  t.comment(`${pc.label} upstream SPCPS: ${JSON.stringify(normSpcps(up, spcps[0]!))}`);
  t.comment(`${pc.label} ours SPCPS: ${JSON.stringify(normSpcps(ours, spcps[1]!))}`);
  t.same(normSpcps(ours, spcps[1]!), normSpcps(up, spcps[0]!), 'same SecretProviderClassPodStatus (normalised)');

  // The synced Secrets.
  const first = await Promise.all(
    pubs.map((p) =>
      eventually(
        () => core.readNamespacedSecret({ namespace: p.side.ns, name: secretName }).catch(() => null),
        30_000,
        `${p.side.name}'s synced Secret`,
      ),
    ),
  );
  t.comment(
    `${pc.label} ownerReferences when first seen: upstream ${first[0]!.metadata!.ownerReferences?.length ?? 0}, ours ${first[1]!.metadata!.ownerReferences?.length ?? 0}`,
  );
  // Upstream creates the Secret without owners and adds them from its patcher (every 5 s); ours creates it owned.
  t.ok((first[1]!.metadata!.ownerReferences?.length ?? 0) > 0, 'ours: the Secret is owned from its creation');
  const secrets = await Promise.all(
    pubs.map((p) =>
      eventually(
        async () => {
          const s = await core.readNamespacedSecret({ namespace: p.side.ns, name: secretName });
          return (s.metadata!.ownerReferences?.length ?? 0) > 0 ? s : null;
        },
        30_000,
        `${p.side.name}'s synced Secret with its owner`,
      ),
    ),
  );
  t.comment(`${pc.label} upstream Secret: ${JSON.stringify(normSecret(up, secrets[0]!))}`);
  t.comment(`${pc.label} ours Secret: ${JSON.stringify(normSecret(ours, secrets[1]!))}`);
  t.same(normSecret(ours, secrets[1]!), normSecret(up, secrets[0]!), 'same synced Secret (normalised)');
  t.same(
    (normSecret(up, secrets[0]!) as { labels: unknown }).labels,
    { environment: 'side-by-side', 'secrets-store.csi.k8s.io/managed': 'true' },
    "labels: the SPC's plus secrets-store.csi.k8s.io/managed",
  );
  t.same(await Promise.all(pubs.map((p) => fsType(p.target))), ['tmpfs', 'fuse'], 'upstream mounts a tmpfs, ours a FUSE filesystem');

  // Rotation at the provider. Without kubelet's republish, for a few polls.
  await pc.rotate();
  const rotated = async (p: Published) => {
    const f = (await look(p.target)).files;
    return Object.entries(pc.after).every(([k, v]) => f[k] && Buffer.from(f[k].b64, 'base64').toString() === v);
  };
  await sleep((3 * POLL + 1) * 1000);
  const withoutRepublish = { upstream: await rotated(up), ours: await rotated(ours) };
  t.comment(`${pc.label} rotated after ${3 * POLL + 1}s without a republish: ${JSON.stringify(withoutRepublish)}`);
  // differs: upstream v1.6.0 has no poller of its own; it rotates when kubelet republishes (requiresRepublish)
  // and --rotation-poll-interval has passed. Ours also polls on its own.
  t.same(withoutRepublish, { upstream: false, ours: true }, 'without republish only ours rotated');

  // kubelet's periodic republish (the same request, fresh token), until both serve the new bytes.
  const end = Date.now() + 30_000;
  while (!(await rotated(up)) || !(await rotated(ours))) {
    if (Date.now() > end) throw new Error(`rotation did not reach the files: upstream ${await rotated(up)}, ours ${await rotated(ours)}`);
    for (const p of pubs) await callPublish(p.side.node, p.req);
    await sleep(1000);
  }
  const after = await Promise.all(pubs.map((p) => look(p.target)));
  t.same(after[1]!.files, after[0]!.files, 'after rotation: same files, bytes and modes');
  t.same(after[1]!.topLevel, after[0]!.topLevel, 'after rotation: same top-level layout');

  await eventually(
    async () => {
      const s = await Promise.all(pubs.map(getSpcps));
      const objs = s.map((x) => JSON.stringify(x.status.objects));
      return objs[0] === objs[1] && objs[0] !== JSON.stringify(spcps[0]!.status.objects);
    },
    20_000,
    'both status objects to carry the new versions',
  );
  const spcps2 = await Promise.all(pubs.map(getSpcps));
  t.same(normSpcps(ours, spcps2[1]!), normSpcps(up, spcps2[0]!), 'after rotation: same status object');

  const want = Object.fromEntries(pc.secretData.map((d) => [d.key, b64(pc.after[d.objectName]!)]));
  const rotatedSecrets = await Promise.all(
    pubs.map((p) =>
      eventually(
        async () => {
          const s = await core.readNamespacedSecret({ namespace: p.side.ns, name: secretName });
          return sameData(s.data, want) ? s : null;
        },
        30_000,
        `${p.side.name}'s Secret to carry the rotated values`,
      ).catch((e: Error) => e),
    ),
  );
  for (const [i, s] of rotatedSecrets.entries())
    t.comment(
      `${pc.label} ${pubs[i]!.side.name} Secret after rotation: ${s instanceof Error ? s.message : JSON.stringify(normSecret(pubs[i]!, s))}`,
    );
  t.ok(!(rotatedSecrets[0] instanceof Error), "upstream's Secret was updated");
  t.ok(!(rotatedSecrets[1] instanceof Error), 'our Secret was updated');
  t.ok((rotatedSecrets[1] as V1Secret).metadata?.ownerReferences?.length, 'ours: the rotated Secret keeps its owner');
  // differs: upstream's createOrUpdateK8sSecret replaces the whole Secret (Update, no ownerReferences),
  // so its owners are gone until its patcher (every 5 s) adds them back. Compare once they are back.
  const settled = await Promise.all(
    pubs.map((p) =>
      eventually(
        async () => {
          const s = await core.readNamespacedSecret({ namespace: p.side.ns, name: secretName });
          return sameData(s.data, want) && (s.metadata!.ownerReferences?.length ?? 0) > 0 ? s : null;
        },
        30_000,
        `${p.side.name}'s rotated Secret with its owner`,
      ),
    ),
  );
  t.same(normSecret(ours, settled[1]!), normSecret(up, settled[0]!), "after rotation (and upstream's owner patch): same Secret");

  // Unpublish: nothing stays mounted, and the target directory goes, on both.
  for (const p of pubs) await callUnpublish(p.side.node, p.req.volumeId, p.target);
  for (const p of pubs) {
    t.same(await mountsUnder(join(p.side.dir, 'pods')), [], `${p.side.name}: nothing mounted after unpublish`);
  }
  t.same(
    pubs.map((p) => existsSync(p.target)),
    [false, false],
    'both remove the target path',
  );
}

// ---------------------------------------------------------------------------

async function setup(t: T, label: string): Promise<{ sides: Side[]; h: Harness }> {
  await applyCrds(kc, await manifests(join(ROOT, 'deploy')));
  const nsUp = `sbs-${label}-up-${RUN}`;
  const nsOurs = `sbs-${label}-ours-${RUN}`;
  await ensureNamespace(t as Tap, nsUp);
  await ensureNamespace(t as Tap, nsOurs);
  const nodeUp = `sbs-${label}-node-upstream-${RUN}`;
  const nodeOurs = `sbs-${label}-node-ours-${RUN}`;
  // Ours (and the example provider) through the harness, as the admin (upstream gets the same identity).
  const h = await Harness.start(t as Tap, {
    kubeconfig: cp.adminKubeconfig,
    nodeId: nodeOurs,
    driverArgs: [`--rotation-poll-interval=${POLL}s`],
  });
  const upDir = await tempDir(t as Tap, 'sscsi-upstream-');
  const u = await startUpstream(t as Tap, upDir, h.providerDir, nodeUp);
  t.equal(u.vendorVersion, 'v1.6.0', 'the upstream driver reports v1.6.0');
  return {
    h,
    sides: [
      { name: 'upstream', node: u.node, nodeId: nodeUp, ns: nsUp, dir: upDir, proc: u.proc },
      { name: 'ours', node: h.node, nodeId: nodeOurs, ns: nsOurs, dir: h.dir, proc: h.driver },
    ],
  };
}

t.test('example provider: upstream v1.6.0 and ours side by side', async (t) => {
  const { sides, h } = await setup(t, 'example');
  const v1 = {
    files: [
      { path: 'username', contents: 'app-user' },
      { path: 'password', contents: 'pw-v1', mode: 0o400 },
      { path: 'conf/app.ini', contents: '[db]\nhost=db\n' },
    ],
  };
  await h.source('s.json', v1);
  await sideBySide(t, sides, {
    label: 'example',
    provider: 'example',
    parameters: { secretsFile: join(h.sourceDir, 's.json') },
    secretData: [
      { objectName: 'username', key: 'user' },
      { objectName: 'password', key: 'pass' },
    ],
    before: { username: 'app-user', password: 'pw-v1', 'conf/app.ini': '[db]\nhost=db\n' },
    after: { username: 'app-user', password: 'pw-v2-rotated', 'conf/app.ini': '[db]\nhost=db\n' },
    rotate: () => h.source('s.json', { files: v1.files.map((f) => (f.path === 'password' ? { ...f, contents: 'pw-v2-rotated' } : f)) }),
  });
  t.notMatch(sides[0]!.proc.out, /\b403\b|forbidden/i, 'upstream was never refused');
  t.notMatch(sides[1]!.proc.out, /\b403\b|forbidden/i, 'ours was never refused');
});

t.test(
  'upstream e2e provider: upstream v1.6.0 and ours side by side',
  { skip: skipUnless(e2e.built, 'SSCSI_REQUIRE_E2E_PROVIDER', e2e.why) },
  async (t) => {
    const { sides, h } = await setup(t, 'e2e');
    // Its HTTP switch listens on :8080 (hard-coded): its own network namespace, reached with nsenter.
    const sock = join(h.providerDir, 'e2e-provider.sock');
    const proc = new Proc(
      spawn('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', e2eBin!, `--endpoint=unix://${sock}`], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    t.teardown(() => proc.stop());
    await proc.waitFor(/Listening for connections/);
    const http = async (path: string) => {
      for (let i = 0; ; i++) {
        try {
          await execFileP('nsenter', [
            `--target=${proc.child.pid}`,
            '--net',
            '--',
            NODE,
            '-e',
            'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(2))',
            `http://127.0.0.1:8080${path}`,
          ]);
          return;
        } catch (e) {
          if (i >= 40) throw e;
          await sleep(100);
        }
      }
    };
    t.teardown(() => http('/rotation?rotated=false').catch(() => undefined));
    const PEM = '-----BEGIN PUBLIC KEY-----\nThis is mock key\n-----END PUBLIC KEY-----';
    await sideBySide(t, sides, {
      label: 'e2e',
      provider: 'e2e-provider',
      parameters: {
        objects: 'array:\n  - |\n    objectName: foo\n    objectVersion: v1\n  - |\n    objectName: fookey\n    objectVersion: v1\n',
      },
      secretData: [
        { objectName: 'foo', key: 'foo' },
        { objectName: 'fookey', key: 'fookey' },
      ],
      before: { foo: 'secret', fookey: PEM },
      after: { foo: 'rotated', fookey: 'rotated' },
      rotate: () => http('/rotation?rotated=true'),
    });
  },
);
