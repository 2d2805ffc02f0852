// The I/O side of one FUSE connection: reads requests from the /dev/fuse fd,
// has Operations answer them, writes the replies, and sends notifications.
//
// Two hazards measured on this kernel shape the code (docs/fuse-design.md):
// - a read(2) on /dev/fuse blocks until a request arrives, so it runs in the
//   libuv threadpool (fs.read), never on the JS thread;
// - a notification may block in the kernel until an in-flight READ that only
//   this process can answer is answered, so notifications are written
//   asynchronously (threadpool), one at a time, never with writeSync.

import { read, write, writeSync, closeSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Operations } from './operations.js';
import { constants as osConstants } from 'node:os';
import { encodeInvalEntry, encodeInvalInode, encodeReply, encodeResend, opName, decodeInHeader, IN_HEADER_SIZE } from './protocol.js';
import type { EntryInvalidation } from './volume-tree.js';

const readAsync = promisify(read);
const writeAsync = promisify(write);

export interface SessionLogger {
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface CallerRecord {
  readonly op: string;
  readonly nodeid: number;
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  readonly at: number;
}

export interface SessionOptions {
  /** Concurrent blocking reads on the device (threadpool threads used). */
  readonly readers: number;
  /** Must hold the largest request: header + WRITE header + max_write. */
  readonly bufferSize: number;
  readonly log: SessionLogger;
  /** How many recent callers to remember (uid/gid/pid per request). */
  readonly callerHistory: number;
}

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

export class FuseSession {
  private notifyChain: Promise<void> = Promise.resolve();
  private readonly callers: CallerRecord[] = [];
  private stopped = false;
  private loops: Promise<void> | null = null;

  constructor(
    readonly fd: number,
    private readonly ops: Operations,
    private readonly opts: SessionOptions,
  ) {}

  /**
   * Starts the readers. Only after mount(2): before the fd is bound to a
   * connection the kernel answers every read with EPERM.
   */
  start(): void {
    if (this.loops) return;
    const loops: Promise<void>[] = [];
    for (let i = 0; i < Math.max(1, this.opts.readers); i++) loops.push(this.loop(Buffer.allocUnsafeSlow(this.opts.bufferSize)));
    this.loops = Promise.all(loops).then(() => undefined);
  }

  /** Settles when every reader has seen the connection end (ENODEV after the last unmount). */
  get done(): Promise<void> {
    return this.loops ?? Promise.resolve();
  }

  /** The most recent callers, oldest first. */
  recentCallers(): readonly CallerRecord[] {
    return this.callers;
  }

  private async loop(buf: Buffer): Promise<void> {
    while (!this.stopped) {
      let n: number;
      try {
        ({ bytesRead: n } = await readAsync(this.fd, buf, 0, buf.length, null));
      } catch (e) {
        const code = errnoCode(e);
        // ENOENT: the request was interrupted before we read it. EINTR/EAGAIN: try again.
        if (code === 'ENOENT' || code === 'EINTR' || code === 'EAGAIN') continue;
        if (code !== 'ENODEV' && code !== 'EBADF') this.opts.log.warn({ err: code }, 'fuse device read failed');
        break;
      }
      // Handed over: whatever this read took stays unanswered; the next server asks the kernel to resend it.
      if (this.stopped || n < IN_HEADER_SIZE) break;
      const req = buf.subarray(0, n);
      this.record(req);
      let reply: Buffer | null;
      try {
        reply = this.ops.handle(req);
      } catch (e) {
        // A bug in an operation must not leave the caller hanging: answer EIO.
        this.opts.log.warn({ err: (e as Error).message }, 'fuse operation failed');
        reply = encodeReply(decodeInHeader(req).unique, -osConstants.errno.EIO);
      }
      // Zero the request buffer tail we used: WRITE requests would carry secret bytes.
      buf.fill(0, 0, n);
      if (reply) this.reply(reply);
    }
    this.stopped = true;
  }

  private record(req: Buffer): void {
    if (this.opts.callerHistory <= 0) return;
    const h = decodeInHeader(req);
    if (this.callers.length >= this.opts.callerHistory) this.callers.shift();
    this.callers.push({ op: opName(h.opcode), nodeid: Number(h.nodeid), uid: h.uid, gid: h.gid, pid: h.pid, at: Date.now() });
  }

  private reply(buf: Buffer): void {
    try {
      // Replies never wait on page locks, so a synchronous write is safe and avoids a threadpool hop.
      writeSync(this.fd, buf);
    } catch (e) {
      const code = errnoCode(e);
      // ENOENT: the request was interrupted meanwhile; the kernel no longer wants the answer.
      if (code !== 'ENOENT' && code !== 'ENODEV') this.opts.log.warn({ err: code }, 'fuse reply failed');
    }
    // A READ reply is a copy of a file's bytes in ordinary memory: zero it before its memory is reused.
    buf.fill(0);
  }

  /** Queues a notification; resolves once the kernel has taken it. */
  notify(msg: Buffer): Promise<void> {
    const next = this.notifyChain.then(async () => {
      if (this.stopped) return;
      try {
        await writeAsync(this.fd, msg);
      } catch (e) {
        const code = errnoCode(e);
        // ENOENT: the kernel has no such inode/entry cached, so there was nothing to drop.
        if (code !== 'ENOENT' && code !== 'ENODEV' && code !== 'EBADF') {
          this.opts.log.warn({ err: code }, 'fuse notification failed');
        }
      }
    });
    this.notifyChain = next;
    return next;
  }

  async invalidateEntries(list: readonly EntryInvalidation[]): Promise<void> {
    await Promise.all(list.map((e) => this.notify(encodeInvalEntry(e.parent, e.name))));
  }

  /** Drops cached pages and attributes of an inode (used when a volume is scrubbed). */
  invalidateInode(ino: number): Promise<void> {
    return this.notify(encodeInvalInode(ino, 0, 0));
  }

  /** After a takeover: have the kernel queue again requests the previous server had read. */
  resend(): Promise<void> {
    return this.notify(encodeResend());
  }

  /** Closes our fd. Call after the last unmount (or to hand the connection over). */
  close(): void {
    this.stopped = true;
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}
