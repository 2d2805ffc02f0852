// 6. The cost of a rotation's switch: syscalls in a forked child (inotify sees
// them) against the table-only switch; and the keeper snapshot as a node
// fills (bench/switch-cost.ts in a child process).

import { join } from 'node:path';
import { runCaptured } from '../../testkit/run.js';
import { umountAllWhere } from '../../testkit/mounts.js';
import { childJson } from '../lib/children.js';
import type { Section, SectionContext } from '../lib/context.js';
import { fmt, out, pad, phase, table } from '../lib/output.js';
import { KiB, P } from '../lib/params.js';
import { REPO_ROOT } from '../lib/paths.js';
import type { SwitchCostResult } from '../switch-cost.js';

const SWITCH_JS = join(REPO_ROOT, 'dist/bench/switch-cost.js');

async function benchSwitchCost(ctx: SectionContext): Promise<void> {
  const { results, notes } = ctx.report;
  const rotations = P.switchRotations;
  const volumes = P.switchVolumes;
  phase(`rotation switch cost (${rotations} rotations, ${volumes} concurrent volumes, child process)`);
  const r = await runCaptured(process.execPath, [SWITCH_JS, String(rotations), String(volumes)], {
    timeoutMs: 120_000,
    env: { ...process.env, UV_THREADPOOL_SIZE: '16' },
    onSpawn: ctx.env.trackSpawned,
  });
  // The child unmounts what it mounted; after a failure anything left under its temp dir goes here.
  const cleanupErrors: string[] = [];
  const leftovers = await umountAllWhere((m) => m.startsWith('/tmp/ssbench-switch-'), cleanupErrors);
  if (leftovers.length > 0)
    notes.push(`switch cost: ${leftovers.length} mount(s) left by the child had to be unmounted: ${leftovers.slice(0, 4).join(' ')}`);
  for (const e of cleanupErrors) notes.push(`switch cost cleanup: ${e}`);
  const { res, error } = childJson<SwitchCostResult>(r);
  results.switchCost = {
    command: `UV_THREADPOOL_SIZE=16 node dist/bench/switch-cost.js ${rotations} ${volumes}`,
    result: res,
    error: error || null,
  };
  out(`6. A rotation's switch inside the driver (bench/switch-cost.ts in a child process; 3 files of 1 KiB, one changes per rotation)`);
  if (!res) {
    out(`  FAILED: ${error}`);
    out();
    throw new Error(`switch cost: ${error}`);
  }
  const reqs = (m: Record<string, number>): string =>
    Object.entries(m)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ') || 'none';
  const v = res.vfsSteps;
  const tb = res.tableOnly;
  table(
    ['switch', 'median µs', 'p95 µs', 'mean µs', `${volumes} volumes at once, ms`],
    [
      [
        'syscalls in a forked child (default)',
        fmt(v.publishUs.median, 0),
        fmt(v.publishUs.p95, 0),
        fmt(v.publishUs.mean, 0),
        fmt(v.concurrentMs, 1),
      ],
      [
        'table only + invalidations (baseline)',
        fmt(tb.publishUs.median, 0),
        fmt(tb.publishUs.p95, 0),
        fmt(tb.publishUs.mean, 0),
        fmt(tb.concurrentMs, 1),
      ],
    ],
    38,
  );
  out(
    `  ratio (median): ${fmt(v.publishUs.median / tb.publishUs.median, 1)}x; the difference is what makes a rotation visible to inotify watchers`,
  );
  out(`  FUSE requests per rotation, switch only: ${reqs(v.switchRequests)}`);
  out(`  with the old version's removal (grace 0): ${reqs(v.withRemovalRequests)}`);
  out('  keeper snapshot after one change, handed to a keeper process (once per rotation, publish and unpublish; the JS');
  out('  thread waits for encode and hand-over): the records it touched, against the whole state (an older keeper):');
  const cost = (c: { bytes: number; ms: number; encodeMs: number; sendMs: number }): string =>
    `${pad(fmt(c.bytes / KiB, 1), 7)} KiB in ${pad(fmt(c.ms, 3), 6)} ms (encode ${fmt(c.encodeMs, 3)}, hand-over ${fmt(c.sendMs, 3)})`;
  for (const sn of res.snapshotMs) {
    out(`    ${pad(sn.volumes, 5)} volumes, whole state:      ${cost(sn)}`);
    out(`                 one volume rotated:  ${cost(sn.rotate)}`);
    out(`                 one more published:  ${cost(sn.publish)}`);
    out(`                 every record (a driver's first send): ${fmt(sn.resetMs, 2)} ms`);
  }
  out();
  notes.push(
    `rotation switch: ${fmt(v.publishUs.median / 1000, 2)} ms median with the syscalls made by a forked child (inotify sees them) ` +
      `vs ${fmt(tb.publishUs.median / 1000, 2)} ms table-only; ${volumes} volumes rotating at once: ${fmt(v.concurrentMs, 0)} ms vs ${fmt(tb.concurrentMs, 0)} ms. ` +
      `Keeper snapshot per change (records delta for one rotation vs whole state): ${res.snapshotMs
        .map((sn) => `${sn.volumes} volumes ${fmt(sn.rotate.ms, 2)} vs ${fmt(sn.ms, 1)} ms`)
        .join(', ')}.`,
  );
}

export const switchCost: Section = { name: 'switch-cost', run: benchSwitchCost };
