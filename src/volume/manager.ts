// The volume manager: what NodePublishVolume, NodeUnpublishVolume and the
// rotation polls do, independent of gRPC. It resolves the SecretProviderClass,
// calls the provider, and serves the answer from the FUSE filesystem.
//
// Invariants:
// - a provider answer is fully validated before anything is touched; a bad
//   answer, a provider error or a timeout leaves what is served as it was;
// - operations on one target path are serialised; different volumes run in
//   parallel;
// - publish secrets and tokens live only in this process's memory (for the
//   next poll) and are replaced by kubelet's republish calls.

import { createHash } from 'node:crypto';
import { mkdir, rm, rmdir } from 'node:fs/promises';
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { errors, isDriverError, ErrorType, DriverError } from '../errors.js';
import type { SecretsFilesystem, VolumeHandle } from '../fuse/filesystem.js';
import { readMountInfo, unmount, isMountPoint, probeMountPoint } from '../fuse/mount.js';
import type { DriverMetrics } from '../observability/metrics.js';
import { scrubResponse, type ProviderClients, type MountResult } from '../provider/client.js';
import type { ProviderFile } from '../provider/paths.js';
import { filesAfterWindow } from './written-files.js';
import { buildAttributes, buildMountRequest, serviceAccountTokens } from '../provider/mount-request.js';
import { resolveSpc, type SpcSource } from '../spc/types.js';
import { RotationScheduler } from '../rotation/scheduler.js';
import { KeyedMutex } from '../util/keyed-mutex.js';

export const POD_NAME = 'csi.storage.k8s.io/pod.name';
export const POD_NAMESPACE = 'csi.storage.k8s.io/pod.namespace';
export const POD_UID = 'csi.storage.k8s.io/pod.uid';
export const SPC_ATTRIBUTE = 'secretProviderClass';
/** csi-sanity hooks, as upstream: provider name and target path that skip the provider. */
export const MOCK_PROVIDER = 'mock_provider';
export const MOCK_TARGET_PATH = '/tmp/csi/mount';

export interface PublishRequest {
  readonly volumeId: string;
  readonly targetPath: string;
  readonly readonly: boolean;
  readonly volumeContext: Readonly<Record<string, string>>;
  readonly secrets: Readonly<Record<string, string>>;
  /** The caller's deadline; provider calls never outlive it. */
  readonly deadline: Date | null;
}

export interface ObjectVersion {
  readonly id: string;
  readonly version: string;
}

/** A volume as handed to a process that takes over (publish secrets and tokens included: memory only). */
export interface VolumeRecordState {
  readonly targetPath: string;
  readonly volumeId: string;
  readonly podName: string;
  readonly podNamespace: string;
  readonly podUid: string;
  readonly spcName: string;
  readonly provider: string;
  readonly volumeContext: Record<string, string>;
  readonly secrets: Record<string, string>;
  readonly objectVersions: ObjectVersion[];
  /** The volume's directory under the FUSE root. */
  readonly dirName: string;
  readonly mock: boolean;
  /**
   * When the volume was last published or polled (ms since the epoch), so
   * that a driver taking over keeps its poll cadence: one restarted more
   * often than the poll interval must still poll.
   */
  readonly lastPolledAt?: number;
}

/** A served volume: its record (provider, attributes and versions change over time) and its FUSE directory. */
type Volume = Omit<VolumeRecordState, 'dirName' | 'provider' | 'volumeContext' | 'secrets' | 'objectVersions' | 'lastPolledAt'> & {
  lastPolledAt: number;
  provider: string;
  volumeContext: Readonly<Record<string, string>>;
  secrets: Readonly<Record<string, string>>;
  objectVersions: ObjectVersion[];
  readonly handle: VolumeHandle;
};

export interface VolumeStatus {
  readonly targetPath: string;
  readonly podName: string;
  readonly podNamespace: string;
  readonly podUid: string;
  readonly spcName: string;
  readonly provider: string;
  readonly objectVersions: readonly ObjectVersion[];
  readonly files: readonly string[];
}

