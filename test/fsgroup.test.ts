// Per-pod ownership: a publish with volume_mount_group (kubelet sends the
// pod's fsGroup once the driver advertises VOLUME_MOUNT_GROUP) serves every
// file and directory of that volume with that group and group read added, so
// a 0440 secret is readable by the pod's (non-root) user through its
// supplementary group and by nobody else but root. Checked with real
// processes and the kernel's own permission checks (default_permissions),
// through the target and through a container's private bind of it, and
// across rotations, provider-written files and a takeover's state.

import t from 'tap';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { NodeServiceCapability_RPC_Type, type NodePublishVolumeRequest } from '../src/gen/csi/v1/csi.js';
import { Harness, execFileP, grpcCode, waitUntil, type Tap } from './helpers/harness.js';

const GROUP = 2000;

function withGroup(req: NodePublishVolumeRequest, group: string): NodePublishVolumeRequest {
  const cap = req.volumeCapability!;
  const mount = cap.accessType?.$case === 'mount' ? cap.accessType.value : { fsType: '', mountFlags: [] };
  return { ...req, volumeCapability: { ...cap, accessType: { $case: 'mount', value: { ...mount, volumeMountGroup: group } } } };
}

/** `cat path` as uid/gid 1000, with GROUP as supplementary group or with none. */
function catAs(path: string, inGroup: boolean): Promise<string> {
  const groups = inGroup ? [`--groups=${GROUP}`] : ['--clear-groups'];
  return execFileP('setpriv', ['--reuid=1000', '--regid=1000', ...groups, 'cat', path]).then((r) => r.stdout);
}

/** The same read, through a bind of the target in a private mount namespace of its own (a container's view); gone when it exits. */
function catInContainer(target: string, at: string, file: string, inGroup: boolean): Promise<string> {
  const groups = inGroup ? `--groups=${GROUP}` : '--clear-groups';
  const script = `mount --make-rprivate / && mount --bind "$1" "$2" && exec setpriv --reuid=1000 --regid=1000 ${groups} cat "$2/$3"`;
  return execFileP('unshare', ['-m', 'sh', '-c', script, 'sh', target, at, file]).then((r) => r.stdout);
}

const owner = async (p: string): Promise<[number, number, number]> => {
  const s = await stat(p);
  return [s.uid, s.gid, s.mode & 0o7777];
};

