// The upstream comparison's parameters, with env overrides for quick runs
// (BENCH_UP_VOLUMES_LARGE=0 BENCH_UP_IDLE_S=20 ...).

const num = (name: string, dflt: number): number => {
  const v = process.env[name];
  return v && /^\d+$/.test(v) ? Number(v) : dflt;
};

export const UP = {
  /** Driver starts timed per driver (spawn to Probe answering); the last one stays up. */
  starts: num('BENCH_UP_STARTS', 3),
  /** Publishes (and unpublishes) before any timing, per driver. */
  warmup: 2,
  /** NodePublishVolume one after another per driver (alternating drivers); these volumes stay published. */
  sequential: num('BENCH_UP_SEQUENTIAL', 40),
  /** NodePublishVolume calls in flight at once, per driver; unpublished one by one afterwards (the unpublish figures). */
  concurrent: num('BENCH_UP_CONCURRENT', 50),
  /** Volumes each driver holds for the first idle window. */
  volumes: num('BENCH_UP_VOLUMES', 40),
  /** Volumes each driver holds for the second idle window; 0 leaves it out. */
  volumesLarge: num('BENCH_UP_VOLUMES_LARGE', 250),
  /** --rotation-poll-interval of both drivers, seconds. */
  pollSeconds: num('BENCH_UP_POLL_S', 10),
  /** kubelet's republish period per volume (requiresRepublish), seconds. */
  republishSeconds: num('BENCH_UP_REPUBLISH_S', 60),
  /** The idle window right after start, before any volume, seconds. */
  idleStartSeconds: num('BENCH_UP_IDLE_START_S', 15),
  /**
   * Length of each idle window with volumes (CPU, provider calls), seconds;
   * by default one republish period, a multiple of the poll interval too, so
   * every volume is republished (and polled) a whole number of times in it.
   */
  idleSeconds: num('BENCH_UP_IDLE_S', num('BENCH_UP_REPUBLISH_S', 60)),
  /** Before an idle window, after the last publish. */
  settleSeconds: num('BENCH_UP_SETTLE_S', 3),
  /** How often the rotation watch opens every volume's file, ms. */
  rotationProbeMs: 200,
  /** Pod objects created at once. */
  podConcurrency: 16,
};

export type UpParams = typeof UP;
