// Upgrades in a row while ten volumes rotate fast and a reader reads them
// all: each old driver hands over and exits 0, no read fails, nothing is
// logged as a warning, and the old versions a driver retired but had no time
// to remove are removed by its successor (one version directory each).

import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Harness, sleep, warningLines, type Tap } from './helpers/harness.js';

t.test('six upgrades in a row with ten volumes rotating', async (t) => {
  const h = await Harness.start(t as Tap, { keeper: true, driverArgs: ['--rotation-poll-interval=150ms'] });
  let n = 0;
  const src = () =>
    h.source('s.json', { files: [{ path: 'pw', contents: `v${n}` }, ...(n % 2 ? [{ path: 'd/x', contents: `x${n}` }] : [])] });
  await src();
  await h.spc('app', 's.json');
  const targets = Array.from({ length: 10 }, (_, i) => h.target(`ho${i}`));
  for (const tp of targets) await h.publish(h.publishRequest(tp, 'app'));
  const rot = setInterval(() => {
    n++;
    void src();
  }, 80);
  t.teardown(() => clearInterval(rot));
  let errors = 0;
  let reads = 0;
  let stop = false;
  const reader = (async () => {
    while (!stop) {
      for (const tp of targets) {
        try {
          const v = await readFile(join(tp, 'pw'), 'utf8');
          reads++;
          if (!/^v\d+$/.test(v)) errors++;
        } catch (e) {
          errors++;
          t.comment(String(e));
        }
      }
    }
  })();
  const outs: string[] = [];
  for (let i = 0; i < 6; i++) {
    await sleep(2300); // past the 2 s grace: removal passes run around the handover
    const old = h.driver;
    await h.startDriver();
    const code = await Promise.race([old.exited, sleep(15_000).then(() => 'timeout')]);
    t.equal(code, 0, `handover ${i}: old exited 0`);
    outs.push(old.out);
  }
  await sleep(1000);
  clearInterval(rot);
  await sleep(3000);
  stop = true;
  await reader;
  t.equal(errors, 0, `read errors over ${reads} reads, ${n} source changes`);
  const bad = [...outs, h.driver.out].flatMap(warningLines);
  t.comment(bad.slice(0, 8).join('\n'));
  t.equal(bad.length, 0, 'no warnings');
  t.equal((await readFile(join(targets[0]!, 'pw'), 'utf8')).startsWith('v'), true);
  await sleep(3000);
  for (const tp of targets)
    t.equal((await readdir(tp)).filter((x) => x.startsWith('..2')).length, 1, `one version dir in ${tp.split('/').at(-2)}`);
  for (const tp of targets) await h.unpublish(tp);
});
