// Target paths as an attacker or a sloppy caller might spell them (issue 13):
// one directory under several spellings is one volume, a symlinked target is
// never followed (no mount nor unmount lands where it points), and nothing
// outside --kubelet-root-dir (the harness passes its own directory) is served
// or torn down.

import t from 'tap';
import { mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { Harness, cleanupMounts, execFileP, grpcCode, mountsUnder, type Tap } from './helpers/harness.js';
import { realTargetPath, resolveKubeletRoot } from '../src/csi/target-path.js';
import { TargetLifecycle } from '../src/mount/target-lifecycle.js';

const h = await Harness.start(t as Tap);
await h.source('s.json', { files: [{ path: 'pw', contents: 'canary-target-paths', mode: 0o444 }] });
await h.spc('app', 's.json');

t.test('spellings of one target: one record, one mount, served; unpublish by a third spelling', async (t) => {
  const target = h.target('spelled');
  // dir//x/./mount/
  const odd = `${dirname(target).replace('/volumes/', '//volumes/./')}/./mount/`;
  await h.publish(h.publishRequest(odd, 'app'));
  await h.publish(h.publishRequest(target, 'app'));
  t.same(await mountsUnder(target), [target], 'one mount, at the plain spelling');
  t.equal(await readFile(join(target, 'pw'), 'utf8'), 'canary-target-paths', 'served, not unmounted as foreign');
  t.equal(h.providerMounts(), 1, 'the second publish found the first record');

  await h.unpublish(`${target}//`.replace('/pods/', '/pods/./'));
  t.same(await mountsUnder(target), [], 'unmounted');
  await t.rejects(stat(target), { code: 'ENOENT' }, 'and removed');

  // No record left behind under any spelling: a new publish is a first publish again.
  await h.publish(h.publishRequest(target, 'app'));
  t.equal(h.providerMounts(), 2, 'the provider is called again');
  t.equal(await readFile(join(target, 'pw'), 'utf8'), 'canary-target-paths', 'and served');
  await h.unpublish(target);
  t.same(await mountsUnder(target), []);
});

t.test('relative targets and .. components: InvalidArgument', async (t) => {
  for (const p of ['relative/mount', `${h.target('dots')}/../escape`]) {
    t.equal(grpcCode(await h.publish(h.publishRequest(p, 'app')).catch((e: unknown) => e)), status.INVALID_ARGUMENT, `publish ${p}`);
    t.equal(grpcCode(await h.unpublish(p).catch((e: unknown) => e)), status.INVALID_ARGUMENT, `unpublish ${p}`);
  }
});

/** A directory holding a file, with a tmpfs mounted on it (what a symlink might aim at). */
async function victim(t: Tap, name: string): Promise<string> {
  const dir = join(h.dir, 'victims', name);
  await mkdir(dir, { recursive: true });
  await execFileP('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'sscsi-test-victim', dir]);
  t.teardown(() => execFileP('umount', ['-l', dir]).catch(() => undefined));
  await writeFile(join(dir, 'precious'), 'keep');
  return dir;
}

t.test('a target that is a symlink: refused, nothing mounted or unmounted where it points', async (t) => {
  const target = h.target('link');
  const dest = await victim(t as Tap, 'link');
  await mkdir(dirname(target), { recursive: true });
  await symlink(dest, target);

  const e = await h.publish(h.publishRequest(target, 'app')).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.INVALID_ARGUMENT, 'InvalidArgument');
  t.match((e as Error).message, target, 'names the path');
  t.match((e as Error).message, /symbolic link/, 'says why');
  t.same(await mountsUnder(dest), [dest], 'only the victim’s own mount at the destination');
  t.same(await readdir(dest), ['precious'], 'nothing mounted over it');
  t.equal(await readlink(target), dest, 'the symlink is left');

  const u = await h.unpublish(target).catch((x: unknown) => x);
  t.equal(grpcCode(u), status.INVALID_ARGUMENT, 'unpublish refused too');
  t.same(await mountsUnder(dest), [dest], 'the destination’s mount was not unmounted');
  t.equal(await readFile(join(dest, 'precious'), 'utf8'), 'keep', 'nor anything removed');
  t.equal(await readlink(target), dest, 'the symlink is left');
  await rm(target);
});

t.test('a target whose parent is a symlink: refused, nothing mounted where it points', async (t) => {
  const target = h.target('parent-link');
  const dest = await victim(t as Tap, 'parent-link');
  await mkdir(dirname(dirname(target)), { recursive: true });
  await symlink(dest, dirname(target));

  const e = await h.publish(h.publishRequest(target, 'app')).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.INVALID_ARGUMENT, 'InvalidArgument');
  t.match((e as Error).message, target, 'names the path');
  t.same(await mountsUnder(dest), [dest], 'nothing mounted below the destination');

  await mkdir(join(dest, 'mount'));
  const u = await h.unpublish(target).catch((x: unknown) => x);
  t.equal(grpcCode(u), status.INVALID_ARGUMENT, 'unpublish refused too');
  t.same((await readdir(dest)).sort(), ['mount', 'precious'], 'nothing removed where it points');
  await rm(dirname(target));
});

