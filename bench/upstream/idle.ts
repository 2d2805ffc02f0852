// What each driver costs while it only holds its volumes, rotation on:
// kubelet's republishes keep coming (the Republisher), ours also polls on its
// own. Over one window: average CPU, resident memory at its end, and the
// provider's Mount calls it caused, per volume and hour.

import { sleep } from '../../testkit/wait.js';
import type { PerSide } from './latency.js';
import { anonKiB, cpuMark, milliCpu, rssKiB } from './proc-stats.js';
import type { ProviderCalls } from './provider-calls.js';
import type { Republisher } from './republisher.js';
import type { Side } from './side.js';

export interface IdleFigures {
  readonly volumes: number;
  readonly windowSeconds: number;
  readonly milliCpu: number;
  readonly rssKiB: number;
  /** Of rssKiB, the anonymous pages (not the pages of the runtime's binary and libraries). */
  readonly anonKiB: number;
  readonly providerCalls: number;
  readonly providerCallsPerVolumeHour: number;
  /** kubelet republishes the bench made to this driver within the window. */
  readonly republishes: number;
}

export async function idleWindow(
  sides: readonly Side[],
  seconds: number,
  hz: number,
  calls: ProviderCalls,
  republisher: Republisher,
): Promise<PerSide<IdleFigures>> {
  const cpu0 = await Promise.all(sides.map((s) => cpuMark(s.proc.pid)));
  const calls0 = calls.snapshot();
  const rep0 = republisher.callCounts();
  await sleep(seconds * 1000);
  const cpu1 = await Promise.all(sides.map((s) => cpuMark(s.proc.pid)));
  const calls1 = calls.snapshot();
  const rep1 = republisher.callCounts();
  const out: Partial<PerSide<IdleFigures>> = {};
  for (const [i, s] of sides.entries()) {
    if (!s.proc.running) throw new Error(`the ${s.name} driver died during the idle window\n${s.proc.recentOutput()}`);
    const window = (cpu1[i]!.at - cpu0[i]!.at) / 1000;
    const n = calls1[s.name] - calls0[s.name];
    out[s.name] = {
      volumes: s.held.length,
      windowSeconds: window,
      milliCpu: milliCpu(cpu0[i]!, cpu1[i]!, hz),
      rssKiB: await rssKiB(s.proc.pid),
      anonKiB: await anonKiB(s.proc.pid),
      providerCalls: n,
      providerCallsPerVolumeHour: s.held.length === 0 ? 0 : (n / s.held.length / window) * 3600,
      republishes: rep1[s.name] - rep0[s.name],
    };
  }
  return out as PerSide<IdleFigures>;
}
