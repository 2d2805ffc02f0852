// The keeper: a small long-lived process that holds a duplicate of the
// driver's /dev/fuse connection and the driver's latest state, in locked
// memory, so that a driver that crashed or is being replaced can be followed
// by a new one that serves the same connection: the kernel then makes readers
// wait instead of failing, and every container's view of the mount keeps
// working (docs/restart-survival.md).
//
// It holds up to two connections: the main one and, once a driver has served
// an audited volume, the audit connection (docs/audit.md); both are handed on
// together. One driver at a time is the owner. A new driver's HELLO gets the state and
// the fd at once when the owner is gone (crash), or after the owner has
// yielded (upgrade: the owner is told to hand over, sends a final snapshot and
// exits without unmounting).

import { closeSync } from 'node:fs';
import type { NativeAddon } from '../native/addon.js';
import { bindSocketFileSync } from '../util/socket-file.js';
import { SeqChannel, Msg, type Message } from './channel.js';
import { decodeDelta, encodeContainer, saysRecords } from './record-codec.js';
import { stateFromRecords } from './records.js';
import { encodeState } from './state.js';

/** EMPTY's payload: what this keeper takes besides SNAPSHOT (an older keeper answers `{}`). */
export const KEEPER_CAPABILITIES = Buffer.from(JSON.stringify({ records: 1 }));

export interface KeeperLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface KeeperOptions {
  readonly socketPath: string;
  readonly log: KeeperLogger;
  /** Locked memory for the state (native allocSecure). */
  readonly alloc: (n: number) => Buffer;
  /** How long an owner may take to yield before it is treated as hung. */
  readonly yieldTimeoutMs?: number;
}

export class Keeper {
  private fuseFd: number | null = null;
  private auditFd: number | null = null;
  /** The state as an old driver sent it, whole (SNAPSHOT), or as records by key (RECORDS); never both. */
  private state: Buffer | null = null;
  private readonly records = new Map<string, Buffer>();
  /** Drivers whose HELLO said they read records (older ones are handed a whole-state blob). */
  private readonly readsRecords = new WeakSet<SeqChannel>();
  private owner: SeqChannel | null = null;
  private successor: SeqChannel | null = null;
  private successorTimer: NodeJS.Timeout | null = null;
  private listenFd = -1;
  private acceptTimer: NodeJS.Timeout | null = null;
  private readonly channels = new Set<SeqChannel>();

  constructor(
    private readonly native: NativeAddon,
    private readonly o: KeeperOptions,
  ) {}

  start(): void {
    // Whoever connects could take the FUSE connection and every secret in it: root only, from the start.
    this.listenFd = bindSocketFileSync(
      this.o.socketPath,
      0o600,
      (at) => this.native.unixListen(at),
      (fd) => closeSync(fd),
    );
    this.acceptTimer = setInterval(() => {
      for (;;) {
        const fd = this.native.unixAccept(this.listenFd);
        if (fd < 0) return;
        const ch = new SeqChannel(this.native, fd);
        this.channels.add(ch);
        ch.start(
          (m) => this.onMessage(ch, m),
          () => this.onClose(ch),
        );
      }
    }, 20);
    this.o.log.info({ socket: this.o.socketPath }, 'keeper listening');
  }

  private onMessage(ch: SeqChannel, m: Message): void {
    switch (m.type) {
      case Msg.HELLO:
        if (saysRecords(m.payload)) this.readsRecords.add(ch);
        if (this.fuseFd === null) {
          this.owner = ch;
          ch.send(Msg.EMPTY, KEEPER_CAPABILITIES);
        } else if (this.owner && !this.owner.isClosed && this.owner !== ch) {
          // An upgrade: the running driver hands over first.
          this.successor?.close();
          this.successor = ch;
          this.owner.send(Msg.YIELD, Buffer.from('{}'));
          this.o.log.info({}, 'a new driver asked to take over; the running one is yielding');
          this.successorTimer = setTimeout(() => {
            this.o.log.warn({}, 'the running driver did not yield in time; handing over anyway');
            this.owner?.close();
          }, this.o.yieldTimeoutMs ?? 10_000);
        } else {
          this.handOver(ch);
        }
        break;
      case Msg.REGISTER:
        if (ch !== this.owner || m.fds.length !== 1) break;
        // A fresh start: the previous connections (and their state) are over.
        this.closeFds();
        this.fuseFd = m.fds[0]!;
        this.setState(null);
        this.o.log.info({}, 'holding a new FUSE connection');
        return;
      case Msg.REGISTER_AUDIT:
        if (ch !== this.owner || m.fds.length !== 1 || this.fuseFd === null) break;
        if (this.auditFd !== null) closeSync(this.auditFd);
        this.auditFd = m.fds[0]!;
        this.o.log.info({}, 'holding a new audit FUSE connection');
        return;
      case Msg.SNAPSHOT:
        if (ch === this.owner) {
          this.clearRecords();
          this.setState(m.payload);
        }
        m.payload.fill(0);
        break;
      case Msg.RECORDS:
        if (ch === this.owner) this.applyRecords(m.payload);
        m.payload.fill(0);
        break;
      case Msg.YIELDED:
        this.o.log.info({}, 'the running driver yielded');
        break;
      default:
        break;
    }
    for (const fd of m.fds) closeSync(fd);
  }

