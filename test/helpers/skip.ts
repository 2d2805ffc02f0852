// Every skip in the suite goes through here, so that it is visible and
// checkable: its reason starts with `[SSCSI_REQUIRE_X]`, the variable that
// makes the skipped part required. When that variable is 1 the test fails
// instead of skipping, and test/ci-run.mjs also counts any skip carrying the
// tag of a set variable as a failure. ci-run lists every skip before its
// closing `N passed, N failed, N skipped` line.

import t, { type Test } from 'tap';

/** The variable that turns a skip into a failure (.ci/run sets those it can satisfy). */
export type RequireVar = `SSCSI_REQUIRE_${string}`;

export const isRequired = (v: RequireVar): boolean => process.env[v] === '1';

/** `[SSCSI_REQUIRE_X] why`: the form test/ci-run.mjs reads. */
export const skipReason = (v: RequireVar, why: string): string => `[${v}] ${why}`;

class RequiredButUnavailable extends Error {
  constructor(v: RequireVar, why: string) {
    super(`${skipReason(v, why)} (${v}=1 requires it)`);
    this.name = 'RequiredButUnavailable';
  }
}

/**
 * Skips the whole file (tap reports it as skipped, `1..0 # reason`), or
 * throws when `v` requires it. Call it before any test has started.
 */
export function skipFile(v: RequireVar, why: string): never {
  if (isRequired(v)) throw new RequiredButUnavailable(v, why);
  t.plan(0, skipReason(v, why));
  // Nothing has started yet (no mount, no child): the plain exit is safe here.
  process.exit(0);
}

/** For a subtest's `skip` option: false when `ok`; else the tagged reason, or throws when `v` requires it. */
export function skipUnless(ok: boolean, v: RequireVar, why: string): false | string {
  if (ok) return false;
  if (isRequired(v)) throw new RequiredButUnavailable(v, why);
  return skipReason(v, why);
}

/**
 * Inside a running subtest: records the rest of it (`what`) as skipped, or
 * fails it when `v` requires it. The caller returns right after.
 */
export function skipRest(t: Test, what: string, v: RequireVar, why: string): void {
  if (isRequired(v)) t.fail(`${what}: ${skipReason(v, why)} (${v}=1 requires it)`);
  // With a `skip` reason tap reports the point as `ok - what # SKIP reason` and counts it as skipped,
  // not passed (test/ci-run.test.ts checks the closing line says so).
  else t.pass(what, { skip: skipReason(v, why) });
}
