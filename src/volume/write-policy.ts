// Write windows: whether a provider call gets one (the provider may write
// its files into the volume itself, as the AWS provider does by default),
// the window opened for that provider's process only, and what the volume
// serves afterwards.

import type { Logger } from 'pino';
import { errors } from '../errors.js';
import type { VolumeHandle } from '../fuse/filesystem.js';
import type { VolumeFilesystem } from '../fuse/connections.js';
import type { TargetLifecycle } from '../mount/target-lifecycle.js';
import { scrubResponse, type MountResult } from '../provider/client.js';
import type { ProviderFile } from '../provider/paths.js';
import type { WindowLimits, WindowOverflow } from '../fuse/write-window.js';
import type { ProviderCall } from './provider-call.js';
import { filesAfterWindow } from './written-files.js';

export interface WritePolicyOptions {
  readonly fs: VolumeFilesystem;
  readonly targets: TargetLifecycle;
  readonly log: Logger;
  /**
   * The pid of the process serving a provider's socket (0: outside our pid
   * namespace). Without it no write windows open, and providers that write
   * their files themselves fail with EROFS.
   */
  readonly providerPid?: (provider: string) => Promise<number>;
  /** What a window may stage: --max-call-recv-msg-size bytes, as a response (DEFAULT_WINDOW_LIMITS when unset). */
  readonly windowLimits?: WindowLimits;
}

/** The error for a window over its limits: which limit, and the flag that sets the byte limit. */
function tooLarge(provider: string, o: WindowOverflow, cause?: unknown): Error {
  const what =
    o.limit === 'file-count'
      ? `more than ${o.limits.maxFiles} files (${o.attempted} refused with ENOSPC)`
      : o.limit === 'file-size'
        ? `${o.attempted}, over the limit of ${o.limits.maxBytes} bytes (refused with EFBIG)`
        : `${o.attempted}, over the limit of ${o.limits.maxBytes} bytes (refused with ENOSPC)`;
  const reported = cause instanceof Error ? `; the provider reported: ${cause.message}` : '';
  return errors.windowTooLarge(
    `provider ${provider} went over the limits of what it may write into the volume: ${what}; nothing it wrote is served. ` +
      `A provider may write what a response may carry: --max-call-recv-msg-size bytes in all, at most ${o.limits.maxFiles} files${reported}`,
    cause,
  );
}

/** A provider call's answer and the files the volume serves after it. */
export interface CallOutcome {
  readonly result: MountResult;
  readonly files: readonly ProviderFile[];
}

export class WritePolicy {
  /**
   * Per provider: whether its last call wrote into the volume. A provider
   * that returned its files instead gets no write window on later calls
   * (two remounts saved per call); one that failed without a window gets
   * one again next time, in case it now writes.
   */
  private readonly writes = new Map<string, boolean>();

  constructor(private readonly o: WritePolicyOptions) {}

  /** The provider's pid if its next call should have a write window, else null. */
  async windowPid(provider: string): Promise<number | null> {
    if (!this.o.providerPid || this.writes.get(provider) === false) return null;
    try {
      return await this.o.providerPid(provider);
    } catch {
      return null; // not reachable: the call itself reports that
    }
  }

  /** A first publish's call without a window: the answer is the content; a failure gives the provider a window next time. */
  async callWithoutWindow(provider: string, call: ProviderCall): Promise<CallOutcome> {
    try {
      const result = await call();
      return { result, files: result.files };
    } catch (e) {
      this.writes.delete(provider); // it may write now: a window next time
      throw e;
    }
  }

  /**
   * Runs a provider call with the volume's write window open and works out
   * the files to serve next (`served`: what is served now). The window is
   * closed (no more writes) when this returns or throws; the caller
   * releases it after publishing (endWindow, or the publish transaction).
   */
  async inWindow(
    handle: VolumeHandle,
    provider: string,
    pid: number,
    call: ProviderCall,
    served: readonly ProviderFile[],
  ): Promise<CallOutcome> {
    // pid 0: the provider is outside our pid namespace, so it cannot be told
    // apart; kubelet's container binds of the volume are read-only regardless.
    this.o.fs.openWindow(handle, (caller) => pid <= 0 || caller === pid, this.o.windowLimits);
    let result: MountResult;
    try {
      result = await call();
    } catch (e) {
      const w = this.o.fs.closeWindow(handle);
      if (!w?.wrote) this.writes.delete(provider);
      // The provider most likely failed on our EFBIG/ENOSPC: the limit is the error to report.
      if (w?.overflow) throw tooLarge(provider, w.overflow, e);
      throw e;
    }
    const w = this.o.fs.closeWindow(handle);
    this.writes.set(provider, w?.wrote ?? false);
    if (w?.overflow) {
      scrubResponse(result.files);
      throw tooLarge(provider, w.overflow);
    }
    const merged = filesAfterWindow(served, w, result.files);
    if (merged.error) {
      scrubResponse(result.files);
      throw errors.invalidResponse(`provider ${provider} wrote invalid files: ${merged.error}`);
    }
    if (w?.wrote)
      this.o.log.debug({ provider, written: w.files.length, removed: w.removed.length }, 'the provider wrote files into the volume');
    return { result, files: merged.files };
  }

  /** Makes a served target writable for a poll's window; false (logged) when it cannot be, and the poll goes without one. */
  async openTarget(targetPath: string): Promise<boolean> {
    return this.o.targets.setWritable(targetPath, true).then(
      () => true,
      (e: unknown) => {
        this.o.log.warn(
          { targetPath, err: (e as Error).message },
          'could not make the target writable for the provider; polling without a write window',
        );
        return false;
      },
    );
  }

  /** Drops a poll's write window (if one is open) and makes the target read-only again. */
  async endWindow(handle: VolumeHandle, targetPath: string): Promise<void> {
    if (!this.o.fs.closeWindow(handle)) return;
    await this.o.fs.releaseWindow(handle);
    await this.o.targets
      .setWritable(targetPath, false)
      .catch((e: unknown) =>
        this.o.log.error({ targetPath, err: (e as Error).message }, 'could not make the target read-only again after the provider call'),
      );
  }
}
