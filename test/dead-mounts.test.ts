// Dead-mount detection: which mount table entries are this driver's, and the
// stat-in-a-child probe, against real mounts: a live directory, a missing
// path, and a FUSE connection that nobody serves (a stat there blocks until
// the deadline; it must not tie up the driver).

import t from 'tap';
import { closeSync, openSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { candidateMounts, probeInChild } from '../src/takeover/dead-mounts.js';
import { mountFuse } from '../src/mount/commands.js';
import { parseMountInfo } from '../src/mount/mountinfo.js';
import { fuseSource, SUBTYPE } from '../src/fuse/filesystem.js';
import { execFileP, tempDir, type Tap } from './helpers/harness.js';

t.test("candidateMounts: only binds of this driver's connection, not the root, not another driver's", (t) => {
  const ours = fuseSource('/run/a/fuse');
  const line = (id: number, mp: string, type: string, source: string): string =>
    `${id} 1 0:99 /x ${mp} ro,nosuid - ${type} ${source.replace(/ /g, '\\040')} ro,user_id=0`;
  const table = parseMountInfo(
    [
      line(1, '/run/a/fuse', `fuse.${SUBTYPE}`, ours),
      line(2, '/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/v/mount', `fuse.${SUBTYPE}`, ours),
      line(3, '/var/lib/kubelet/pods/u2/volumes/kubernetes.io~csi/v/mount', `fuse.${SUBTYPE}`, fuseSource('/run/b/fuse')),
      line(4, '/var/lib/kubelet/pods/u3/volumes/kubernetes.io~csi/v/mount', 'tmpfs', ours),
      line(5, '/tmp/with space', `fuse.${SUBTYPE}`, fuseSource('/run/a/fuse')),
    ].join('\n'),
  );
  t.same(
    candidateMounts(table, '/run/a/fuse').map((m) => m.mountId),
    [2, 5],
  );
  t.same(candidateMounts(table, '/run/c/fuse'), []);
  t.end();
});

t.test('probeInChild: alive, gone, and a connection nobody answers', async (t) => {
  const dir = await tempDir(t as Tap);
  t.equal(await probeInChild(dir, 5000), 'alive');
  t.equal(await probeInChild(join(dir, 'missing'), 5000), 'gone');

  const mp = join(dir, 'unserved');
  await mkdir(mp);
  const fd = openSync('/dev/fuse', 'r+');
  t.teardown(async () => {
    await execFileP('umount', ['-l', mp]).catch(() => undefined);
    closeSync(fd); // aborts the connection
  });
  // Mounted, but nobody reads /dev/fuse: INIT is never answered, so every request waits.
  await mountFuse(fd, mp, { fsname: fuseSource(dir), subtype: SUBTYPE });
  const started = Date.now();
  t.equal(await probeInChild(mp, 300), 'unresponsive', 'the deadline ends a stat that would wait forever');
  t.ok(Date.now() - started < 5000, 'and the probe returned at its deadline');

  // The server is gone (its fd closed): the connection is aborted, stat fails with ENOTCONN.
  const deadMp = join(dir, 'dead');
  await mkdir(deadMp);
  const fd2 = openSync('/dev/fuse', 'r+');
  await mountFuse(fd2, deadMp, { fsname: fuseSource(dir), subtype: SUBTYPE });
  closeSync(fd2);
  t.teardown(() => execFileP('umount', ['-l', deadMp]).catch(() => undefined));
  t.equal(await probeInChild(deadMp, 5000), 'dead');
});
