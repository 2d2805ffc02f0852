// Locked memory vs V8 (notes, and a line in section 3): why the driver does
// not mlockall, and that its way (locked pages for secrets only) survives GC.

import type { Report, Section } from '../lib/context.js';
import { phase } from '../lib/output.js';
import { probeMlockGc, probeSecretAllocGc } from '../lib/probes.js';

async function lockedMemoryProbes({ results, notes }: Report): Promise<void> {
  phase('locked memory probes: mlockall + gc(), secretAllocator + gc()');
  const probe = await probeMlockGc();
  const secretProbe = await probeSecretAllocGc(2000);
  results.lockedMemoryProbes = { mlockallGc: probe, secretAllocatorGc: secretProbe };
  notes.push(
    probe.locked && !probe.survived
      ? `why the driver does not mlockall: a Node process locked with mlockall (the addon's lockAll(true)) died on its first full gc(): ${probe.how}` +
          `${probe.failedSyscall ? ` (${probe.failedSyscall})` : ''}. Under mlockall V8's madvise(MADV_DONTNEED) fails with EINVAL and V8 CHECKs it, ` +
          'so a driver locked that way would abort whenever V8 gives heap pages back. --lock-memory therefore locks only the pages holding secret file contents.'
      : `mlockall + gc() probe: locked=${probe.locked}, survived=${probe.survived} (${probe.how}); the abort it demonstrates did not happen here`,
  );
  const sv = secretProbe.vmLckKiB;
  notes.push(
    `the driver's way survives GC: a child using secretAllocator(loadNative(), true) (locked=${secretProbe.locked}) allocated ${secretProbe.buffers} ` +
      `1 KiB secret buffers${sv ? ` (VmLck ${sv.start} -> ${sv.held} KiB)` : ''}, churned the heap with ${secretProbe.gcCalls} gc() calls under --expose-gc ` +
      `while replacing half of them per round, content intact: ${secretProbe.contentIntact}; survived: ${secretProbe.survived} (${secretProbe.how})` +
      `${sv ? `; VmLck after dropping them: ${sv.afterRelease} KiB` : ''}${secretProbe.error ? `; ${secretProbe.error}` : ''}` +
      `${secretProbe.lockError ? `; lock error: ${secretProbe.lockError}` : ''}`,
  );
}

export const lockedMemory: Section = { name: 'locked-memory', run: (ctx) => lockedMemoryProbes(ctx.report) };
