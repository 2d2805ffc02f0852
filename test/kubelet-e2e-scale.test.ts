// Scenario 7 of the real-kubelet suite (docs/kubelet-e2e.md): twenty pods
// created at once, each mounting a secrets-store volume, under one real
// kubelet; every one must reach Running and read the secret. The same run
// is repeated with upstream's driver v1.6.0 (test/peers/upstream-driver) in
// our driver's place, under the same kubelet, and the times from pod creation
// to Running are printed side by side. Upstream's driver has no registrar of
// its own (its DaemonSet runs node-driver-registrar, which the Go module
// proxy does not serve here): our registrar module registers it with kubelet,
// pointing at upstream's socket, as the sidecar would.

import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { Registrar } from '../src/registrar/server.js';
import { createLogger } from '../src/observability/log.js';
import { Proc, canary, freePort, mountsUnder, sleep } from './helpers/harness.js';
import { apply, eventually } from './helpers/kube.js';
import { DRIVER_NAME, E2ENode, secretsPodSpec, whyNoNode } from './helpers/kubelet-node.js';
import { checkPeer } from './helpers/peers.js';
import { skipFile, skipUnless } from './helpers/skip.js';

t.setTimeout(900_000);

const { why, v, kubeletBin } = await whyNoNode();
if (why) skipFile(v, why);
const upstream = await checkPeer('test/peers/upstream-driver/build.sh', 'the upstream driver (Go 1.26+, the Go module proxy)');

const PODS = 20;
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const node = await E2ENode.start(t, kubeletBin, { pollSeconds: 120 });
const secret = canary('e2e-scale');
const src = await node.writeSource('scale', [{ path: 'password', contents: secret }]);

interface Figures {
  readonly ms: number[];
  readonly totalMs: number;
}

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

/** Creates PODS pods at once in `ns`, waits for each to be Running and to have read the secret; times creation to Running. */
async function twentyPods(t: Test, ns: string): Promise<Figures> {
  await node.namespace(ns);
  await node.secretProviderClass(ns, 'scale-spc', src);
  const pod = (i: number): KubernetesObject =>
    ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `p${i}`, namespace: ns, labels: { app: 'scale' } },
      spec: secretsPodSpec('scale-spc', [
        { name: 'reader', command: ['sh', '-c', 'h=$(sha256sum /mnt/secrets/password) && echo "hash ${h%% *}"; exec sleep 3600'] },
      ]),
    }) as KubernetesObject;
  const created = new Map<string, number>();
  const running = new Map<string, number>();
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: PODS }, async (_, i) => {
      await apply(node.kc, [pod(i)]);
      created.set(`p${i}`, Date.now());
    }),
  );
  const end = Date.now() + 300_000;
  while (running.size < PODS && Date.now() < end) {
    for (const p of (await node.core().listNamespacedPod({ namespace: ns })).items)
      if (!running.has(p.metadata!.name!) && p.status?.phase === 'Running') running.set(p.metadata!.name!, Date.now());
    await sleep(200);
  }
  t.equal(running.size, PODS, `all ${PODS} pods Running`);
  const pods = (await node.core().listNamespacedPod({ namespace: ns })).items;
  let read = 0;
  for (const p of pods)
    await eventually(
      async () => (await node.containerLog(p, 'reader')).some((l) => l.text === `hash ${sha(secret)}`),
      30_000,
      `${p.metadata!.name} read`,
    )
      .then(() => read++)
      .catch(() => undefined);
  t.equal(read, PODS, 'every container read the secret');
  const ms = [...running].map(([name, at]) => at - created.get(name)!);
  const figures = { ms, totalMs: Math.max(...running.values()) - t0 };
  await node.core().deleteCollectionNamespacedPod({ namespace: ns, gracePeriodSeconds: 0 });
  await eventually(async () => (await node.core().listNamespacedPod({ namespace: ns })).items.length === 0, 120_000, 'the pods to be gone');
  const targets = pods.map((p) => join(node.kubeletRoot, 'pods', p.metadata!.uid!));
  await eventually(
    async () => (await Promise.all(targets.map(mountsUnder))).every((m) => m.length === 0),
    60_000,
    'every target unmounted',
  );
  t.pass('every pod deleted and every volume unmounted');
  return figures;
}

const line = (name: string, f: Figures): string =>
  `${name.padEnd(9)} p50 ${pct(f.ms, 50)} ms, p90 ${pct(f.ms, 90)} ms, max ${Math.max(...f.ms)} ms, all ${PODS} Running after ${f.totalMs} ms`;

let ours: Figures | null = null;
let theirs: Figures | null = null;

t.test(`7. ${PODS} pods at once with our driver`, async (t) => {
  ours = await twentyPods(t, 'scale-ours');
  t.comment(line('ours', ours));
});

t.test(
  `7. the same ${PODS} pods with upstream's driver v1.6.0 under the same kubelet`,
  { skip: skipUnless(upstream.built, 'SSCSI_REQUIRE_UPSTREAM', upstream.why) },
  async (t) => {
    // Our driver leaves: its registration socket goes, and kubelet forgets the driver.
    await node.driver.stop();
    const forgotten = async (): Promise<boolean> =>
      !((await node.storage().readCSINode({ name: node.cluster.nodeName })).spec.drivers ?? []).some((d) => d.name === DRIVER_NAME);
    await eventually(forgotten, 60_000, 'kubelet to forget our driver');
    const socket = join(node.kubeletRoot, 'plugins', 'csi-secrets-store-upstream', 'csi.sock');
    await mkdir(join(node.kubeletRoot, 'plugins', 'csi-secrets-store-upstream'), { recursive: true });
    const bin = upstream.stdout.trim().split('\n').pop()!;
    const driver = new Proc(
      spawn(
        bin,
        [
          `--endpoint=unix://${socket}`,
          `--nodeid=${node.cluster.nodeName}`,
          `--kubeconfig=${node.cluster.cp.adminKubeconfig}`,
          `--provider-volume=${node.providerDir}`,
          `--additional-provider-volume-paths=${node.providerDir}`,
          `--metrics-addr=127.0.0.1:${await freePort()}`,
          '--enable-secret-rotation=true',
          '--rotation-poll-interval=120s',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    t.teardown(() => driver.stop());
    await eventually(async () => existsSync(socket), 30_000, "upstream's socket");
    const registrar = await Registrar.start({
      registrationDir: join(node.kubeletRoot, 'plugins_registry'),
      driverName: DRIVER_NAME,
      kubeletEndpoint: socket,
      log: createLogger('warn'),
    });
    t.teardown(() => registrar.stop());
    await eventually(async () => !(await forgotten()), 60_000, 'kubelet to register upstream');
    theirs = await twentyPods(t, 'scale-upstream');
    t.comment(line('upstream', theirs));
  },
);

t.test('side by side', async (t) => {
  if (!ours) return t.fail('our run did not finish');
  t.comment(line('ours', ours));
  if (theirs) {
    t.comment(line('upstream', theirs));
    t.comment(
      `ratio ours/upstream: p50 ${(pct(ours.ms, 50) / pct(theirs.ms, 50)).toFixed(2)}x, all Running ${(ours.totalMs / theirs.totalMs).toFixed(2)}x`,
    );
  }
  t.pass('figures printed');
});
