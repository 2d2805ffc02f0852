// What a pod sees: files served from memory through a real FUSE mount at the
// target path, with upstream's atomic-writer layout, the provider's modes
// enforced by the kernel for other users, read-only, and a republish that
// changes nothing but what the next poll sends.

import t from 'tap';
import { lstat, readFile, readdir, readlink, stat, writeFile } from 'node:fs/promises';
import { Harness, execFileP, mountsUnder, type Tap } from './helpers/harness.js';

t.test('files, layout, modes and read-only mount', async (t) => {
  const h = await Harness.start(t as Tap);
  await h.source('s.json', {
    files: [
      { path: 'username', contents: 'admin\n', mode: 0o644 },
      { path: 'private', contents: 'top-secret', mode: 0o400 },
      { path: 'nested/dir/key.pem', contents: '-----BEGIN KEY-----\n', mode: 0o440 },
      { path: 'zero-mode', contents: 'z', mode: 0 },
      { path: 'binary', contentsBase64: Buffer.from([0, 1, 2, 255, 254]).toString('base64'), mode: 0o444 },
    ],
  });
  await h.spc('app', 's.json');
  const target = h.target('serve');
  await h.publish(h.publishRequest(target, 'app'));

  const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.split(' ')[4] === target);
  t.equal(mounts.length, 1, 'one mount at the target');
  t.match(mounts[0], / ro,nosuid,nodev,noexec/, 'read-only, nosuid, nodev, noexec');
  t.match(mounts[0], / - fuse\.secrets-store-csi secrets-store@\S+ /, 'our FUSE filesystem, its source naming the connection mount');
  t.match(mounts[0], /default_permissions,allow_other/);

  const names = (await readdir(target)).sort();
  t.equal(names.length, 7);
  t.same(
    names.filter((n) => !n.startsWith('..')),
    ['binary', 'nested', 'private', 'username', 'zero-mode'],
  );
  const dataDir = await readlink(`${target}/..data`);
  t.match(dataDir, /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d+$/, '..data points to a timestamped directory');
  t.ok(names.includes(dataDir));
  t.equal(await readlink(`${target}/username`), '..data/username', 'top-level names are links into ..data');
  t.equal(await readlink(`${target}/nested`), '..data/nested');
  t.ok((await lstat(`${target}/username`)).isSymbolicLink());

  t.equal(await readFile(`${target}/username`, 'utf8'), 'admin\n');
  t.equal(await readFile(`${target}/nested/dir/key.pem`, 'utf8'), '-----BEGIN KEY-----\n');
  t.same([...(await readFile(`${target}/binary`))], [0, 1, 2, 255, 254]);
  t.equal((await stat(`${target}/private`)).mode & 0o7777, 0o400);
  t.equal((await stat(`${target}/nested/dir/key.pem`)).mode & 0o7777, 0o440);
  t.equal((await stat(`${target}/zero-mode`)).mode & 0o7777, 0, 'mode 0 kept as upstream does');
  t.equal((await stat(`${target}/nested/dir`)).mode & 0o7777, 0o755);
  t.equal((await stat(`${target}/username`)).size, 6);

  // The kernel enforces modes for other users (allow_other + default_permissions).
  const asNobody = (cmd: string) => execFileP('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', cmd]);
  t.equal((await asNobody(`cat ${target}/username`)).stdout, 'admin\n', 'world-readable file readable by another user');
  await t.rejects(asNobody(`cat ${target}/private`), /Permission denied/, '0400 file refused to another user');
  await t.rejects(asNobody(`cat ${target}/nested/dir/key.pem`), /Permission denied/);
  await t.rejects(
    asNobody(`ls ${h.dir}/fuse`),
    /Permission denied/,
    'the connection root, which lists every volume, is closed to other users',
  );
  const asGroup = (cmd: string) => execFileP('setpriv', ['--reuid=65534', '--regid=65534', '--groups=0', 'sh', '-c', cmd]);
  t.equal((await asGroup(`cat ${target}/nested/dir/key.pem`)).stdout, '-----BEGIN KEY-----\n', 'group member may read a 0440 file');

  // Read-only for everyone, root included.
  await t.rejects(writeFile(`${target}/username`, 'x'), { code: 'EROFS' });
  await t.rejects(writeFile(`${target}/newfile`, 'x'), { code: 'EROFS' });
  await t.rejects(execFileP('rm', ['-f', `${target}/..data/username`]), /Read-only file system/);
  await t.rejects(execFileP('mkdir', [`${target}/d`]), /Read-only file system/);

  await h.unpublish(target);
  t.same(await mountsUnder(target), [], 'unmounted');
  await t.rejects(stat(target), { code: 'ENOENT' }, 'target directory removed, as upstream');
  await h.unpublish(target);
  t.pass('unpublish is idempotent');
});

