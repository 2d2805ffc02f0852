// Issue 13: old versions of a secret must not stay in the driver's or the
// keeper's memory. A driver and a keeper run as real processes; a volume is
// published and rotated 20 times, each version with its own canary; then
// both processes' memory is read through /proc/PID/mem (root) and every
// canary found is classified by the mapping it is in (smaps VmFlags).
//
// Wanted: no old version anywhere; the current one in locked (VmFlags lo),
// non-dumpable (dd) memory, plus at most IN_FLIGHT copies outside it: the
// provider's newest response, still in grpc-js's own receive buffers
// (HTTP/2 frames, which cannot be reached to be zeroed: docs/memory.md).

import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Harness, sleep, waitUntil, type Tap } from './helpers/harness.js';
import { scanProcess, type Hit } from './helpers/memory-scan.js';

const ROTATIONS = 20;
/** Copies of the current version allowed outside locked memory, per file, per process (see the header). */
const IN_FLIGHT = 2;
const SIZES = { a: 200, b: 40_000 }; // b spans several HTTP/2 DATA frames (16 KiB each)

t.test('after 20 rotations neither the driver nor the keeper holds an old version; the current one is in locked memory', async (t) => {
  if (process.getuid?.() !== 0) {
    t.fail('needs root (/dev/fuse, /proc/PID/mem of another process)');
    return;
  }
  const run = randomBytes(6).toString('hex');
  const prefix = `MEMSCAN-${run}-V`;
  const body = (v: number, file: keyof typeof SIZES): string => {
    const head = `${prefix}${String(v).padStart(2, '0')}${file}#`;
    return head + 'z'.repeat(SIZES[file] - head.length);
  };
  const write = (h: Harness, v: number) =>
    h.source('s.json', {
      files: [
        { path: 'a', contents: body(v, 'a') },
        { path: 'b', contents: body(v, 'b') },
      ],
    });

  const h = await Harness.start(t as Tap, { keeper: true, driverArgs: ['--rotation-poll-interval=200ms'] });
  await write(h, 1);
  await h.spc('app', 's.json');
  const target = h.target('scan');
  await h.publish(h.publishRequest(target, 'app'));
  const last = ROTATIONS + 1;
  for (let v = 2; v <= last; v++) {
    await write(h, v);
    const want = `${prefix}${String(v).padStart(2, '0')}`;
    await waitUntil(async () => (await readFile(join(target, 'b'), 'latin1')).startsWith(want), 10_000, `version ${v} served`);
    await waitUntil(async () => (await readFile(join(target, 'a'), 'latin1')).startsWith(want), 10_000, `version ${v} served`);
  }
  t.match(h.driver.out, /"msg":"rotated/, 'the driver rotated the volume');
  // Old versions stay served for 2 s (the retire grace, for readers mid-read), then the kernel is told
  // and forgets them: wait for that, and for the keeper to get the snapshot without them.
  await sleep(4000);

  const report = async (name: string, pid: number): Promise<void> => {
    const { hits, skipped, bytes } = await scanProcess(pid, prefix, 3);
    const where = (hs: Hit[]): string[] =>
      hs.map(
        (x) =>
          `V${x.tail} @${x.address.toString(16)} ${x.mapping.perms} ${x.mapping.name || '[anon]'}${x.mapping.locked ? ' locked' : ''}${x.mapping.dontDump ? ' dd' : ''}`,
      );
    t.comment(`${name}: scanned ${(bytes / 2 ** 20).toFixed(0)} MiB, ${skipped} unreadable chunks skipped, ${hits.length} canaries`);
    const version = (x: Hit): number => Number(x.tail.slice(0, 2));
    const old = hits.filter((x) => version(x) < last);
    const current = hits.filter((x) => version(x) === last);
    // The one copy we cannot reach: the socket read buffer Node's HTTP/2 session reads a response
    // into is malloc'd and freed in C++ without being zeroed, so glibc may still hold one old
    // response there (seen once in CI: one version's a and b side by side in [heap]) until the
    // chunk is reused. At most one such response, only in the C heap; nothing old anywhere else.
    const freedReadBuffer = old.filter((x) => x.mapping.name === '[heap]');
    const elsewhere = old.filter((x) => x.mapping.name !== '[heap]');
    t.same(where(elsewhere), [], `${name}: no old version anywhere but a freed socket read buffer`);
    t.ok(
      new Set(freedReadBuffer.map((x) => version(x))).size <= 1 && freedReadBuffer.length <= 2,
      `${name}: at most one old response left in the C heap (${where(freedReadBuffer).join(', ') || 'none'})`,
    );
    for (const file of ['a', 'b'] as const) {
      const mine = current.filter((x) => x.tail[2] === file);
      const locked = mine.filter((x) => x.mapping.locked);
      const outside = mine.filter((x) => !x.mapping.locked);
      t.ok(locked.length >= 1, `${name}: the current version of ${file} is in locked memory (${locked.length})`);
      t.ok(
        locked.every((x) => x.mapping.dontDump),
        `${name}: locked copies of ${file} are out of core dumps (VmFlags dd)`,
      );
      t.ok(
        outside.length <= IN_FLIGHT,
        `${name}: at most ${IN_FLIGHT} copies of ${file} outside locked memory: ${where(outside).join('; ')}`,
      );
    }
  };
  await report('driver', h.driver.child.pid!);
  await report('keeper', h.keeper!.child.pid!);
  await h.unpublish(target);
});
