// Runs tap and ends with the plain "N passed, N failed" line CI reads.
// N counts test files' subtests as tap reports them in its final summary.
import { spawn } from 'node:child_process';

const child = spawn(process.execPath, ['node_modules/tap/dist/esm/run.mjs', '--reporter=tap', ...process.argv.slice(2)],
  { stdio: ['ignore', 'pipe', 'inherit'] });
let tail = '';
child.stdout.on('data', (b) => {
  process.stdout.write(b);
  tail = (tail + b.toString()).slice(-8192);
});
child.on('close', (code, signal) => {
  const m = /# \{ total: (\d+)(.*)\}/.exec(tail);
  const n = (k) => Number(new RegExp(`${k}: (\\d+)`).exec(m?.[2] ?? '')?.[1] ?? 0);
  const failed = m ? n('fail') : 1;
  const skipped = m ? n('skip') + n('todo') : 0;
  const passed = m ? n('pass') : 0;
  const ok = code === 0 && !signal;
  console.log(`${passed} passed, ${ok ? failed : Math.max(failed, 1)} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(ok ? 0 : 1);
});