export interface VolumeManagerOptions {
  readonly fs: SecretsFilesystem;
  readonly spcs: SpcSource;
  readonly providers: ProviderClients;
  readonly metrics: DriverMetrics;
  readonly log: Logger;
  readonly rotation: { readonly enabled: boolean; readonly intervalMs: number; readonly concurrency: number; readonly retryBaseMs: number };
  /** Provider call timeout when the caller has no deadline (rotation polls). */
  readonly providerTimeoutMs: number;
  /**
   * Called after every successful mount (first=true) and rotation (status
   * objects, secret sync). A failure on the first mount fails the publish and
   * unmounts, as upstream does when it cannot write the status object; on a
   * rotation it is logged and the new content stays.
   */
  readonly onVersion?: (status: VolumeStatus, first: boolean) => Promise<void>;
  /** Called after anything served changed (publish, rotation, unpublish): the keeper's snapshot. */
  readonly onChange?: () => void;
  /** Called when a publish stacked a new mount over a dead one of a previous driver (events). */
  readonly onDeadMountRepaired?: (status: VolumeStatus) => void;
  /** Called when a rotation poll fails (events). */
  readonly onRotationError?: (status: VolumeStatus, err: DriverError, failures: number) => void;
  /**
   * The pid of the process serving a provider's socket (0: outside our pid
   * namespace). Without it no write windows open, and providers that write
   * their files themselves fail with EROFS.
   */
  readonly providerPid?: (provider: string) => Promise<number>;
}

/** FUSE directory name of a volume: stable for a target path, so a takeover finds the same names. */
export function volumeDirName(targetPath: string): string {
  return `v-${createHash('sha256').update(targetPath).digest('hex').slice(0, 24)}`;
}

function sameVersions(a: readonly ObjectVersion[], b: readonly ObjectVersion[]): boolean {
  if (a.length !== b.length) return false;
  const m = new Map(a.map((v) => [v.id, v.version]));
  return b.every((v) => m.get(v.id) === v.version);
}

export class VolumeManager {
  private readonly volumes = new Map<string, Volume>();
  private readonly locks = new KeyedMutex();
  private readonly scheduler: RotationScheduler;
  private closing = false;
  /**
   * Per provider: whether its last call wrote into the volume. A provider
   * that returned its files instead gets no write window on later calls
   * (two remounts saved per call); one that failed without a window gets
   * one again next time, in case it now writes.
   */
  private readonly providerWrites = new Map<string, boolean>();

  constructor(private readonly o: VolumeManagerOptions) {
    this.scheduler = new RotationScheduler({
      intervalMs: o.rotation.intervalMs,
      concurrency: o.rotation.concurrency,
      retryBaseMs: o.rotation.retryBaseMs,
      poll: (key) => this.poll(key),
      onError: (key, err, failures, retryInMs) => {
        const vol = this.volumes.get(key);
        const e = err as DriverError;
        o.metrics.rotationError(vol?.provider ?? '', isDriverError(e) ? e.errorType || ErrorType.FailedToRotate : ErrorType.FailedToRotate);
        o.log.warn({ targetPath: key, pod: vol ? `${vol.podNamespace}/${vol.podName}` : undefined, err: e.message, code: e.code, failures, retryInMs },
          'rotation poll failed; the last good content stays served');
        if (vol) o.onRotationError?.(this.toStatus(vol), isDriverError(e) ? e : errors.providerCall(status.UNKNOWN, String((err as Error)?.message ?? err), err), failures);
      },
    });
  }

  status(targetPath: string): VolumeStatus | null {
    const v = this.volumes.get(targetPath);
    return v ? this.toStatus(v) : null;
  }

  list(): VolumeStatus[] {
    return [...this.volumes.values()].map((v) => this.toStatus(v));
  }

  private toStatus(v: Volume): VolumeStatus {
    return {
      targetPath: v.targetPath, podName: v.podName, podNamespace: v.podNamespace, podUid: v.podUid,
      spcName: v.spcName, provider: v.provider, objectVersions: [...v.objectVersions].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
      files: v.handle.tree.paths(),
    };
  }

  /** The bytes currently served for a file of a volume (for secret sync); a view, do not keep. */
  readFile(targetPath: string, path: string): Buffer | null {
    return this.volumes.get(targetPath)?.handle.tree.read(path) ?? null;
  }

  async publish(req: PublishRequest): Promise<void> {
    if (this.closing) throw errors.shuttingDown('driver is shutting down');
    return this.locks.run(req.targetPath, () => this.publishLocked(req));
  }

