// A driver whose start fails after it opened and mounted its FUSE connection
// (here: the CSI socket cannot be made) exits with status 1 at once and
// leaves no mount behind: nobody would serve it, and a threadpool thread
// still reading /dev/fuse must not keep the process alive.

import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NODE, Proc, ROOT, mountsUnder, sleep, tempDir, type Tap } from './helpers/harness.js';

t.test('a start that fails after the FUSE mount exits 1 and unmounts it', async (t) => {
  const dir = await tempDir(t as Tap);
  await mkdir(join(dir, 'providers'));
  await mkdir(join(dir, 'spc'));
  await writeFile(join(dir, 'a-file'), '');
  const fuseDir = join(dir, 'fuse');
  const driver = new Proc(
    spawn(
      NODE,
      [
        join(ROOT, 'dist/src/bin/driver.js'),
        // The socket's directory cannot be made (a file is in the way): this fails after the mount.
        `--endpoint=unix://${join(dir, 'a-file', 'csi.sock')}`,
        '--nodeid=test-node',
        `--provider-volume=${join(dir, 'providers')}`,
        '--additional-provider-volume-paths=',
        `--fuse-mount-dir=${fuseDir}`,
        `--secret-provider-class-dir=${join(dir, 'spc')}`,
        '--metrics-addr=',
        '--kubelet-root-dir=',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  t.teardown(() => driver.stop('SIGKILL'));
  const code = await Promise.race([driver.exited, sleep(20_000).then(() => 'still running' as const)]);
  t.equal(code, 1, 'exits with status 1');
  t.match(driver.out, /secrets-store-csi-driver: .*(EEXIST|ENOTDIR)/, 'says why');
  t.match(driver.out, /starting secrets-store CSI driver/, 'it had started (and mounted) before failing');
  t.same(await mountsUnder(dir), [], 'no mount left behind');
});
