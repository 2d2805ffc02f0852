// What the bench's run-to-completion children (bench/mount-strategy.js,
// bench/switch-cost.js) left behind: their JSON result, how they ended, and
// the states of their threads when one is stuck.

import { readdir, readFile } from 'node:fs/promises';
import type { CapturedRun } from '../../testkit/run.js';

/** Name and kernel wait channel of every thread of `pid` (/proc/<pid>/task/<tid>/{comm,wchan}). */
export async function threadStates(pid: number): Promise<Array<{ comm: string; wchan: string }>> {
  const out: Array<{ comm: string; wchan: string }> = [];
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const comm = (await readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8').catch(() => '?')).trim();
    const wchan = (await readFile(`/proc/${pid}/task/${tid}/wchan`, 'utf8').catch(() => '?')).trim();
    out.push({ comm, wchan });
  }
  return out;
}

export const howEnded = (r: CapturedRun): string =>
  r.timedOut ? 'killed after the timeout' : r.signal ? `signal ${r.signal}` : `exit code ${r.code}`;

/** A bench child's JSON result, or why there is none (how it ended, its last lines). */
export function childJson<T>(r: CapturedRun): { res: T | null; error: string } {
  if (r.code !== 0) return { res: null, error: `${howEnded(r)}: ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join(' | ')}` };
  try {
    return { res: JSON.parse(r.stdout) as T, error: '' };
  } catch (e) {
    return { res: null, error: `unparsable output: ${(e as Error).message}: ${r.stdout.slice(0, 300)}` };
  }
}
