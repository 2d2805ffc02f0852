// What a bench section is given: the temp dir, the secrets and baselines
// prepared for it, the report it adds to, and the driver it asked for.

import type { Proc } from '../../testkit/proc.js';
import type { Driver } from './driver.js';
import type { BenchEnv } from './env.js';
import type { SecretFile } from './secrets.js';
import type { StrategyDirs } from './strategy-dirs.js';

/** Every figure of the run (the JSON line) and the notes printed after the tables. */
export class Report {
  readonly results: Record<string, unknown> = {};
  readonly notes: string[] = [];
}

/** Secrets in /dev/shm, one SPC per purpose, and the tmpfs baseline with the same files. */
export interface Fixtures {
  readonly readFiles: readonly SecretFile[];
  readonly pubFiles: readonly SecretFile[];
  readonly pubSecrets: string;
  readonly rotSecrets: string;
  readonly spcDir: string;
  /** A tmpfs where kubelet would have upstream mount it: plain files `plain-<name>` and the atomic-writer layout side by side. */
  readonly tmpfsDir: string;
  readonly providerDir: string;
  readonly providerSocket: string;
}

export interface SectionContext {
  readonly env: BenchEnv;
  readonly report: Report;
  readonly fixtures: Fixtures;
  /** The readloop binary; null without a C compiler (sections that need it are skipped). */
  readonly bin: string | null;
  /** The example provider (started before the first section with a driver). */
  readonly provider: () => Proc;
  readonly strategyDirs: StrategyDirs;
}

/** The drivers sections run against (bench/lib/drivers.ts). */
export type DriverKind = 'main' | 'mem' | 'rot';

interface SectionBase {
  /** For `--section NAME`. */
  readonly name: string;
  /** Skipped without the readloop binary. */
  readonly needsReadloop?: boolean;
}

/** One part of the bench; the runner starts the driver it names (shared with the next section that names the same one). */
export type Section =
  | (SectionBase & { readonly driver: DriverKind; run(ctx: SectionContext, driver: Driver): Promise<void> })
  | (SectionBase & { readonly driver?: undefined; run(ctx: SectionContext): Promise<void> });
