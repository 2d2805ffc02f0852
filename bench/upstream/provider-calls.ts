// Counts the example provider's Mount calls per driver: it logs one JSON line
// per call with the request's target path, and each driver's targets lie
// under its own kubelet root.

import type { Proc } from '../../testkit/proc.js';
import type { SideName } from './drivers.js';

export class ProviderCalls {
  private readonly counts: Record<SideName, number> = { upstream: 0, ours: 0 };
  private readonly off: () => void;

  constructor(provider: Proc, roots: Record<SideName, string>) {
    const sides = Object.entries(roots) as Array<[SideName, string]>;
    this.off = provider.onLine((line) => {
      if (!line.includes('"msg":"mount"')) return;
      let target: unknown;
      try {
        target = (JSON.parse(line) as { targetPath?: unknown }).targetPath;
      } catch {
        return;
      }
      if (typeof target !== 'string') return;
      const side = sides.find(([, root]) => target.startsWith(`${root}/`));
      if (side) this.counts[side[0]]++;
    });
  }

  /** Mount calls so far for each driver. */
  snapshot(): Record<SideName, number> {
    return { ...this.counts };
  }

  close(): void {
    this.off();
  }
}
