// Re-polls every volume every `interval` (jittered ±10% so a node's volumes
// do not all hit the secret store together), with at most `concurrency` polls
// in flight. A failed poll is retried with exponential backoff starting at
// `retryBase`, capped at the interval; the served content is untouched by a
// failure (the manager only swaps on success).

export interface SchedulerOptions {
  readonly intervalMs: number;
  readonly concurrency: number;
  readonly retryBaseMs: number;
  /** Returns once the volume was polled; throws on failure. */
  readonly poll: (key: string) => Promise<void>;
  readonly onError: (key: string, err: unknown, failures: number, retryInMs: number) => void;
  readonly random?: () => number;
}

interface Entry {
  timer: NodeJS.Timeout | null;
  failures: number;
}

export function jittered(intervalMs: number, random: () => number): number {
  return Math.round(intervalMs * (0.9 + 0.2 * random()));
}

export function backoffMs(failures: number, baseMs: number, capMs: number): number {
  return Math.min(capMs, baseMs * 2 ** Math.max(0, failures - 1));
}

export class RotationScheduler {
  private readonly entries = new Map<string, Entry>();
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private stopped = false;
  private readonly random: () => number;

  constructor(private readonly opts: SchedulerOptions) {
    this.random = opts.random ?? Math.random;
  }

  /**
   * Polls `key` every interval from now on; the first poll after `firstInMs`
   * when given (clamped to [0, interval], spread by up to 10% of the interval
   * so that volumes due together do not all poll at once), else after a
   * jittered interval.
   */
  add(key: string, firstInMs?: number): void {
    if (this.stopped || this.entries.has(key)) return;
    const e: Entry = { timer: null, failures: 0 };
    this.entries.set(key, e);
    const interval = this.opts.intervalMs;
    const first =
      firstInMs === undefined
        ? jittered(interval, this.random)
        : Math.min(interval, Math.max(0, firstInMs)) + Math.floor(this.random() * interval * 0.1);
    this.arm(key, e, first);
  }

  remove(key: string): void {
    const e = this.entries.get(key);
    if (e?.timer) clearTimeout(e.timer);
    this.entries.delete(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  stop(): void {
    this.stopped = true;
    for (const k of [...this.entries.keys()]) this.remove(k);
  }

  private arm(key: string, e: Entry, delay: number): void {
    e.timer = setTimeout(() => void this.fire(key, e), delay);
    e.timer.unref();
  }

  private async fire(key: string, e: Entry): Promise<void> {
    e.timer = null;
    if (this.running >= this.opts.concurrency) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      if (this.entries.get(key) !== e) return;
      await this.opts.poll(key);
      e.failures = 0;
      if (this.entries.get(key) === e) this.arm(key, e, jittered(this.opts.intervalMs, this.random));
    } catch (err) {
      e.failures++;
      const retry = backoffMs(e.failures, this.opts.retryBaseMs, this.opts.intervalMs);
      this.opts.onError(key, err, e.failures, retry);
      if (this.entries.get(key) === e) this.arm(key, e, retry);
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}
