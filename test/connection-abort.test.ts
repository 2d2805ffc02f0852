// Ending a FUSE connection that a mount in another namespace still holds:
// the connection id is found in mountinfo, and close() aborts the connection
// so the readers of /dev/fuse in this process are released.
//
// This process serves the mount: it touches it only through child processes.

import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SecretsFilesystem } from '../src/fuse/filesystem.js';
import { fuseConnectionId } from '../src/fuse/connection-abort.js';
import { bindMount, unmount } from '../src/mount/commands.js';
import { Proc, execFileP, sleep, tempDir, type Tap } from './helpers/harness.js';

const log = { warn: () => undefined, debug: () => undefined };

t.test('fuseConnectionId reads the minor device number of the FUSE mount at a path', async (t) => {
  const dir = await tempDir(t as Tap);
  const info = join(dir, 'mountinfo');
  await writeFile(
    info,
    [
      '25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
      '40 25 0:52 / /var/lib/fuse\\040dir rw,nosuid - fuse.secrets-store-csi secrets-store@/var/lib/fuse\\040dir rw,user_id=0',
      '41 25 0:60 / /plain rw - tmpfs tmpfs rw',
      '42 25 0:53 / /stacked rw - fuse.secrets-store-csi a rw',
      '43 42 0:54 / /stacked rw - fuse.secrets-store-csi b rw',
      '44 25 0:270 / /big rw - fuse.other c rw',
      '',
    ].join('\n'),
  );
  t.equal(await fuseConnectionId('/var/lib/fuse dir', info), 52, 'an escaped path');
  t.equal(await fuseConnectionId('/stacked', info), 54, 'the top one of stacked mounts');
  t.equal(await fuseConnectionId('/big', info), 270, 'a minor above 255');
  t.equal(await fuseConnectionId('/plain', info), null, 'not a FUSE mount');
  t.equal(await fuseConnectionId('/missing', info), null, 'not mounted');
  t.equal(await fuseConnectionId('/', info), null);
});

t.test('close() aborts a connection held by a mount in another namespace and releases the readers', async (t) => {
  const dir = await tempDir(t as Tap);
  const fs = await SecretsFilesystem.mount({ mountDir: join(dir, 'fuse'), log });
  const vol = fs.createVolume('vol');
  await fs.publish(vol, [{ path: 'a', mode: 0o444, contents: Buffer.from('x') }]);
  const target = join(dir, 'target');
  await mkdir(target);
  await bindMount(vol.sourcePath, target);
  const id = await fuseConnectionId(join(dir, 'fuse'));
  t.type(id, 'number', `the connection is ${id}`);

  // A pod's view: a copy of the mounts in a mount namespace of its own, which
  // our unmounts do not reach. unshare execs in place, so killing it ends the namespace.
  const holder = new Proc(
    spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'echo ready; exec sleep 600'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  t.teardown(() => holder.stop('SIGKILL'));
  await holder.waitFor(/ready/);
  await unmount(target, { lazy: true });

  const started = Date.now();
  const aborted = await fs.close(500);
  t.ok(aborted, 'the connection outlived the unmounts, so it was aborted');
  t.not(aborted?.method, 'failed', `aborted through ${aborted?.method} ${aborted?.error ?? ''}`);
  const done = await Promise.race([fs.session.done.then(() => true), sleep(5000).then(() => false)]);
  t.ok(done, `every reader of /dev/fuse returned (${Date.now() - started} ms)`);
  // The namespace's copy of the mount is dead now, not hung.
  const probe = await execFileP('nsenter', ['-t', String(holder.child.pid), '-m', '--', 'cat', join(target, 'a')], { timeout: 5000 }).then(
    () => 'read',
    (e: NodeJS.ErrnoException & { stderr?: string; killed?: boolean }) => (e.killed ? 'hung' : (e.stderr ?? '')),
  );
  t.match(probe, /Transport endpoint is not connected|Software caused connection abort/, 'a read in the other namespace fails at once');
});