t.test('a volume published with volume_mount_group is served to that group only', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=400ms'] });
  await h.source('s.json', {
    files: [
      { path: 'db-password', contents: 'canary-fsgroup-1', mode: 0o440 },
      { path: 'owner-only', contents: 'o', mode: 0o400 },
      { path: 'nested/dir/key.pem', contents: 'k', mode: 0o600 },
      { path: 'public', contents: 'p', mode: 0o644 },
    ],
  });
  await h.spc('app', 's.json');
  const target = h.target('fsgroup');
  const req = withGroup(h.publishRequest(target, 'app'), String(GROUP));
  await h.publish(req);

  t.same(await owner(join(target, 'db-password')), [0, GROUP, 0o440], '0440 stays 0440, group is the fsGroup');
  t.same(await owner(join(target, 'owner-only')), [0, GROUP, 0o440], 'group read added to 0400');
  t.same(await owner(join(target, 'nested/dir/key.pem')), [0, GROUP, 0o640], 'group read added to 0600');
  t.same(await owner(join(target, 'public')), [0, GROUP, 0o644]);
  t.same(await owner(join(target, 'nested/dir')), [0, GROUP, 0o755], 'directories: the group, no setgid');
  t.same(await owner(target), [0, GROUP, 0o755], 'the volume directory itself');
  t.same(await owner(join(target, '..data/nested')), [0, GROUP, 0o755]);
  t.equal((await execFileP('stat', ['-c', '%g', '--', join(target, 'db-password')])).stdout.trim(), String(GROUP), 'symlink and target');

  t.equal(await catAs(join(target, 'db-password'), true), 'canary-fsgroup-1', 'uid 1000 in group 2000 reads the 0440 file');
  await t.rejects(catAs(join(target, 'db-password'), false), /Permission denied/, 'uid 1000 without the group is refused');
  t.equal(await catAs(join(target, 'nested/dir/key.pem'), true), 'k', 'through group-searchable directories');
  await t.rejects(catAs(join(target, 'nested/dir/key.pem'), false), /Permission denied/);

  const at = join(h.dir, 'container-view');
  await mkdir(at);
  t.equal(await catInContainer(target, at, 'db-password', true), 'canary-fsgroup-1', 'the same through a private bind');
  await t.rejects(catInContainer(target, at, 'db-password', false), /Permission denied/, 'refused through the bind too');

  // A republish with the same group changes nothing; another group (or none) is an incompatible capability.
  await h.publish(req);
  const other = await h.publish(withGroup(req, '3000')).then(
    () => null,
    (e: unknown) => e,
  );
  t.equal(grpcCode(other), status.ALREADY_EXISTS, 'another group on republish: ALREADY_EXISTS');
  t.match(String((other as Error).message), /group 2000/);
  t.equal(grpcCode(await h.publish(withGroup(req, '')).catch((e: unknown) => e)), status.ALREADY_EXISTS, 'no group on republish either');
  t.same(await owner(join(target, 'db-password')), [0, GROUP, 0o440], 'still served to the first group');

  // Rotation: the new version's files and directories get the group too.
  await h.source('s.json', {
    files: [
      { path: 'db-password', contents: 'canary-fsgroup-2', mode: 0o400 },
      { path: 'added/new', contents: 'n', mode: 0o400 },
    ],
  });
  await waitUntil(async () => (await readFile(join(target, 'db-password'), 'utf8')) === 'canary-fsgroup-2', 10_000, 'the rotated value');
  t.same(await owner(join(target, 'db-password')), [0, GROUP, 0o440], 'rotated file: group kept, group read added');
  t.same(await owner(join(target, 'added')), [0, GROUP, 0o755], 'new directory: the group');
  t.equal(await catAs(join(target, 'added/new'), true), 'n');
  t.equal(await catAs(join(target, 'db-password'), true), 'canary-fsgroup-2');
  await t.rejects(catAs(join(target, 'db-password'), false), /Permission denied/);
  t.equal(await catInContainer(target, at, 'db-password', true), 'canary-fsgroup-2', 'rotated, through a private bind');
  await h.unpublish(target);
});

t.test('files a provider writes itself are served to the group too', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=400ms'] });
  await h.source('s.json', { files: [{ path: 'written', contents: 'w-1', mode: 0o400 }] });
  await h.spc('app', 's.json', { writeFiles: 'true' });
  const target = h.target('fsgroup-writes');
  await h.publish(withGroup(h.publishRequest(target, 'app'), String(GROUP)));
  t.same(await owner(join(target, 'written')), [0, GROUP, 0o440]);
  t.equal(await catAs(join(target, 'written'), true), 'w-1');
  await t.rejects(catAs(join(target, 'written'), false), /Permission denied/);
  await h.source('s.json', { files: [{ path: 'written', contents: 'w-2', mode: 0o400 }] });
  await waitUntil(async () => (await readFile(join(target, 'written'), 'utf8')) === 'w-2', 10_000, 'the rewritten value');
  t.same(await owner(join(target, 'written')), [0, GROUP, 0o440], 'after a rotation with a window');
  await h.unpublish(target);
});

