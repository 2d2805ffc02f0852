// Wires the driver together from flags: logger, metrics, FUSE filesystem,
// SecretProviderClass source, provider clients, volume manager, CSI server
// and, with --kubelet-registration-path, kubelet plugin registration.

import type { Server as HttpServer } from 'node:http';
import { createLogger, type Logger } from '../observability/log.js';
import { DriverMetrics } from '../observability/metrics.js';
import { threadGroupOf } from '../fuse/thread-group.js';
import { auditMountDir, type Connections } from '../fuse/connections.js';
import { opName } from '../fuse/protocol.js';
import { DEFAULT_WINDOW_LIMITS } from '../fuse/write-window.js';
import { ProviderClients } from '../provider/client.js';
// The Kubernetes modules are loaded only once the FUSE connection is served
// (see startDriver): readers wait for a restarted driver until it answers, and
// a driver without a cluster (--secret-provider-class-dir) never needs them.
import type { KubeApi } from '../kube/api.js';
import type { PodStatusWriter } from '../kube/pod-status.js';
import type { SecretSync } from '../kube/secret-sync.js';
import type { EventRecorder, EventReason } from '../kube/events.js';
import type { DriverError } from '../errors.js';
import type { SpcSource } from '../spc/types.js';
import { VolumeManager, type VolumeManagerOptions } from '../volume/manager.js';
import { VolumeState } from '../volume/state.js';
import type { VolumeStatus } from '../volume/types.js';
import { identityServer } from '../csi/identity-server.js';
import { nodeServer } from '../csi/node-server.js';
import { startCsiServer } from '../csi/server.js';
import { Registrar } from '../registrar/server.js';
import { nativeForkSyscalls } from '../fuse/vfs-steps.js';
import { loadNative, hardenProcess, secretAllocator } from '../native/addon.js';
import { mountMethod } from '../mount/commands.js';
import { KeeperClient } from '../takeover/keeper-client.js';
import { KeeperSnapshots } from '../takeover/snapshots.js';
import { openConnections } from '../takeover/open-connections.js';
import { findDeadMounts } from '../takeover/dead-mounts.js';
import { ReadAudit } from '../observability/read-audit.js';
import { podOfProcess } from '../observability/cgroup-pod.js';
import type { DriverFlags } from './flags.js';
import { driverVersion } from './version.js';
import { realTargetPath, resolveKubeletRoot } from '../csi/target-path.js';

interface KubeParts {
  readonly api: KubeApi;
  readonly podStatus: PodStatusWriter;
  readonly sync: SecretSync;
  readonly events: EventRecorder;
  readonly reasons: typeof EventReason;
}

export interface RunningDriver {
  /**
   * Exits (code 0 unless given) once the log is out, without waiting for
   * threadpool threads: one may be parked in a read of /dev/fuse on a
   * connection the keeper keeps alive, or blocked in any other syscall, and
   * process.exit would wait for it forever (nodejs/node#54918).
   */
  exit(code?: number): Promise<never>;
  readonly log: Logger;
  /** The main FUSE connection and, once an audited volume was served, the audit one. */
  readonly fs: Connections;
  readonly manager: VolumeManager;
  stop(): Promise<void>;
}

