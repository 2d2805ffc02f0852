// Everything the upstream comparison must undo, whatever state the run got
// to (also on SIGINT/SIGTERM): the republisher, both drivers, the provider
// and every mount under the temp dir (bench/lib/env.ts), and the bench's own
// control plane with all the objects in it.

import { stopControlPlaneAt, type ControlPlane } from '../../testkit/control-plane.js';
import type { BenchEnv } from '../lib/env.js';
import type { ProviderCalls } from './provider-calls.js';
import type { Republisher } from './republisher.js';
import type { Side } from './side.js';

export class Teardown {
  cp: ControlPlane | null = null;
  sides: Side[] = [];
  republisher: Republisher | null = null;
  calls: ProviderCalls | null = null;

  constructor(private readonly env: BenchEnv) {}

  /** Never throws; what went wrong goes to `notes`. */
  async run(notes: string[]): Promise<void> {
    await this.republisher?.stop().catch(() => undefined);
    this.republisher = null;
    this.calls?.close();
    this.calls = null;
    for (const s of this.sides) await s.stop().catch((e: unknown) => notes.push(`stop ${s.name}: ${(e as Error).message}`));
    const c = await this.env.cleanup();
    for (const cr of c.crashed) notes.push(`CRASHED: ${cr}`);
    for (const e of c.errors) notes.push(`cleanup: ${e}`);
    // The volumes still published at the end: neither driver unmounts them when stopped.
    if (c.leftoverMounts.length > 0) notes.push(`cleanup unmounted ${c.leftoverMounts.length} mount(s) left by the drivers`);
    if (this.cp) await stopControlPlaneAt(this.cp).catch((e: unknown) => notes.push(`control plane: ${(e as Error).message}`));
    this.cp = null;
  }
}
