// The driver's API client over TLS: it trusts the configured CA, presents its
// client certificate, sends the bearer token, and turns a failure into an
// ApiError whose status and Status message apiStatus/apiErrorText report; a
// 401 makes it read the token again.

import t from 'tap';
import { createServer } from 'node:https';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { execFileP } from './helpers/harness.js';
import { KubeHttp } from '../src/kube/client/http.js';
import { CoreClient } from '../src/kube/client/resources.js';
import { apiErrorText, apiStatus } from '../src/kube/api.js';

async function pki(dir: string): Promise<Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', Buffer>> {
  const o = (args: string[]): Promise<unknown> => execFileP('openssl', args, { cwd: dir });
  await o(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=test-ca']);
  for (const [name, ext] of [
    ['server', 'subjectAltName=IP:127.0.0.1'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    await o(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    await writeExt(dir, name, ext);
    await o([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
    ]);
  }
  const r = (f: string): Promise<Buffer> => readFile(join(dir, f));
  return {
    ca: await r('ca.crt'),
    serverCert: await r('server.crt'),
    serverKey: await r('server.key'),
    clientCert: await r('client.crt'),
    clientKey: await r('client.key'),
  };
}

async function writeExt(dir: string, name: string, ext: string): Promise<void> {
  await writeFile(join(dir, `${name}.ext`), `${ext}\n`);
}

t.test('TLS with a client certificate and a token; typed errors; 401 re-reads the token', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kube-http-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const k = await pki(dir);
  const seen: Array<{ method: string; url: string; auth: string; client: string; body: string }> = [];
  const server = createServer(
    { key: k.serverKey, cert: k.serverCert, ca: k.ca, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const client = String((req.socket as TLSSocket).getPeerCertificate().subject?.CN ?? '');
        seen.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization ?? '', client, body });
        if (req.url === '/api/v1/namespaces/ns/pods/p1') res.writeHead(200).end('{"metadata":{"name":"p1","uid":"u1"}}');
        else if (req.url === '/api/v1/namespaces/ns/secrets')
          res.writeHead(401).end('{"kind":"Status","code":401,"message":"Unauthorized"}');
        else res.writeHead(404).end('{"kind":"Status","code":404,"message":"pods \\"p2\\" not found"}');
      });
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  let tokens = 0;
  let rejected = 0;
  const http = new KubeHttp({
    server: `https://127.0.0.1:${port}`,
    ca: k.ca,
    cert: k.clientCert,
    key: k.clientKey,
    insecureSkipTlsVerify: false,
    token: () => `tok-${++tokens}`,
    tokenRejected: () => rejected++,
  });
  t.teardown(async () => {
    http.close();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const core = new CoreClient(http);

  const pod = await core.getPod('ns', 'p1');
  t.equal(pod.metadata?.uid, 'u1');
  t.match(seen[0], { method: 'GET', url: '/api/v1/namespaces/ns/pods/p1', auth: 'Bearer tok-1', client: 'client' });

  const missing = await core.getPod('ns', 'p2').catch((e: unknown) => e);
  t.equal(apiStatus(missing), 404);
  t.equal(apiErrorText(missing), 'HTTP 404: pods "p2" not found');

  const denied = await core.createSecret('ns', { metadata: { name: 's' }, type: 'Opaque', data: { k: 'dg==' } }).catch((e: unknown) => e);
  t.equal(apiStatus(denied), 401);
  t.equal(rejected, 1, 'a 401 makes the token be read again');
  t.same(JSON.parse(seen[2]!.body), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, type: 'Opaque', data: { k: 'dg==' } });
  t.equal(apiStatus(new Error('x')), undefined);
  t.equal(apiErrorText(new Error('connect ECONNREFUSED')), 'connect ECONNREFUSED');

  // Without the CA the server is not trusted.
  const untrusted = new KubeHttp({
    server: `https://127.0.0.1:${port}`,
    insecureSkipTlsVerify: false,
    token: () => undefined,
    tokenRejected: () => undefined,
  });
  t.teardown(() => untrusted.close());
  await t.rejects(new CoreClient(untrusted).getPod('ns', 'p1'), /self[- ]signed|unable to verify|certificate/i);
});