t.test('outside --kubelet-root-dir: publish and unpublish refused, the directory untouched', async (t) => {
  const outside = await mkdtemp(join(tmpdir(), 'sscsi-outside-'));
  t.teardown(async () => {
    await cleanupMounts(outside);
    await rm(outside, { recursive: true, force: true });
  });
  const target = join(outside, 'pods', 'uid', 'volumes', 'kubernetes.io~csi', 'v', 'mount');
  const e = await h.publish(h.publishRequest(target, 'app')).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.INVALID_ARGUMENT, 'publish: InvalidArgument');
  t.match((e as Error).message, /outside the kubelet root directory/, 'says why');
  t.same(await mountsUnder(outside), [], 'nothing mounted');

  await mkdir(target);
  const u = await h.unpublish(target).catch((x: unknown) => x);
  t.equal(grpcCode(u), status.INVALID_ARGUMENT, 'unpublish: InvalidArgument');
  t.ok((await stat(target)).isDirectory(), 'the directory is left');

  // csi-sanity's mock path: its unpublish stays a no-op as upstream, its publish is refused like any other.
  await h.unpublish('/tmp/csi/mount');
  t.pass('unpublish of /tmp/csi/mount: a no-op');
  const m = await h.publish(h.publishRequest('/tmp/csi/mount', 'app')).catch((x: unknown) => x);
  t.equal(grpcCode(m), status.INVALID_ARGUMENT, 'publish at /tmp/csi/mount: InvalidArgument');
});

t.test('a kubelet root that is itself a symlink: targets spelled through it are mounted at the real directory', async (t) => {
  const link = join(h.dir, 'kubelet-link');
  const real = join(h.dir, 'kubelet-real');
  await mkdir(real);
  await symlink(real, link);
  const root = await resolveKubeletRoot(link);
  t.same(root, { configured: link, resolved: real });
  const source = join(h.dir, 'lifecycle-source');
  await mkdir(source);
  await writeFile(join(source, 'f'), 'via the real root');
  const targets = new TargetLifecycle({ warn: () => undefined }, (p) => realTargetPath(p, root));
  const target = join(link, 'pods', 'uid', 'volumes', 'kubernetes.io~csi', 'v', 'mount');
  await mkdir(dirname(target), { recursive: true });

  await targets.prepare(target);
  await targets.bind(source, target, { writable: false });
  const realTarget = realTargetPath(target, root);
  t.same(await mountsUnder(real), [realTarget], 'mounted at the real directory');
  t.equal(await readFile(join(target, 'f'), 'utf8'), 'via the real root');
  const e = await writeFile(join(target, 'g'), 'x').catch((x: unknown) => x);
  t.equal((e as NodeJS.ErrnoException)?.code, 'EROFS', 'read-only, the flags set through the mount root fd');
  await targets.teardown(target, { mounted: true });
  t.same(await mountsUnder(real), [], 'unmounted');
  await t.rejects(stat(realTarget), { code: 'ENOENT' }, 'and removed');
});