  private async publishLocked(req: PublishRequest): Promise<void> {
    const log = this.o.log;
    const vc = req.volumeContext;
    const podName = vc[POD_NAME] ?? '';
    const podNamespace = vc[POD_NAMESPACE] ?? '';
    const existing = this.volumes.get(req.targetPath);
    if (existing) {
      // kubelet's periodic republish: keep what is served, refresh what the next poll sends.
      existing.volumeContext = { ...vc };
      existing.secrets = { ...req.secrets };
      log.debug({ targetPath: req.targetPath, pod: `${podNamespace}/${podName}` }, 'target path is already mounted; refreshed attributes');
      return;
    }

    const mock = vc.providerName === MOCK_PROVIDER;
    const spcName = vc[SPC_ATTRIBUTE] ?? '';
    let provider = vc.providerName ?? '';
    let call: (() => Promise<MountResult>) | null = null;
    if (!mock) {
      if (spcName === '') throw errors.spcNotSet('secretProviderClass is not set');
      const spc = await this.o.spcs.get(podNamespace, spcName);
      const resolved = resolveSpc(spc, podNamespace, spcName);
      provider = resolved.provider;
      if (!req.readonly) throw errors.invalidArgument('Readonly is not true in request');
      const tokens = serviceAccountTokens(req.secrets, vc);
      const attributes = buildAttributes(resolved.parameters, vc, tokens);
      call = (): Promise<MountResult> => this.callProvider(resolved.provider, attributes, req.secrets, req.targetPath, [], req.deadline, podNamespace, podName);
      const pid = await this.windowPid(provider);
      if (pid !== null) return this.publishWithWindow(req, { podName, podNamespace, spcName, provider }, pid, call);
    }
    // mock_provider (csi-sanity, which publishes with readonly=false) skips the
    // readonly check as upstream's hook does; the bind mount is read-only anyway.

    // The target is mounted (read-only, empty) before the provider is called,
    // as upstream mounts its tmpfs first: a provider that writes into the
    // target path although it returned files last time gets EROFS, and its
    // bytes never land on the node's disk under the target.
    let result: MountResult = { objectVersions: [], files: [], responseBytes: 0 };
    let handle: VolumeHandle | null = null;
    let bound = false;
    let stackedOverDead = false;
    try {
      stackedOverDead = await this.prepareTarget(req.targetPath);
      handle = this.o.fs.createVolume(volumeDirName(req.targetPath));
      await this.o.fs.bind(handle, req.targetPath);
      bound = true;
      if (call) {
        try {
          result = await call();
        } catch (e) {
          this.providerWrites.delete(provider); // it may write now: a window next time
          throw e;
        }
      }
      await this.o.fs.publish(handle, result.files);
      scrubResponse(result.files);
    } catch (e) {
      scrubResponse(result.files);
      if (bound) await unmount(req.targetPath, { lazy: true }).catch(() => undefined);
      if (handle) await this.o.fs.destroyVolume(handle);
      if (isDriverError(e)) throw e;
      throw errors.mountFailed(`failed to mount ${req.targetPath}: ${(e as Error).message}`, e);
    }
    await this.served(req, { podName, podNamespace, spcName, provider }, handle, result.objectVersions, mock, stackedOverDead, result.files.length);
  }

  /**
   * A first publish for a provider that may write its files itself: the
   * target is mounted (writable) before the call, as upstream mounts its
   * tmpfs first, the provider writes inside a window, and what it leaves is
   * published before the mount turns read-only. Any failure unmounts.
   */
  private async publishWithWindow(req: PublishRequest, who: { podName: string; podNamespace: string; spcName: string; provider: string },
    pid: number, call: () => Promise<MountResult>): Promise<void> {
    let handle: VolumeHandle | null = null;
    let bound = false;
    let result: MountResult | null = null;
    let stackedOverDead = false;
    let served = 0;
    try {
      stackedOverDead = await this.prepareTarget(req.targetPath);
      handle = this.o.fs.createVolume(volumeDirName(req.targetPath));
      await this.o.fs.bind(handle, req.targetPath, true);
      bound = true;
      const h = handle;
      const out = await this.inWindow(h, who.provider, pid, call, []);
      result = out.result;
      served = out.files.length;
      await this.o.fs.publish(h, out.files);
      await this.o.fs.releaseWindow(h);
      await this.o.fs.setWritable(req.targetPath, false);
    } catch (e) {
      if (result) scrubResponse(result.files);
      if (handle) await this.o.fs.releaseWindow(handle);
      if (bound) await unmount(req.targetPath, { lazy: true }).catch(() => undefined);
      if (handle) await this.o.fs.destroyVolume(handle);
      if (isDriverError(e)) throw e;
      throw errors.mountFailed(`failed to mount ${req.targetPath}: ${(e as Error).message}`, e);
    }
    scrubResponse(result.files);
    await this.served(req, who, handle, result.objectVersions, false, stackedOverDead, served);
  }

