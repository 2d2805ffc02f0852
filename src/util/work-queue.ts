// A keyed work queue in the manner of client-go's: a key is queued at most
// once, processed by one worker at a time, and may be re-queued after a delay
// (the reconcile's answer). Keys queued while being processed run again after.

export type ReconcileResult = { requeueAfterMs?: number };

export class WorkQueue {
  private readonly queued = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private running = false;
  private stopped = false;

  constructor(
    private readonly reconcile: (key: string) => Promise<ReconcileResult>,
    private readonly onError: (key: string, e: unknown) => void,
    /** Delay before a key whose reconcile threw runs again. */
    private readonly retryAfterMs = 10_000,
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    this.queued.add(key);
    void this.drain();
  }

  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timers.get(key));
    const t = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    t.unref();
    this.timers.set(key, t);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.queued.clear();
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queued.size > 0 && !this.stopped) {
        const key = this.queued.values().next().value as string;
        this.queued.delete(key);
        try {
          const res = await this.reconcile(key);
          if (res.requeueAfterMs !== undefined) this.addAfter(key, res.requeueAfterMs);
        } catch (e) {
          this.onError(key, e);
          this.addAfter(key, this.retryAfterMs);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
