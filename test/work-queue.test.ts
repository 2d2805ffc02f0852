import t from 'tap';
import { WorkQueue } from '../src/util/work-queue.js';

t.test('a key whose reconcile threw runs again after the retry delay it was given', async (t) => {
  const calls: number[] = [];
  const errors: string[] = [];
  const start = Date.now();
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const q = new WorkQueue(
    async (key) => {
      calls.push(Date.now() - start);
      if (calls.length === 1) throw new Error(`first try of ${key} fails`);
      done();
      return {};
    },
    (key, e) => errors.push(`${key}: ${(e as Error).message}`),
    50,
  );
  // The queue's retry timer is unref'd (it must not keep a driver alive); this one keeps the test's process up.
  const keepAlive = setInterval(() => {}, 1000);
  q.add('ns/a');
  await finished;
  clearInterval(keepAlive);
  q.stop();
  t.equal(calls.length, 2, 'retried once');
  t.ok(calls[1]! - calls[0]! >= 45, 'not before the delay');
  t.strictSame(errors, ['ns/a: first try of ns/a fails'], 'the error was reported with its key');
});

t.test('a key queued while it runs runs once more, and stop() drops what waits', async (t) => {
  const seen: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const q = new WorkQueue(
    async (key) => {
      seen.push(key);
      if (seen.length === 1) await gate;
      return { requeueAfterMs: 10_000 };
    },
    () => {},
  );
  q.add('k');
  q.add('k');
  q.add('k');
  release();
  await new Promise((r) => setTimeout(r, 20));
  t.strictSame(seen, ['k', 'k'], 'three adds while running collapse into one more run');
  q.stop();
  q.add('k');
  await new Promise((r) => setTimeout(r, 20));
  t.equal(seen.length, 2, 'nothing runs after stop()');
});
