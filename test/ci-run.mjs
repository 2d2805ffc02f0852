// Runs tap and ends with the plain closing line CI reads, always all three
// counts: `N passed, N failed, N skipped`. The counts are tap's final summary
// (test files' subtests and assertions; a skipped file counts once, todo
// counts as skipped). Before that line it lists every skip as `file: reason`.
//
// Exits non-zero when tap did, when there is no summary, or when a skip
// cannot be accepted: its reason does not start with the tag of the
// SSCSI_REQUIRE_* variable that would require it (test/helpers/skip.ts), or
// that variable is set to 1 (the part was required); those count as failed.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const TAP_RUN = fileURLToPath(new URL('../node_modules/tap/dist/esm/run.mjs', import.meta.url));
// `ok 3 - name # SKIP reason` at any depth; tap writes `# TODO` likewise.
const DIRECTIVE = /^(\s*)(?:not )?ok \d+ - (.*?) # (SKIP|TODO)\b ?(.*)$/;
const SUBTEST = /^# Subtest: (.*)$/;
const SUMMARY = /^# \{ total: (\d+)(.*)\}$/;
const TAG = /^\[(SSCSI_REQUIRE_[A-Z0-9_]+)\]/;

const child = spawn(process.execPath, [TAP_RUN, '--reporter=tap', ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] });

/** @type {{ file: string, name: string, kind: string, reason: string }[]} */
const skips = [];
let file = '';
let summary = null;
let partial = '';
function onLine(line) {
  const sub = SUBTEST.exec(line);
  if (sub) file = sub[1];
  const d = DIRECTIVE.exec(line);
  if (d) {
    // At depth 0 the line is the file itself (skipped whole).
    const top = d[1].length === 0;
    skips.push({ file: top ? d[2] : file, name: top ? '' : d[2], kind: d[3], reason: d[4] });
  }
  const m = SUMMARY.exec(line);
  if (m) summary = m[2];
}
child.stdout.on('data', (b) => {
  process.stdout.write(b);
  const lines = (partial + b.toString()).split('\n');
  partial = lines.pop();
  lines.forEach(onLine);
});

child.on('close', (code, signal) => {
  onLine(partial);
  const n = (k) => Number(new RegExp(`\\b${k}: (\\d+)`).exec(summary ?? '')?.[1] ?? 0);
  let passed = n('pass');
  let failed = n('fail');
  let skipped = n('skip') + n('todo');
  const problems = [];
  if (summary === null) problems.push('no summary from tap: the run did not finish');
  if (code !== 0 || signal) problems.push(`tap exited with ${signal ?? `code ${code}`}`);
  if (summary !== null && skips.length !== skipped) {
    problems.push(`tap counted ${skipped} skipped but ${skips.length} skip lines were read`);
  }

  if (skips.length > 0) {
    console.log(`# skipped (${skips.length}):`);
    for (const s of skips) console.log(`#   ${s.file}${s.name ? ` > ${s.name}` : ''}: ${s.kind === 'TODO' ? 'TODO ' : ''}${s.reason}`);
  }
  for (const s of skips) {
    const tag = TAG.exec(s.reason)?.[1];
    const where = `${s.file}${s.name ? ` > ${s.name}` : ''}`;
    let why = null;
    if (!tag) why = 'its reason does not start with [SSCSI_REQUIRE_<X>] (use test/helpers/skip.ts)';
    else if (process.env[tag] === '1') why = `${tag}=1 requires it`;
    if (why) {
      problems.push(`skipped but counted as failed: ${where}: ${why}`);
      skipped--;
      failed++;
    }
  }
  for (const p of problems) console.log(`# FAIL: ${p}`);
  if (problems.length > 0 && failed === 0) failed = 1;
  if (summary === null) passed = 0;
  console.log(`${passed} passed, ${failed} failed, ${Math.max(skipped, 0)} skipped`);
  process.exit(problems.length > 0 || failed > 0 ? 1 : 0);
});
