// The driver's own Kubernetes client: where it finds the API server and its
// credentials, in a pod (the service-account layout, under a temp root) and
// from kubeconfig files with inline data or file references.

import t from 'tap';
import { mkdtemp, mkdir, rm, writeFile, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Tap } from './helpers/harness.js';
import { SERVICE_ACCOUNT_DIR, loadClusterConfig, loadInCluster, loadKubeconfigFile } from '../src/kube/client/config.js';

async function tempDir(t: Tap): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kube-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('in-cluster: service host and port, CA, namespace; the token re-read when it rotates', async (t) => {
  const root = await tempDir(t);
  const sa = join(root, SERVICE_ACCOUNT_DIR);
  await mkdir(sa, { recursive: true });
  await writeFile(join(sa, 'token'), 'token-1\n');
  await writeFile(join(sa, 'ca.crt'), 'CA PEM');
  await writeFile(join(sa, 'namespace'), 'kube-system');
  let now = 1_000_000;
  const cfg = loadInCluster({ root, env: { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }, now: () => now });
  t.equal(cfg.server, 'https://10.0.0.1:443');
  t.equal(cfg.ca?.toString(), 'CA PEM');
  t.equal(cfg.namespace, 'kube-system');
  t.equal(cfg.insecureSkipTlsVerify, false);
  t.equal(cfg.token(), 'token-1');

  await writeFile(join(sa, 'token'), 'token-2\n');
  await utimes(join(sa, 'token'), new Date(), new Date(Date.now() + 5000));
  now += 30_000;
  t.equal(cfg.token(), 'token-1', 'not read again within a minute');
  now += 31_000;
  t.equal(cfg.token(), 'token-2', 'read again after a minute');
  await writeFile(join(sa, 'token'), 'token-3\n');
  cfg.tokenRejected();
  t.equal(cfg.token(), 'token-3', 'read again at once after a 401');

  const v6 = loadInCluster({ root, env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' } });
  t.equal(v6.server, 'https://[fd00::1]:6443');
  t.throws(() => loadInCluster({ root, env: {} }), /KUBERNETES_SERVICE_HOST/);
  t.throws(
    () => loadInCluster({ root: join(root, 'nothing'), env: { KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '1' } }),
    /ENOENT/,
  );
});

t.test('kubeconfig with -data fields, the current context chosen', async (t) => {
  const dir = await tempDir(t);
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const file = join(dir, 'config');
  await writeFile(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'current-context: b',
      'clusters:',
      '- name: one',
      '  cluster: {server: "https://one.example:6443"}',
      '- name: two',
      `  cluster: {server: "https://two.example:6443/", certificate-authority-data: ${b64('CA2')}}`,
      'users:',
      '- name: u1',
      '  user: {token: t1}',
      '- name: u2',
      `  user: {client-certificate-data: ${b64('CERT')}, client-key-data: ${b64('KEY')}}`,
      'contexts:',
      '- name: a',
      '  context: {cluster: one, user: u1}',
      '- name: b',
      '  context: {cluster: two, user: u2, namespace: ns-b}',
      '',
    ].join('\n'),
  );
  const cfg = await loadKubeconfigFile(file);
  t.equal(cfg.server, 'https://two.example:6443');
  t.equal(cfg.ca?.toString(), 'CA2');
  t.equal(cfg.cert?.toString(), 'CERT');
  t.equal(cfg.key?.toString(), 'KEY');
  t.equal(cfg.token(), undefined);
  t.equal(cfg.namespace, 'ns-b');
  t.equal((await loadClusterConfig(file, {})).server, 'https://two.example:6443', '--kubeconfig wins');
  t.equal((await loadClusterConfig(undefined, { KUBECONFIG: `${file}:/nonexistent` })).server, 'https://two.example:6443');
  await t.rejects(loadClusterConfig(undefined, {}), /no Kubernetes configuration/);
});

t.test('kubeconfig with file fields (relative to the kubeconfig), tokenFile, insecure-skip-tls-verify', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'ca.crt'), 'CA-FILE');
  await writeFile(join(dir, 'client.crt'), 'CERT-FILE');
  await writeFile(join(dir, 'client.key'), 'KEY-FILE');
  await writeFile(join(dir, 'tok'), 'from-file\n');
  const file = join(dir, 'config');
  const doc = (user: string, cluster: string): string =>
    [
      'current-context: x',
      'clusters:',
      `- {name: c, cluster: {server: "https://h:1", ${cluster}}}`,
      'users:',
      `- {name: u, user: {${user}}}`,
      'contexts:',
      '- {name: x, context: {cluster: c, user: u}}',
      '',
    ].join('\n');
  await writeFile(file, doc('client-certificate: client.crt, client-key: ' + join(dir, 'client.key'), 'certificate-authority: ca.crt'));
  let cfg = await loadKubeconfigFile(file);
  t.equal(cfg.ca?.toString(), 'CA-FILE');
  t.equal(cfg.cert?.toString(), 'CERT-FILE');
  t.equal(cfg.key?.toString(), 'KEY-FILE');
  t.equal(cfg.insecureSkipTlsVerify, false);

  await writeFile(file, doc('tokenFile: tok', 'insecure-skip-tls-verify: true'));
  cfg = await loadKubeconfigFile(file);
  t.equal(cfg.token(), 'from-file');
  t.equal(cfg.insecureSkipTlsVerify, true);
  t.equal(cfg.ca, undefined);

  await writeFile(file, doc('exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}', 'insecure-skip-tls-verify: true'));
  await t.rejects(loadKubeconfigFile(file), /exec credential plugin/);
  await writeFile(file, doc('auth-provider: {name: gcp}', 'insecure-skip-tls-verify: true'));
  await t.rejects(loadKubeconfigFile(file), /auth-provider plugin/);
});
