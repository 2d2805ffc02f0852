// The volume manager: what NodePublishVolume, NodeUnpublishVolume and the
// rotation polls do, independent of gRPC. A facade: it serialises the work
// per target path, schedules the polls, and hands each operation to the
// module that does it (publish.ts, poll.ts, unpublish.ts), which share the
// registry (state.ts), the target's lifecycle (src/mount), the provider call
// (provider-call.ts) and the write-window policy (write-policy.ts).
//
// Invariants:
// - a provider answer is fully validated before anything is touched; a bad
//   answer, a provider error or a timeout leaves what is served as it was;
// - operations on one target path are serialised; different volumes run in
//   parallel;
// - publish secrets and tokens live only in this process's memory (for the
//   next poll) and are replaced by kubelet's republish calls.

import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { errors, isDriverError, ErrorType, type DriverError } from '../errors.js';
import type { VolumeFilesystem } from '../fuse/connections.js';
import { TargetLifecycle } from '../mount/target-lifecycle.js';
import type { DriverMetrics } from '../observability/metrics.js';
import type { ProviderClients } from '../provider/client.js';
import type { SpcSource } from '../spc/types.js';
import { MOCK_TARGET_PATH } from '../csi/volume-context.js';
import { RotationScheduler } from '../rotation/scheduler.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import { Poller } from './poll.js';
import { ProviderCaller } from './provider-call.js';
import { Publisher } from './publish.js';
import { toStatus, type VolumeState } from './state.js';
import type { PublishRequest, VolumeRecordState, VolumeStatus } from './types.js';
import { unpublishVolume } from './unpublish.js';
import { WritePolicy } from './write-policy.js';
import type { WindowLimits } from '../fuse/write-window.js';

export interface RotationOptions {
  readonly enabled: boolean;
  readonly intervalMs: number;
  readonly concurrency: number;
  readonly retryBaseMs: number;
}

export interface VolumeManagerOptions {
  readonly fs: VolumeFilesystem;
  /** The registry of served volumes; it persists every change (the keeper snapshot). */
  readonly state: VolumeState;
  readonly spcs: SpcSource;
  readonly providers: ProviderClients;
  readonly metrics: DriverMetrics;
  readonly log: Logger;
  readonly rotation: RotationOptions;
  /** Provider call timeout when the caller has no deadline (rotation polls). */
  readonly providerTimeoutMs: number;
  /** Where a canonical target really is (the kubelet root may be a symlink); identity when absent. */
  readonly realTargetPath?: (target: string) => string;
  /**
   * Called after every successful mount (first=true) and rotation (status
   * objects, secret sync). A failure on the first mount fails the publish and
   * unmounts, as upstream does when it cannot write the status object; on a
   * rotation it is logged and the new content stays.
   */
  readonly onVersion?: (status: VolumeStatus, first: boolean) => Promise<void>;
  /** Called when a publish stacked a new mount over a dead one of a previous driver (events). */
  readonly onDeadMountRepaired?: (status: VolumeStatus) => void;
  /** Called when a rotation poll fails (events). */
  readonly onRotationError?: (status: VolumeStatus, err: DriverError, failures: number) => void;
  /** The pid of the process serving a provider's socket, for write windows (see WritePolicyOptions). */
  readonly providerPid?: (provider: string) => Promise<number>;
  /** What a write window may stage (see WritePolicyOptions); DEFAULT_WINDOW_LIMITS when unset. */
  readonly windowLimits?: WindowLimits;
}

export class VolumeManager {
  private readonly locks = new KeyedMutex();
  private readonly scheduler: RotationScheduler;
  private readonly publisher: Publisher;
  private readonly poller: Poller;
  private readonly targets: TargetLifecycle;
  private closing = false;

