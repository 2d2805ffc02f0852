// Unit tests of the rotation scheduler (src/rotation/scheduler.ts) with small
// real intervals. No assertion on exact timing: only on order and counts,
// with generous bounds.

import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { RotationScheduler, backoffMs, jittered, type SchedulerOptions } from '../src/rotation/scheduler.js';

/** Polls `cond` every 5 ms until it holds; fails the wait after `ms`. */
async function waitFor(cond: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(5);
  }
  return cond();
}

function scheduler(o: Partial<SchedulerOptions> & Pick<SchedulerOptions, 'poll'>): RotationScheduler {
  return new RotationScheduler({
    intervalMs: 30,
    concurrency: 4,
    retryBaseMs: 5,
    onError: () => {},
    ...o,
  });
}

t.test('jittered stays within ±10%', async (t) => {
  t.equal(
    jittered(1000, () => 0),
    900,
    'lowest',
  );
  t.equal(
    jittered(1000, () => 0.5),
    1000,
    'middle',
  );
  t.equal(
    jittered(1000, () => 0.25),
    950,
  );
  t.equal(
    jittered(1000, () => 0.999999),
    1100,
    'highest (rounded)',
  );
  t.equal(
    jittered(120_000, () => 0),
    108_000,
  );
  t.equal(
    jittered(33, () => 0.5),
    33,
    'integer result',
  );
  t.ok(Number.isInteger(jittered(37, () => 0.123)), 'rounded to whole ms');
  let outside = 0;
  for (let i = 0; i < 2000; i++) {
    const v = jittered(120_000, Math.random);
    if (v < 108_000 || v > 132_000) outside++;
  }
  t.equal(outside, 0, 'random values never leave [0.9, 1.1] x interval');
});

t.test('backoffMs: exponential from the base, capped', async (t) => {
  t.equal(backoffMs(1, 100, 10_000), 100, 'first failure: the base');
  t.equal(backoffMs(2, 100, 10_000), 200);
  t.equal(backoffMs(3, 100, 10_000), 400);
  t.equal(backoffMs(7, 100, 10_000), 6400);
  t.equal(backoffMs(8, 100, 10_000), 10_000, 'capped');
  t.equal(backoffMs(100, 100, 10_000), 10_000, 'no overflow past the cap');
  t.equal(backoffMs(0, 100, 10_000), 100, 'never below the base');
  t.equal(backoffMs(3, 1000, 500), 500, 'cap below base: cap');
});

t.test('polls repeat for each key', async (t) => {
  const calls: string[] = [];
  const s = scheduler({
    poll: async (k) => {
      calls.push(k);
    },
  });
  t.teardown(() => s.stop());
  s.add('a');
  s.add('b');
  t.ok(s.has('a'));
  t.ok(s.has('b'));
  t.notOk(s.has('c'));
  t.same(calls, [], 'nothing polled synchronously on add');
  const ok = await waitFor(() => calls.filter((k) => k === 'a').length >= 3 && calls.filter((k) => k === 'b').length >= 3);
  t.ok(ok, `both keys polled repeatedly (${calls.length} polls)`);
  t.ok(
    calls.every((k) => k === 'a' || k === 'b'),
    'only added keys are polled',
  );
});

t.test('adding a key twice keeps one schedule', async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  let polls = 0;
  const s = scheduler({
    intervalMs: 20,
    concurrency: 10,
    random: () => 0.5,
    poll: async () => {
      polls++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await sleep(15);
      inFlight--;
    },
  });
  t.teardown(() => s.stop());
  s.add('k');
  s.add('k');
  s.add('k');
  t.ok(await waitFor(() => polls >= 4));
  t.equal(maxInFlight, 1, 'a key is never polled twice at once: one timer, re-armed after each poll');
});

