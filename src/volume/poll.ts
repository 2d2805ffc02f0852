// One rotation poll of a served volume (the caller holds its lock): the
// provider is asked again with the versions served, and new content is
// visible to new opens when the poll resolves. A failure leaves what is
// served as it was.

import type { Logger } from 'pino';
import type { VolumeFilesystem } from '../fuse/connections.js';
import type { DriverMetrics } from '../observability/metrics.js';
import { scrubResponse } from '../provider/client.js';
import type { ProviderCaller } from './provider-call.js';
import { toStatus, type VolumeState } from './state.js';
import type { VolumeStatus } from './types.js';
import type { CallOutcome, WritePolicy } from './write-policy.js';

export interface PollerOptions {
  readonly fs: VolumeFilesystem;
  readonly state: VolumeState;
  readonly caller: ProviderCaller;
  readonly policy: WritePolicy;
  readonly metrics: DriverMetrics;
  readonly log: Logger;
  /** Called after a rotation (status objects, secret sync, events); a failure is logged and the new content stays. */
  readonly onVersion?: (status: VolumeStatus, first: boolean) => Promise<void>;
}

export class Poller {
  constructor(private readonly o: PollerOptions) {}

  async poll(targetPath: string): Promise<void> {
    const { state, policy } = this.o;
    const vol = state.get(targetPath);
    if (!vol || vol.mock) return;
    state.update(targetPath, { lastPolledAt: Date.now() }, 'with-next');
    const started = performance.now();
    const spc = await this.o.caller.resolve(vol.podNamespace, vol.spcName);
    state.update(targetPath, { provider: spc.provider }, 'with-next');
    const call = this.o.caller.prepare(spc, {
      targetPath,
      podNamespace: vol.podNamespace,
      podName: vol.podName,
      volumeContext: vol.volumeContext,
      secrets: vol.secrets,
      currentObjectVersions: vol.objectVersions,
      deadline: null,
    });
    const pid = await policy.windowPid(vol.provider);
    let out: CallOutcome;
    if (pid !== null && (await policy.openTarget(targetPath))) {
      try {
        out = await policy.inWindow(vol.handle, vol.provider, pid, call, vol.handle.tree.files());
      } catch (e) {
        // Before the failure is reported: the kernel has forgotten the window's names once this resolves,
        // so nothing of it is visible when the error is logged (e.g. a window over its limits).
        await policy.endWindow(vol.handle, targetPath);
        throw e;
      }
    } else {
      const result = await call();
      out = { result, files: result.files };
    }
    if (state.get(targetPath) !== vol) {
      scrubResponse(out.result.files);
      await policy.endWindow(vol.handle, targetPath);
      return;
    }
    // The record first, so the snapshot taken when the filesystem changes already carries the new versions;
    // a versions-only change is persisted by the flush below.
    const versionsChanged = state.update(targetPath, { objectVersions: out.result.objectVersions }, 'on-flush');
    const published = await this.o.fs.publish(vol.handle, out.files);
    scrubResponse(out.result.files);
    await policy.endWindow(vol.handle, targetPath);
    state.flush();
    const rotated = published.changed || versionsChanged;
    if (published.changed) this.o.metrics.versions.inc();
    this.o.metrics.rotationOk(vol.provider, rotated, (performance.now() - started) / 1000);
    if (rotated) {
      this.o.log.info(
        { targetPath, pod: `${vol.podNamespace}/${vol.podName}`, provider: vol.provider, dataDir: published.dataDir },
        'rotated volume content',
      );
      await this.o
        .onVersion?.(toStatus(vol), false)
        .catch((e: unknown) => this.o.log.warn({ targetPath, err: (e as Error).message }, 'could not record the rotation'));
    }
  }
}
