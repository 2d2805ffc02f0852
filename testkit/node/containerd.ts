// containerd (Debian's package) started with its own root, state and socket
// under a test directory, configured for this kind of machine: cgroupfs
// (no systemd), overlayfs, and oom_score_adj kept at or above containerd's
// own (lowering it is refused here, and runc would fail the container).

import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Proc } from '../proc.js';
import { execFileP as run } from '../run.js';
import { waitUntil } from '../wait.js';

export const PAUSE_IMAGE = 'sscsi.local/pause:1';

export interface ContainerdOptions {
  readonly dir: string;
  /** Directory of CNI network configs (a config must exist for the node to be Ready). */
  readonly cniConfDir: string;
  readonly cniBinDir: string;
  /** Called with each child spawned, so the caller can kill it if the test file dies. */
  readonly track?: (c: ChildProcess) => void;
}

export class Containerd {
  readonly socket: string;
  private proc: Proc | null = null;

  constructor(private readonly o: ContainerdOptions) {
    this.socket = join(o.dir, 'containerd.sock');
  }

  get log(): string {
    return this.proc?.out ?? '';
  }

  async start(): Promise<void> {
    const d = this.o.dir;
    await mkdir(join(d, 'root'), { recursive: true, mode: 0o700 });
    await mkdir(join(d, 'state'), { recursive: true, mode: 0o700 });
    const cri = 'plugins."io.containerd.grpc.v1.cri"';
    const config = [
      'version = 2',
      `root = "${join(d, 'root')}"`,
      `state = "${join(d, 'state')}"`,
      'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]',
      '[grpc]',
      `  address = "${this.socket}"`,
      '[ttrpc]',
      `  address = "${this.socket}.ttrpc"`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      `[${cri}]`,
      `  sandbox_image = "${PAUSE_IMAGE}"`,
      '  stream_server_address = "127.0.0.1"',
      '  stream_server_port = "0"',
      '  disable_apparmor = true',
      '  restrict_oom_score_adj = true',
      `  [${cri}.containerd]`,
      '    snapshotter = "overlayfs"',
      '    default_runtime_name = "runc"',
      `    [${cri}.containerd.runtimes.runc]`,
      '      runtime_type = "io.containerd.runc.v2"',
      `      [${cri}.containerd.runtimes.runc.options]`,
      '        SystemdCgroup = false',
      `  [${cri}.cni]`,
      `    bin_dir = "${this.o.cniBinDir}"`,
      `    conf_dir = "${this.o.cniConfDir}"`,
      '',
    ].join('\n');
    await writeFile(join(d, 'config.toml'), config);
    const child = spawn('containerd', ['--config', join(d, 'config.toml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.o.track?.(child);
    this.proc = new Proc(child, 'containerd');
    await this.proc.waitFor(/containerd successfully booted/, 30_000);
  }

  ctr(args: readonly string[], timeoutMs = 60_000): Promise<string> {
    return run('ctr', ['--address', this.socket, '--namespace', 'k8s.io', ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 }).then(
      (r) => r.stdout,
    );
  }

  async importImage(archive: string): Promise<void> {
    await this.ctr(['images', 'import', archive]);
  }

  /**
   * Kills every container still running (kubelet normally stops them first),
   * stops containerd, then the shims, which outlive containerd by design.
   */
  async stop(errors: string[] = []): Promise<void> {
    if (this.proc?.running) {
      try {
        const tasks = (await this.ctr(['tasks', 'ls', '-q'], 20_000)).split('\n').filter(Boolean);
        for (const id of tasks) await this.ctr(['tasks', 'kill', '-s', 'SIGKILL', '--all', id], 10_000).catch(() => undefined);
        for (const id of tasks) await this.ctr(['tasks', 'rm', '-f', id], 10_000).catch(() => undefined);
      } catch (e) {
        errors.push(`containerd tasks: ${(e as Error).message}`);
      }
      await this.proc.stop('SIGTERM', 10_000);
    }
    for (const pid of await this.shims()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await waitUntil(async () => (await this.shims()).length === 0, 10_000, 'containerd shims to exit').catch((e: Error) =>
      errors.push(e.message),
    );
  }

  /** Shim processes that serve this containerd (their command line names its socket). */
  private async shims(): Promise<number[]> {
    const out: number[] = [];
    for (const name of await readdir('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
      const argv = cmd.split('\0');
      if (argv[0]?.endsWith('containerd-shim-runc-v2') && argv.includes(this.socket)) out.push(Number(name));
    }
    return out;
  }
}
