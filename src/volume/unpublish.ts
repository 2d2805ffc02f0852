// NodeUnpublishVolume for one target path (the caller holds its lock):
// whatever is mounted there goes, the directory goes, and a served volume's
// bytes are zeroed and its record dropped even when the unmount failed.

import type { Logger } from 'pino';
import { DriverError, errors } from '../errors.js';
import type { VolumeFilesystem } from '../fuse/connections.js';
import type { TargetLifecycle } from '../mount/target-lifecycle.js';
import type { VolumeState } from './state.js';

export interface UnpublishOptions {
  readonly fs: VolumeFilesystem;
  readonly targets: TargetLifecycle;
  readonly state: VolumeState;
  readonly log: Logger;
}

export async function unpublishVolume(o: UnpublishOptions, targetPath: string): Promise<void> {
  const vol = o.state.get(targetPath);
  try {
    await o.targets.teardown(targetPath, { mounted: vol !== undefined });
  } catch (e) {
    if (e instanceof DriverError) throw e;
    throw errors.unmountFailed(`failed to clean and unmount target path ${targetPath}: ${(e as Error).message}`, e);
  } finally {
    if (vol) {
      try {
        await o.fs.destroyVolume(vol.handle);
      } finally {
        // After the directory went, so the snapshot this persists has neither.
        o.state.delete(targetPath);
      }
    }
  }
  o.log.info({ targetPath }, 'node unpublish volume complete');
}
