// The drivers the sections run against, started and stopped as the sections
// in order ask for them.

import type { DriverKind } from './context.js';
import { startDriver, type Driver, type DriverOptions } from './driver.js';
import type { BenchEnv } from './env.js';
import { phase } from './output.js';
import { P } from './params.js';

const DRIVERS: Record<DriverKind, { readonly phase: string; readonly options: Omit<DriverOptions, 'providerDir' | 'spcDir'> }> = {
  // At the production poll interval, so polls of many volumes do not load the machine.
  main: {
    phase: 'starting driver (poll interval 2m) for reads and publishes',
    options: { name: 'main', rotationPollInterval: P.mainPollInterval, logLevel: 'warn' },
  },
  mem: {
    phase: 'starting driver (poll interval 2m, default flags, --inspect) for memory',
    options: { name: 'mem', rotationPollInterval: P.mainPollInterval, logLevel: 'warn', inspect: true },
  },
  rot: {
    phase: 'starting driver (poll interval 1s) for rotation',
    options: { name: 'rot', rotationPollInterval: P.rotationPollInterval, logLevel: 'info' },
  },
};

/** At most one driver at a time: the one the current section asked for. */
export class DriverSlot {
  private current: { kind: DriverKind; driver: Driver } | null = null;

  constructor(
    private readonly env: BenchEnv,
    private readonly dirs: { providerDir: string; spcDir: string },
  ) {}

  /** The driver of `kind`, started now unless it is the one running (another one is stopped first). */
  async get(kind: DriverKind): Promise<Driver> {
    if (this.current?.kind === kind) return this.current.driver;
    await this.stop();
    phase(DRIVERS[kind].phase);
    const driver = await startDriver(this.env, { ...DRIVERS[kind].options, ...this.dirs });
    this.current = { kind, driver };
    return driver;
  }

  async stop(): Promise<void> {
    if (!this.current) return;
    const { driver } = this.current;
    this.current = null;
    driver.csi.close();
    await driver.child.stop();
  }
}
