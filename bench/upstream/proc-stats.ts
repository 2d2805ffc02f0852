// A driver process's cost as the kernel counts it: CPU time from
// /proc/<pid>/stat (its threads, plus children it waited for, such as mount)
// and resident memory from /proc/<pid>/status.

import { readFile } from 'node:fs/promises';
import { run } from '../../testkit/run.js';
import { anonKiB, rssKiB } from '../lib/metrics.js';

export { anonKiB, rssKiB };

/** Clock ticks per second (USER_HZ), the unit of /proc/<pid>/stat's times. */
export async function clockTicks(): Promise<number> {
  const hz = Number((await run('getconf', ['CLK_TCK'])).stdout.trim());
  return Number.isFinite(hz) && hz > 0 ? hz : 100;
}

/** utime + stime + cutime + cstime of `pid`, in ticks. */
export async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces), from field 3 (state): utime is field 14.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}

/** A CPU reading to diff against a later one. */
export interface CpuMark {
  readonly ticks: number;
  readonly at: number;
}

export async function cpuMark(pid: number): Promise<CpuMark> {
  return { ticks: await cpuTicks(pid), at: performance.now() };
}

/** Average CPU between two marks in mCPU (1000 = one core busy). */
export const milliCpu = (a: CpuMark, b: CpuMark, hz: number): number => ((b.ticks - a.ticks) / hz / ((b.at - a.at) / 1000)) * 1000;