  /** The provider's pid if its next call should have a write window, else null. */
  private async windowPid(provider: string): Promise<number | null> {
    if (!this.o.providerPid || this.providerWrites.get(provider) === false) return null;
    try {
      return await this.o.providerPid(provider);
    } catch {
      return null; // not reachable: the call itself reports that
    }
  }

  /**
   * Runs a provider call with the volume's write window open and works out
   * the files to serve next. The window is closed (no more writes) when this
   * returns or throws; the caller releases it after publishing.
   */
  private async inWindow(handle: VolumeHandle, provider: string, pid: number, call: () => Promise<MountResult>,
    served: readonly ProviderFile[]): Promise<{ result: MountResult; files: ProviderFile[] }> {
    // pid 0: the provider is outside our pid namespace, so it cannot be told
    // apart; kubelet's container binds of the volume are read-only regardless.
    this.o.fs.openWindow(handle, (caller) => pid <= 0 || caller === pid);
    let result: MountResult;
    try {
      result = await call();
    } catch (e) {
      const w = this.o.fs.closeWindow(handle);
      if (!w?.wrote) this.providerWrites.delete(provider);
      throw e;
    }
    const w = this.o.fs.closeWindow(handle);
    this.providerWrites.set(provider, w?.wrote ?? false);
    const merged = filesAfterWindow(served, w, result.files);
    if (merged.error) {
      scrubResponse(result.files);
      throw errors.invalidResponse(`provider ${provider} wrote invalid files: ${merged.error}`);
    }
    if (w?.wrote) this.o.log.debug({ provider, written: w.files.length, removed: w.removed.length }, 'the provider wrote files into the volume');
    return { result, files: merged.files };
  }

  /** Records a newly served volume: status, rotation, keeper snapshot. */
  private async served(req: PublishRequest, who: { podName: string; podNamespace: string; spcName: string; provider: string },
    handle: VolumeHandle, objectVersions: ObjectVersion[], mock: boolean, stackedOverDead: boolean, fileCount: number): Promise<void> {
    const log = this.o.log;
    const vc = req.volumeContext;
    const { podName, podNamespace, spcName, provider } = who;
    const vol: Volume = {
      targetPath: req.targetPath, volumeId: req.volumeId, podName, podNamespace, podUid: vc[POD_UID] ?? '',
      spcName, provider, volumeContext: { ...vc }, secrets: { ...req.secrets },
      objectVersions, handle, mock, lastPolledAt: Date.now(),
    };
    this.volumes.set(req.targetPath, vol);
    this.o.metrics.volumes.set(this.volumes.size);
    this.o.metrics.versions.inc();
    if (!mock && this.o.onVersion) {
      try {
        await this.o.onVersion(this.toStatus(vol), true);
      } catch (e) {
        this.volumes.delete(req.targetPath);
        await unmount(req.targetPath, { lazy: true }).catch(() => undefined);
        await this.o.fs.destroyVolume(handle);
        this.o.metrics.volumes.set(this.volumes.size);
        throw errors.mountFailed((e as Error).message, e);
      }
    }
    if (this.o.rotation.enabled && !mock) this.scheduler.add(req.targetPath);
    this.o.onChange?.();
    if (stackedOverDead) this.o.onDeadMountRepaired?.(this.toStatus(vol));
    log.info({ targetPath: req.targetPath, pod: `${podNamespace}/${podName}`, provider, files: fileCount }, 'node publish volume complete');
  }

  /** Drops a poll's write window (if one is open) and makes the target read-only again. */
  private async endWindow(handle: VolumeHandle, targetPath: string): Promise<void> {
    if (!this.o.fs.closeWindow(handle)) return;
    await this.o.fs.releaseWindow(handle);
    await this.o.fs.setWritable(targetPath, false).catch((e: unknown) =>
      this.o.log.error({ targetPath, err: (e as Error).message }, 'could not make the target read-only again after the provider call'));
  }

