// The tests' Kubernetes control plane (testkit/control-plane.ts), started on
// loopback once per test run and shared by every test file through a state
// file. Its data lives on tmpfs (/dev/shm), so the Secrets the tests sync
// never touch the disk.
//
// Started on first use by a test; stopped by test/control-plane/teardown.ts
// (tap's `after` hook). No kubelet: tests create Pod objects and play the
// kubelet's part against the driver's CSI socket.

import { createHash } from 'node:crypto';
import { openSync, closeSync, readFileSync, writeFileSync, mkdirSync, unlinkSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileP as run } from '../../testkit/run.js';
import { sleep } from '../../testkit/wait.js';
import {
  alive,
  ControlPlaneUnavailable,
  controlPlaneBinaries as binariesIn,
  startControlPlane,
  stopControlPlaneAt,
  stopPids,
  type ControlPlane,
} from '../../testkit/control-plane.js';
import { skipFile } from './skip.js';

export { ADMIN_TOKEN_USER, ControlPlaneUnavailable, kubeconfigYaml, type ControlPlane } from '../../testkit/control-plane.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// One control plane per checkout: the tap run of one checkout stops its own
// (package.json's `after` hook) and never one that another checkout's run uses.
export const STATE_DIR = `/dev/shm/sscsi-control-plane-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}`;
const STATE_FILE = join(STATE_DIR, 'state.json');
const LOCK_FILE = join(STATE_DIR, 'lock');

export function readState(): ControlPlane | null {
  try {
    const s = JSON.parse(readFileSync(STATE_FILE, 'utf8')) as ControlPlane;
    return s.pids.every(alive) ? s : null;
  } catch {
    return null;
  }
}

/** The directory of the built binaries (test/control-plane/build.sh). */
export const controlPlaneBinaries = (): Promise<string> => binariesIn(ROOT);

const start = (): Promise<ControlPlane> => startControlPlane(ROOT, join(STATE_DIR, `run-${Date.now()}`));

/** The running control plane, started on first call of the test run. */
export async function controlPlane(): Promise<ControlPlane> {
  const existing = readState();
  if (existing) return existing;
  mkdirSync(STATE_DIR, { recursive: true, mode: 0o700 });
  // One starter at a time across test processes.
  for (;;) {
    try {
      closeSync(openSync(LOCK_FILE, 'wx'));
      break;
    } catch {
      const s = readState();
      if (s) return s;
      await sleep(500);
    }
  }
  try {
    const again = readState();
    if (again) return again;
    const cp = await start();
    writeFileSync(STATE_FILE, JSON.stringify(cp));
    return cp;
  } finally {
    unlinkSync(LOCK_FILE);
  }
}

/**
 * The control plane for a test file, or the whole file skipped (reason tagged
 * [SSCSI_REQUIRE_K8S], `why` first) when it cannot be built here; a failure
 * when SSCSI_REQUIRE_K8S=1.
 */
export async function controlPlaneOrSkip(why: string): Promise<ControlPlane> {
  try {
    return await controlPlane();
  } catch (e) {
    if (e instanceof ControlPlaneUnavailable) skipFile('SSCSI_REQUIRE_K8S', `${why} (test/control-plane/build.sh): ${e.message}`);
    throw e;
  }
}

/** Stops the control plane of this test run (tap's `after` hook). */
export async function stopControlPlane(): Promise<void> {
  let s: ControlPlane;
  try {
    s = JSON.parse(readFileSync(STATE_FILE, 'utf8')) as ControlPlane;
  } catch {
    return;
  }
  await stopPids(s.pids);
  await run('rm', ['-rf', STATE_DIR]);
}

/**
 * A control plane of the caller's own, outside the run's shared one: for a
 * test that installs and deletes cluster-wide objects with fixed names (the
 * Helm chart's CSIDriver, ClusterRoles), which would collide with the other
 * test files applying deploy/ to the shared one. Stop it with
 * stopPrivateControlPlane. Throws ControlPlaneUnavailable when not built.
 */
export async function startPrivateControlPlane(): Promise<ControlPlane> {
  mkdirSync(STATE_DIR, { recursive: true, mode: 0o700 });
  return start();
}

export const stopPrivateControlPlane = stopControlPlaneAt;
