#!/usr/bin/env node
// Demo on one machine, no cluster: the driver and the example provider as
// child processes, a SecretProviderClass from a directory, one volume
// published over CSI the way kubelet would, and a rotation every few seconds
// to watch with `cat`. Ctrl-C unpublishes and cleans everything up.
//
//   npm run demo [-- --rotate-every=5s --duration=60s]

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata } from '@grpc/grpc-js';
import { NodeClient, VolumeCapability_AccessMode_Mode } from '../gen/csi/v1/csi.js';
import { parseDuration } from '../cli/flags.js';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name: string, def: string): string =>
  process.argv
    .slice(2)
    .find((a) => a.startsWith(`--${name}=`))
    ?.slice(name.length + 3) ?? def;
const rotateMs = parseDuration(arg('rotate-every', '5s'));
const durationMs = parseDuration(arg('duration', '0'));

if (process.getuid?.() !== 0) {
  console.error('The demo mounts a FUSE filesystem and bind-mounts it: run it as root (sudo npm run demo).');
  process.exit(1);
}
if (!existsSync('/dev/fuse')) {
  console.error('/dev/fuse is missing: load the fuse module (modprobe fuse) or run on a host with FUSE.');
  process.exit(1);
}

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

const work = await mkdtemp('/tmp/secrets-store-demo-');
await chmod(work, 0o755);
// The provider's own store lives in memory (tmpfs), like a real secret store elsewhere.
const store = await mkdtemp('/dev/shm/secrets-store-demo-');
const secretsFile = join(store, 'secrets.yaml');
const providers = join(work, 'providers');
const spcDir = join(work, 'spc');
const target = join(work, 'pods', 'demo-pod-uid', 'volumes', 'kubernetes.io~csi', 'app-secrets', 'mount');
await mkdir(providers, { recursive: true });
await mkdir(spcDir, { recursive: true });
await mkdir(dirname(target), { recursive: true, mode: 0o755 });

let version = 1;
const writeSecrets = async (): Promise<void> => {
  const password = randomBytes(9).toString('base64url');
  await writeFile(
    secretsFile,
    [
      'files:',
      '  - path: username',
      '    contents: "demo-user"',
      '    mode: 0o444',
      '  - path: password',
      `    contents: "version ${version} ${password}\\n"`,
      '    mode: 0o400',
      '  - path: config/app.json',
      `    contents: '{"endpoint": "https://db.example", "version": ${version}}'`,
      '    mode: 0o444',
    ].join('\n'),
    { mode: 0o600 },
  );
};
await writeSecrets();
await writeFile(
  join(spcDir, 'app-secrets.yaml'),
  [
    'apiVersion: secrets-store.csi.x-k8s.io/v1',
    'kind: SecretProviderClass',
    'metadata:',
    '  name: app-secrets',
    '  namespace: default',
    'spec:',
    '  provider: example',
    '  parameters:',
    `    secretsFile: ${secretsFile}`,
    '    objects: |',
    '      - objectName: username',
    '      - objectName: password',
    '      - objectName: config/app.json',
  ].join('\n'),
);

