// The images the chart test points the chart at: our driver, built from the
// Dockerfile's driver stage (testkit/node/driver-image.ts), and a STAND-IN
// for the liveness-probe sidecar (test/kubelet-e2e/livenessprobe.c: the Go
// module proxy refuses registry.k8s.io/sig-storage/livenessprobe's module).

import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { driverImageSpec } from '../../testkit/node/driver-image.js';
import { buildImageArchive } from '../../testkit/node/oci-image.js';
import { Proc, execFileP, freePort, sleep } from './harness.js';

export const DRIVER_IMAGE = 'sscsi.local/secrets-store-csi-driver-ts:e2e';
export const LIVENESS_IMAGE = 'sscsi.local/livenessprobe-stand-in:e2e';

/** Builds both archives under `dir`; returns their paths. */
export async function buildChartImages(root: string, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const probe = join(dir, 'livenessprobe');
  await execFileP('cc', ['-static', '-Os', '-Wall', '-o', probe, join(root, 'test/kubelet-e2e/livenessprobe.c')]);
  const archives = [join(dir, 'driver.tar'), join(dir, 'livenessprobe.tar')];
  await buildImageArchive(await driverImageSpec({ ref: DRIVER_IMAGE, root, busybox: '/bin/busybox' }), archives[0]!);
  await buildImageArchive(
    { ref: LIVENESS_IMAGE, files: [{ path: '/livenessprobe', from: probe }], entrypoint: ['/livenessprobe'] },
    archives[1]!,
  );
  return archives;
}

/** The status the stand-in (built by buildChartImages in `dir`) answers on this machine for a CSI socket path. */
export async function livenessStandInAnswers(dir: string, csiSocket: string): Promise<number> {
  const port = await freePort();
  const p = new Proc(
    spawn(join(dir, 'livenessprobe'), [`--csi-address=${csiSocket}`, `--http-endpoint=127.0.0.1:${port}`, '--probe-timeout=3s', '-v=2'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  try {
    await p.waitFor(/serving \/healthz/, 10_000);
    for (let i = 0; ; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`).catch((e: Error) => (i < 20 ? null : Promise.reject(e)));
      if (r) return r.status;
      await sleep(100);
    }
  } finally {
    await p.stop();
  }
}
