// A long-running child process whose output is read as it comes (so it never
// blocks on a full pipe) and kept: the whole of it, line by line with each
// line's arrival time, for the tests and the bench alike.

import type { ChildProcess } from 'node:child_process';
import { basename } from 'node:path';
import { sleep } from './wait.js';

export class Proc {
  /** Everything it wrote to stdout and stderr so far, interleaved as it arrived. */
  out = '';
  /** Resolves with the exit code on 'close': only then has all of its output arrived. */
  readonly exited: Promise<number | null>;
  readonly name: string;
  private readonly listeners = new Set<(line: string, at: bigint) => void>();
  private stopRequested = false;

  constructor(
    readonly child: ChildProcess,
    name?: string,
  ) {
    this.name = name ?? basename(child.spawnfile);
    const reader = (): ((d: string) => void) => {
      let partial = '';
      return (d: string): void => {
        const at = process.hrtime.bigint();
        this.out += d;
        const lines = (partial + d).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) for (const l of this.listeners) l(line, at);
      };
    };
    child.stdout?.setEncoding('utf8').on('data', reader());
    child.stderr?.setEncoding('utf8').on('data', reader());
    child.on('error', (e) => {
      this.out += `${e.message}\n`;
    }); // a failed spawn: its exit follows
    this.exited = new Promise((r) => child.on('close', (code) => r(code)));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** How it ended, when it ended without being asked to (a crash); null otherwise. */
  unexpectedExit(): string | null {
    if (this.running || this.stopRequested) return null;
    return this.child.signalCode ? `signal ${this.child.signalCode}` : `exit code ${this.child.exitCode}`;
  }

  /** Its last lines, for error messages (native stack frames left out). */
  recentOutput(lines = 15): string {
    return this.out
      .split('\n')
      .slice(-41, -1)
      .filter((l) => !/^\s*\d+: 0x[0-9a-f]+ /.test(l))
      .slice(-lines)
      .map((l) => `  [${this.name}] ${l}`)
      .join('\n');
  }

  /** Calls `fn` with every complete line from now on and the monotonic time (ns) its chunk arrived; returns the unsubscribe. */
  onLine(fn: (line: string, at: bigint) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves with the first line from now on that `pred` accepts; rejects when it ends first or on timeout. */
  waitForLine(pred: (line: string) => boolean, ms = 10_000, what = 'a line'): Promise<string> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        off();
        clearTimeout(timer);
      };
      const off = this.onLine((line) => {
        if (!pred(line)) return;
        done();
        resolve(line);
      });
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: timed out after ${ms} ms waiting for ${what}\n${this.recentOutput()}`));
      }, ms);
      void this.exited.then((code) => {
        done();
        reject(new Error(`${this.name} exited (${code}) before ${what}\n${this.recentOutput()}`));
      });
    });
  }

  /** Resolves once its output so far matches `re` (looked at every 20 ms); rejects when it ends first or on timeout. */
  async waitFor(re: RegExp, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!re.test(this.out)) {
      if (Date.now() > end) throw new Error(`${this.name}: timed out after ${ms} ms waiting for ${re}\n${this.recentOutput()}`);
      if (!this.running)
        throw new Error(`${this.name} exited (${this.child.signalCode ?? this.child.exitCode}) before ${re}\n${this.recentOutput()}`);
      await sleep(20);
    }
  }

  /** `signal`, then SIGKILL if it is still alive after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.stopRequested = true;
    this.child.kill(signal);
    const killer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(killer);
  }
}
