// Waiting, for the tests and the bench alike.

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every `everyMs` until it holds; an error it throws fails the wait at once. */
export async function waitUntil(fn: () => Promise<boolean> | boolean, ms = 10_000, what = 'condition', everyMs = 25): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}
