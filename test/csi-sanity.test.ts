// csi-sanity, the CSI conformance suite of kubernetes-csi/csi-test (built
// from the Go module proxy by test/peers/csi-sanity/build.sh), against the
// real driver process on its unix socket. A fake controller of ours
// (test/fixtures/fake-controller.ts) answers CreateVolume with the test
// parameters as volume context, so csi-sanity's positive publish/unpublish
// specs reach the driver with `providerName: mock_provider` (upstream's
// sanity hook): a real FUSE bind mount at <mountdir>/target, idempotent
// republish, unpublish that removes the target. Every spec csi-sanity does
// not run is listed in SKIPPED below with the reason; a skipped spec missing
// from that list fails the test.
//
// Without the binary the test is skipped, unless SSCSI_REQUIRE_PEERS=1
// (.ci/run), where it fails and names the build script.

import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Harness, Proc, execFileP, mountsUnder, type Tap } from './helpers/harness.js';
import { startFakeController } from './fixtures/fake-controller.js';
import { checkPeer } from './helpers/peers.js';
import { skipFile } from './helpers/skip.js';

const BUILD_SCRIPT = 'test/peers/csi-sanity/build.sh';

const peer = await checkPeer(BUILD_SCRIPT, 'csi-sanity (Go 1.25+; .ci/run builds it)');
if (!peer.built) skipFile('SSCSI_REQUIRE_PEERS', `the csi-sanity test needs csi-sanity: ${peer.why}`);
const bin = peer.stdout.trim().split('\n').pop()!;

interface TestCase {
  readonly name: string;
  readonly status: string;
  readonly failure: string | null;
  readonly skipped: string | null;
}

const unescapeXml = (s: string): string =>
  s.replace(/&(#x?[0-9a-fA-F]+|lt|gt|amp|quot|apos);/g, (_m, e: string) => {
    switch (e) {
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'amp':
        return '&';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
      default:
        return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    }
  });

function attrs(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of s.matchAll(/([\w:-]+)="([^"]*)"/g)) out[m[1]!] = unescapeXml(m[2]!);
  return out;
}