const metricsPort = await freePort();
const children: ChildProcess[] = [];
/** Shows a child's log lines that matter to a person watching: warnings, errors and rotations. */
const start = (bin: string, args: string[], tag: string): ChildProcess => {
  // A process group of its own: Ctrl-C reaches only the demo, which unpublishes
  // first and then stops the driver (with the terminal's SIGINT the driver
  // stopped first and left the volume mounted behind it).
  const c = spawn(process.execPath, [join(here, bin), ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const prefix = (d: Buffer): void => {
    for (const l of d.toString().split('\n').filter(Boolean)) {
      let show = true;
      try {
        const j = JSON.parse(l) as { level?: number | string; msg?: string };
        show = (typeof j.level === 'number' && j.level >= 40) || /rotated|failed/.test(j.msg ?? '');
      } catch {
        /* not JSON: show it */
      }
      if (show) process.stdout.write(`  [${tag}] ${l}\n`);
    }
  };
  c.stdout?.on('data', prefix);
  c.stderr?.on('data', prefix);
  children.push(c);
  return c;
};
start('example-provider.js', ['--endpoint', `unix://${join(providers, 'example.sock')}`], 'provider');
const csiSock = join(work, 'csi.sock');
start(
  'driver.js',
  [
    `--endpoint=unix://${csiSock}`,
    '--nodeid=demo-node',
    `--provider-volume=${providers}`,
    '--additional-provider-volume-paths=',
    `--secret-provider-class-dir=${spcDir}`,
    `--fuse-mount-dir=${join(work, 'fuse')}`,
    // The demo's kubelet directory layout is under its own temporary directory.
    `--kubelet-root-dir=${work}`,
    `--metrics-addr=127.0.0.1:${metricsPort}`,
    `--rotation-poll-interval=${Math.max(1000, Math.floor(rotateMs / 2))}ms`,
    '--log-level=info',
  ],
  'driver',
);

const client = new NodeClient(`unix:${csiSock}`, credentials.createInsecure());
const waitReady = async (): Promise<void> => {
  for (let i = 0; i < 100; i++) {
    if (existsSync(csiSock) && existsSync(join(providers, 'example.sock'))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('driver or provider did not start');
};

let cleaning = false;
const cleanup = async (code: number): Promise<never> => {
  if (cleaning) process.exit(code);
  cleaning = true;
  console.log('\nUnpublishing and cleaning up…');
  await new Promise<void>((r) =>
    client.nodeUnpublishVolume({ volumeId: 'demo-volume', targetPath: target }, (err) => {
      if (err) console.error(`unpublish failed: ${err.message}`);
      r();
    }),
  );
  client.close();
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.on('exit', r)) : null)));
  await rm(work, { recursive: true, force: true }).catch(() => undefined);
  await rm(store, { recursive: true, force: true });
  console.log('Done: nothing left mounted, nothing left on disk.');
  process.exit(code);
};
// The children are not in our process group: never leave them running behind us.
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});
process.on('SIGINT', () => void cleanup(0));
process.on('SIGTERM', () => void cleanup(0));

try {
  await waitReady();
  await new Promise<void>((resolve, reject) =>
    client.nodePublishVolume(
      {
        volumeId: 'demo-volume',
        targetPath: target,
        readonly: true,
        stagingTargetPath: '',
        publishContext: {},
        secrets: {},
        volumeCapability: {
          accessType: { $case: 'mount', value: { fsType: '', mountFlags: [], volumeMountGroup: '' } },
          accessMode: { mode: VolumeCapability_AccessMode_Mode.SINGLE_NODE_READER_ONLY },
        },
        volumeContext: {
          secretProviderClass: 'app-secrets',
          'csi.storage.k8s.io/pod.name': 'demo-pod',
          'csi.storage.k8s.io/pod.namespace': 'default',
          'csi.storage.k8s.io/pod.uid': 'demo-pod-uid',
          'csi.storage.k8s.io/serviceAccount.name': 'default',
          'csi.storage.k8s.io/ephemeral': 'true',
        },
      },
      new Metadata(),
      { deadline: Date.now() + 30_000 },
      (e) => (e ? reject(e) : resolve()),
    ),
  );
} catch (e) {
  console.error(`publish failed: ${(e as Error).message}`);
  await cleanup(1);
}

console.log(`
Secrets are served from memory at:

  ${target}

Try, in another terminal:

  ls -la ${target}
  cat ${target}/password
  watch -n1 cat ${target}/password ${target}/config/app.json
  grep secrets-store /proc/self/mountinfo
  curl -s http://127.0.0.1:${metricsPort}/metrics | grep -E '^(node_publish|rotation_reconcile|secrets_store)'

The secret rotates every ${rotateMs / 1000}s at the provider; the driver polls every ${Math.max(1, Math.floor(rotateMs / 2000))}s.
Press Ctrl-C to unpublish and clean up.
`);

const timer = setInterval(() => {
  version++;
  void writeSecrets().then(() => console.log(`${new Date().toISOString()} provider now has version ${version}`));
}, rotateMs);
timer.unref();
if (durationMs > 0) setTimeout(() => void cleanup(0), durationMs);
setInterval(() => undefined, 1 << 30); // keep running until a signal
