// Commands run to completion, for the tests and the bench alike.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';

export const execFileP = promisify(execFile);

export interface CapturedRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Killed (SIGKILL) because `timeoutMs` passed. */
  readonly timedOut: boolean;
  readonly pid: number;
}

export interface RunOptions {
  /** SIGKILL after this long (none when absent). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Called at the timeout, before the kill (to look at the stuck process). */
  beforeKill?: (pid: number) => Promise<void>;
  /** Receives the child as soon as it is spawned, so a signal handler can kill it. */
  onSpawn?: (c: ChildProcess) => void;
}

/** Runs a command to completion and never rejects on its exit status (only when it cannot be spawned). */
export function runCaptured(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<CapturedRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    opts.onSpawn?.(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          const pid = child.pid ?? -1;
          void (opts.beforeKill ? opts.beforeKill(pid).catch(() => undefined) : Promise.resolve()).finally(() => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          });
        }, opts.timeoutMs)
      : undefined;
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({
        code,
        signal,
        timedOut,
        pid: child.pid ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

/** Runs a command to completion; rejects with its stderr on a non-zero exit. */
export async function run(cmd: string, args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<CapturedRun> {
  const r = await runCaptured(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.signal ?? `exit ${r.code}`}): ${r.stderr.trim().slice(0, 2000)}`);
  return r;
}
