// The bench's parameters (env overrides for quick runs: BENCH_READ_ITERATIONS=2000 ...).

const num = (name: string, dflt: number): number => {
  const v = process.env[name];
  return v && /^\d+$/.test(v) ? Number(v) : dflt;
};
export const P = {
  readIterations: num('BENCH_READ_ITERATIONS', 20_000),
  readRounds: 10,
  readWarmup: num('BENCH_READ_WARMUP', 2_000),
  readRoundWarmup: 200,
  /** Section 1: other volumes published on the driver while reads are timed (the 250-volume node of issue 10). */
  readBackgroundVolumes: num('BENCH_READ_BACKGROUND_VOLUMES', 249),
  publishN: num('BENCH_PUBLISH_N', 50),
  publishWarmup: 3,
  memoryVolumes: num('BENCH_MEMORY_VOLUMES', 200),
  rotations: num('BENCH_ROTATIONS', 10),
  rotationPollInterval: '1s',
  /** The driver used for reads, publishes and memory polls at the production default, so 1 s polls of many volumes do not load the machine. */
  mainPollInterval: '2m',
  watchSleepUs: 200,
  /** Volumes per strategy in section 5 (bench/mount-strategy.ts in a child process). */
  strategyVolumes: num('BENCH_STRATEGY_VOLUMES', 50),
  strategyThreadpool: 128,
  /** Section 6: rotations timed one after another, and volumes rotated at once. */
  switchRotations: num('BENCH_SWITCH_ROTATIONS', 300),
  switchVolumes: num('BENCH_SWITCH_VOLUMES', 50),
  /** The default-threadpool repro: volumes asked for, pool size, and the hard timeout after which the child is killed. */
  hangVolumes: 8,
  hangThreadpool: 4,
  hangTimeoutMs: 15_000,
};

export const KiB = 1024;

export type Params = typeof P;
