// NodePublishVolume for one target path (the caller holds its lock): a
// republish refreshes what the next poll sends; a first publish is one
// transaction that creates the volume's FUSE directory, binds it at the
// target, fills it from the provider (with a write window when the provider
// may write its files itself) and records it, and undoes all of that in one
// place when any step fails.

import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { errors, isDriverError } from '../errors.js';
import type { VolumeHandle } from '../fuse/filesystem.js';
import type { VolumeFilesystem } from '../fuse/connections.js';
import type { TargetLifecycle } from '../mount/target-lifecycle.js';
import type { DriverMetrics } from '../observability/metrics.js';
import { scrubResponse } from '../provider/client.js';
import { auditRequested } from '../observability/read-audit.js';
import {
  AUDIT_READS_ATTRIBUTE,
  MOCK_PROVIDER,
  POD_NAME,
  POD_NAMESPACE,
  POD_UID,
  PROVIDER_NAME_ATTRIBUTE,
  SPC_ATTRIBUTE,
} from '../csi/volume-context.js';
import type { ProviderCall, ProviderCaller } from './provider-call.js';
import { toStatus, type VolumeState } from './state.js';
import type { PublishRequest, Volume, VolumeOwner, VolumeStatus } from './types.js';
import type { CallOutcome, WritePolicy } from './write-policy.js';

/** FUSE directory name of a volume: stable for a target path, so a takeover finds the same names. */
export function volumeDirName(targetPath: string): string {
  return `v-${createHash('sha256').update(targetPath).digest('hex').slice(0, 24)}`;
}

export interface PublisherOptions {
  readonly fs: VolumeFilesystem;
  readonly targets: TargetLifecycle;
  readonly state: VolumeState;
  readonly caller: ProviderCaller;
  readonly policy: WritePolicy;
  readonly metrics: DriverMetrics;
  readonly log: Logger;
  /**
   * Called after a first publish has its content (first=true). A failure
   * fails the publish and undoes it, as upstream does when it cannot write
   * the status object.
   */
  readonly onVersion?: (status: VolumeStatus, first: boolean) => Promise<void>;
  /** Called when a publish stacked a new mount over a dead one of a previous driver (events). */
  readonly onDeadMountRepaired?: (status: VolumeStatus) => void;
  /** Called with each newly served volume that has a provider to poll (rotation). */
  readonly onServed?: (targetPath: string) => void;
}

/** How a first publish fills its volume: the provider call (none for csi-sanity's mock) and the window's pid. */
interface FillPlan {
  readonly who: VolumeOwner;
  readonly mock: boolean;
  readonly call: ProviderCall | null;
  /** Set: the provider may write into the volume, a window opens for this process. */
  readonly windowPid: number | null;
  /** Every open of the volume's files is logged (docs/audit.md). */
  readonly auditReads: boolean;
}

const NOTHING: CallOutcome = { result: { objectVersions: [], files: [], responseBytes: 0 }, files: [] };

export class Publisher {
  constructor(private readonly o: PublisherOptions) {}

  async publish(req: PublishRequest): Promise<void> {
    const existing = this.o.state.get(req.targetPath);
    if (existing) return this.refresh(existing, req);
    const plan = await this.plan(req);
    const group = req.volumeMountGroup ?? null;
    const { fileCount, stackedOverDead, vol } = await this.withNewTarget(
      req.targetPath,
      { group, writable: plan.windowPid !== null, audited: plan.auditReads },
      (handle) => this.fill(req, plan, handle),
    );
    if (!plan.mock) this.o.onServed?.(req.targetPath);
    if (stackedOverDead) this.o.onDeadMountRepaired?.(toStatus(vol));
    this.o.log.info(
      { targetPath: req.targetPath, pod: `${plan.who.podNamespace}/${plan.who.podName}`, provider: plan.who.provider, files: fileCount },
      'node publish volume complete',
    );
  }

  /**
   * kubelet's periodic republish: keep what is served, refresh what the next
   * poll sends. The group is fixed for the volume's life (a pod's fsGroup
   * cannot change): a republish naming another one is refused with the CSI
   * spec's ALREADY_EXISTS (incompatible capability), so the mismatch shows in
   * the pod's events, after its fresh tokens were taken: they are the same
   * pod's, and the polls must not run on expired ones. The one exception is a
   * volume served with no group at all (published before an upgrade): that is
   * kept as it is, with a warning, rather than failing every republish.
   */
  private refresh(existing: Volume, req: PublishRequest): void {
    req.onProvider?.(existing.provider);
    this.o.state.update(req.targetPath, { volumeContext: { ...req.volumeContext }, secrets: { ...req.secrets } });
    const group = req.volumeMountGroup ?? null;
    const served = existing.handle.tree.group;
    if (served === null && group !== null) {
      // Published before the group was known (by a driver without
      // VOLUME_MOUNT_GROUP, before an upgrade): the pod keeps its mount as it
      // is, and its republishes must not fail every minute for it.
      this.o.log.warn(
        { targetPath: req.targetPath, pod: `${existing.podNamespace}/${existing.podName}`, group },
        'volume was published without a group; it stays root:root until the pod is recreated',
      );
      return;
    }
    if (group !== served) {
      const name = (g: number | null): string => (g === null ? 'no group' : `group ${g}`);
      throw errors.incompatiblePublish(
        `${req.targetPath} is already published with ${name(served)} (volume_mount_group); ` +
          `it cannot be served to ${name(group)} without a new publish (recreate the pod)`,
      );
    }
    this.o.log.debug(
      { targetPath: req.targetPath, pod: `${existing.podNamespace}/${existing.podName}` },
      'target path is already mounted; refreshed attributes',
    );
  }

