// Locked memory vs V8: throwaway children that show why the driver does not
// mlockall and that its own way (locked pages for secrets only) survives GC.

import { join } from 'node:path';
import { runCaptured } from '../../testkit/run.js';
import { REPO_ROOT } from './paths.js';

/**
 * Why the driver does not mlockall: does a full GC survive in a Node process
 * locked with the addon's lockAll(true) (mlockall MCL_CURRENT|MCL_FUTURE|
 * MCL_ONFAULT)? Runs a throwaway child: lock, make a burst of garbage, gc().
 * Under mlockall V8's madvise(MADV_DONTNEED) fails with EINVAL and V8 CHECKs
 * it, so the child is expected to die.
 */
export async function probeMlockGc(): Promise<{ locked: boolean; survived: boolean; how: string; failedSyscall: string }> {
  const addon = join(REPO_ROOT, 'dist/src/native/addon.js');
  const script = `
    const { loadNative } = await import(${JSON.stringify(addon)});
    loadNative().lockAll(true);
    console.log('locked');
    let keep = [];
    for (let i = 0; i < 200; i++) keep.push(new Array(100000).fill(i));
    keep = null;
    globalThis.gc();
    console.log('survived');`;
  const r = await runCaptured(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { timeoutMs: 30_000 });
  const text = r.stdout + r.stderr;
  const check = /Check failed: [^\n]*/.exec(text)?.[0] ?? '';
  return {
    locked: text.includes('locked'),
    survived: text.includes('survived') && r.code === 0,
    how: r.signal ? `signal ${r.signal}` : `exit code ${r.code}`,
    failedSyscall: check,
  };
}

export interface SecretAllocGcProbe {
  /** The child exited 0 after every allocation and gc(). */
  survived: boolean;
  how: string;
  /** What secretAllocator(loadNative(), true) reported in the child. */
  locked: boolean | null;
  lockError: string | null;
  buffers: number;
  gcCalls: number;
  /** Every live buffer still held its own bytes after the churn. */
  contentIntact: boolean | null;
  /** The child's VmLck: at start, with `buffers` secrets held, after dropping them and gc(). */
  vmLckKiB: { start: number; held: number; afterRelease: number } | null;
  error: string;
}

/**
 * The driver's way: secrets in pages of their own from
 * secretAllocator(loadNative(), true) (mmap + mlock, nothing else locked).
 * A throwaway child under --expose-gc allocates `buffers` secret buffers,
 * churns the heap with garbage bursts and gc() calls while replacing half of
 * the secrets each round (like rotations), checks their bytes, drops them and
 * collects. It must exit 0.
 */
export async function probeSecretAllocGc(buffers = 2000, rounds = 6): Promise<SecretAllocGcProbe> {
  const addon = join(REPO_ROOT, 'dist/src/native/addon.js');
  const script = `
    import { readFileSync } from 'node:fs';
    const { loadNative, secretAllocator } = await import(${JSON.stringify(addon)});
    const vmLck = () => Number(/^VmLck:\\s+(\\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN);
    const tick = () => new Promise((r) => setImmediate(r));
    const s = secretAllocator(loadNative(), true);
    console.log('allocator ' + JSON.stringify({ locked: s.locked, lockError: s.lockError ?? null }));
    const start = vmLck();
    const fresh = (i) => { const b = s.allocate(1024); b.fill(i & 0xff); return b; };
    let secrets = [];
    for (let i = 0; i < ${buffers}; i++) secrets.push(fresh(i));
    const held = vmLck();
    let gcs = 0;
    for (let round = 0; round < ${rounds}; round++) {
      let junk = [];
      for (let i = 0; i < 200; i++) junk.push(new Array(100000).fill(i));
      junk = null;
      globalThis.gc(); gcs++;
      for (let i = round % 2; i < secrets.length; i += 2) secrets[i] = fresh(i);
      await tick();
    }
    const intact = secrets.every((b, i) => b.length === 1024 && b.every((x) => x === (i & 0xff)));
    secrets = null;
    for (let i = 0; i < 3; i++) { globalThis.gc(); gcs++; await tick(); }
    console.log('done ' + JSON.stringify({ intact, gcs, start, held, afterRelease: vmLck() }));`;
  const r = await runCaptured(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { timeoutMs: 60_000 });
  const text = r.stdout + r.stderr;
  const alloc = /^allocator (\{.*\})$/m.exec(r.stdout);
  const done = /^done (\{.*\})$/m.exec(r.stdout);
  const a = alloc ? (JSON.parse(alloc[1]!) as { locked: boolean; lockError: string | null }) : null;
  const d = done ? (JSON.parse(done[1]!) as { intact: boolean; gcs: number; start: number; held: number; afterRelease: number }) : null;
  return {
    survived: r.code === 0 && d !== null,
    how: r.timedOut ? 'timed out (killed)' : r.signal ? `signal ${r.signal}` : `exit code ${r.code}`,
    locked: a?.locked ?? null,
    lockError: a?.lockError ?? null,
    buffers,
    gcCalls: d?.gcs ?? 0,
    contentIntact: d?.intact ?? null,
    vmLckKiB: d ? { start: d.start, held: d.held, afterRelease: d.afterRelease } : null,
    error: r.code === 0 ? '' : (/Check failed: [^\n]*/.exec(text)?.[0] ?? text.trim().split('\n').slice(-3).join(' | ')),
  };
}
