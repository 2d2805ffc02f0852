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
import { KubeSpcSource } from '../spc/kube-source.js';
import { KubeApi, loadKubeConfig } from '../kube/api.js';
import { PodStatusWriter } from '../kube/pod-status.js';
import { SecretSync } from '../kube/secret-sync.js';
import { EventRecorder, EventReason } from '../kube/events.js';
import type { DriverError } from '../errors.js';
import type { SpcSource } from '../spc/types.js';
import { VolumeManager, type VolumeStatus } from '../volume/manager.js';
import { identityServer } from '../csi/identity-server.js';
import { nodeServer } from '../csi/node-server.js';
import { startCsiServer } from '../csi/server.js';
import { loadNative, hardenProcess, secretAllocator } from '../native/addon.js';
import type { DriverFlags } from './flags.js';
import { driverVersion } from './version.js';

export interface RunningDriver {
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

  const fs = await SecretsFilesystem.mount({
    mountDir: flags.fuseMountDir,
    log,
    onRequest: (op) => metrics.fuseRequest(opName(op)),
    alloc: secrets.allocate,
  });
  metrics.observeFilesystem(() => fs.table.stats());

  // Without a cluster (--secret-provider-class-dir) there are no status
  // objects, Secrets or Events; with one, all three, as upstream.
  let spcs: SpcSource;
  let kube: { api: KubeApi; podStatus: PodStatusWriter; sync: SecretSync; events: EventRecorder } | null = null;
  let manager: VolumeManager | null = null;
  if (flags.secretProviderClassDir) {
    spcs = new DirSpcSource(flags.secretProviderClassDir);
  } else {
    const api = new KubeApi(loadKubeConfig(flags.kubeconfig || undefined));
    spcs = await KubeSpcSource.start({ kc: api.kc, log });
    const events = new EventRecorder(api, 'csi-secrets-store-controller', flags.nodeId, log);
    const sync = new SecretSync({
      api, nodeId: flags.nodeId, driverName: flags.driverName, spcs, events, log,
      readFile: (targetPath, objectName) => manager?.readFile(targetPath, objectName) ?? null,
    });
    await sync.start();
    kube = { api, podStatus: new PodStatusWriter(api, flags.nodeId), sync, events };
  }

  const providers = new ProviderClients({
    socketDirs: [...flags.additionalProviderVolumePaths, flags.providerVolume],
    maxRecvMsgSize: flags.maxCallRecvMsgSize,
  });
  const k = kube;
  manager = new VolumeManager({
    fs, spcs, providers, metrics, log,
    ...(k ? {
      onVersion: async (st: VolumeStatus, first: boolean) => {
        const written = await k.podStatus.write(st);
        k.sync.enqueue(written.metadata.namespace, written.metadata.name);
        if (!first) await k.events.emit({ name: st.podName, namespace: st.podNamespace, uid: st.podUid }, 'Normal', EventReason.MountRotationComplete, `successfully rotated mounted contents for spc ${st.podNamespace}/${st.spcName}`);
      },
      onRotationError: (st: VolumeStatus, err: DriverError, failures: number) => {
        // One event per failure streak, not one per retry.
        if (failures === 1) void k.events.emit({ name: st.podName, namespace: st.podNamespace, uid: st.podUid }, 'Warning', EventReason.MountRotationFailed, err.message);
      },
    } : {}),
    rotation: { enabled: flags.enableSecretRotation, intervalMs: flags.rotationPollIntervalMs, concurrency: flags.rotationConcurrency, retryBaseMs: Math.min(10_000, flags.rotationPollIntervalMs) },
    providerTimeoutMs: flags.providerTimeoutMs,
  });
  let ready = true;
  const server: Server = await startCsiServer(flags.endpoint,
    identityServer({ driverName: flags.driverName, version, ready: () => ready }),
    nodeServer({ nodeId: flags.nodeId, manager, metrics, log }));
  const running = manager;
  log.info({ endpoint: flags.endpoint, fuseMountDir: flags.fuseMountDir }, 'listening');

  return {
    log, fs, manager: running,
    async stop() {
      ready = false;
      running.close();
      await kube?.sync.stop();
      await new Promise<void>((r) => server.tryShutdown(() => r()));
      providers.close();
      await spcs.close();
      if (metricsServer) await new Promise<void>((r) => metricsServer.close(() => r()));
      await fs.close();
    },
  };
}
