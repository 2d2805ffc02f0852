// One FUSE connection per node (volumes bind-mounted from it) versus one
// connection per volume: what each costs to set up and to keep, measured in
// one run. Run as root: `node dist/bench/mount-strategy.js [volumes]`.
// It serves the mounts itself, so it reads them only from child processes.

import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SecretsFilesystem } from '../src/fuse/filesystem.js';
import { bindMount, unmount } from '../src/mount/commands.js';
import { execFileP as run } from '../testkit/run.js';
import { summarize, round } from './lib/stats.js';

const log = { warn: () => undefined, debug: () => undefined };
const files = (i: number) => [1, 2, 3].map((k) => ({ path: `s${k}`, mode: 0o444, contents: Buffer.alloc(1024, 65 + ((i + k) % 26)) }));
const fds = async (): Promise<number> => (await readdir('/proc/self/fd')).length;

interface StrategyFigures {
  setupMedianMs: number;
  setupP95Ms: number;
  /** libuv threadpool threads parked in read(2) on /dev/fuse for as long as the mounts live. */
  poolThreadsHeld: number;
  fdsAdded: number;
  teardownMs: number;
  /** Volumes mounted before an ordinary async fs call stopped completing (null: never stalled). */
  stalledAtVolume: number | null;
}

export interface StrategyResult {
  volumes: number;
  threadpoolSize: number;
  perNode: StrategyFigures;
  perVolume: StrategyFigures;
}

/** Does an ordinary threadpool call (stat) still complete within 1 s? */
async function poolResponsive(): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const ok = await Promise.race([
    stat('/').then(() => true),
    new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), 1000);
    }),
  ]);
  clearTimeout(timer);
  return ok;
}

export async function measureMountStrategies(n: number): Promise<StrategyResult> {
  const dir = await mkdtemp('/tmp/ssbench-mounts-');
  try {
    // One connection, n bind mounts.
    const f0 = await fds();
    const fs = await SecretsFilesystem.mount({ mountDir: join(dir, 'node'), log });
    const nodeTimes: number[] = [];
    for (let i = 0; i < n; i++) {
      const target = join(dir, 'a', String(i));
      await mkdir(target, { recursive: true });
      const s = performance.now();
      const v = fs.createVolume(`v${i}`);
      await fs.publish(v, files(i));
      await bindMount(v.sourcePath, target);
      nodeTimes.push(performance.now() - s);
    }
    await run('cat', [join(dir, 'a', '0', 's1')]);
    const nodeStall = (await poolResponsive()) ? null : n;
    const f1 = await fds();
    let s = performance.now();
    for (let i = 0; i < n; i++) await unmount(join(dir, 'a', String(i)));
    await fs.close();
    const nodeTeardown = performance.now() - s;

    // n connections, each mounted at its target.
    const f2 = await fds();
    const conns: SecretsFilesystem[] = [];
    const volTimes: number[] = [];
    let volStall: number | null = null;
    for (let i = 0; i < n; i++) {
      if (!(await poolResponsive())) {
        volStall = i;
        break;
      }
      const target = join(dir, 'b', String(i));
      const st = performance.now();
      const c = await SecretsFilesystem.mount({ mountDir: target, log, readers: 1 });
      await c.publish(c.createVolume('v'), files(i));
      volTimes.push(performance.now() - st);
      conns.push(c);
    }
    if (volStall === null) await run('cat', [join(dir, 'b', '0', 'v', 's1')]);
    const f3 = await fds();
    s = performance.now();
    for (const c of conns) await c.close();
    const volTeardown = performance.now() - s;
    return {
      volumes: n,
      threadpoolSize: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
      perNode: {
        setupMedianMs: round(summarize(nodeTimes).median, 2),
        setupP95Ms: round(summarize(nodeTimes).p95, 2),
        poolThreadsHeld: 2,
        fdsAdded: f1 - f0,
        teardownMs: round(nodeTeardown, 1),
        stalledAtVolume: nodeStall,
      },
      perVolume: {
        setupMedianMs: round(summarize(volTimes).median, 2),
        setupP95Ms: round(summarize(volTimes).p95, 2),
        poolThreadsHeld: conns.length,
        fdsAdded: f3 - f2,
        teardownMs: round(volTeardown, 1),
        stalledAtVolume: volStall,
      },
    };
  } finally {
    const text = await run('cat', ['/proc/self/mountinfo']);
    for (const p of text.stdout
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((p): p is string => !!p && p.startsWith(dir))
      .reverse()) {
      await unmount(p, { lazy: true }).catch(() => undefined);
    }
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 50);
  const r = await measureMountStrategies(n);
  console.log(JSON.stringify(r, null, 2));
}