export async function startDriver(flags: DriverFlags, log: Logger = createLogger(flags.logLevel as 'info')): Promise<RunningDriver> {
  const version = driverVersion();
  const native = loadNative();
  // No mlockall: V8 aborts on a full GC when its heap is locked. Secrets live
  // in locked pages of their own instead (see native allocSecure).
  const harden = hardenProcess(native, { lockMemory: false });
  const secrets = secretAllocator(native, flags.lockMemory);
  if (secrets.lockError) log.warn({ err: secrets.lockError }, 'could not lock secret memory; secrets could reach swap');
  log.info(
    {
      version,
      driverName: flags.driverName,
      nodeId: flags.nodeId,
      dumpable: harden.dumpable,
      secretsLocked: secrets.locked,
      rotation: flags.enableSecretRotation,
      rotationPollIntervalMs: flags.rotationPollIntervalMs,
      // mount-api / mount-syscall: by syscall; mount-command: mount(8) children (an addon built without mount_ops.c).
      mounts: mountMethod(),
    },
    'starting secrets-store CSI driver',
  );

  // Once: targets are compared with both its spellings (it may be a symlink).
  const kubeletRoot = await resolveKubeletRoot(flags.kubeletRootDir);
  const metrics = new DriverMetrics();
  const metricsServer: HttpServer | null = flags.metricsAddr ? await metrics.listen(flags.metricsAddr) : null;

  const keeper = flags.keeperSocket ? await KeeperClient.connect(native, flags.keeperSocket, 10_000) : null;
  if (flags.keeperSocket && !keeper) log.warn({ socket: flags.keeperSocket }, 'no keeper: running without restart survival');
  // With a keeper, every change of what is served reaches it synchronously
  // (the volume records' changes and, through state.persist, the
  // filesystem's: see FilesystemOptions.onMutation), once the driver serves.
  const snapshots = new KeeperSnapshots(keeper, secrets.allocate, log);
  const audit = new ReadAudit({ log, metrics, processOf: threadGroupOf, podOf: (pid) => podOfProcess(pid) });
  const state = new VolumeState({
    persist: () => snapshots.send(),
    onCount: (n) => metrics.volumes.set(n),
    onServed: (v) => {
      if (v.auditReads) audit.watch(v);
    },
    onGone: (v) => audit.unwatch(v.handle),
  });
  const { conns: fs, inherited } = await openConnections(keeper, log, {
    base: {
      mountDir: flags.fuseMountDir,
      log,
      onRequest: (op: number) => metrics.fuseRequest(opName(op)),
      alloc: secrets.allocate,
      onMutation: () => state.persist(),
      // A freed inode's bytes were zeroed here: the keeper drops its copy with the next snapshot.
      onFree: () => snapshots.sendSoon(),
      // Rotations made as syscalls by a forked child, so inotify watchers see them.
      ...(flags.inotifyEvents ? { forkSyscalls: nativeForkSyscalls(native) } : {}),
    },
    // Audited volumes get a connection of their own: the main one never sees an open.
    auditAllowed: flags.auditReads,
    onOpen: (nodeid, caller, owns) => audit.onOpen(nodeid, caller, owns),
  });
  metrics.observeFilesystem(() => fs.stats());
  // A start that fails from here on must not leave the connections mounted
  // (nobody would serve them); with a keeper they stay with the keeper.
  const undoMount = async (): Promise<void> => {
    if (keeper?.connected) fs.detach();
    else await fs.close().catch(() => undefined);
  };

  const {
    spcs,
    kube: k,
    startInformers,
  } = await connectCluster(flags, log, state).catch(async (e: unknown) => {
    await undoMount();
    throw e;
  });
  const providers = new ProviderClients({
    socketDirs: [...flags.additionalProviderVolumePaths, flags.providerVolume],
    maxRecvMsgSize: flags.maxCallRecvMsgSize,
    alloc: secrets.allocate,
  });
  const manager = new VolumeManager({
    fs,
    state,
    spcs,
    providers,
    metrics,
    log,
    ...(k ? kubeHooks(k) : {}),
    // Who may write into a volume during a provider call: that provider's process.
    providerPid: async (provider: string) => native.peerPid(await providers.resolveSocket(provider)),
    // What it may write is bounded as a response is: the same byte limit.
    windowLimits: { ...DEFAULT_WINDOW_LIMITS, maxBytes: flags.maxCallRecvMsgSize },
    rotation: {
      enabled: flags.enableSecretRotation,
      intervalMs: flags.rotationPollIntervalMs,
      concurrency: flags.rotationConcurrency,
      retryBaseMs: Math.min(10_000, flags.rotationPollIntervalMs),
    },
    providerTimeoutMs: flags.providerTimeoutMs,
    realTargetPath: (t) => realTargetPath(t, kubeletRoot),
  });
  const undoStart = async (): Promise<void> => {
    manager.close();
    await k?.sync.stop();
    providers.close();
    await spcs.close();
    k?.api.close();
    await undoMount();
  };
  let ready = true;
  const { server, removeSocket } = await startCsiServer(
    flags.endpoint,
    identityServer({ driverName: flags.driverName, version, ready: () => ready }),
    nodeServer({ nodeId: flags.nodeId, manager, metrics, log, kubeletRoot }),
  ).catch(async (e: unknown) => {
    await undoStart();
    throw e;
  });
  // Only once the CSI socket answers: kubelet calls NodeGetInfo right after registering.
  const registrar = flags.kubeletRegistrationPath
    ? await Registrar.start({
        registrationDir: flags.pluginRegistrationPath,
        driverName: flags.driverName,
        kubeletEndpoint: flags.kubeletRegistrationPath,
        log,
        onStatus: metrics.kubeletRegistration(),
      }).catch(async (e: unknown) => {
        server.forceShutdown();
        await removeSocket();
        await undoStart();
        throw e;
      })
    : null;
  /** _exit(0) once every line is out (_exit skips all flushing; the default log destination is synchronous). */
  const exitNow = async (code = 0): Promise<never> => {
    await new Promise<void>((r) => log.flush(() => r()));
    await new Promise<void>((r) => process.stdout.write('', () => r()));
    return native.exitNow(code);
  };
  /** Graceful for 2 s (calls in flight finish), then forced: idle client connections must not hold us. */
  const shutdownServer = async (): Promise<void> => {
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 2000);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    await removeSocket();
  };
  if (inherited) manager.restoreVolumes(inherited.volumes);
  // From here on the keeper gets every change; this first snapshot has the restored volumes (or registers a fresh start).
  snapshots.serve({ fs, volumes: state });
  state.persist();
  log.info({ endpoint: flags.endpoint, fuseMountDir: flags.fuseMountDir }, 'listening');
  // In the background: probing stale mounts must never delay serving. Both
  // connections' directories: a dead audit connection's volumes count too.
  if (!inherited) {
    void reportDeadMounts([fs.main.mountDir, auditMountDir(fs.main.mountDir)], flags, k, log).catch((e: unknown) =>
      log.warn({ err: (e as Error).message }, 'could not look for dead secrets mounts'),
    );
  }

  // An upgrade: a newer driver takes over. Stop taking calls, hand the final
  // state to the keeper and exit without unmounting anything.
  keeper?.onYield(() => {
    void (async () => {
      log.info({}, 'handing over to a new driver');
      ready = false;
      await registrar?.stop(true);
      await shutdownServer();
      await manager.quiesce();
      await fs.settle();
      state.persist();
      await keeper.yielded();
      fs.detach();
      await exitNow();
    })();
  });

  let stopping = false;
  const running: RunningDriver = {
    // Always _exit: process.exit() joins the libuv threadpool, and a thread
    // parked in read(2) of /dev/fuse returns only when the connection ends,
    // which a bind mount elsewhere (a container's view) or the keeper outlives:
    // the main thread would then wait in a futex forever.
    exit: exitNow,
    log,
    fs,
    manager,
    async stop() {
      stopping = true;
      ready = false;
      manager.close();
      await k?.sync.stop();
      await registrar?.stop();
      await shutdownServer();
      providers.close();
      await spcs.close();
      k?.api.close();
      if (metricsServer) await new Promise<void>((r) => metricsServer.close(() => r()));
      // With a keeper the connection outlives this process: the next driver serves it.
      if (keeper?.connected) {
        state.persist();
        fs.detach();
      } else {
        const published = state.list().map((v) => v.targetPath);
        const aborted = await fs.close();
        if (aborted.length > 0 || published.length > 0) {
          log.warn(
            {
              published: published.length,
              targets: published,
              // One method for all the connections aborted ('failed' if any failed), then which they were.
              abort: (aborted.find((a) => a.aborted.method === 'failed') ?? aborted[0])?.aborted.method ?? 'not needed',
              ...(aborted.length > 0 ? { aborted: aborted.map((a) => a.mountDir) } : {}),
              ...(aborted.some((a) => a.aborted.error) ? { err: aborted.flatMap((a) => a.aborted.error ?? []).join('; ') } : {}),
            },
            'stopped without a keeper: nobody serves the secrets mounts left behind. Reads there fail with ECONNABORTED (in flight) or ENOTCONN ' +
              '("Transport endpoint is not connected") until kubelet unpublishes them (it unmounts them when the pod goes); ' +
              'a driver started again mounts a volume anew at its next republish, which only containers with mountPropagation HostToContainer see',
          );
        }
      }
    },
  };
  // The informers list in the background (lookups fall back to the API
  // server meanwhile). One the server refuses (RBAC, a missing CRD) is a
  // configuration error: the driver stops as a failed start would.
  void startInformers().then(async (e) => {
    if (!e || stopping) return;
    log.error({ err: e.message }, 'the API server refused to list what the driver watches (check its RBAC and CRDs); stopping');
    await running.stop();
    await exitNow(1);
  });
  return running;
}

