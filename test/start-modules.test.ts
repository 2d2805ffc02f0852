// What the driver loads at start (issue 10: module loading was most of its
// start time): no metrics library, and no YAML parser, which only a
// --secret-provider-class-dir lookup or a kubeconfig file needs.

import t from 'tap';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NODE, ROOT } from './helpers/harness.js';
import { runCaptured } from '../testkit/run.js';

t.test('importing the driver loads neither prom-client nor yaml', async (t) => {
  const script = [
    "import { createRequire } from 'node:module';",
    `await import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/cli/driver.js')).href)});`,
    `console.log(JSON.stringify(Object.keys(createRequire(${JSON.stringify(join(ROOT, 'package.json'))}).cache)));`,
  ].join('\n');
  const run = await runCaptured(NODE, ['--input-type=module', '-e', script], { timeoutMs: 30_000 });
  t.equal(run.code, 0, run.stderr);
  const loaded = JSON.parse(run.stdout) as string[];
  const packages = new Set(loaded.map((p) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(p)?.[1]).filter(Boolean));
  for (const p of ['prom-client', '@opentelemetry/api', 'tdigest', 'yaml']) t.notOk(packages.has(p), `${p} not loaded`);
  t.ok(packages.has('@grpc/grpc-js'), 'the cache is the one the driver fills');
});
