// Where a volume's group (the publish's volume_mount_group) enters, without
// mounts: its parsing, the modes a group adds, every node a volume's tree or
// write window makes, and the state a process taking over receives (old
// states, from before volumes had a group, decode as root:root).

import t from 'tap';
import { status } from '@grpc/grpc-js';
import { checkPublish, volumeMountGroup } from '../src/csi/validate.js';
import { VolumeCapability_AccessMode_Mode, type NodePublishVolumeRequest } from '../src/gen/csi/v1/csi.js';
import { InodeTable, ROOT_ID, ownedMode, type Inode } from '../src/fuse/inode-table.js';
import { VolumeTree, type VolumeFile } from '../src/fuse/volume-tree.js';
import { WriteWindow } from '../src/fuse/write-window.js';
import { decodeState, encodeState, type DriverState } from '../src/takeover/state.js';

function pub(group: string): NodePublishVolumeRequest {
  return {
    volumeId: 'csi-1',
    publishContext: {},
    stagingTargetPath: '',
    targetPath: '/var/lib/kubelet/pods/p/volumes/kubernetes.io~csi/s/mount',
    volumeCapability: {
      accessType: { $case: 'mount', value: { fsType: '', mountFlags: [], volumeMountGroup: group } },
      accessMode: { mode: VolumeCapability_AccessMode_Mode.SINGLE_NODE_READER_ONLY },
    },
    readonly: true,
    secrets: {},
    volumeContext: { secretProviderClass: 'spc' },
  };
}

const file = (path: string, mode: number, contents = path): VolumeFile => ({ path, mode, contents: Buffer.from(contents) });

/** Every node reachable from `id` (the volume's directory included). */
function nodesUnder(table: InodeTable, id: number): Inode[] {
  const n = table.get(id)!;
  return [n, ...[...(n.children?.values() ?? [])].flatMap((c) => nodesUnder(table, c))];
}

t.test('volume_mount_group: empty is none, a decimal gid is a group, anything else INVALID_ARGUMENT', (t) => {
  t.equal(checkPublish(pub('')), null);
  t.equal(volumeMountGroup(pub('')), null, 'no group');
  for (const ok of ['0', '2000', '65534', '2147483647', '4294967294']) {
    t.equal(checkPublish(pub(ok)), null, `${ok} accepted`);
    t.equal(volumeMountGroup(pub(ok)), Number(ok));
  }
  for (const bad of ['-1', '+5', '2000 ', '0x7d0', '02000', '1e3', '4294967295', '12345678901', 'root']) {
    const e = checkPublish(pub(bad));
    t.equal(e?.grpcCode, status.INVALID_ARGUMENT, `${JSON.stringify(bad)} refused`);
    t.match(e?.message ?? '', /volume_mount_group/);
  }
  t.end();
});

t.test('ownedMode: group read on files, group read and search on directories, no setgid, idempotent', (t) => {
  t.equal(ownedMode('file', 0o440, null), 0o440, 'no group: the provider mode');
  t.equal(ownedMode('file', 0o400, null), 0o400);
  t.equal(ownedMode('file', 0o400, 2000), 0o440);
  t.equal(ownedMode('file', 0o600, 2000), 0o640);
  t.equal(ownedMode('file', 0o000, 2000), 0o040);
  t.equal(ownedMode('file', 0o440, 2000), 0o440);
  t.equal(ownedMode('file', 0o2755, 2000), 0o755, 'setgid from a provider still dropped');
  t.equal(ownedMode('dir', 0o700, 2000), 0o750);
  t.equal(ownedMode('dir', 0o755, 0), 0o755, 'group 0 is a group');
  t.equal(ownedMode('symlink', 0o777, 2000), 0o777);
  for (const m of [0, 0o400, 0o640, 0o7777]) t.equal(ownedMode('file', ownedMode('file', m, 7), 7), ownedMode('file', m, 7));
  t.end();
});