  private closeFds(): void {
    for (const fd of [this.fuseFd, this.auditFd]) if (fd !== null) closeSync(fd);
    this.fuseFd = null;
    this.auditFd = null;
  }

  private setState(payload: Buffer | null): void {
    this.state?.fill(0);
    this.state = null;
    if (!payload) this.clearRecords();
    if (payload && payload.length > 0) {
      this.state = this.o.alloc(payload.length);
      payload.copy(this.state);
    }
  }

  private clearRecords(): void {
    for (const b of this.records.values()) b.fill(0);
    this.records.clear();
  }

  /** A delta: each record replaced is zeroed, each new one copied into locked memory. */
  private applyRecords(payload: Buffer): void {
    let d;
    try {
      d = decodeDelta(payload);
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'a malformed RECORDS message; the records held are kept');
      return;
    }
    if (d.reset) this.setState(null);
    for (const [key, bytes] of d.upserts) {
      this.records.get(key)?.fill(0);
      const own = this.o.alloc(bytes.length);
      bytes.copy(own);
      this.records.set(key, own);
    }
    for (const key of d.deletes) {
      this.records.get(key)?.fill(0);
      this.records.delete(key);
    }
  }

  /**
   * What STATE carries: the whole-state blob an old driver sent, or the
   * records in a container; for a driver that does not read records (a
   * downgrade), the records made into a whole-state blob.
   */
  private stateFor(ch: SeqChannel): Buffer | null {
    if (this.records.size === 0) return this.state;
    if (this.readsRecords.has(ch)) return encodeContainer(this.records, this.o.alloc);
    try {
      const { state, blob } = stateFromRecords(this.records, this.o.alloc);
      const out = encodeState(state, [blob], this.o.alloc);
      blob.fill(0);
      return out;
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'could not make the records a whole state for an older driver');
      return encodeContainer(this.records, this.o.alloc);
    }
  }

  private handOver(ch: SeqChannel): void {
    this.owner = ch;
    const state = this.fuseFd === null ? null : this.stateFor(ch);
    if (this.fuseFd === null || !state) {
      ch.send(Msg.EMPTY, KEEPER_CAPABILITIES);
      return;
    }
    ch.send(Msg.STATE, state, this.auditFd === null ? [this.fuseFd] : [this.fuseFd, this.auditFd]);
    if (state !== this.state) state.fill(0); // send copied it
    this.o.log.info(
      { stateBytes: state.length, records: this.records.size, connections: this.auditFd === null ? 1 : 2 },
      'handed the connection and state to a new driver',
    );
  }

  private onClose(ch: SeqChannel): void {
    this.channels.delete(ch);
    if (ch === this.successor) this.successor = null;
    if (ch !== this.owner) return;
    this.owner = null;
    this.o.log.info({ successor: this.successor !== null }, 'the driver went away; keeping its connection');
    if (this.successor) {
      if (this.successorTimer) clearTimeout(this.successorTimer);
      const next = this.successor;
      this.successor = null;
      this.handOver(next);
    }
  }

  stop(): void {
    if (this.acceptTimer) clearInterval(this.acceptTimer);
    for (const ch of this.channels) ch.close();
    if (this.listenFd >= 0) closeSync(this.listenFd);
    this.setState(null);
    this.closeFds();
  }
}
