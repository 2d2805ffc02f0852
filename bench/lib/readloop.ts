// readloop (bench/readloop.c): every read of a FUSE mount happens in this C
// child process, so a stuck server can never wedge the bench itself.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../testkit/run.js';
import { REPO_ROOT } from './paths.js';

/** Compiles bench/readloop.c with cc -O2 into `outDir`; null when there is no C compiler. */
export async function buildReadloop(outDir: string): Promise<{ bin: string | null; reason: string }> {
  const src = join(REPO_ROOT, 'bench', 'readloop.c');
  if (!existsSync(src)) return { bin: null, reason: `${src} is missing` };
  const bin = join(outDir, 'readloop');
  await mkdir(outDir, { recursive: true });
  try {
    await run('cc', ['-O2', '-Wall', '-o', bin, src], { timeoutMs: 60_000 });
  } catch (e) {
    const msg = (e as Error).message;
    return { bin: null, reason: /ENOENT/.test(msg) ? 'no C compiler (cc) found' : `cc failed: ${msg}` };
  }
  return { bin, reason: '' };
}

/** Latencies (µs) of `iterations` open+read+close of `path`, after `warmup` checked ones. */
export async function readLatencies(bin: string, path: string, iterations: number, warmup: number, expectFile: string): Promise<number[]> {
  const { stdout } = await run(bin, ['lat', path, String(iterations), String(warmup), expectFile], { timeoutMs: 120_000 });
  const out: number[] = [];
  for (const line of stdout.split('\n')) if (line) out.push(Number(line) / 1000);
  if (out.length !== iterations) throw new Error(`readloop returned ${out.length} samples, want ${iterations}`);
  return out;
}

export interface WatchResult {
  /** When the new content was seen (CLOCK_MONOTONIC ns, end of the read). */
  readonly monoNs: bigint;
  readonly realMs: number;
  /** How long the open+read+close that returned the new content took, µs. */
  readonly readUs: number;
  readonly content: Buffer;
}

export interface Watcher {
  /** Resolves when the watcher has read the initial content. */
  readonly ready: Promise<void>;
  /** Resolves with the detection time (CLOCK_MONOTONIC ns) and the new content. */
  readonly changed: Promise<WatchResult>;
  kill(): void;
}

/** Starts `readloop watch`: re-reads `path` every `sleepUs` until its content changes. */
export function watchForChange(bin: string, path: string, sleepUs: number, timeoutMs: number): Watcher {
  const proc = spawn(bin, ['watch', path, String(sleepUs), String(timeoutMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  let stderr = '';
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => {
    readyResolve = r;
  });
  proc.stdout.on('data', (d: Buffer) => {
    chunks.push(d);
    if (Buffer.concat(chunks).includes('ready\n')) readyResolve();
  });
  proc.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const changed = new Promise<WatchResult>((resolvePromise, reject) => {
    proc.on('error', reject);
    proc.on('close', (code) => {
      const all = Buffer.concat(chunks);
      const start = all.indexOf('ready\n') + 'ready\n'.length;
      const nl = all.indexOf('\n', start);
      const header = all.subarray(start, nl < 0 ? all.length : nl).toString();
      const m = /^changed (\d+) (\d+) (\d+) (\d+)$/.exec(header);
      if (code !== 0 || !m) {
        reject(new Error(`readloop watch exited ${code}: ${header || '(no output)'} ${stderr.trim()}`));
        return;
      }
      resolvePromise({
        monoNs: BigInt(m[1]!),
        realMs: Number(BigInt(m[2]!) / 1_000_000n),
        readUs: Number(m[4]) / 1000,
        content: all.subarray(nl + 1),
      });
    });
  });
  changed.catch(() => undefined);
  return {
    ready,
    changed,
    kill: () => {
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}
