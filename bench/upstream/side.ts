// One driver under comparison, as the bench holds it: its process, its
// kubelet client, the Pod objects it has left to publish volumes for, and
// the volumes it holds published.

import type { PodRef } from '../../testkit/csi.js';
import type { Proc } from '../../testkit/proc.js';
import type { BenchEnv } from '../lib/env.js';
import { startSide, type DriverSetup, type SideName, type SideSpec } from './drivers.js';
import { Kubelet, type Volume } from './kubelet.js';

export class Side {
  private procRef: Proc | null = null;
  private kubeletRef: Kubelet | null = null;
  /** Spawn-to-Probe of every start, ms. */
  readonly readyMs: number[] = [];
  private readonly unused: PodRef[] = [];
  /** Published and kept (republished, measured while idle). */
  readonly held: Volume[] = [];

  constructor(
    readonly spec: SideSpec,
    private readonly env: BenchEnv,
    private readonly upstreamBin: string,
    private readonly setup: DriverSetup,
  ) {}

  get name(): SideName {
    return this.spec.name;
  }

  get proc(): Proc {
    if (!this.procRef) throw new Error(`the ${this.name} driver is not running`);
    return this.procRef;
  }

  get kubelet(): Kubelet {
    if (!this.kubeletRef) throw new Error(`the ${this.name} driver is not running`);
    return this.kubeletRef;
  }

  /** Starts the driver (stopping the one running first) and records how long it took to answer. */
  async start(): Promise<void> {
    await this.stop();
    const s = await startSide(this.env, this.upstreamBin, this.spec, this.setup);
    this.readyMs.push(s.readyMs);
    this.procRef = s.proc;
    this.kubeletRef = new Kubelet(this.spec.socket, this.spec.root, this.spec.spc);
  }

  async stop(): Promise<void> {
    this.kubeletRef?.close();
    this.kubeletRef = null;
    const p = this.procRef;
    this.procRef = null;
    await p?.stop('SIGTERM', 10_000);
  }

  addPods(pods: readonly PodRef[]): void {
    this.unused.push(...pods);
  }

  /** A volume of a Pod not published yet. */
  freshVolume(): Volume {
    const pod = this.unused.shift();
    if (!pod) throw new Error(`${this.name}: no Pod objects left`);
    return this.kubelet.volume(pod);
  }
}
