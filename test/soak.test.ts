// A driver under churn for a while: a fast poll with the source changing
// faster still (names added, removed and nested), kubelet-style republishes,
// unpublish/publish cycles, and reads. Nothing may fail, nothing may be
// logged as a warning, and the driver must still be running: races between
// rotations, old-version removal passes and unpublishes end the process.

import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Harness, sleep, warningLines, type Tap } from './helpers/harness.js';

t.test('rotations, republishes and unpublish/publish cycles under a fast poll', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--rotation-poll-interval=100ms'] });
  await h.source('s.json', {
    files: [
      { path: 'pw', contents: 'v0' },
      { path: 'd/x', contents: 'x0' },
    ],
  });
  await h.spc('app', 's.json');
  const targets = Array.from({ length: 8 }, (_, i) => h.target(`soak${i}`));
  for (const tp of targets) await h.publish(h.publishRequest(tp, 'app'));
  let n = 0;
  const rot = setInterval(() => {
    n++;
    void h.source('s.json', {
      files: [
        { path: 'pw', contents: `v${n}` },
        ...(n % 2 ? [{ path: 'd/x', contents: `x${n}` }] : []),
        ...(n % 3 ? [{ path: 'extra', contents: 'e' }] : []),
      ],
    });
  }, 60);
  const end = Date.now() + 15_000;
  let errors = 0;
  let cycles = 0;
  while (Date.now() < end) {
    const i = cycles++ % targets.length;
    try {
      if (cycles % 3 === 0) {
        await h.unpublish(targets[i]!);
        await h.publish(h.publishRequest(targets[i]!, 'app'));
      } else await h.publish(h.publishRequest(targets[i]!, 'app'));
      const v = await readFile(join(targets[i]!, 'pw'), 'utf8');
      if (!/^v\d+$/.test(v)) errors++;
    } catch (e) {
      errors++;
      t.comment(String(e));
    }
    await sleep(20);
  }
  clearInterval(rot);
  t.equal(errors, 0, `errors over ${cycles} cycles, ${n} source changes`);
  t.equal(h.driver.child.exitCode, null, 'driver alive');
  const bad = warningLines(h.driver.out);
  t.comment(bad.slice(0, 10).join('\n'));
  t.equal(bad.length, 0, 'no warnings or errors logged');
  for (const tp of targets) await h.unpublish(tp);
});
