// NodeUnpublishVolume never deletes what the driver did not create: it
// unmounts whatever is at the target and removes the directory only when it
// is then empty (mount-utils' CleanupMountPoint). A target holding files,
// never published or with someone else's mount over them, is reported with
// FailedPrecondition and left exactly as it was.

import t from 'tap';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { Harness, execFileP, grpcCode, mountsUnder, type Tap } from './helpers/harness.js';

const h = await Harness.start(t as Tap);
await h.source('s.json', { files: [{ path: 'pw', contents: 'canary-unpublish-safety', mode: 0o400 }] });
await h.spc('app', 's.json');

t.test('a never-published target holding files: FailedPrecondition, nothing deleted', async (t) => {
  const target = h.target('holds-files');
  await mkdir(join(target, 'sub'), { recursive: true });
  await writeFile(join(target, 'keep.txt'), "not the driver's");
  await writeFile(join(target, 'sub', 'deep.txt'), 'nor this');
  const e = await h.unpublish(target).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.FAILED_PRECONDITION, 'FailedPrecondition');
  t.match((e as Error).message, /not empty/, 'says why');
  t.equal(await readFile(join(target, 'keep.txt'), 'utf8'), "not the driver's", 'the file is still there');
  t.equal(await readFile(join(target, 'sub', 'deep.txt'), 'utf8'), 'nor this', 'and the one below');
});

t.test("files under someone else's mount at the target: unmounted, then FailedPrecondition, files kept", async (t) => {
  const target = h.target('mounted-over');
  await mkdir(target, { recursive: true });
  await writeFile(join(target, 'under.txt'), 'below the mount');
  await execFileP('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'sscsi-test-foreign', target]);
  t.teardown(() => execFileP('umount', ['-l', target]).catch(() => undefined));
  await writeFile(join(target, 'on-top.txt'), 'in the foreign mount');
  const e = await h.unpublish(target).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.FAILED_PRECONDITION, 'FailedPrecondition');
  t.same(await mountsUnder(target), [], 'the mount at the target was removed');
  t.same(await readdir(target), ['under.txt'], 'what was below it stays');
});

t.test('an empty target and a published one are removed; a missing one is fine', async (t) => {
  const empty = h.target('empty');
  await mkdir(empty, { recursive: true });
  await h.unpublish(empty);
  await t.rejects(stat(empty), { code: 'ENOENT' }, 'the empty directory is gone');

  const served = h.target('served');
  await h.publish(h.publishRequest(served, 'app'));
  await h.unpublish(served);
  await t.rejects(stat(served), { code: 'ENOENT' }, 'the published target is gone');
  await h.unpublish(served);
  t.pass('unpublish of a missing target succeeds');
});
