// A real kubelet (test/peers/kubelet/build.sh) for one node on this machine:
// cgroupfs under its own cgroup root, swap and cgroup v1 tolerated, every
// directory it writes to under the test's own, its API served on loopback
// only (so pods' logs are read from the files it writes, not through the API
// server). Restartable, as the suite restarts it while pods run.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Proc } from '../proc.js';
import { freePort } from '../net.js';

export interface KubeletOptions {
  readonly bin: string;
  readonly dir: string;
  readonly nodeName: string;
  readonly kubeconfig: string;
  readonly runtimeSocket: string;
  readonly track?: (c: ChildProcess) => void;
}

/** The cgroup v1 hierarchies kubelet's cgroupfs driver creates pod cgroups in. */
const HIERARCHIES = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'systemd', 'hugetlb', 'unified'];

export class Kubelet {
  /** kubelet's --root-dir: pods' volumes, plugins, plugins_registry. */
  readonly rootDir: string;
  /** Where kubelet writes containers' logs (podLogsDir). */
  readonly podLogsDir: string;
  readonly cgroupRoot: string;
  private proc: Proc | null = null;
  private readonly logs: string[] = [];

  constructor(private readonly o: KubeletOptions) {
    this.rootDir = join(o.dir, 'root');
    this.podLogsDir = join(o.dir, 'pod-logs');
    this.cgroupRoot = `/${o.nodeName}`;
  }

  /** Everything every kubelet process so far wrote. */
  get log(): string {
    return this.logs.join('') + (this.proc?.out ?? '');
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  get pid(): number {
    return this.proc?.pid ?? -1;
  }

  private async writeConfig(): Promise<string> {
    const [port, healthz] = [await freePort(), await freePort()];
    const config = join(this.o.dir, 'kubelet.yaml');
    const yaml = [
      'apiVersion: kubelet.config.k8s.io/v1beta1',
      'kind: KubeletConfiguration',
      'cgroupDriver: cgroupfs',
      `cgroupRoot: ${this.cgroupRoot}`,
      'failSwapOn: false',
      'failCgroupV1: false',
      'address: 127.0.0.1',
      `port: ${port}`,
      'readOnlyPort: 0',
      `healthzPort: ${healthz}`,
      'healthzBindAddress: 127.0.0.1',
      'authentication: {anonymous: {enabled: false}, webhook: {enabled: false}}',
      'authorization: {mode: AlwaysAllow}',
      'resolvConf: ""',
      `podLogsDir: ${this.podLogsDir}`,
      `volumePluginDir: ${join(this.o.dir, 'volume-plugins')}`,
      // The machine's disk and memory are the CI's business, not this node's.
      'localStorageCapacityIsolation: false',
      'evictionHard: {memory.available: "1Mi", nodefs.available: "0%", imagefs.available: "0%", nodefs.inodesFree: "0%"}',
      'imageGCHighThresholdPercent: 100',
      'imageGCLowThresholdPercent: 99',
      'serializeImagePulls: false',
      'syncFrequency: 5s',
      'nodeStatusUpdateFrequency: 5s',
      '',
    ].join('\n');
    await writeFile(config, yaml);
    return config;
  }

  async start(): Promise<void> {
    await mkdir(this.rootDir, { recursive: true });
    await mkdir(this.podLogsDir, { recursive: true });
    for (const h of HIERARCHIES) await mkdir(join('/sys/fs/cgroup', h, this.cgroupRoot)).catch(() => undefined);
    const config = await this.writeConfig();
    const child = spawn(
      this.o.bin,
      [
        `--config=${config}`,
        `--kubeconfig=${this.o.kubeconfig}`,
        `--root-dir=${this.rootDir}`,
        `--cert-dir=${join(this.o.dir, 'pki')}`,
        `--container-runtime-endpoint=unix://${this.o.runtimeSocket}`,
        `--hostname-override=${this.o.nodeName}`,
        '--v=2',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.o.track?.(child);
    if (this.proc) this.logs.push(this.proc.out);
    this.proc = new Proc(child, 'kubelet');
  }

  /** SIGTERM (as a service manager stops it); pods keep running. */
  async stop(): Promise<void> {
    await this.proc?.stop('SIGTERM', 15_000);
  }

  /** Removes the cgroups kubelet made under its cgroup root (after every container is gone). */
  async removeCgroups(errors: string[] = []): Promise<void> {
    const rmTree = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) if (e.isDirectory()) await rmTree(join(dir, e.name));
      await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') errors.push(`rmdir ${dir}: ${err.code}`);
      });
    };
    for (const h of HIERARCHIES) await rmTree(join('/sys/fs/cgroup', h, this.cgroupRoot));
  }
}
