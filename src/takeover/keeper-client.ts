// The driver's side of the keeper channel (see keeper.ts).

import type { NativeAddon } from '../native/addon.js';
import { SeqChannel, Msg, type Message } from './channel.js';
import { isContainer, saysRecords } from './record-codec.js';

/** `auditFd`: the audit connection's, when the previous driver had one (docs/audit.md). */
export type Hello = { kind: 'empty' } | { kind: 'state'; fd: number; auditFd: number | null; state: Buffer };

export class KeeperClient {
  private waiting: ((m: Message) => void) | null = null;
  private onYieldCb: () => void = () => undefined;
  private records = false;

  private constructor(private readonly ch: SeqChannel) {}

  /** Connects, retrying while the keeper starts (it may come up after the driver). */
  static async connect(native: NativeAddon, path: string, timeoutMs: number): Promise<KeeperClient | null> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        const fd = native.unixConnect(path);
        const c = new KeeperClient(new SeqChannel(native, fd, 10));
        c.ch.start(
          (m) => c.onMessage(m),
          () => undefined,
        );
        c.ch.unref();
        return c;
      } catch {
        if (Date.now() > end) return null;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private onMessage(m: Message): void {
    if (m.type === Msg.YIELD) {
      this.onYieldCb();
      return;
    }
    const w = this.waiting;
    this.waiting = null;
    w?.(m);
  }

  /** Says hello; the answer is either "start afresh" or the state to take over with its fd. */
  hello(timeoutMs = 30_000): Promise<Hello> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the keeper did not answer')), timeoutMs);
      this.waiting = (m) => {
        clearTimeout(timer);
        if (m.type === Msg.STATE && (m.fds.length === 1 || m.fds.length === 2)) {
          // A keeper that hands over records takes them; one handing over a whole state may be an old one.
          this.records = isContainer(m.payload);
          resolve({ kind: 'state', fd: m.fds[0]!, auditFd: m.fds[1] ?? null, state: m.payload });
        } else {
          this.records = m.type === Msg.EMPTY && saysRecords(m.payload);
          resolve({ kind: 'empty' });
        }
      };
      this.ch.send(Msg.HELLO, Buffer.from(JSON.stringify({ pid: process.pid, records: 1 })));
    });
  }

  register(fuseFd: number): void {
    this.ch.send(Msg.REGISTER, Buffer.from('{}'), [fuseFd]);
  }

  /** The audit connection, mounted after the main one (the keeper keeps the state it has). */
  registerAudit(fuseFd: number): void {
    this.ch.send(Msg.REGISTER_AUDIT, Buffer.from('{}'), [fuseFd]);
  }

  /** Hands the state over before returning (see SeqChannel.sendNow); false if the keeper did not take it in time. */
  snapshot(state: Buffer): boolean {
    return this.ch.sendNow(Msg.SNAPSHOT, state);
  }

  /** Whether the keeper takes records (RECORDS) rather than whole snapshots only; known after hello. */
  get takesRecords(): boolean {
    return this.records;
  }

  /** Hands a records delta (record-codec.ts) over before returning, as snapshot does. */
  sendRecords(delta: Buffer): boolean {
    return this.ch.sendNow(Msg.RECORDS, delta);
  }

  onYield(cb: () => void): void {
    this.onYieldCb = cb;
  }

  async yielded(): Promise<void> {
    this.ch.send(Msg.YIELDED, Buffer.from('{}'));
    await this.ch.drained();
  }

  /** Drops the connection (the keeper keeps what it holds). */
  close(): void {
    this.ch.close();
  }

  get connected(): boolean {
    return !this.ch.isClosed;
  }
}
