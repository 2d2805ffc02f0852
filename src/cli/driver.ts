// Wires the driver together from flags: logger, metrics, FUSE filesystem,
// SecretProviderClass source, provider clients, volume manager, CSI server.

import type { Server } from '@grpc/grpc-js';
import type { Server as HttpServer } from 'node:http';
import { createLogger, type Logger } from '../observability/log.js';
import { DriverMetrics } from '../observability/metrics.js';
import { SecretsFilesystem } from '../fuse/filesystem.js';
import { opName } from '../fuse/protocol.js';
import { ProviderClients } from '../provider/client.js';
import { DirSpcSource } from '../spc/dir-source.js';
// The Kubernetes modules are loaded only once the FUSE connection is served
// (see startDriver): @kubernetes/client-node takes about a second to load,
// and readers wait for a restarted driver until it answers.
import type { KubeApi } from '../kube/api.js';
import type { PodStatusWriter } from '../kube/pod-status.js';
import type { SecretSync } from '../kube/secret-sync.js';
import type { EventRecorder, EventReason } from '../kube/events.js';
import type { DriverError } from '../errors.js';
import type { SpcSource } from '../spc/types.js';
import { VolumeManager, type VolumeStatus } from '../volume/manager.js';
import { identityServer } from '../csi/identity-server.js';
import { nodeServer } from '../csi/node-server.js';
import { startCsiServer } from '../csi/server.js';
import { nativeForkSyscalls } from '../fuse/vfs-steps.js';
import { loadNative, hardenProcess, secretAllocator } from '../native/addon.js';
import { KeeperClient } from '../takeover/keeper-client.js';
import { decodeState, encodeState, type DriverState } from '../takeover/state.js';
import { findDeadMounts } from '../takeover/dead-mounts.js';
import type { DriverFlags } from './flags.js';
import { driverVersion } from './version.js';

interface KubeParts {
  readonly api: KubeApi;
  readonly podStatus: PodStatusWriter;
  readonly sync: SecretSync;
  readonly events: EventRecorder;
  readonly reasons: typeof EventReason;
}

export interface RunningDriver {
  /** Exit code 0 without waiting for threadpool threads parked on a FUSE connection the keeper keeps alive. */
  exit(): Promise<never>;
  readonly log: Logger;
  readonly fs: SecretsFilesystem;
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
  log.info({ version, driverName: flags.driverName, nodeId: flags.nodeId, dumpable: harden.dumpable, secretsLocked: secrets.locked,
    rotation: flags.enableSecretRotation, rotationPollIntervalMs: flags.rotationPollIntervalMs }, 'starting secrets-store CSI driver');

  const metrics = new DriverMetrics();
  let metricsServer: HttpServer | null = null;
  if (flags.metricsAddr) metricsServer = await metrics.listen(flags.metricsAddr);

  // With a keeper, every change of what is served reaches it synchronously,
  // before the kernel can see new node ids (see FilesystemOptions.onMutation).
  let snapshotNow: () => void = () => undefined;
  const fsOptions = {
    mountDir: flags.fuseMountDir,
    log,
    onRequest: (op: number) => metrics.fuseRequest(opName(op)),
    alloc: secrets.allocate,
    onMutation: () => snapshotNow(),
    // Rotations made as syscalls by a forked child, so inotify watchers see them.
    ...(flags.inotifyEvents ? { forkSyscalls: nativeForkSyscalls(native) } : {}),
  };
  // With a keeper, take over the connection a previous driver left there
  // (crash or upgrade); otherwise, or when there is none, mount afresh.
  let keeper: KeeperClient | null = null;
  let inherited: DriverState | null = null;
  let fs: SecretsFilesystem;
  if (flags.keeperSocket) {
    keeper = await KeeperClient.connect(native, flags.keeperSocket, 10_000);
    if (!keeper) log.warn({ socket: flags.keeperSocket }, 'no keeper: running without restart survival');
  }
  const hello = keeper ? await keeper.hello() : { kind: 'empty' as const };
  if (hello.kind === 'state') {
    const started = performance.now();
    const decoded = decodeState(hello.state);
    inherited = decoded.state;
    fs = await SecretsFilesystem.adopt(fsOptions, hello.fd, decoded.state.fs, decoded.blob);
    hello.state.fill(0);
    log.info({ volumes: inherited.volumes.length, ms: Math.round(performance.now() - started) }, 'took over the FUSE connection from the previous driver');
  } else {
    fs = await SecretsFilesystem.mount(fsOptions);
    keeper?.register(fs.session.fd);
  }
  metrics.observeFilesystem(() => fs.table.stats());

