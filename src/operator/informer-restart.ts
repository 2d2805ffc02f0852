// @kubernetes/client-node's ListWatch restarts its watch by itself only
// after a 410 (Gone) or a client-side timeout; any other error (the API
// server restarting, a dropped connection, a failed re-list) is reported to
// its 'error' handlers and the informer then stays stopped for good. This
// restarts it with a capped backoff (from its last resourceVersion; a 410
// then makes it list again), and stops doing so once the owner stops.

import type { Informer, KubernetesObject } from '@kubernetes/client-node';

export interface RestartOptions {
  /** What is watched, for the log line. */
  readonly what: string;
  readonly warn: (fields: Record<string, unknown>, msg: string) => void;
  /** Whether the owner has stopped (no restart then). */
  readonly stopped: () => boolean;
  /** Called on every error, e.g. to schedule a resync that covers the gap. */
  readonly onError?: (err: unknown) => void;
  readonly describe?: (err: unknown) => string;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
}

export function restartOnError<T extends KubernetesObject>(informer: Informer<T>, o: RestartOptions): void {
  const base = o.baseDelayMs ?? 1000;
  const max = o.maxDelayMs ?? 30_000;
  let delay = base;
  // A watch that connected again resets the backoff.
  informer.on('connect', () => {
    delay = base;
  });
  informer.on('error', (err: unknown) => {
    if (o.stopped()) return;
    o.onError?.(err);
    o.warn({ err: o.describe ? o.describe(err) : (err as Error)?.message, retryInMs: delay }, `${o.what} watch failed; restarting it`);
    const wait = delay;
    delay = Math.min(delay * 2, max);
    setTimeout(() => {
      // A failed re-list reports 'error' again, which schedules the next try.
      if (!o.stopped()) informer.start().catch(() => undefined);
    }, wait).unref();
  });
}
