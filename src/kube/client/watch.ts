// A list+watch informer with a local cache: list, then watch from the list's
// resourceVersion (with bookmarks). A 410 (Gone) lists again; any other
// error, or the stream ending, starts the watch again from the last
// resourceVersion after a capped backoff, until stop().

import { createInterface } from 'node:readline';
import { ApiError, KubeHttp, type Query } from './http.js';
import type { KubeObject, KubeList } from './resources.js';

type Handler<T> = (obj: T) => void;

export interface InformerOptions {
  /** Collection path, e.g. /api/v1/pods. */
  readonly path: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  /** What is watched, for the log line. */
  readonly what: string;
  readonly warn: (fields: Record<string, unknown>, msg: string) => void;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
}

interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T & { code?: number; message?: string };
}

const key = (name: string, namespace?: string): string => `${namespace ?? ''}/${name}`;
const objKey = (o: KubeObject): string => key(o.metadata?.name ?? '', o.metadata?.namespace);

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers = { add: [] as Array<Handler<T>>, update: [] as Array<Handler<T>>, delete: [] as Array<Handler<T>> };
  private resourceVersion = '';
  private stopped = false;
  private abort: AbortController | null = null;
  private timer: NodeJS.Timeout | null = null;
  private delay: number;
  private readonly base: number;
  private readonly max: number;

  constructor(
    private readonly http: KubeHttp,
    private readonly o: InformerOptions,
  ) {
    this.base = o.baseDelayMs ?? 1000;
    this.max = o.maxDelayMs ?? 30_000;
    this.delay = this.base;
  }

  on(event: 'add' | 'update' | 'delete', fn: Handler<T>): void {
    this.handlers[event].push(fn);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.cache.get(key(name, namespace));
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  /**
   * Lists, then watches in the background. A list the server cannot answer
   * yet (429 while its storage initializes, 5xx, a dropped connection) is
   * retried with the backoff until stop(); one it refuses (401, 403, 404: a
   * configuration problem) rejects at once.
   */
  async start(): Promise<void> {
    for (;;) {
      try {
        await this.relist();
        break;
      } catch (e) {
        const status = e instanceof ApiError ? e.status : 0;
        if (this.stopped || (status !== 0 && status !== 429 && status < 500)) throw e;
        this.o.warn({ err: (e as Error).message, retryInMs: this.delay }, `${this.o.what} list failed; retrying`);
        await new Promise((r) => setTimeout(r, this.delay));
        this.delay = Math.min(this.delay * 2, this.max);
      }
    }
    this.delay = this.base;
    this.watch();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.abort?.abort();
  }

  private selectors(): Query {
    return { labelSelector: this.o.labelSelector, fieldSelector: this.o.fieldSelector };
  }

  private emit(event: 'add' | 'update' | 'delete', obj: T): void {
    for (const h of this.handlers[event]) h(obj);
  }

  private async relist(): Promise<void> {
    const list = await this.http.request<KubeList<T>>('GET', this.o.path, { query: this.selectors() });
    const seen = new Set<string>();
    for (const item of list.items ?? []) {
      const k = objKey(item);
      seen.add(k);
      const old = this.cache.get(k);
      this.cache.set(k, item);
      if (!old) this.emit('add', item);
      else if (old.metadata?.resourceVersion !== item.metadata?.resourceVersion) this.emit('update', item);
    }
    for (const [k, old] of [...this.cache]) {
      if (seen.has(k)) continue;
      this.cache.delete(k);
      this.emit('delete', old);
    }
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
  }

  private watch(): void {
    if (this.stopped) return;
    this.abort = new AbortController();
    this.runWatch(this.abort.signal).then(
      () => this.again(null),
      (e: unknown) => this.again(e),
    );
  }

  /** Resolves when the stream ended; rejects with what broke it (an ApiError 410 means: list again). */
  private async runWatch(signal: AbortSignal): Promise<void> {
    // The server ends the watch after 5-10 minutes; a connection silent for
    // longer than that is half-dead (a lost peer sends no FIN) and is dropped.
    const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
    const query: Query = {
      ...this.selectors(),
      watch: true,
      allowWatchBookmarks: true,
      resourceVersion: this.resourceVersion,
      timeoutSeconds,
    };
    const res = await this.http.open('GET', this.o.path, { query, signal, timeoutMs: (timeoutSeconds + 30) * 1000 });
    if (res.statusCode !== 200) throw await KubeHttp.failure(res);
    this.delay = this.base; // connected: the backoff starts over
    const lines = createInterface({ input: res, crlfDelay: Infinity });
    for await (const line of lines) {
      if (!line.trim()) continue;
      const ev = JSON.parse(line) as WatchEvent<T>;
      if (ev.type === 'ERROR') {
        const code = ev.object.code ?? 500;
        throw new ApiError(code, ev.object.message ?? '', line);
      }
      const rv = ev.object.metadata?.resourceVersion;
      if (rv) this.resourceVersion = rv;
      if (ev.type === 'BOOKMARK') continue;
      const k = objKey(ev.object);
      if (ev.type === 'DELETED') {
        this.cache.delete(k);
        this.emit('delete', ev.object);
      } else {
        const had = this.cache.has(k);
        this.cache.set(k, ev.object);
        this.emit(had ? 'update' : 'add', ev.object);
      }
    }
  }

  private again(err: unknown): void {
    this.abort = null;
    if (this.stopped) return;
    const gone = err instanceof ApiError && err.status === 410;
    if (err && !gone)
      this.o.warn({ err: (err as Error)?.message ?? String(err), retryInMs: this.delay }, `${this.o.what} watch failed; restarting it`);
    const wait = gone ? 0 : this.delay;
    if (!gone) this.delay = Math.min(this.delay * 2, this.max);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.stopped) return;
      if (!gone) return this.watch();
      // The resourceVersion is too old: list again, then watch from the new one.
      this.relist().then(
        () => this.watch(),
        (e: unknown) => this.again(e instanceof ApiError && e.status === 410 ? new Error(e.message) : e),
      );
    }, wait);
    this.timer.unref();
  }
}