t.test('a tree with a group makes every node with it, on publish and on rotation; unchanged files keep their inode', (t) => {
  const table = new InodeTable();
  const vol = table.mkdir(0o755, 0, 2000);
  table.link(ROOT_ID, 'v', vol.id);
  const tree = new VolumeTree(table, vol.id, 0, 2000);
  tree.publish([file('a', 0o400), file('d/e/f', 0o600)], new Date(1000));
  const first = nodesUnder(table, vol.id);
  t.ok(first.length > 5);
  t.same(
    first.filter((n) => n.gid !== 2000 || n.uid !== 0),
    [],
    'every node: root:2000',
  );
  t.same(
    tree.files().map((f) => [f.path, f.mode]),
    [
      ['a', 0o440],
      ['d/e/f', 0o640],
    ],
  );
  const aId = table.child(table.child(vol.id, tree.dataDir!)!.id, 'a')!.id;
  t.notOk(
    tree.publish([file('a', 0o400), file('d/e/f', 0o600)], new Date(2000)).changed,
    'same files as the provider gave them: no change',
  );
  tree.publish([file('a', 0o400), file('d/e/f', 0o600, 'new'), file('g', 0o444)], new Date(3000));
  const data = table.child(vol.id, tree.dataDir!)!;
  t.equal(table.child(data.id, 'a')!.id, aId, 'unchanged file: same inode');
  t.same(
    nodesUnder(table, vol.id).filter((n) => n.gid !== 2000),
    [],
    'after a rotation too',
  );
  t.end();
});

t.test('a tree without a group is root:root with the provider modes', (t) => {
  const table = new InodeTable();
  const vol = table.mkdir(0o755, 0);
  table.link(ROOT_ID, 'v', vol.id);
  const tree = new VolumeTree(table, vol.id);
  tree.publish([file('a', 0o400), file('d/f', 0o600)], new Date(1000));
  t.same(
    nodesUnder(table, vol.id).filter((n) => n.gid !== 0 || n.uid !== 0),
    [],
  );
  t.same(
    tree.files().map((f) => f.mode),
    [0o400, 0o600],
  );
  t.equal(tree.group, null);
  t.end();
});

t.test('files a provider writes in a window get the group, chmod included', (t) => {
  const table = new InodeTable();
  const dir = table.mkdir(0o755, 0, 3000);
  const w = new WriteWindow(table, dir.id, () => true, 3000);
  const f = w.mknod('x', 0o400, false, 1) as Inode;
  t.equal(f.gid, 3000);
  t.equal(f.mode, 0o440);
  w.setattr(f.id, { mode: 0o600 }, 2);
  t.same(
    w.close().files.map((s) => [s.name, s.mode]),
    [['x', 0o640]],
  );
  w.release();
  const plain = new WriteWindow(table, dir.id, () => true);
  const g = plain.mknod('y', 0o400, false, 1) as Inode;
  t.same([g.gid, g.mode], [0, 0o400], 'without a group: as given');
  plain.release();
  t.end();
});

t.test('the takeover state keeps the group; a state from before it decodes as root:root', (t) => {
  const table = new InodeTable();
  const vol = table.mkdir(0o755, 0, 2000);
  table.link(ROOT_ID, 'v', vol.id);
  const tree = new VolumeTree(table, vol.id, 0, 2000);
  tree.publish([file('a', 0o400)], new Date(1000));
  const t1 = table.exportState();
  const state: DriverState = {
    version: 1,
    fs: { mountDir: '/m', negotiated: null, table: t1.state, volumes: [{ name: 'v', tree: tree.exportState() }] },
    volumes: [],
  };
  const { state: back, blob } = decodeState(encodeState(state, t1.data, (n) => Buffer.alloc(n)));
  const table2 = InodeTable.restore(back.fs.table, blob);
  const tree2 = VolumeTree.restore(table2, back.fs.volumes[0]!.tree, 0);
  t.equal(tree2.group, 2000, 'the tree keeps its group');
  t.same(
    nodesUnder(table2, vol.id).filter((n) => n.gid !== 2000),
    [],
    'every inode keeps the gid',
  );
  tree2.publish([file('a', 0o400, 'rotated'), file('b', 0o400)], new Date(2000));
  t.same(
    nodesUnder(table2, vol.id).filter((n) => n.gid !== 2000),
    [],
    'and a rotation after the takeover uses it',
  );
  t.same(
    tree2.files().map((f) => f.mode),
    [0o440, 0o440],
  );

  // A state written before volumes had a group: no gid, no group fields.
  const old = JSON.parse(JSON.stringify(state)) as {
    fs: { table: { nodes: Array<Record<string, unknown>> }; volumes: Array<{ tree: Record<string, unknown> }> };
  };
  for (const n of old.fs.table.nodes) delete n.gid;
  delete old.fs.volumes[0]!.tree.group;
  const { state: oldBack, blob: oldBlob } = decodeState(encodeState(old as unknown as DriverState, t1.data, (n) => Buffer.alloc(n)));
  const table3 = InodeTable.restore(oldBack.fs.table, oldBlob);
  const tree3 = VolumeTree.restore(table3, oldBack.fs.volumes[0]!.tree, 0);
  t.equal(tree3.group, null, 'an old state: no group');
  t.same(
    nodesUnder(table3, vol.id).filter((n) => n.gid !== 0),
    [],
    'an old state: root:root',
  );
  t.end();
});