  /**
   * Makes the target ready for our bind mount. Returns true when a dead mount
   * of a previous driver is there: the new mount is then stacked on top of
   * it rather than replacing it, because only a mount on top propagates to
   * the containers' views of the dead one (those with HostToContainer
   * propagation); a container with a private view cannot be repaired.
   */
  private async prepareTarget(target: string): Promise<boolean> {
    const state = await probeMountPoint(target);
    if (state === 'stale') {
      this.o.log.warn({ targetPath: target }, 'a dead mount of a previous driver is at the target path; stacking a new mount over it');
      return true;
    }
    if (state === 'mounted') {
      // Not ours (we checked the table), and alive: e.g. a tmpfs of the upstream driver.
      this.o.log.warn({ targetPath: target }, 'unmounting a foreign mount at the target path');
      await unmount(target, { lazy: true });
    }
    await mkdir(target, { recursive: true, mode: 0o750 });
    return false;
  }

  private async callProvider(
    provider: string, attributes: Record<string, string>, secrets: Readonly<Record<string, string>>, targetPath: string,
    current: readonly ObjectVersion[], deadline: Date | null, podNamespace: string, podName: string,
  ): Promise<MountResult> {
    const req = buildMountRequest({ attributes, secrets, targetPath, currentObjectVersions: current });
    const limit = new Date(Date.now() + this.o.providerTimeoutMs);
    const started = performance.now();
    try {
      const res = await this.o.providers.mount(provider, req, deadline && deadline < limit ? deadline : limit);
      this.o.metrics.providerMount(provider, true, (performance.now() - started) / 1000);
      if (res.responseBytes > 1024 * 1024) {
        this.o.log.info({ provider, size: res.responseBytes }, 'proto above 1MiB, secret sync may fail');
      }
      return res;
    } catch (e) {
      this.o.metrics.providerMount(provider, false, (performance.now() - started) / 1000);
      const err = isDriverError(e) ? e : errors.providerCall(status.UNKNOWN, (e as Error).message, e);
      throw err.withPrefix(`failed to mount secrets store objects for pod ${podNamespace}/${podName}, err: `);
    }
  }

  /** One rotation poll of a volume: new content is visible to new opens when this resolves. */
  async poll(targetPath: string): Promise<void> {
    return this.locks.run(targetPath, async () => {
      const vol = this.volumes.get(targetPath);
      if (!vol || vol.mock) return;
      vol.lastPolledAt = Date.now();
      const started = performance.now();
      const spc = await this.o.spcs.get(vol.podNamespace, vol.spcName);
      const resolved = resolveSpc(spc, vol.podNamespace, vol.spcName);
      vol.provider = resolved.provider;
      const attributes = buildAttributes(resolved.parameters, vol.volumeContext, serviceAccountTokens(vol.secrets, vol.volumeContext));
      const call = (): Promise<MountResult> => this.callProvider(vol.provider, attributes, vol.secrets, targetPath, vol.objectVersions, null, vol.podNamespace, vol.podName);
      const pid = await this.windowPid(vol.provider);
      let res: MountResult;
      let files: readonly ProviderFile[];
      if (pid !== null && await this.o.fs.setWritable(targetPath, true).then(() => true, (e: unknown) => {
        this.o.log.warn({ targetPath, err: (e as Error).message }, 'could not make the target writable for the provider; polling without a write window');
        return false;
      })) {
        try {
          ({ result: res, files } = await this.inWindow(vol.handle, vol.provider, pid, call, vol.handle.tree.files()));
        } catch (e) {
          await this.endWindow(vol.handle, targetPath);
          throw e;
        }
      } else {
        res = await call();
        files = res.files;
      }
      if (this.volumes.get(targetPath) !== vol) {
        scrubResponse(res.files);
        await this.endWindow(vol.handle, targetPath);
        return;
      }
      // The record first, so the snapshot taken when the filesystem changes already carries the new versions.
      const versionsChanged = !sameVersions(vol.objectVersions, res.objectVersions);
      vol.objectVersions = res.objectVersions;
      const published = await this.o.fs.publish(vol.handle, files);
      scrubResponse(res.files);
      await this.endWindow(vol.handle, targetPath);
      const rotated = published.changed || versionsChanged;
      // A content change was already snapshotted by the filesystem (onMutation); only a versions-only change is not.
      if (versionsChanged && !published.changed) this.o.onChange?.();
      if (published.changed) this.o.metrics.versions.inc();
      this.o.metrics.rotationOk(vol.provider, rotated, (performance.now() - started) / 1000);
      if (rotated) {
        this.o.log.info({ targetPath, pod: `${vol.podNamespace}/${vol.podName}`, provider: vol.provider, dataDir: published.dataDir }, 'rotated volume content');
        await this.o.onVersion?.(this.toStatus(vol), false).catch((e: unknown) =>
          this.o.log.warn({ targetPath, err: (e as Error).message }, 'could not record the rotation'));
      }
    });
  }

