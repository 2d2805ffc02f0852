// A real Kubernetes control plane on loopback: etcd, kube-apiserver and
// kube-controller-manager (garbage collector, service accounts, namespaces)
// built by test/control-plane/build.sh. The tests share one per run
// (test/helpers/control-plane.ts); the bench starts its own. No kubelet: the
// callers create Pod objects and play the kubelet's part against a driver's
// CSI socket.

import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { freePort } from './net.js';
import { execFileP as run } from './run.js';
import { sleep, waitUntil } from './wait.js';

export const ADMIN_TOKEN_USER = 'admin';

export interface ControlPlane {
  readonly server: string;
  readonly caFile: string;
  readonly adminToken: string;
  readonly adminKubeconfig: string;
  readonly dir: string;
  readonly pids: number[];
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class ControlPlaneUnavailable extends Error {}

/**
 * The directory of the built binaries (`root`: the repository). Building
 * takes minutes, so tests and the bench never build: .ci/run runs
 * test/control-plane/build.sh first (so can you).
 */
export async function controlPlaneBinaries(root: string): Promise<string> {
  try {
    const { stdout } = await run('bash', [join(root, 'test/control-plane/build.sh'), '--check']);
    return stdout.trim().split('\n').pop()!;
  } catch {
    throw new ControlPlaneUnavailable(
      'the control-plane binaries are not built: run test/control-plane/build.sh (needs Go; .ci/run does it)',
    );
  }
}

function readyz(url: string, ca: string): Promise<boolean> {
  return new Promise((res) => {
    const req = httpsGet(`${url}/readyz`, { ca: readFileSync(ca), timeout: 5000 }, (r) => {
      r.resume();
      res(r.statusCode === 200);
    });
    req.on('error', () => res(false));
    req.on('timeout', () => {
      req.destroy();
      res(false);
    });
  });
}

function waitReady(url: string, ca: string, ms: number): Promise<void> {
  return waitUntil(() => readyz(url, ca), ms, `kube-apiserver to be ready at ${url}`, 300);
}

async function pki(dir: string): Promise<void> {
  const o = (args: string[]) => run('openssl', args, { cwd: dir });
  await o([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '3650',
    '-subj',
    '/CN=sscsi-test-ca',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
  ]);
  await o(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=kube-apiserver', '-keyout', 'apiserver.key', '-out', 'apiserver.csr']);
  await writeFile(
    join(dir, 'apiserver.ext'),
    'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n',
  );
  await o([
    'x509',
    '-req',
    '-in',
    'apiserver.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '3650',
    '-extfile',
    'apiserver.ext',
    '-out',
    'apiserver.crt',
  ]);
  await o(['genrsa', '-out', 'sa.key', '2048']);
  await o(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
}

export function kubeconfigYaml(server: string, caFile: string, token: string, user: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'current-context: test',
    'clusters:',
    `- name: test`,
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority: ${caFile}`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: test',
    '  context: {cluster: test, user: ' + user + '}',
    '',
  ].join('\n');
}

/**
 * Starts etcd, kube-apiserver and kube-controller-manager with their data and
 * PKI in `dir` (created; on tmpfs, so synced Secrets never touch a disk).
 * `root` is the repository, for the build script; `opts.controllers` are
 * kube-controller-manager's (default: garbage collector, service accounts,
 * namespaces). `opts.serviceAccountAdmission` keeps the ServiceAccount
 * admission plugin (off by default: the suite's pods need no service account
 * to exist; pods that read the API with their own token need it). Stop it with
 * stopControlPlaneAt.
 */
export async function startControlPlane(
  root: string,
  dir: string,
  opts: { controllers?: readonly string[]; serviceAccountAdmission?: boolean } = {},
): Promise<ControlPlane> {
  const bin = await controlPlaneBinaries(root);
  await mkdir(join(dir, 'etcd'), { recursive: true, mode: 0o700 });
  await pki(dir);
  const adminToken = `admin-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  await writeFile(join(dir, 'tokens.csv'), `${adminToken},${ADMIN_TOKEN_USER},admin,"system:masters"\n`, { mode: 0o600 });
  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  const logFd = openSync(join(dir, 'control-plane.log'), 'a');
  const spawnD = (cmd: string, args: string[]) => {
    const c = spawn(join(bin, cmd), args, { detached: true, stdio: ['ignore', logFd, logFd] });
    c.unref();
    return c.pid!;
  };
  const etcd = spawnD('etcd', [
    `--data-dir=${join(dir, 'etcd')}`,
    '--name=default',
    `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
    '--unsafe-no-fsync',
    '--log-level=warn',
  ]);
  const server = `https://127.0.0.1:${apiPort}`;
  const ca = join(dir, 'ca.crt');
  const api = spawnD('kube-apiserver', [
    `--etcd-servers=http://127.0.0.1:${etcdClient}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${apiPort}`,
    `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
    `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
    `--client-ca-file=${ca}`,
    `--token-auth-file=${join(dir, 'tokens.csv')}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
    '--authorization-mode=RBAC',
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    ...(opts.serviceAccountAdmission ? [] : ['--disable-admission-plugins=ServiceAccount']),
    '--v=0',
  ]);
  closeSync(logFd);
  const pids = [etcd, api];
  const adminKubeconfig = join(dir, 'admin.kubeconfig');
  await writeFile(adminKubeconfig, kubeconfigYaml(server, ca, adminToken, ADMIN_TOKEN_USER), { mode: 0o600 });
  try {
    await waitReady(server, ca, 90_000);
  } catch (e) {
    for (const p of pids)
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    throw new Error(`${(e as Error).message}; log tail:\n${(await readFile(join(dir, 'control-plane.log'), 'utf8')).slice(-3000)}`, {
      cause: e,
    });
  }
  const kcmLog = openSync(join(dir, 'control-plane.log'), 'a');
  const kcm = spawn(
    join(bin, 'kube-controller-manager'),
    [
      `--kubeconfig=${adminKubeconfig}`,
      `--authentication-kubeconfig=${adminKubeconfig}`,
      `--authorization-kubeconfig=${adminKubeconfig}`,
      '--leader-elect=false',
      `--controllers=${(opts.controllers ?? ['garbagecollector', 'serviceaccount', 'namespace']).join(',')}`,
      '--secure-port=0',
      `--root-ca-file=${ca}`,
      `--service-account-private-key-file=${join(dir, 'sa.key')}`,
      '--use-service-account-credentials=false',
      '--v=0',
    ],
    { detached: true, stdio: ['ignore', kcmLog, kcmLog] },
  );
  kcm.unref();
  closeSync(kcmLog);
  pids.push(kcm.pid!);
  return { server, caFile: ca, adminToken, adminKubeconfig, dir, pids };
}

/** SIGTERM (newest first), SIGKILL after 10 s. */
export async function stopPids(pids: number[]): Promise<void> {
  for (const p of [...pids].reverse()) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  const end = Date.now() + 10_000;
  while (pids.some(alive) && Date.now() < end) await sleep(100);
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Stops a control plane started with startControlPlane and removes its directory. */
export async function stopControlPlaneAt(cp: ControlPlane): Promise<void> {
  await stopPids(cp.pids);
  await run('rm', ['-rf', cp.dir]);
}
