// kubelet's periodic republish for a driver whose CSIDriver sets
// requiresRepublish (ours and upstream's both do): NodePublishVolume again,
// same request, for every mounted volume once per period. kubelet does it
// from each pod's sync, so pods are out of phase: each volume gets a random
// phase within the period. One republish per volume in flight at a time.

import type { SideName } from './drivers.js';
import type { Kubelet, Volume } from './kubelet.js';

interface Held {
  readonly side: SideName;
  readonly kubelet: Kubelet;
  readonly volume: Volume;
  nextAt: number;
  busy: boolean;
}

export class Republisher {
  private readonly held: Held[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly inFlight = new Set<Promise<void>>();
  /** Republish latencies (ms) per driver, and failures. */
  readonly samples: Record<SideName, number[]> = { upstream: [], ours: [] };
  readonly errors: string[] = [];
  private calls: Record<SideName, number> = { upstream: 0, ours: 0 };

  constructor(private readonly periodMs: number) {
    this.timer = setInterval(() => this.tick(), 50);
  }

  /** Republishes `volume` from now on, first at a random point within one period. */
  add(side: SideName, kubelet: Kubelet, volume: Volume): void {
    this.held.push({ side, kubelet, volume, nextAt: performance.now() + Math.random() * this.periodMs, busy: false });
  }

  /** Republish calls made so far per driver. */
  callCounts(): Record<SideName, number> {
    return { ...this.calls };
  }

  private tick(): void {
    const now = performance.now();
    for (const h of this.held) {
      if (h.busy || h.nextAt > now) continue;
      h.busy = true;
      h.nextAt += this.periodMs;
      this.calls[h.side]++;
      const p = h.kubelet.publish(h.volume).then(
        (ms) => {
          this.samples[h.side].push(ms);
        },
        (e: unknown) => {
          if (this.errors.length < 20) this.errors.push(`${h.side} republish ${h.volume.pod.name}: ${(e as Error).message}`);
        },
      );
      const done = p.finally(() => {
        h.busy = false;
        this.inFlight.delete(done);
      });
      this.inFlight.add(done);
    }
  }

  /** No more republishes; resolves when those in flight have ended. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.inFlight]);
  }
}