  async unpublish(targetPath: string): Promise<void> {
    if (targetPath === MOCK_TARGET_PATH) return;
    return this.locks.run(targetPath, async () => {
      this.scheduler.remove(targetPath);
      const vol = this.volumes.get(targetPath);
      try {
        const state = vol ? 'mounted' : await probeMountPoint(targetPath);
        if (state === 'mounted' || state === 'stale') {
          await unmount(targetPath, { lazy: state === 'stale' }).catch(async (e: unknown) => {
            // Busy (a process still has a file open): detach now, the kernel
            // finishes when the last user goes. The bytes are zeroed below anyway.
            this.o.log.warn({ targetPath, err: (e as Error).message }, 'unmount failed; detaching lazily');
            await unmount(targetPath, { lazy: true });
          });
          // Ours may have been stacked over a dead mount of a previous driver: that goes too.
          for (let i = 0; i < 4; i++) {
            const below = await probeMountPoint(targetPath).catch(() => 'stale' as const);
            if (below !== 'stale' && below !== 'mounted') break;
            await unmount(targetPath, { lazy: true }).catch(() => undefined);
          }
        }
        await this.removeTarget(targetPath);
      } catch (e) {
        throw errors.unmountFailed(`failed to clean and unmount target path ${targetPath}: ${(e as Error).message}`, e);
      } finally {
        if (vol) {
          this.volumes.delete(targetPath);
          await this.o.fs.destroyVolume(vol.handle);
          this.o.metrics.volumes.set(this.volumes.size);
          this.o.onChange?.();
        }
      }
      this.o.log.info({ targetPath }, 'node unpublish volume complete');
    });
  }

  /** Removes the (now unmounted) target directory, as upstream's CleanupMountPoint does. */
  private async removeTarget(targetPath: string): Promise<void> {
    try {
      await rmdir(targetPath);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      // Files under the plain directory (not ours, e.g. left by an old driver's tmpfs era):
      // remove them only once it is certain nothing is mounted there any more.
      if (isMountPoint(await readMountInfo(), targetPath)) throw new Error('target path is still mounted');
      await rm(targetPath, { recursive: true, force: true });
    }
  }

  exportVolumes(): VolumeRecordState[] {
    return [...this.volumes.values()].map((v) => ({
      targetPath: v.targetPath, volumeId: v.volumeId, podName: v.podName, podNamespace: v.podNamespace, podUid: v.podUid,
      spcName: v.spcName, provider: v.provider, volumeContext: { ...v.volumeContext }, secrets: { ...v.secrets },
      objectVersions: [...v.objectVersions], dirName: v.handle.name, mock: v.mock, lastPolledAt: v.lastPolledAt,
    }));
  }

  /** Adopts the volumes of a previous process (their FUSE directories already restored in fs) and resumes polling. */
  restoreVolumes(list: readonly VolumeRecordState[]): void {
    for (const r of list) {
      const handle = this.o.fs.volume(r.dirName);
      if (!handle) {
        this.o.log.warn({ targetPath: r.targetPath }, 'taken-over volume has no directory; skipped');
        continue;
      }
      const { dirName: _dir, ...record } = r;
      // A state from before lastPolledAt was kept: due now.
      const lastPolledAt = r.lastPolledAt ?? 0;
      this.volumes.set(r.targetPath, { ...record, lastPolledAt, volumeContext: { ...r.volumeContext }, secrets: { ...r.secrets }, objectVersions: [...r.objectVersions], handle });
      // The cadence goes on from the previous driver's last poll, not from now.
      if (this.o.rotation.enabled && !r.mock) this.scheduler.add(r.targetPath, lastPolledAt + this.o.rotation.intervalMs - Date.now());
    }
    this.o.metrics.volumes.set(this.volumes.size);
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
