// test/ci-run.mjs (the README's closing line) on small fixture test files in
// a temp dir, which skip through test/helpers/skip.ts or, like an unconverted
// test would, through tap directly: skipped files and subtests are counted
// and listed, a skip whose variable is set or whose reason has no tag counts
// as failed, and a run without tap's summary fails.

import t from 'tap';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, NODE, execFileP, type Tap } from './helpers/harness.js';

// Four nested tap runs, each starting a node per fixture file: slow on a busy machine.
t.setTimeout(360_000);

const SKIP_HELPER = join(ROOT, 'test/helpers/skip.js');
const FIXTURES: Record<string, string> = {
  'whole.test.ts': `import { skipFile } from '${SKIP_HELPER}';
skipFile('SSCSI_REQUIRE_FIXTURE_A', 'fixture A is missing');
`,
  'sub.test.ts': `import t from 'tap';
import { skipUnless } from '${SKIP_HELPER}';
t.test('runs', async (t) => { t.pass('ran'); });
t.test('needs B', { skip: skipUnless(false, 'SSCSI_REQUIRE_FIXTURE_B', 'fixture B is missing') }, async (t) => { t.fail('ran'); });
t.test('has D', { skip: skipUnless(true, 'SSCSI_REQUIRE_FIXTURE_D', 'fixture D is missing') }, async (t) => { t.pass('ran'); });
`,
  'rest.test.ts': `import t from 'tap';
import { skipRest } from '${SKIP_HELPER}';
t.test('part', async (t) => { t.pass('ran'); skipRest(t, 'the rest', 'SSCSI_REQUIRE_FIXTURE_E', 'fixture E is missing'); });
`,
  'raw-tagged.test.ts': `import t from 'tap';
t.test('needs C', { skip: '[SSCSI_REQUIRE_FIXTURE_C] fixture C is missing' }, async (t) => { t.fail('ran'); });
`,
  'plain.test.ts': `import t from 'tap';
t.pass('ran');
`,
  'untagged.test.ts': `import t from 'tap';
t.test('quiet', { skip: 'no reason worth a tag' }, async (t) => { t.fail('ran'); });
`,
};

async function fixtures(t: Tap): Promise<string> {
  const dir = await mkdtemp(join('/tmp', 'sscsi-ci-run-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // Its own package.json (no tap config: not this project's `after` hook) and the project's modules.
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  for (const [name, text] of Object.entries(FIXTURES)) await writeFile(join(dir, name), text);
  return dir;
}

/** ci-run in `dir` with an environment free of the outer tap run's and of SSCSI_REQUIRE_*, plus `extra`. */
async function ciRun(dir: string, args: string[], extra: Record<string, string> = {}): Promise<{ code: number; lines: string[] }> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !/^(_?TAP|NODE_OPTIONS$|SSCSI_REQUIRE_)/.test(k)) env[k] = v;
  }
  const res = await execFileP(NODE, [join(ROOT, 'test/ci-run.mjs'), '--disable-coverage', ...args], {
    cwd: dir,
    env: { ...env, ...extra },
    maxBuffer: 16 << 20,
  }).then(
    (r) => ({ code: 0, stdout: r.stdout }),
    (e: { code?: number; stdout?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '' }),
  );
  return { code: res.code, lines: res.stdout.trimEnd().split('\n') };
}

t.test('skipped files and subtests are counted and listed; the run passes', async (t) => {
  const dir = await fixtures(t as Tap);
  const { code, lines } = await ciRun(dir, ['whole.test.ts', 'sub.test.ts']);
  t.equal(code, 0, 'exit 0');
  t.equal(lines.at(-1), '2 passed, 0 failed, 2 skipped', 'the closing line counts the skipped file and the skipped subtest');
  const list = lines.slice(lines.indexOf('# skipped (2):') + 1, -1);
  t.ok(lines.includes('# skipped (2):'), 'a skipped list before the closing line');
  t.same(
    list.sort(),
    [
      '#   sub.test.ts > needs B: [SSCSI_REQUIRE_FIXTURE_B] fixture B is missing',
      '#   whole.test.ts: [SSCSI_REQUIRE_FIXTURE_A] fixture A is missing',
    ],
    "file: reason for each (in tap's order of files)",
  );
});

t.test('nothing skipped: the closing line still says 0 skipped, and there is no list', async (t) => {
  const dir = await fixtures(t as Tap);
  const { code, lines } = await ciRun(dir, ['plain.test.ts']);
  t.equal(code, 0);
  t.equal(lines.at(-1), '1 passed, 0 failed, 0 skipped');
  t.notOk(lines.some((l) => l.startsWith('# skipped')));
});

t.test('a required skip, an untagged skip and a helper refusing to skip all fail the run', async (t) => {
  const dir = await fixtures(t as Tap);
  const { code, lines } = await ciRun(dir, ['whole.test.ts', 'sub.test.ts', 'raw-tagged.test.ts', 'untagged.test.ts'], {
    SSCSI_REQUIRE_FIXTURE_A: '1',
    SSCSI_REQUIRE_FIXTURE_C: '1',
  });
  t.not(code, 0, 'exit non-zero');
  t.ok(
    lines.includes('# FAIL: skipped but counted as failed: raw-tagged.test.ts > needs C: SSCSI_REQUIRE_FIXTURE_C=1 requires it'),
    'the required skip is named',
  );
  t.ok(
    lines.some((l) => l.startsWith('# FAIL: skipped but counted as failed: untagged.test.ts > quiet: its reason does not start with')),
    'the untagged skip is named',
  );
  // whole.test.ts fails itself (SSCSI_REQUIRE_FIXTURE_A=1); B stays a plain skip.
  t.equal(lines.at(-1), '2 passed, 3 failed, 1 skipped');
});

t.test('the rest of a subtest skipped with skipRest counts as skipped, not passed, and fails when required', async (t) => {
  const dir = await fixtures(t as Tap);
  const skipped = await ciRun(dir, ['rest.test.ts']);
  t.equal(skipped.code, 0);
  t.equal(skipped.lines.at(-1), '1 passed, 0 failed, 1 skipped', 'only the assertion that ran is a pass');
  t.ok(skipped.lines.includes('#   rest.test.ts > the rest: [SSCSI_REQUIRE_FIXTURE_E] fixture E is missing'), 'and it is listed');
  const required = await ciRun(dir, ['rest.test.ts'], { SSCSI_REQUIRE_FIXTURE_E: '1' });
  t.not(required.code, 0, 'exit non-zero when its variable requires it');
  t.match(required.lines.at(-1) ?? '', /^1 passed, [1-9]\d* failed, 0 skipped$/);
});

t.test('no summary from tap: non-zero exit, and the closing line says failed', async (t) => {
  const dir = await fixtures(t as Tap);
  const { code, lines } = await ciRun(dir, ['--version']);
  t.not(code, 0, 'exit non-zero');
  t.ok(lines.includes('# FAIL: no summary from tap: the run did not finish'));
  t.equal(lines.at(-1), '0 passed, 1 failed, 0 skipped');
});