  // Without a cluster (--secret-provider-class-dir) there are no status
  // objects, Secrets or Events; with one, all three, as upstream.
  let spcs: SpcSource;
  let kube: KubeParts | null = null;
  let manager: VolumeManager | null = null;
  if (flags.secretProviderClassDir) {
    spcs = new DirSpcSource(flags.secretProviderClassDir, log);
  } else {
    const [{ KubeApi, loadKubeConfig }, { KubeSpcSource }, { PodStatusWriter }, { SecretSync }, { EventRecorder, EventReason }] = await Promise.all([
      import('../kube/api.js'), import('../spc/kube-source.js'), import('../kube/pod-status.js'), import('../kube/secret-sync.js'), import('../kube/events.js'),
    ]);
    const api = new KubeApi(loadKubeConfig(flags.kubeconfig || undefined));
    spcs = await KubeSpcSource.start({ kc: api.kc, log });
    const events = new EventRecorder(api, 'csi-secrets-store-controller', flags.nodeId, log);
    const sync = new SecretSync({
      api, nodeId: flags.nodeId, driverName: flags.driverName, spcs, events, log,
      readFile: (targetPath, objectName) => manager?.readFile(targetPath, objectName) ?? null,
    });
    await sync.start();
    kube = { api, podStatus: new PodStatusWriter(api, flags.nodeId), sync, events, reasons: EventReason };
  }

  const providers = new ProviderClients({
    socketDirs: [...flags.additionalProviderVolumePaths, flags.providerVolume],
    maxRecvMsgSize: flags.maxCallRecvMsgSize,
  });
  const k = kube;
  // The keeper always has the latest state: sent synchronously after every change.
  const sendSnapshot = (): void => {
    if (!keeper?.connected || !manager) return;
    const { state, data } = fs.exportState();
    const buf = encodeState({ version: 1, fs: state, volumes: manager.exportVolumes() }, data, secrets.allocate);
    if (!keeper.snapshot(buf)) log.warn({ bytes: buf.length }, 'the keeper did not take the state in time; a crash now could lose the newest version');
    buf.fill(0);
  };
  snapshotNow = sendSnapshot;
  const changed = sendSnapshot;
  manager = new VolumeManager({
    fs, spcs, providers, metrics, log, onChange: changed,
    ...(k ? {
      onVersion: async (st: VolumeStatus, first: boolean) => {
        const written = await k.podStatus.write(st);
        k.sync.enqueue(written.metadata.namespace, written.metadata.name);
        if (!first) await k.events.emit({ name: st.podName, namespace: st.podNamespace, uid: st.podUid }, 'Normal', k.reasons.MountRotationComplete, `successfully rotated mounted contents for spc ${st.podNamespace}/${st.spcName}`);
      },
      onDeadMountRepaired: (st: VolumeStatus) => {
        void k.events.emit({ name: st.podName, namespace: st.podNamespace, uid: st.podUid }, 'Warning', k.reasons.SecretsMountRepaired,
          `the secrets volume ${st.targetPath} had died with a previous driver; a new mount was stacked over it. Containers that mount it with mountPropagation HostToContainer see it again; others keep failing with "Transport endpoint is not connected" until the pod is restarted`);
      },
      onRotationError: (st: VolumeStatus, err: DriverError, failures: number) => {
        // One event per failure streak, not one per retry.
        if (failures === 1) void k.events.emit({ name: st.podName, namespace: st.podNamespace, uid: st.podUid }, 'Warning', k.reasons.MountRotationFailed, err.message);
      },
    } : {}),
    // Who may write into a volume during a provider call: that provider's process.
    providerPid: async (provider: string) => native.peerPid(await providers.resolveSocket(provider)),
    rotation: { enabled: flags.enableSecretRotation, intervalMs: flags.rotationPollIntervalMs, concurrency: flags.rotationConcurrency, retryBaseMs: Math.min(10_000, flags.rotationPollIntervalMs) },
    providerTimeoutMs: flags.providerTimeoutMs,
  });
  let ready = true;
  const server: Server = await startCsiServer(flags.endpoint,
    identityServer({ driverName: flags.driverName, version, ready: () => ready }),
    nodeServer({ nodeId: flags.nodeId, manager, metrics, log }));
  const running = manager;
  /** _exit(0) once every line is out (_exit skips all flushing; the default log destination is synchronous). */
  const exitNow = async (): Promise<never> => {
    await new Promise<void>((r) => log.flush(() => r()));
    await new Promise<void>((r) => process.stdout.write('', () => r()));
    return native.exitNow(0);
  };
  /** Graceful for 2 s (calls in flight finish), then forced: idle client connections must not hold us. */
  const shutdownServer = (): Promise<void> => new Promise<void>((resolve) => {
    const force = setTimeout(() => { server.forceShutdown(); resolve(); }, 2000);
    server.tryShutdown(() => { clearTimeout(force); resolve(); });
  });
  if (inherited) running.restoreVolumes(inherited.volumes);
  sendSnapshot();
  log.info({ endpoint: flags.endpoint, fuseMountDir: flags.fuseMountDir }, 'listening');
  // In the background: probing stale mounts must never delay serving.
  if (!inherited) {
    void reportDeadMounts(fs.mountDir, flags, k, log).catch((e: unknown) => log.warn({ err: (e as Error).message }, 'could not look for dead secrets mounts'));
  }

