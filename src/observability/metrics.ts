// Prometheus metrics: upstream's names and labels (so dashboards and the e2e
// checks keep working) plus our own, prefixed secrets_store_fuse_/_provider_.
// Labels never carry secret material: provider names, error types, op names.

import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from './prometheus.js';
import { registerProcessMetrics } from './process-metrics.js';

const OS_TYPE = process.platform === 'win32' ? 'windows' : 'linux';

/** A read-audited file: its volume's pod and its path in the volume. */
export interface AuditedOpenLabels {
  readonly namespace: string;
  readonly pod: string;
  readonly file: string;
}

export class DriverMetrics {
  readonly registry = new Registry();
  private readonly nodePublish = new Counter({
    name: 'node_publish_total',
    help: 'Successful NodePublishVolume calls',
    labelNames: ['provider', 'os_type'],
    registry: this.registry,
  });
  private readonly nodePublishError = new Counter({
    name: 'node_publish_error_total',
    help: 'Failed NodePublishVolume calls',
    labelNames: ['provider', 'error_type', 'os_type'],
    registry: this.registry,
  });
  private readonly nodeUnpublish = new Counter({
    name: 'node_unpublish_total',
    help: 'Successful NodeUnpublishVolume calls',
    labelNames: ['os_type'],
    registry: this.registry,
  });
  private readonly nodeUnpublishError = new Counter({
    name: 'node_unpublish_error_total',
    help: 'Failed NodeUnpublishVolume calls',
    labelNames: ['os_type'],
    registry: this.registry,
  });
  private readonly rotation = new Counter({
    name: 'rotation_reconcile_total',
    help: 'Rotation polls that completed',
    labelNames: ['provider', 'os_type', 'rotated'],
    registry: this.registry,
  });
  private readonly rotationErrors = new Counter({
    name: 'rotation_reconcile_error_total',
    help: 'Rotation polls that failed (the last good content stays served)',
    labelNames: ['provider', 'error_type', 'os_type', 'rotated'],
    registry: this.registry,
  });
  private readonly rotationDuration = new Histogram({
    name: 'rotation_reconcile_duration_sec',
    help: 'Duration of a rotation poll in seconds',
    labelNames: ['os_type'],
    buckets: [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 1, 1.5, 2, 2.5, 3, 5, 10, 15, 30],
    registry: this.registry,
  });
  private readonly providerCall = new Histogram({
    name: 'secrets_store_provider_mount_duration_seconds',
    help: 'Latency of provider Mount calls',
    labelNames: ['provider', 'result'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registry: this.registry,
  });
  readonly volumes = new Gauge({ name: 'secrets_store_volumes_mounted', help: 'Volumes served from memory', registry: this.registry });
  readonly versions = new Counter({
    name: 'secrets_store_versions_published_total',
    help: 'Volume versions published since start (first mounts and rotations)',
    registry: this.registry,
  });
  private fsStats: () => { inodes: number; fileBytes: number } = () => ({ inodes: 0, fileBytes: 0 });
  private readonly fuseRequests = new Counter({
    name: 'secrets_store_fuse_requests_total',
    help: 'FUSE requests answered, by operation',
    labelNames: ['op'],
    registry: this.registry,
  });
  private readonly auditedOpens = new Counter({
    name: 'secrets_store_audited_opens_total',
    help: "Opens of files of volumes with read audit on, by the volume's pod and file path",
    labelNames: ['namespace', 'pod', 'file'],
    registry: this.registry,
  });

  /** With defaultMetrics, also the process_* and nodejs_* metrics (read at scrape time only). */
  constructor(defaultMetrics = true) {
    // Read from the filesystem's table when scraped (see observeFilesystem).
    new Gauge({
      name: 'secrets_store_fuse_inodes',
      help: 'Inodes held in memory, including old versions the kernel still references',
      registry: this.registry,
      collect: (g) => g.set(this.fsStats().inodes),
    });
    new Gauge({
      name: 'secrets_store_fuse_file_bytes',
      help: 'Bytes of file content held in memory',
      registry: this.registry,
      collect: (g) => g.set(this.fsStats().fileBytes),
    });
    if (defaultMetrics) registerProcessMetrics(this.registry);
  }

  publishOk(provider: string): void {
    this.nodePublish.inc({ provider, os_type: OS_TYPE });
  }
  publishError(provider: string, errorType: string): void {
    this.nodePublishError.inc({ provider, error_type: errorType, os_type: OS_TYPE });
  }
  unpublishOk(): void {
    this.nodeUnpublish.inc({ os_type: OS_TYPE });
  }
  unpublishError(): void {
    this.nodeUnpublishError.inc({ os_type: OS_TYPE });
  }
  rotationOk(provider: string, rotated: boolean, seconds: number): void {
    this.rotation.inc({ provider, os_type: OS_TYPE, rotated: String(rotated) });
    this.rotationDuration.observe({ os_type: OS_TYPE }, seconds);
  }
  rotationError(provider: string, errorType: string): void {
    this.rotationErrors.inc({ provider, error_type: errorType, os_type: OS_TYPE, rotated: 'false' });
  }
  providerMount(provider: string, ok: boolean, seconds: number): void {
    this.providerCall.observe({ provider, result: ok ? 'ok' : 'error' }, seconds);
  }
  fuseRequest(op: string): void {
    this.fuseRequests.inc({ op });
  }
  auditedOpen(labels: AuditedOpenLabels): void {
    this.auditedOpens.inc({ ...labels });
  }
  /** Drops the series of an unpublished volume's files (the label set stays bounded by the volumes served). */
  forgetAuditedOpens(labels: readonly AuditedOpenLabels[]): void {
    for (const l of labels) this.auditedOpens.remove({ ...l });
  }
  /**
   * Metrics of the built-in kubelet plugin registrar, registered only when it
   * runs: kubelet's last verdict (1 registered, 0 rejected or not yet told)
   * and the rejections. The sidecar exits on a rejection; the driver keeps
   * serving for kubelet's retry, so this is where a rejection shows.
   */
  kubeletRegistration(): (registered: boolean) => void {
    const registered = new Gauge({
      name: 'secrets_store_kubelet_plugin_registered',
      help: '1 once kubelet reported the driver registered, 0 before and after kubelet reported it could not register it',
      registry: this.registry,
    });
    const failures = new Counter({
      name: 'secrets_store_kubelet_plugin_registration_failures_total',
      help: 'Registrations kubelet reported as failed (the reason is logged)',
      registry: this.registry,
    });
    return (ok) => {
      registered.set(ok ? 1 : 0);
      if (!ok) failures.inc();
    };
  }
  /** Where the inode and byte gauges read their values at scrape time. */
  observeFilesystem(stats: () => { inodes: number; fileBytes: number }): void {
    this.fsStats = stats;
  }

  /** Serves /metrics on addr (":8095", "127.0.0.1:0", …). */
  async listen(addr: string): Promise<Server> {
    const i = addr.lastIndexOf(':');
    const host = addr.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0';
    const port = Number(addr.slice(i + 1));
    const server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      let body: string;
      try {
        body = this.registry.metricsSync();
      } catch {
        res.writeHead(500).end();
        return;
      }
      res.writeHead(200, { 'content-type': this.registry.contentType }).end(body);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return server;
  }
}