/** The <testcase> elements of ginkgo's JUnit report. */
function parseJunit(xml: string): TestCase[] {
  const out: TestCase[] = [];
  for (const m of xml.matchAll(/<testcase\b([^>]*?)(?:\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const a = attrs(m[1]!);
    const body = m[2] ?? '';
    const failure = /<(failure|error)\b([^>]*)>/.exec(body);
    const skipped = /<skipped\b([^>]*)\/?>/.exec(body);
    out.push({
      name: (a.name ?? '').replace(/^\[It\]\s*/, ''),
      status: a.status ?? (failure ? 'failed' : skipped ? 'skipped' : 'passed'),
      failure: failure ? `${attrs(failure[2]!).message ?? failure[1]}` : null,
      skipped: skipped ? (attrs(skipped[1]!).message ?? '') : null,
    });
  }
  return out;
}

/** Passed to --ginkgo.skip: every spec of the [Controller Server] containers (see SKIPPED). */
const SKIP_REGEX = '\\[Controller Server\\]';

// Every spec csi-sanity v5.6.0 has and does not run here, one by one, with the
// reason. This driver is node-only: it serves inline ephemeral volumes that
// kubelet publishes directly, with no controller to create, attach, list,
// expand, modify or snapshot volumes.
const CONTROLLER_SERVER =
  'skipped by us (--ginkgo.skip): [Controller Server] specs call the controller endpoint, which here is our fake ' +
  "controller, so they would test the test fixture. The driver's own Controller service is upstream's: no capability, " +
  'every RPC Unimplemented, since an ephemeral inline volume is never provisioned by a controller';
const group = (prefix: string, why: string, specs: string[]): Array<readonly [string, string]> =>
  specs.map((s) => [`${prefix} ${s}`, why] as const);
const SKIPPED = new Map<string, string>([
  // Skipped by csi-sanity itself: capabilities the driver does not advertise.
  ...group(
    'Node Service NodeGetVolumeStats',
    'no GET_VOLUME_STATS (as upstream): the volume holds a few secret files, kubelet needs no usage figures for it',
    [
      'should fail when no volume id is provided',
      'should fail when no volume path is provided',
      'should fail when volume is not found',
      'should fail when volume does not exist on the specified path',
    ],
  ),
  ...group('Node Service NodeExpandVolume', 'no EXPAND_VOLUME (as upstream): a secrets volume has no size to grow', [
    'should fail when no volume id is provided',
    'should fail when no volume path is provided',
    'should fail when volume is not found',
    'should work if node-expand is called after node-publish',
  ]),
  ...group(
    'Node Service NodeGetVolumeHealth',
    'no GET_VOLUME_HEALTH (CSI 1.13): health is reported through rotation errors, metrics and Events',
    ['should fail when no volume id is provided', 'should return health for a valid volume'],
  ),
  [
    'Node Service NodeGetStorageHealth should return appropriate response',
    "no GET_STORAGE_HEALTH (CSI 1.13): there is no backing storage, only the driver's memory",
  ],
  [
    'Node Service NodePublishVolume with single node multi writer capability should fail when volume with single node single writer access mode is already mounted at a different target path',
    'no SINGLE_NODE_MULTI_WRITER: an inline volume belongs to one pod and one target path, and is read-only',
  ],
  [
    'GroupController Service [GroupController Server] GroupControllerGetCapabilities should return appropriate capabilities',
    'no GROUP_CONTROLLER_SERVICE: no volume group snapshots of ephemeral volumes',
  ],
  ...group(
    'GroupController Service [GroupController VolumeGroupSnapshots]',
    'no GROUP_CONTROLLER_SERVICE: no volume group snapshots of ephemeral volumes',
    [
      'CreateVolumeGroupSnapshot should fail when no name is provided',
      'GetVolumeGroupSnapshot should fail when no volume id is provided',
      'GetVolumeGroupSnapshot should fail when an invalid volume id is used',
      'DeleteVolumeGroupSnapshot should fail when no volume id is provided',
      'DeleteVolumeGroupSnapshot should succeed when an invalid volume id is used',
    ],
  ),
  // Skipped by us: the [Controller Server] containers.
  [
    'Controller Service [Controller Server] ControllerGetCapabilities should return appropriate capabilities',
    `${CONTROLLER_SERVER} (the driver's own empty list passes this spec: see the second test below)`,
  ],
  ['Controller Service [Controller Server] GetCapacity should return capacity (no optional values added)', CONTROLLER_SERVER],
  ...group('Controller Service [Controller Server] ListVolumes', CONTROLLER_SERVER, [
    'should return appropriate values (no optional values added)',
    'should fail when an invalid starting_token is passed',
    'check the presence of new volumes and absence of deleted ones in the volume list',
  ]),
  [
    'Controller Service [Controller Server] ListVolumes pagination should detect volumes added between pages and accept tokens when the last volume from a page is deleted',
    'pending: disabled (XIt) in csi-sanity itself; also a [Controller Server] spec',
  ],
  ...group('Controller Service [Controller Server] CreateVolume', CONTROLLER_SERVER, [
    'should fail when no name is provided',
    'should fail when no volume capabilities are provided',
    'should return appropriate values SingleNodeWriter NoCapacity',
    'should return appropriate values SingleNodeWriter WithCapacity 1Gi',
    'should not fail when requesting to create a volume with already existing name and same capacity',
    'should fail when requesting to create a volume with already existing name and different capacity',
    'should not fail when creating volume with maximum-length name',
    'should create volume from an existing source snapshot',
    'should fail when the volume source snapshot is not found',
    'should create volume from an existing source volume',
    'should fail when the volume source volume is not found',
    'should create volume with a volume attribute class',
    'should not create volume with an invalid volume attribute class',
  ]),
  ...group('Controller Service [Controller Server] DeleteVolume', CONTROLLER_SERVER, [
    'should fail when no volume id is provided',
    'should succeed when an invalid volume id is used',
    'should return appropriate values (no optional values added)',
  ]),
  ...group('Controller Service [Controller Server] ValidateVolumeCapabilities', CONTROLLER_SERVER, [
    'should fail when no volume id is provided',
    'should fail when no volume capabilities are provided',
    'should return appropriate values (no optional values added)',
    'should fail when the requested volume does not exist',
  ]),
  ...group('Controller Service [Controller Server] ControllerPublishVolume', CONTROLLER_SERVER, [
    'should fail when no volume id is provided',
    'should fail when no node id is provided',
    'should fail when no volume capability is provided',
    'should fail when publishing more volumes than the node max attach limit',
    'should fail when the volume does not exist',
    'should fail when the node does not exist',
    'should fail when the volume is already published but is incompatible',
  ]),
  ...group('Controller Service [Controller Server] volume lifecycle', CONTROLLER_SERVER, ['should work', 'should be idempotent']),
  ['Controller Service [Controller Server] ControllerUnpublishVolume should fail when no volume id is provided', CONTROLLER_SERVER],
  ...group('ListSnapshots [Controller Server]', CONTROLLER_SERVER, [
    'should return appropriate values (no optional values added)',
    'should return snapshots that match the specified snapshot id',
    'should return empty when the specified snapshot id does not exist',
    'should return snapshots that match the specified source volume id',
    'should return empty when the specified source volume id does not exist',
    'check the presence of new snapshots in the snapshot list',
    'should return next token when a limited number of entries are requested',
  ]),
  ...group('GetSnapshot [Controller Server]', CONTROLLER_SERVER, [
    'should return an error',
    'should return snapshot that match the specified snapshot id',
    'should return an error when the specified snapshot id does not exist',
  ]),
  ...group('DeleteSnapshot [Controller Server]', CONTROLLER_SERVER, [
    'should fail when no snapshot id is provided',
    'should succeed when an invalid snapshot id is used',
    'should return appropriate values (no optional values added)',
  ]),
  ...group('CreateSnapshot [Controller Server]', CONTROLLER_SERVER, [
    'should fail when no name is provided',
    'should fail when no source volume id is provided',
    'should succeed when requesting to create a snapshot with already existing name and same source volume ID',
    'should fail when requesting to create a snapshot with already existing name and different source volume ID',
    'should succeed when creating snapshot with maximum-length name',
    'should succeed when creating a snapshot with accessibility requirements',
  ]),
  ...group('ExpandVolume [Controller Server]', CONTROLLER_SERVER, [
    'should fail if no volume id is given',
    'should fail if no capacity range is given',
    'should work',
  ]),
  ...group('ModifyVolume [Controller Server]', CONTROLLER_SERVER, [
    'should fail if no volume id is given',
    'should fail if volume does not exist',
    'should fail if specified mutable parameters are not supported by the volume',
    'should modify a volume created without a volume attribute class',
    'should modify a volume created with a volume attribute class',
    'should fail to modify a volume created with a volume attribute class if new mutable parameters are not supported by volume',
  ]),
  ...group('ControllerGetVolumeHealth [Controller Server]', CONTROLLER_SERVER, [
    'should fail when no volume id is provided',
    'should return health for a valid volume',
  ]),
  ['ControllerListVolumeHealth [Controller Server] should return appropriate response', CONTROLLER_SERVER],
]);

/** The positive specs the fake controller exists for: they must have run and passed. */
const POSITIVE = [
  'Node Service should work',
  'Node Service should be idempotent',
  'Node Service NodeUnpublishVolume should remove target path',
  // Also calls CreateVolume (then checks NodeStageVolume's argument check).
  'Node Service NodeStageVolume should fail when no volume capability is provided',
];

interface Run {
  readonly code: number | null;
  readonly out: string;
  readonly cases: TestCase[];
  readonly seed: string;
}

async function runSanity(t: Tap, dir: string, args: string[]): Promise<Run> {
  const junit = join(dir, 'junit.xml');
  const sanity = new Proc(
    spawn(bin, [...args, `--ginkgo.junit-report=${junit}`, '--ginkgo.no-color', '--ginkgo.timeout=100s'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TMPDIR: dir },
    }),
  );
  t.teardown(() => sanity.stop('SIGKILL'));
  const code = await sanity.exited;
  const xml = existsSync(junit) ? await readFile(junit, 'utf8') : '';
  return { code, out: sanity.out, cases: parseJunit(xml), seed: /name="RandomSeed" value="(\d+)"/.exec(xml)?.[1] ?? '?' };
}

const failedOf = (cases: readonly TestCase[]): TestCase[] =>
  cases.filter((c) => c.failure !== null || !['passed', 'skipped', 'pending'].includes(c.status));

t.test('csi-sanity against the driver, with a fake controller for the positive node specs', async (t) => {
  const h = await Harness.start(t as Tap, { startProvider: false });
  const controller = await startFakeController(join(h.dir, 'controller.sock'));
  t.teardown(() => controller.close());

  const work = join(h.dir, 'sanity');
  await mkdir(work);
  const params = join(work, 'volume-parameters.yaml');
  await writeFile(params, 'providerName: mock_provider\n');
  // csi-sanity creates these itself before each spec (they must not exist) and removes them after.
  const mountDir = join(work, 'mount');
  const stagingDir = join(work, 'staging');

  const { stdout: version } = await execFileP(bin, ['--version']);
  const run = await runSanity(t as Tap, work, [
    `--csi.endpoint=unix://${h.sock}`,
    `--csi.controllerendpoint=unix://${controller.socket}`,
    `--csi.mountdir=${mountDir}`,
    `--csi.stagingdir=${stagingDir}`,
    `--csi.testvolumeparameters=${params}`,
    '--csi.testvolumeaccesstype=mount',
    `--ginkgo.skip=${SKIP_REGEX}`,
  ]);
  t.equal(run.code, 0, 'csi-sanity exits 0', run.code === 0 ? {} : { output: run.out.slice(-8000) });
  t.ok(run.cases.length > 0, 'the JUnit report lists the specs');

  const failed = failedOf(run.cases);
  t.same(
    failed.map((c) => `${c.name}: ${c.failure ?? c.status}`),
    [],
    'no spec failed',
  );

  const byName = new Map(run.cases.map((c) => [c.name, c]));
  for (const name of POSITIVE) t.equal(byName.get(name)?.status, 'passed', `ran and passed: ${name}`);

  const notRun = run.cases.filter((c) => c.status === 'skipped' || c.status === 'pending');
  const unexplained = notRun.filter((c) => !SKIPPED.has(c.name)).map((c) => `${c.name} (${c.skipped ?? c.status})`);
  t.same(unexplained, [], 'every skipped spec is in SKIPPED with a reason (add new ones there, with why)');
  const stale = [...SKIPPED.keys()].filter((n) => !byName.has(n));
  if (stale.length > 0) t.comment(`SKIPPED lists specs this csi-sanity does not have:\n${stale.join('\n')}`);
  const passed = run.cases.filter((c) => c.status === 'passed');
  const pending = notRun.filter((c) => c.status === 'pending');
  const skipped = notRun.filter((c) => c.status === 'skipped');
  const ours = skipped.filter((c) => /\[Controller Server\]/.test(c.name));
  t.comment(
    `csi-sanity ${version.trim().replace(/^Version = /, '')} (seed ${run.seed}): ${passed.length} passed, ` +
      `${skipped.length} skipped (${ours.length} [Controller Server] by --ginkgo.skip, ${skipped.length - ours.length} by csi-sanity for capabilities not advertised), ` +
      `${pending.length} pending (disabled in csi-sanity), ${failed.length} failed`,
  );

  // The positive specs went through the driver's real publish path: FUSE bind mounts at <mountdir>/target.
  const target = join(mountDir, 'target');
  const published = h.driver.out
    .split('\n')
    .filter((l) => l.includes('"msg":"node publish volume complete"') && l.includes(`"targetPath":"${target}"`));
  t.ok(
    published.length >= 3,
    `the driver published ${target} (should work, should be idempotent, should remove target path): ${published.length} times`,
  );
  t.ok(controller.calls.createVolume >= POSITIVE.length, `the fake controller created ${controller.calls.createVolume} volumes`);
  t.equal(controller.volumes.size, 0, 'csi-sanity deleted every volume it created');
  t.same(await mountsUnder(work), [], 'no mount left under the csi-sanity directories');
  t.notOk(existsSync(mountDir), 'the target path was removed by unpublish, so csi-sanity could remove its mount dir');
});

t.test("the driver's own Controller service passes csi-sanity's ControllerGetCapabilities spec", async (t) => {
  // Upstream answers a single RPC_UNKNOWN capability here, which this spec
  // rejects; ours answers an empty list.
  const h = await Harness.start(t as Tap, { startProvider: false });
  const work = join(h.dir, 'sanity');
  await mkdir(work);
  const run = await runSanity(t as Tap, work, [
    `--csi.endpoint=unix://${h.sock}`,
    `--csi.mountdir=${join(work, 'mount')}`,
    `--csi.stagingdir=${join(work, 'staging')}`,
    '--ginkgo.focus=Controller Service \\[Controller Server\\] ControllerGetCapabilities',
  ]);
  t.equal(run.code, 0, 'csi-sanity exits 0', run.code === 0 ? {} : { output: run.out.slice(-8000) });
  t.same(
    run.cases.filter((c) => c.status === 'passed').map((c) => c.name),
    ['Controller Service [Controller Server] ControllerGetCapabilities should return appropriate capabilities'],
  );
  t.same(failedOf(run.cases), []);
});