t.test('a driver that takes over (crash, then upgrade) keeps serving the volume to its group', async (t) => {
  const h = await Harness.start(t as Tap, { keeper: true, driverArgs: ['--rotation-poll-interval=500ms'] });
  // `unseen` and `nested` are not looked up before the takeover: the kernel caches attributes for long, so
  // only nodes it never saw show what the new driver got from the state.
  const files = [
    { path: 'key', contents: 'k-1', mode: 0o400 },
    { path: 'unseen', contents: 'u', mode: 0o400 },
    { path: 'nested/f', contents: 'f', mode: 0o400 },
  ];
  await h.source('s.json', { files });
  await h.spc('app', 's.json');
  const target = h.target('fsgroup-takeover');
  const req = withGroup(h.publishRequest(target, 'app'), String(GROUP));
  await h.publish(req);
  t.same(await owner(join(target, 'key')), [0, GROUP, 0o440]);

  await h.driver.stop('SIGKILL');
  await h.startDriver();
  t.match(h.driver.out, /took over the FUSE connection/);
  t.same(await owner(join(target, 'key')), [0, GROUP, 0o440], 'after a crash: the same ownership');
  t.same(await owner(join(target, 'unseen')), [0, GROUP, 0o440], 'a file first looked up from the new driver');
  t.same(await owner(join(target, 'nested')), [0, GROUP, 0o755], 'a directory first looked up from the new driver');
  t.same(await owner(join(target, 'nested/f')), [0, GROUP, 0o440]);
  t.equal(await catAs(join(target, 'key'), true), 'k-1');
  await h.publish(req);
  t.equal(grpcCode(await h.publish(withGroup(req, '3000')).catch((e: unknown) => e)), status.ALREADY_EXISTS, 'the group is still known');

  await h.source('s.json', { files: [{ path: 'key', contents: 'k-2', mode: 0o400 }, ...files.slice(1)] });
  await waitUntil(async () => (await readFile(join(target, 'key'), 'utf8')) === 'k-2', 10_000, 'a rotation by the new driver');
  t.same(await owner(join(target, 'key')), [0, GROUP, 0o440], 'a rotation after the takeover keeps the group');

  await h.startDriver(); // a handover: the old one yields
  t.same(await owner(join(target, 'key')), [0, GROUP, 0o440], 'after a handover too');
  t.equal(await catAs(join(target, 'key'), true), 'k-2');
  await t.rejects(catAs(join(target, 'key'), false), /Permission denied/);
  await h.unpublish(target);
});

t.test('without volume_mount_group: root:root and the provider modes, as before', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--enable-secret-rotation=false'] });
  await h.source('s.json', {
    files: [
      { path: 'secret', contents: 's', mode: 0o440 },
      { path: 'd/f', contents: 'f', mode: 0o400 },
    ],
  });
  await h.spc('app', 's.json');
  const target = h.target('no-group');
  await h.publish(h.publishRequest(target, 'app'));
  t.same(await owner(join(target, 'secret')), [0, 0, 0o440]);
  t.same(await owner(join(target, 'd/f')), [0, 0, 0o400], 'no group read added');
  t.same(await owner(join(target, 'd')), [0, 0, 0o755]);
  t.same(await owner(target), [0, 0, 0o755]);
  await t.rejects(catAs(join(target, 'secret'), true), /Permission denied/, 'group 2000 means nothing here');
  // As after an upgrade from a driver without VOLUME_MOUNT_GROUP: the republish succeeds and nothing changes.
  await h.publish(withGroup(h.publishRequest(target, 'app'), String(GROUP)));
  t.same(await owner(join(target, 'secret')), [0, 0, 0o440], 'a group first named on republish is not applied');
  t.match(h.driver.out, /published without a group; it stays root:root until the pod is recreated/, 'and says so');
  await h.unpublish(target);
});

t.test('volume_mount_group must be a decimal group id', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--enable-secret-rotation=false'] });
  await h.source('s.json', { files: [{ path: 'a', contents: 'a' }] });
  await h.spc('app', 's.json');
  const target = h.target('bad-group');
  for (const bad of ['-1', 'abc', '0x10', '02000', '1.5', ' 2000', '4294967295', '99999999999']) {
    const e = await h.publish(withGroup(h.publishRequest(target, 'app'), bad)).catch((err: unknown) => err);
    t.equal(grpcCode(e), status.INVALID_ARGUMENT, `${JSON.stringify(bad)} refused`);
  }
  t.equal(h.providerMounts(), 0, 'the provider was never called');
  await h.publish(withGroup(h.publishRequest(target, 'app'), '0'));
  t.same(await owner(join(target, 'a')), [0, 0, 0o644], 'group 0 is a group: served to it (0644 already has group read)');
  await h.unpublish(target);
});

t.test('NodeGetCapabilities lists VOLUME_MOUNT_GROUP', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--enable-secret-rotation=false'], startProvider: false });
  const res = await new Promise<{ capabilities: Array<{ type?: { $case: string; value: { type: number } } }> }>((res, rej) =>
    h.node.nodeGetCapabilities({}, (e, r) => (e ? rej(e) : res(r!))),
  );
  const types = res.capabilities.map((c) => c.type?.value.type);
  t.ok(types.includes(NodeServiceCapability_RPC_Type.VOLUME_MOUNT_GROUP), 'VOLUME_MOUNT_GROUP advertised');
  t.ok(types.includes(NodeServiceCapability_RPC_Type.STAGE_UNSTAGE_VOLUME), 'STAGE_UNSTAGE_VOLUME still advertised');
});