t.test('the concurrency limit is never exceeded', async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  let total = 0;
  const perKey = new Map<string, number>();
  const s = scheduler({
    intervalMs: 30,
    concurrency: 2,
    poll: async (k) => {
      inFlight++;
      total++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      perKey.set(k, (perKey.get(k) ?? 0) + 1);
      await sleep(25);
      inFlight--;
    },
  });
  t.teardown(() => s.stop());
  const keys = ['k1', 'k2', 'k3', 'k4', 'k5', 'k6'];
  for (const k of keys) s.add(k);
  const ok = await waitFor(() => total >= 24 && keys.every((k) => (perKey.get(k) ?? 0) >= 2), 5000);
  t.ok(ok, `every key polled at least twice (${total} polls)`);
  t.ok(maxInFlight <= 2, `at most 2 in flight (saw ${maxInFlight})`);
  t.equal(maxInFlight, 2, 'the limit is actually used');
  s.stop();
  t.ok(await waitFor(() => inFlight === 0), 'in-flight polls finish after stop');
});

t.test('concurrency 1 serialises polls', async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  let total = 0;
  const s = scheduler({
    intervalMs: 30,
    concurrency: 1,
    poll: async () => {
      inFlight++;
      total++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await sleep(10);
      inFlight--;
    },
  });
  t.teardown(() => s.stop());
  for (const k of ['a', 'b', 'c', 'd']) s.add(k);
  t.ok(await waitFor(() => total >= 10, 5000));
  t.equal(maxInFlight, 1);
});

t.test('a failing poll calls onError with growing failures and the backoff', async (t) => {
  const errors: Array<{ key: string; err: unknown; failures: number; retry: number }> = [];
  let fail = true;
  let polls = 0;
  const boom = new Error('provider down');
  const s = scheduler({
    intervalMs: 80,
    retryBaseMs: 5,
    poll: async () => {
      polls++;
      if (fail) throw boom;
    },
    onError: (key, err, failures, retry) => errors.push({ key, err, failures, retry }),
  });
  t.teardown(() => s.stop());
  s.add('vol');
  t.ok(await waitFor(() => errors.length >= 5, 5000), 'retried after each failure');
  const first = errors.slice(0, 5);
  t.same(
    first.map((e) => e.failures),
    [1, 2, 3, 4, 5],
    'failures count grows',
  );
  t.same(
    first.map((e) => e.retry),
    [5, 10, 20, 40, 80],
    'retry = backoffMs(failures, 5, 80)',
  );
  t.ok(first.every((e) => e.key === 'vol'));
  t.ok(
    first.every((e) => e.err === boom),
    'the thrown error is passed through',
  );
  t.equal(s.has('vol'), true, 'a failing key stays scheduled');

  // A success resets the count; the next failure starts again at 1.
  fail = false;
  const before = errors.length;
  const pollsAtSuccess = polls;
  t.ok(await waitFor(() => polls >= pollsAtSuccess + 2, 5000), 'polling goes on after a success');
  fail = true;
  t.ok(await waitFor(() => errors.length >= before + 2, 5000));
  const after = errors.slice(before);
  // The poll that was running when `fail` flipped may have failed: find the restart.
  const restart = after.findIndex((e) => e.failures === 1);
  t.ok(restart >= 0, 'failures restart at 1 after a success');
  t.equal(after[restart]!.retry, 5, 'and the backoff restarts at the base');
});

t.test('a non-Error rejection is passed to onError too', async (t) => {
  const got: unknown[] = [];
  const s = scheduler({
    poll: () => Promise.reject('plain string'),
    onError: (_k, err) => got.push(err),
  });
  t.teardown(() => s.stop());
  s.add('x');
  t.ok(await waitFor(() => got.length >= 1));
  t.equal(got[0], 'plain string');
});