  /** Everything decided before the target is touched: SecretProviderClass, provider, attributes, window. */
  private async plan(req: PublishRequest): Promise<FillPlan> {
    const vc = req.volumeContext;
    const podName = vc[POD_NAME] ?? '';
    const podNamespace = vc[POD_NAMESPACE] ?? '';
    const spcName = vc[SPC_ATTRIBUTE] ?? '';
    if (vc[PROVIDER_NAME_ATTRIBUTE] === MOCK_PROVIDER) {
      // mock_provider (csi-sanity, which publishes with readonly=false) skips the
      // readonly check as upstream's hook does; the bind mount is read-only anyway.
      req.onProvider?.(MOCK_PROVIDER);
      return {
        who: { podName, podNamespace, spcName, provider: MOCK_PROVIDER },
        mock: true,
        call: null,
        windowPid: null,
        auditReads: this.auditReads(vc),
      };
    }
    if (spcName === '') throw errors.spcNotSet('secretProviderClass is not set');
    const spc = await this.o.caller.resolve(podNamespace, spcName);
    req.onProvider?.(spc.provider);
    if (!req.readonly) throw errors.invalidArgument('Readonly is not true in request');
    const auditReads = this.auditReads(vc, spc.parameters);
    const call = this.o.caller.prepare(spc, {
      targetPath: req.targetPath,
      podNamespace,
      podName,
      volumeContext: vc,
      secrets: req.secrets,
      currentObjectVersions: [],
      deadline: req.deadline,
    });
    const windowPid = await this.o.policy.windowPid(spc.provider);
    return { who: { podName, podNamespace, spcName, provider: spc.provider }, mock: false, call, windowPid, auditReads };
  }

  /**
   * Read audit asked for by the volume's attributes or its SecretProviderClass's
   * parameters (the volume then goes on the audit connection); refused
   * (rather than served unaudited) by a driver without --audit-reads.
   */
  private auditReads(...sources: ReadonlyArray<Readonly<Record<string, string>>>): boolean {
    if (!auditRequested(...sources)) return false;
    if (!this.o.fs.auditAvailable) {
      throw errors.auditUnavailable(
        `read audit (${AUDIT_READS_ATTRIBUTE}) is requested but this driver does not serve audited volumes; start it with --audit-reads`,
      );
    }
    return true;
  }

  /**
   * Calls the provider into the freshly bound volume, serves the answer and
   * records the volume. The target is mounted before the provider is called,
   * as upstream mounts its tmpfs first: read-only, so a provider that writes
   * although it returned files last time gets EROFS and its bytes never land
   * on the node's disk; or writable inside a window for the provider's
   * process, whose files are published before the mount turns read-only.
   */
  private async fill(req: PublishRequest, plan: FillPlan, handle: VolumeHandle): Promise<{ fileCount: number; vol: Volume }> {
    const { fs, policy } = this.o;
    const { who, call, windowPid } = plan;
    const out = !call
      ? NOTHING
      : windowPid !== null
        ? await policy.inWindow(handle, who.provider, windowPid, call, [])
        : await policy.callWithoutWindow(who.provider, call);
    try {
      await fs.publish(handle, out.files);
      if (windowPid !== null) {
        await fs.releaseWindow(handle);
        await this.o.targets.setWritable(req.targetPath, false);
      }
    } finally {
      scrubResponse(out.result.files);
    }
    const vc = req.volumeContext;
    const vol: Volume = {
      targetPath: req.targetPath,
      volumeId: req.volumeId,
      podName: who.podName,
      podNamespace: who.podNamespace,
      podUid: vc[POD_UID] ?? '',
      spcName: who.spcName,
      provider: who.provider,
      volumeContext: { ...vc },
      secrets: { ...req.secrets },
      objectVersions: out.result.objectVersions,
      handle,
      mock: plan.mock,
      lastPolledAt: Date.now(),
      ...(plan.auditReads ? { auditReads: true } : {}),
    };
    this.o.state.add(vol);
    this.o.metrics.versions.inc();
    if (!plan.mock && this.o.onVersion) {
      try {
        await this.o.onVersion(toStatus(vol), true);
      } catch (e) {
        throw errors.mountFailed((e as Error).message, e);
      }
    }
    return { fileCount: out.files.length, vol };
  }

  /**
   * The publish transaction: a new volume directory, served to `group` (on
   * the audit connection when `audited`), bound at `target` (writable for a
   * window) for `body` to fill and record. On any failure
   * the target is undone here, once: window dropped, bind detached,
   * directory destroyed, record removed.
   */
  private async withNewTarget<T>(
    target: string,
    how: { group: number | null; writable: boolean; audited: boolean },
    body: (handle: VolumeHandle) => Promise<T>,
  ): Promise<T & { stackedOverDead: boolean }> {
    const { fs, targets, state } = this.o;
    let handle: VolumeHandle | null = null;
    let bound = false;
    try {
      const { stackedOverDead } = await targets.prepare(target);
      handle = await fs.createVolume(volumeDirName(target), how.group, how.audited);
      await targets.bind(handle.sourcePath, target, { writable: how.writable });
      bound = true;
      return { ...(await body(handle)), stackedOverDead };
    } catch (e) {
      if (handle) await fs.releaseWindow(handle);
      if (bound) await targets.detach(target);
      if (handle) {
        await fs.destroyVolume(handle);
        // After the directory went, so the snapshot this persists has neither.
        if (state.get(target)?.handle === handle) state.delete(target);
      }
      if (isDriverError(e)) throw e;
      throw errors.mountFailed(`failed to mount ${target}: ${(e as Error).message}`, e);
    }
  }
}
