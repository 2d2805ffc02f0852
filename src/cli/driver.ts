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
import type { SpcSource } from '../spc/types.js';
import { VolumeManager } from '../volume/manager.js';
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

  let spcs: SpcSource;
  if (flags.secretProviderClassDir) spcs = new DirSpcSource(flags.secretProviderClassDir);
  else spcs = await KubeSpcSource.start({ ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}), log });

  const providers = new ProviderClients({
    socketDirs: [...flags.additionalProviderVolumePaths, flags.providerVolume],
    maxRecvMsgSize: flags.maxCallRecvMsgSize,
  });
  const manager = new VolumeManager({
    fs, spcs, providers, metrics, log,
    rotation: { enabled: flags.enableSecretRotation, intervalMs: flags.rotationPollIntervalMs, concurrency: flags.rotationConcurrency, retryBaseMs: Math.min(10_000, flags.rotationPollIntervalMs) },
    providerTimeoutMs: flags.providerTimeoutMs,
  });
  let ready = true;
  const server: Server = await startCsiServer(flags.endpoint,
    identityServer({ driverName: flags.driverName, version, ready: () => ready }),
    nodeServer({ nodeId: flags.nodeId, manager, metrics, log }));
  log.info({ endpoint: flags.endpoint, fuseMountDir: flags.fuseMountDir }, 'listening');

  return {
    log, fs, manager,
    async stop() {
      ready = false;
      manager.close();
      await new Promise<void>((r) => server.tryShutdown(() => r()));
      providers.close();
      await spcs.close();
      if (metricsServer) await new Promise<void>((r) => metricsServer.close(() => r()));
      await fs.close();
    },
  };
}