t.test('setuid, setgid and sticky bits a provider returns are not served', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--enable-secret-rotation=false'] });
  await h.source('s.json', {
    files: [
      { path: 'suid', contents: 'a', mode: 0o4755 },
      { path: 'sgid', contents: 'b', mode: 0o6777 },
      { path: 'dir/all', contents: 'c', mode: 0o7777 },
      { path: 'sticky', contents: 'd', mode: 0o1640 },
    ],
  });
  await h.spc('app', 's.json');
  const target = h.target('special-bits');
  await h.publish(h.publishRequest(target, 'app'));
  const modes = await Promise.all(['suid', 'sgid', 'dir/all', 'sticky'].map(async (p) => (await stat(`${target}/${p}`)).mode & 0o7777));
  t.same(modes, [0o755, 0o777, 0o777, 0o640], "permission bits only, as upstream's atomic writer");
  t.equal((await stat(`${target}/dir`)).mode & 0o7777, 0o755);
  await h.unpublish(target);
});

t.test('republish is idempotent: same content served, the provider is not called, attributes refreshed', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--enable-secret-rotation=false'] });
  await h.source('s.json', { files: [{ path: 'a', contents: 'one' }] });
  await h.spc('app', 's.json');
  const target = h.target('republish');
  const req = h.publishRequest(target, 'app');
  await h.publish(req);
  const before = await readlink(`${target}/..data`);
  t.equal(h.providerMounts(), 1);
  for (let i = 0; i < 5; i++) await h.publish({ ...req, secrets: { clientsecret: `refreshed-${i}` } });
  t.equal(h.providerMounts(), 1, 'kubelet republish does not call the provider');
  t.equal(await readlink(`${target}/..data`), before, 'same version served');
  t.equal(await readFile(`${target}/a`, 'utf8'), 'one');
  t.equal((await mountsUnder(target)).length, 1, 'still exactly one mount');
  await h.unpublish(target);
});

t.test('after a driver crash, a new driver replaces the dead mounts it is asked to publish', async (t) => {
  const h = await Harness.start(t as Tap);
  await h.source('s.json', { files: [{ path: 'a', contents: 'before-crash' }] });
  await h.spc('app', 's.json');
  const target = h.target('crash');
  const req = h.publishRequest(target, 'app');
  await h.publish(req);
  t.equal(await readFile(`${target}/a`, 'utf8'), 'before-crash');
  await h.driver.stop('SIGKILL');
  await t.rejects(stat(`${target}/a`), { code: 'ENOTCONN' }, 'the mount is dead with its server');

  await h.source('s.json', { files: [{ path: 'a', contents: 'after-restart' }] });
  await h.startDriver();
  await h.publish(req);
  t.equal(await readFile(`${target}/a`, 'utf8'), 'after-restart', "kubelet's next publish mounts afresh over the dead mount");
  t.equal(
    (await mountsUnder(target)).length,
    2,
    "the new mount is stacked over the dead one (only a mount on top reaches containers' views of it)",
  );
  await h.unpublish(target);
  t.same(await mountsUnder(target), []);
});