  constructor(private readonly o: VolumeManagerOptions) {
    const { fs, state, metrics, log } = o;
    this.scheduler = new RotationScheduler({
      intervalMs: o.rotation.intervalMs,
      concurrency: o.rotation.concurrency,
      retryBaseMs: o.rotation.retryBaseMs,
      poll: (key) => this.poll(key),
      onError: (key, err, failures, retryInMs) => this.pollFailed(key, err, failures, retryInMs),
    });
    this.targets = new TargetLifecycle(log, o.realTargetPath);
    const caller = new ProviderCaller({ spcs: o.spcs, providers: o.providers, metrics, log, providerTimeoutMs: o.providerTimeoutMs });
    const policy = new WritePolicy({
      fs,
      targets: this.targets,
      log,
      ...(o.providerPid ? { providerPid: o.providerPid } : {}),
      ...(o.windowLimits ? { windowLimits: o.windowLimits } : {}),
    });
    const onVersion = o.onVersion ? { onVersion: o.onVersion } : {};
    this.publisher = new Publisher({
      fs,
      targets: this.targets,
      state,
      caller,
      policy,
      metrics,
      log,
      ...onVersion,
      ...(o.onDeadMountRepaired ? { onDeadMountRepaired: o.onDeadMountRepaired } : {}),
      onServed: (targetPath) => {
        if (o.rotation.enabled) this.scheduler.add(targetPath);
      },
    });
    this.poller = new Poller({ fs, state, caller, policy, metrics, log, ...onVersion });
  }

  async publish(req: PublishRequest): Promise<void> {
    if (this.closing) throw errors.shuttingDown('driver is shutting down');
    return this.locks.run(req.targetPath, () => this.publisher.publish(req));
  }

  /** One rotation poll of a volume: new content is visible to new opens when this resolves. */
  async poll(targetPath: string): Promise<void> {
    return this.locks.run(targetPath, () => this.poller.poll(targetPath));
  }

  async unpublish(targetPath: string): Promise<void> {
    if (targetPath === MOCK_TARGET_PATH) return;
    return this.locks.run(targetPath, () => {
      this.scheduler.remove(targetPath);
      return unpublishVolume({ fs: this.o.fs, targets: this.targets, state: this.o.state, log: this.o.log }, targetPath);
    });
  }

  private pollFailed(targetPath: string, err: unknown, failures: number, retryInMs: number): void {
    const vol = this.o.state.get(targetPath);
    const e = err as DriverError;
    this.o.metrics.rotationError(
      vol?.provider ?? '',
      isDriverError(e) ? e.errorType || ErrorType.FailedToRotate : ErrorType.FailedToRotate,
    );
    this.o.log.warn(
      { targetPath, pod: vol ? `${vol.podNamespace}/${vol.podName}` : undefined, err: e.message, code: e.code, failures, retryInMs },
      'rotation poll failed; the last good content stays served',
    );
    if (vol)
      this.o.onRotationError?.(
        toStatus(vol),
        isDriverError(e) ? e : errors.providerCall(status.UNKNOWN, String((err as Error)?.message ?? err), err),
        failures,
      );
  }

  /** Adopts the volumes of a previous process (their FUSE directories already restored in fs) and resumes polling. */
  restoreVolumes(records: readonly VolumeRecordState[]): void {
    const { adopted, missing } = this.o.state.restore(records, (name) => this.o.fs.volume(name));
    for (const targetPath of missing) this.o.log.warn({ targetPath }, 'taken-over volume has no directory; skipped');
    if (!this.o.rotation.enabled) return;
    // The cadence goes on from the previous driver's last poll, not from now.
    for (const v of adopted) if (!v.mock) this.scheduler.add(v.targetPath, v.lastPolledAt + this.o.rotation.intervalMs - Date.now());
  }

  /** Resolves once no publish, unpublish or poll is running (before handing the state over). */
  async quiesce(): Promise<void> {
    this.close();
    for (let i = 0; i < 200 && this.locks.busy() > 0; i++) await new Promise((r) => setTimeout(r, 25));
  }

  /** Stops polling. Mounts stay: pods keep reading until the process exits. */
  close(): void {
    this.closing = true;
    this.scheduler.stop();
  }
}
