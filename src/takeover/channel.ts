// A message channel over a non-blocking SOCK_SEQPACKET unix socket, read and
// written only through the native addon so SCM_RIGHTS descriptors survive
// (Node's own sockets would read and drop them). Messages are split into
// chunks of at most CHUNK bytes; descriptors travel with the first chunk.
// The socket is polled: traffic is rare (state handovers), and a 20 ms poll
// costs nothing measurable.

import { closeSync } from 'node:fs';
import type { NativeAddon } from '../native/addon.js';

const CHUNK = 32 * 1024;
const MORE = 1;
const EAGAIN = 11;

export interface Message {
  readonly type: number;
  readonly payload: Buffer;
  readonly fds: number[];
}

export class SeqChannel {
  private readonly outbox: Array<{ chunk: Buffer; fds: number[] }> = [];
  private inType = -1;
  private inParts: Buffer[] = [];
  private inFds: number[] = [];
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private onMsg: (m: Message) => void = () => undefined;
  private onEnd: () => void = () => undefined;

  constructor(
    private readonly native: NativeAddon,
    readonly fd: number,
    private readonly pollMs = 20,
  ) {}

  start(onMessage: (m: Message) => void, onClose: () => void): void {
    this.onMsg = onMessage;
    this.onEnd = onClose;
    this.timer = setInterval(() => this.poll(), this.pollMs);
  }

  /** Keeps the process alive while the channel is open (the keeper) or not (the driver). */
  unref(): void {
    this.timer?.unref();
  }

  send(type: number, payload: Buffer, fds: number[] = []): void {
    if (this.closed) return;
    let off = 0;
    do {
      const n = Math.min(CHUNK, payload.length - off);
      const chunk = Buffer.allocUnsafe(2 + n);
      chunk[0] = type;
      chunk[1] = off + n < payload.length ? MORE : 0;
      payload.copy(chunk, 2, off, off + n);
      this.outbox.push({ chunk, fds: off === 0 ? fds : [] });
      off += n;
    } while (off < payload.length);
    this.flush();
  }

  /**
   * Sends and does not return before the kernel has every chunk (waiting, if
   * the peer's buffer is full, for up to `ms`). Blocking on purpose: the
   * driver's state must be with the keeper before this thread answers another
   * FUSE request, or the kernel could learn a node id a successor would not
   * know. Returns false if it gave up (the rest stays queued).
   */
  sendNow(type: number, payload: Buffer, ms = 5000): boolean {
    this.send(type, payload);
    const end = Date.now() + ms;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (this.outbox.length > 0 && !this.closed && Date.now() < end) {
      Atomics.wait(pause, 0, 0, 1);
      this.flush();
    }
    return this.outbox.length === 0;
  }

  /** Resolves when everything queued has been handed to the kernel. */
  async drained(ms = 5000): Promise<void> {
    const end = Date.now() + ms;
    while (this.outbox.length > 0 && !this.closed && Date.now() < end) {
      this.flush();
      if (this.outbox.length > 0) await new Promise((r) => setTimeout(r, 5));
    }
  }

  private flush(): void {
    while (this.outbox.length > 0) {
      const m = this.outbox[0]!;
      try {
        this.native.sendFds(this.fd, m.fds, m.chunk);
      } catch (e) {
        if ((e as { errno?: number }).errno === EAGAIN) return; // the peer's buffer is full: retry on the next poll
        this.close();
        return;
      }
      m.chunk.fill(0);
      this.outbox.shift();
    }
  }

  private poll(): void {
    if (this.closed) return;
    this.flush();
    for (;;) {
      let r;
      try {
        r = this.native.recvFds(this.fd, 8, 2 + CHUNK);
      } catch (e) {
        if ((e as { errno?: number }).errno === EAGAIN) return;
        this.close();
        return;
      }
      if (r.data.length === 0) {
        this.close();
        return;
      }
      const type = r.data[0]!;
      if (this.inType !== -1 && this.inType !== type) {
        // A peer never interleaves messages; anything else is a broken peer.
        this.close();
        return;
      }
      this.inType = type;
      this.inParts.push(r.data.subarray(2));
      this.inFds.push(...r.fds);
      if ((r.data[1]! & MORE) === 0) {
        const msg = { type, payload: Buffer.concat(this.inParts), fds: this.inFds };
        for (const p of this.inParts) p.fill(0);
        this.inType = -1;
        this.inParts = [];
        this.inFds = [];
        this.onMsg(msg);
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const p of this.inParts) p.fill(0);
    // Chunks never sent hold state bytes too (copies in ordinary memory).
    for (const m of this.outbox) m.chunk.fill(0);
    this.outbox.length = 0;
    for (const fd of this.inFds)
      try {
        closeSync(fd);
      } catch {
        /* gone */
      }
    try {
      closeSync(this.fd);
    } catch {
      /* gone */
    }
    this.onEnd();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/** Message types of the keeper protocol. */
export const Msg = {
  /** driver → keeper: {pid, records: 1} (records: it reads STATE as a record container). */
  HELLO: 1,
  /** keeper → driver: nothing to take over; start afresh and REGISTER. Payload: the keeper's capabilities ({records: 1}; `{}` from an older keeper). */
  EMPTY: 2,
  /**
   * keeper → driver: the state, with the /dev/fuse fd attached (and the audit
   * connection's second, if held): a whole-state blob (state.ts) or a record
   * container (record-codec.ts).
   */
  STATE: 3,
  /** driver → keeper: the /dev/fuse fd of a fresh connection (attached). */
  REGISTER: 4,
  /** driver → keeper: the current state (replaces the previous one). */
  SNAPSHOT: 5,
  /** keeper → driver: another driver takes over; stop serving and hand over. */
  YIELD: 6,
  /** driver → keeper: final SNAPSHOT sent, exiting without unmounting. */
  YIELDED: 7,
  /**
   * driver → keeper: the /dev/fuse fd of the audit connection (attached),
   * mounted at the first audited publish; the state held stays. A keeper
   * that does not know it closes the fd (audited volumes then do not survive
   * a restart; unaudited ones do).
   */
  REGISTER_AUDIT: 8,
  /**
   * driver → keeper: records replaced and deleted (record-codec.ts), instead
   * of SNAPSHOT, to a keeper whose EMPTY said `records: 1` or whose STATE
   * was a record container. An older keeper would drop it.
   */
  RECORDS: 9,
} as const;