/**
 * Without a cluster (--secret-provider-class-dir) there are no status
 * objects, Secrets or Events; with one, all three, as upstream. Secret sync
 * reads the served bytes from the volume registry.
 */
async function connectCluster(
  flags: DriverFlags,
  log: Logger,
  volumes: VolumeState,
): Promise<{ spcs: SpcSource; kube: KubeParts | null; startInformers: () => Promise<Error | null> }> {
  if (flags.secretProviderClassDir) {
    const { DirSpcSource } = await import('../spc/dir-source.js');
    return { spcs: new DirSpcSource(flags.secretProviderClassDir, log), kube: null, startInformers: () => Promise.resolve(null) };
  }
  const [{ KubeApi }, { KubeSpcSource }, { PodStatusWriter }, { SecretSync }, { EventRecorder, EventReason }] = await Promise.all([
    import('../kube/api.js'),
    import('../spc/kube-source.js'),
    import('../kube/pod-status.js'),
    import('../kube/secret-sync.js'),
    import('../kube/events.js'),
  ]);
  const api = await KubeApi.connect(flags.kubeconfig || undefined);
  const spcs = new KubeSpcSource({ api, log });
  const events = new EventRecorder(api, 'csi-secrets-store-controller', flags.nodeId, log);
  const sync = new SecretSync({
    api,
    nodeId: flags.nodeId,
    driverName: flags.driverName,
    spcs,
    events,
    log,
    readFile: (targetPath, objectName) => volumes.readFile(targetPath, objectName),
  });
  // Called once the driver serves, and not awaited: serving never waits for
  // the first lists (upstream's caches sync in the background too). Never
  // rejects: resolves with the server's refusal.
  const startInformers = (): Promise<Error | null> =>
    Promise.all([spcs.start(), sync.start()]).then(
      () => null,
      (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
    );
  return { spcs, kube: { api, podStatus: new PodStatusWriter(api, flags.nodeId), sync, events, reasons: EventReason }, startInformers };
}

/** Status objects, Secret sync and Events for what the volume manager does. */
function kubeHooks(k: KubeParts): Pick<VolumeManagerOptions, 'onVersion' | 'onDeadMountRepaired' | 'onRotationError'> {
  return {
    onVersion: async (st: VolumeStatus, first: boolean) => {
      const written = await k.podStatus.write(st);
      k.sync.enqueue(written);
      if (!first)
        await k.events.emit(
          { name: st.podName, namespace: st.podNamespace, uid: st.podUid },
          'Normal',
          k.reasons.MountRotationComplete,
          `successfully rotated mounted contents for spc ${st.podNamespace}/${st.spcName}`,
        );
    },
    onDeadMountRepaired: (st: VolumeStatus) => {
      void k.events.emit(
        { name: st.podName, namespace: st.podNamespace, uid: st.podUid },
        'Warning',
        k.reasons.SecretsMountRepaired,
        `the secrets volume ${st.targetPath} had died with a previous driver; a new mount was stacked over it. Containers that mount it with mountPropagation HostToContainer see it again; others keep failing with "Transport endpoint is not connected" until the pod is restarted`,
      );
    },
    onRotationError: (st: VolumeStatus, err: DriverError, failures: number) => {
      // One event per failure streak, not one per retry.
      if (failures === 1)
        void k.events.emit(
          { name: st.podName, namespace: st.podNamespace, uid: st.podUid },
          'Warning',
          k.reasons.MountRotationFailed,
          err.message,
        );
    },
  };
}

/**
 * At a fresh start (nothing to take over): finds this driver's mounts whose
 * server is gone, says so in the log and as a Warning Event on each pod, and
 * with --delete-pods-with-dead-mounts deletes those pods so their controllers
 * recreate them. kubelet's next republish stacks a new mount over each.
 */
async function reportDeadMounts(rootDirs: readonly string[], flags: DriverFlags, k: KubeParts | null, log: Logger): Promise<void> {
  const dead = [];
  for (const rootDir of rootDirs) {
    dead.push(
      ...(await findDeadMounts(rootDir, {
        onUnresponsive: (mountPoint) =>
          log.warn({ mountPoint }, 'a secrets mount of this driver did not answer a stat within 5 s; not treated as dead'),
      })),
    );
  }
  log.info({ dead: dead.length }, 'looked for secrets mounts that died with a previous driver');
  if (dead.length === 0) return;
  log.warn({ count: dead.length, targets: dead.map((d) => d.targetPath) }, 'found secrets mounts that died with a previous driver');
  if (!k) return;
  const pods = await k.api.core.listPods(`spec.nodeName=${flags.nodeId}`).catch(() => null);
  for (const d of dead) {
    const pod = pods?.items.find((p) => p.metadata?.uid === d.podUid);
    if (!pod?.metadata?.name || !pod.metadata.namespace) continue;
    const ref = { name: pod.metadata.name, namespace: pod.metadata.namespace, uid: pod.metadata.uid ?? '' };
    await k.events.emit(
      ref,
      'Warning',
      k.reasons.DeadSecretsMount,
      `the secrets volume ${d.volumeName ?? d.targetPath} died with a previous driver process ("Transport endpoint is not connected"). ` +
        'It is mounted again at the next republish, which repairs containers that use mountPropagation HostToContainer; others need the pod restarted' +
        (flags.deletePodsWithDeadMounts
          ? ': deleting the pod so that its controller recreates it'
          : ' (delete the pod, or run the driver with --delete-pods-with-dead-mounts)'),
    );
    if (flags.deletePodsWithDeadMounts) {
      await k.api.core.deletePod(ref.namespace, ref.name).then(
        () => log.warn({ pod: `${ref.namespace}/${ref.name}` }, 'deleted a pod whose secrets mount was dead'),
        (e: unknown) =>
          log.warn(
            { pod: `${ref.namespace}/${ref.name}`, err: (e as Error).message },
            'could not delete a pod whose secrets mount was dead',
          ),
      );
    }
  }
}