t.test('remove() stops polling that key only', async (t) => {
  const calls: string[] = [];
  const s = scheduler({
    poll: async (k) => {
      calls.push(k);
    },
  });
  t.teardown(() => s.stop());
  s.add('a');
  s.add('b');
  t.ok(await waitFor(() => calls.filter((k) => k === 'a').length >= 2));
  s.remove('a');
  t.notOk(s.has('a'));
  t.ok(s.has('b'));
  const aCount = calls.filter((k) => k === 'a').length;
  const bCount = calls.filter((k) => k === 'b').length;
  t.ok(await waitFor(() => calls.filter((k) => k === 'b').length >= bCount + 4, 5000), 'b keeps polling');
  t.equal(calls.filter((k) => k === 'a').length, aCount, 'a is not polled after remove');
  s.remove('a'); // idempotent
  s.remove('never-added');
  t.pass('removing unknown keys is a no-op');
});

t.test('remove() during an in-flight poll: no re-arm afterwards', async (t) => {
  let polls = 0;
  let release: (() => void) | null = null;
  const s = scheduler({
    poll: () => {
      polls++;
      return new Promise<void>((r) => {
        release = r;
      });
    },
  });
  t.teardown(() => s.stop());
  s.add('a');
  t.ok(await waitFor(() => polls === 1));
  s.remove('a');
  (release as (() => void) | null)?.();
  await sleep(150); // five intervals
  t.equal(polls, 1, 'not polled again');
});

t.test('remove() of a key waiting for a concurrency slot skips its poll', async (t) => {
  const started: string[] = [];
  let releaseBlocker: (() => void) | null = null;
  const s = scheduler({
    intervalMs: 30,
    concurrency: 1,
    random: () => 0, // 27 ms for every key
    poll: (k) => {
      started.push(k);
      if (k === 'blocker')
        return new Promise<void>((r) => {
          releaseBlocker = r;
        });
      return Promise.resolve();
    },
  });
  t.teardown(() => s.stop());
  s.add('blocker');
  t.ok(await waitFor(() => started.length === 1));
  s.add('waiting');
  await sleep(80); // 'waiting' fires and queues behind the blocker
  t.same(started, ['blocker'], 'the slot is taken');
  s.remove('waiting');
  (releaseBlocker as (() => void) | null)?.();
  s.remove('blocker');
  await sleep(100);
  t.same(started, ['blocker'], 'the removed key was never polled');
});

t.test('stop() stops all keys and refuses new ones', async (t) => {
  const calls: string[] = [];
  const s = scheduler({
    poll: async (k) => {
      calls.push(k);
    },
  });
  for (const k of ['a', 'b', 'c']) s.add(k);
  t.ok(await waitFor(() => new Set(calls).size === 3));
  s.stop();
  for (const k of ['a', 'b', 'c']) t.notOk(s.has(k), `${k} removed`);
  const n = calls.length;
  s.add('d');
  t.notOk(s.has('d'), 'add after stop is ignored');
  await sleep(150);
  t.equal(calls.length, n, 'nothing polled after stop');
});

t.test('the random source is used for the jitter', async (t) => {
  let draws = 0;
  let polls = 0;
  const s = scheduler({
    random: () => {
      draws++;
      return 0.5;
    },
    poll: async () => {
      polls++;
    },
  });
  t.teardown(() => s.stop());
  s.add('a');
  t.equal(draws, 1, 'one draw to arm the first poll');
  t.ok(await waitFor(() => polls >= 2));
  t.ok(draws >= polls, 'one draw per re-arm after a success');
});

t.test('add with a first delay: a key already due polls at once, one due later waits (the cadence of a previous driver)', async (t) => {
  const calls: string[] = [];
  const s = new RotationScheduler({
    intervalMs: 10_000,
    concurrency: 4,
    retryBaseMs: 5,
    onError: () => {},
    random: () => 0,
    poll: async (k) => {
      calls.push(k);
    },
  });
  t.teardown(() => s.stop());
  s.add('overdue', -5000);
  s.add('later', 9000);
  s.add('beyond', 60_000); // clamped to one interval
  t.ok(await waitFor(() => calls.includes('overdue'), 1000), 'an overdue key polls at once');
  await sleep(200);
  t.same(calls, ['overdue'], 'the others wait for their time');
});
