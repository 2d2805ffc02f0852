// kubelet does not serialise calls: 50 volumes published at once, each
// publish repeated while the first is still running, then all unpublished at
// once, with repeats. Every volume ends mounted exactly once with its own
// content, and then everything is gone: no mount, no directory, no bytes.

import t from 'tap';
import { readFile, stat } from 'node:fs/promises';
import { Harness, freePort, mountsUnder, type Tap } from './helpers/harness.js';

t.test('50 parallel publishes and unpublishes with repeats', async (t) => {
  const port = await freePort();
  const h = await Harness.start(t as Tap, { driverArgs: ['--enable-secret-rotation=false', `--metrics-addr=127.0.0.1:${port}`] });
  const n = 50;
  for (let i = 0; i < n; i++) {
    await h.source(`s${i}.json`, {
      files: [
        { path: 'id', contents: `volume-${i}` },
        { path: 'dir/common', contents: 'shared' },
      ],
    });
    await h.spc(`spc${i}`, `s${i}.json`);
  }
  const targets = Array.from({ length: n }, (_, i) => h.target(`par${i}`));
  const reqs = targets.map((tp, i) => h.publishRequest(tp, `spc${i}`, { volumeId: `vol-${i}` }));
  const results = await Promise.allSettled(reqs.flatMap((r) => [h.publish(r, 60_000), h.publish(r, 60_000)]));
  const failed = results.filter((r) => r.status === 'rejected');
  t.same(
    failed.map((f) => (f as PromiseRejectedResult).reason?.message),
    [],
    'every publish succeeded',
  );

  const mounted = await mountsUnder(`${h.dir}/pods`);
  t.equal(mounted.length, n, 'exactly one mount per volume');
  for (let i = 0; i < n; i++) {
    if ((await readFile(`${targets[i]}/id`, 'utf8')) !== `volume-${i}`) t.fail(`volume ${i} serves the wrong content`);
  }
  t.pass('each volume serves its own content');
  t.ok(h.providerMounts() >= n && h.providerMounts() <= 2 * n, `provider called ${h.providerMounts()} times for ${n} volumes`);

  const un = await Promise.allSettled(targets.flatMap((tp, i) => [h.unpublish(tp, `vol-${i}`), h.unpublish(tp, `vol-${i}`)]));
  t.same(
    un.filter((r) => r.status === 'rejected').map((f) => (f as PromiseRejectedResult).reason?.message),
    [],
    'every unpublish succeeded',
  );
  t.same(await mountsUnder(`${h.dir}/pods`), [], 'no mount left');
  for (const tp of targets) await t.rejects(stat(tp), { code: 'ENOENT' });
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  t.match(metrics, /secrets_store_fuse_file_bytes 0\n/, 'no secret bytes held by the driver');
  t.match(metrics, /secrets_store_volumes_mounted 0\n/);
  t.match(metrics, new RegExp(`node_publish_total\\{provider="example",os_type="linux"\\} ${2 * n}\\n`), 'every publish counted');
});