  // An upgrade: a newer driver takes over. Stop taking calls, hand the final
  // state to the keeper and exit without unmounting anything.
  keeper?.onYield(() => {
    void (async () => {
      log.info({}, 'handing over to a new driver');
      ready = false;
      await shutdownServer();
      await running.quiesce();
      await fs.settle();
      sendSnapshot();
      await keeper.yielded();
      fs.detach();
      await exitNow();
    })();
  });

  return {
    exit: async () => (keeper?.connected ? exitNow() : process.exit(0)),
    log, fs, manager: running,
    async stop() {
      ready = false;
      running.close();
      await kube?.sync.stop();
      await shutdownServer();
      providers.close();
      await spcs.close();
      if (metricsServer) await new Promise<void>((r) => metricsServer.close(() => r()));
      // With a keeper the connection outlives this process: the next driver serves it.
      if (keeper?.connected) {
        sendSnapshot();
        fs.detach();
      } else {
        await fs.close();
      }
    },
  };
}

/**
 * At a fresh start (nothing to take over): finds this driver's mounts whose
 * server is gone, says so in the log and as a Warning Event on each pod, and
 * with --delete-pods-with-dead-mounts deletes those pods so their controllers
 * recreate them. kubelet's next republish stacks a new mount over each.
 */
async function reportDeadMounts(rootDir: string, flags: DriverFlags, k: KubeParts | null, log: Logger): Promise<void> {
  const dead = await findDeadMounts(rootDir, {
    onUnresponsive: (mountPoint) => log.warn({ mountPoint }, 'a secrets mount of this driver did not answer a stat within 5 s; not treated as dead'),
  });
  log.info({ dead: dead.length }, 'looked for secrets mounts that died with a previous driver');
  if (dead.length === 0) return;
  log.warn({ count: dead.length, targets: dead.map((d) => d.targetPath) }, 'found secrets mounts that died with a previous driver');
  if (!k) return;
  const pods = await k.api.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${flags.nodeId}` }).catch(() => null);
  for (const d of dead) {
    const pod = pods?.items.find((p) => p.metadata?.uid === d.podUid);
    if (!pod?.metadata?.name || !pod.metadata.namespace) continue;
    const ref = { name: pod.metadata.name, namespace: pod.metadata.namespace, uid: pod.metadata.uid ?? '' };
    await k.events.emit(ref, 'Warning', k.reasons.DeadSecretsMount,
      `the secrets volume ${d.volumeName ?? d.targetPath} died with a previous driver process ("Transport endpoint is not connected"). ` +
      'It is mounted again at the next republish, which repairs containers that use mountPropagation HostToContainer; others need the pod restarted' +
      (flags.deletePodsWithDeadMounts ? ': deleting the pod so that its controller recreates it' : ' (delete the pod, or run the driver with --delete-pods-with-dead-mounts)'));
    if (flags.deletePodsWithDeadMounts) {
      await k.api.core.deleteNamespacedPod({ name: ref.name, namespace: ref.namespace }).then(
        () => log.warn({ pod: `${ref.namespace}/${ref.name}` }, 'deleted a pod whose secrets mount was dead'),
        (e: unknown) => log.warn({ pod: `${ref.namespace}/${ref.name}`, err: (e as Error).message }, 'could not delete a pod whose secrets mount was dead'));
    }
  }
}
