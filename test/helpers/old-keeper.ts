// A stand-in for the previous release's keeper (before records), run inside
// the test process on the real SeqChannel and native addon: it answers HELLO
// with EMPTY `{}` (no capabilities) while it holds nothing, keeps REGISTER's
// fd and the last SNAPSHOT blob, drops every other message unread (RECORDS
// included, as that release did), and hands STATE = blob + fd(s) to the next
// driver once the owner's channel has closed. Crash handover only: no YIELD.
// It also logs every message type each peer sent, for the tests to check.

import { closeSync, rmSync } from 'node:fs';
import { loadNative } from '../../src/native/addon.js';
import { SeqChannel, Msg, type Message } from '../../src/takeover/channel.js';
import { decodeState, encodeState, type DriverState } from '../../src/takeover/state.js';
import type { FilesystemState } from '../../src/fuse/filesystem.js';

export interface Received {
  /** Which connection (0: the first driver's, 1: the next one's...). */
  readonly peer: number;
  readonly type: number;
  /** A copy of a SNAPSHOT's payload (other payloads are not kept). */
  readonly snapshot?: Buffer;
}

export interface OldKeeperOptions {
  /**
   * Hand over the blob as the previous release's driver wrote it: inodes
   * without `owner` (the one field records added to the whole state).
   */
  readonly stripOwners?: boolean;
}

export class OldKeeper {
  readonly received: Received[] = [];
  private readonly native = loadNative();
  private readonly listenFd: number;
  private readonly accept: NodeJS.Timeout;
  private readonly channels: SeqChannel[] = [];
  private fds: number[] = [];
  private state: Buffer | null = null;
  private owner: SeqChannel | null = null;
  private waiting: SeqChannel | null = null;

  constructor(
    readonly socketPath: string,
    private readonly o: OldKeeperOptions = {},
  ) {
    this.listenFd = this.native.unixListen(socketPath);
    this.accept = setInterval(() => {
      for (let fd = this.native.unixAccept(this.listenFd); fd >= 0; fd = this.native.unixAccept(this.listenFd)) {
        const ch = new SeqChannel(this.native, fd, 5);
        const peer = this.channels.push(ch) - 1;
        ch.start(
          (m) => this.onMessage(ch, peer, m),
          () => this.onClose(ch),
        );
      }
    }, 10);
  }

  /** Message types `peer` sent, in order. */
  typesFrom(peer: number): number[] {
    return this.received.filter((r) => r.peer === peer).map((r) => r.type);
  }

  private onMessage(ch: SeqChannel, peer: number, m: Message): void {
    this.received.push({ peer, type: m.type, ...(m.type === Msg.SNAPSHOT ? { snapshot: Buffer.from(m.payload) } : {}) });
    let keep: number[] = [];
    if (m.type === Msg.HELLO) {
      if (this.fds.length === 0) {
        this.owner = ch;
        ch.send(Msg.EMPTY, Buffer.from('{}'));
      } else if (this.owner && !this.owner.isClosed) this.waiting = ch;
      else this.handOver(ch);
    } else if (m.type === Msg.REGISTER && ch === this.owner && m.fds.length === 1) {
      this.closeFds();
      this.state = null;
      keep = this.fds = [m.fds[0]!];
    } else if (m.type === Msg.REGISTER_AUDIT && ch === this.owner && m.fds.length === 1 && this.fds.length > 0) {
      for (const fd of this.fds.splice(1)) closeSync(fd);
      this.fds.push(m.fds[0]!);
      keep = [m.fds[0]!];
    } else if (m.type === Msg.SNAPSHOT && ch === this.owner) {
      this.state = Buffer.from(m.payload);
    }
    for (const fd of m.fds) if (!keep.includes(fd)) closeSync(fd);
  }

  private handOver(ch: SeqChannel): void {
    this.owner = ch;
    if (this.fds.length === 0 || !this.state) {
      ch.send(Msg.EMPTY, Buffer.from('{}'));
      return;
    }
    ch.send(Msg.STATE, this.o.stripOwners ? withoutOwners(this.state) : this.state, this.fds);
  }

  private onClose(ch: SeqChannel): void {
    if (ch === this.waiting) this.waiting = null;
    if (ch !== this.owner) return;
    this.owner = null;
    const next = this.waiting;
    this.waiting = null;
    if (next) this.handOver(next);
  }

  private closeFds(): void {
    for (const fd of this.fds) closeSync(fd);
    this.fds = [];
  }

  /** Everything it holds closed (the connection ends unless a driver still holds it) and the socket file removed. */
  stop(): void {
    clearInterval(this.accept);
    for (const ch of this.channels) ch.close();
    this.closeFds();
    closeSync(this.listenFd);
    rmSync(this.socketPath, { force: true });
  }
}

/** The blob re-encoded with every inode's `owner` left out, as a driver before records wrote it. */
function withoutOwners(blob: Buffer): Buffer {
  const { state, blob: data } = decodeState(blob);
  const strip = (fs: FilesystemState): FilesystemState => ({
    ...fs,
    table: { ...fs.table, nodes: fs.table.nodes.map(({ owner: _owner, ...n }) => n) },
  });
  const old: DriverState = { ...state, fs: strip(state.fs), ...(state.auditFs ? { auditFs: strip(state.auditFs) } : {}) };
  return encodeState(old, [data], (n) => Buffer.alloc(n));
}
