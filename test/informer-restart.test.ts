// An informer whose watch fails with an error other than 410 is restarted
// (client-node's ListWatch would stay stopped), and is not once its owner
// stopped: the operator's client-node ListWatch with its restart helper, and
// the driver's own informer. Both talk real HTTP; the API
// server is a small stand-in here, because failing a real kube-apiserver's
// watch on demand means restarting it under every other test of the run.

import t from 'tap';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { KubeConfig, ListWatch, Watch, CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import { restartOnError } from '../src/operator/informer-restart.js';
import { KubeHttp } from '../src/kube/client/http.js';
import { Informer } from '../src/kube/client/watch.js';
import type { KubeObject } from '../src/kube/client/resources.js';
import { waitUntil } from './helpers/harness.js';

/**
 * The stand-in API server: lists are empty; each watch adds one ConfigMap and
 * stays open, except the next `failNext` watches, which fail with a 500.
 */
async function standIn(): Promise<{
  server: Server;
  port: number;
  open: ServerResponse[];
  watches: () => number;
  failNext: (n: number) => void;
}> {
  let watches = 0;
  let fail = 1;
  const open: ServerResponse[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.searchParams.get('watch') === 'true') {
      watches++;
      if (fail > 0) {
        fail--;
        res.writeHead(500, { 'content-type': 'application/json' }).end('{"kind":"Status","code":500,"message":"boom"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      const cm = { metadata: { name: `cm-${watches}`, namespace: 'default', resourceVersion: String(10 + watches) } };
      res.write(`${JSON.stringify({ type: 'ADDED', object: cm })}\n`);
      open.push(res);
      return;
    }
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ kind: 'ConfigMapList', metadata: { resourceVersion: '10' }, items: [] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return { server, port, open, watches: () => watches, failNext: (n) => (fail = n) };
}

t.test('a failed watch is restarted with backoff; a stopped owner is left alone', async (t) => {
  const { server, port, open, watches, failNext } = await standIn();
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  const api = kc.makeApiClient(CoreV1Api);
  const informer = new ListWatch<V1ConfigMap>(
    '/api/v1/configmaps',
    new Watch(kc),
    async () => (await api.listConfigMapForAllNamespaces()) as never,
    false,
  );
  let stopped = false;
  const warnings: string[] = [];
  restartOnError(informer, { what: 'test', warn: (_f, m) => warnings.push(m), stopped: () => stopped, baseDelayMs: 50 });
  t.teardown(async () => {
    stopped = true;
    await informer.stop();
    for (const r of open) r.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  await informer.start();
  await waitUntil(() => informer.list().length > 0, 10_000, 'an object after the restart');
  t.equal(watches(), 2, 'the failed watch was started again');
  t.same(warnings, ['test watch failed; restarting it'], 'and the failure was logged once');

  // Once the owner stopped, a failure is not retried.
  stopped = true;
  failNext(1);
  for (const r of open.splice(0)) r.end();
  await new Promise((r) => setTimeout(r, 400));
  const after = watches();
  await new Promise((r) => setTimeout(r, 400));
  t.equal(watches(), after, 'no restart after stop');
});

// The same scenario against the driver's own informer (src/kube/client/watch.ts).
t.test("the driver's informer: a failed watch is restarted with backoff; a stopped one is left alone", async (t) => {
  const { server, port, open, watches, failNext } = await standIn();
  const http = new KubeHttp({
    server: `http://127.0.0.1:${port}`,
    insecureSkipTlsVerify: false,
    token: () => undefined,
    tokenRejected: () => undefined,
  });
  const warnings: Array<{ msg: string; err: unknown }> = [];
  const informer = new Informer<KubeObject>(http, {
    path: '/api/v1/configmaps',
    what: 'test',
    warn: (f, msg) => warnings.push({ msg, err: f.err }),
    baseDelayMs: 50,
  });
  t.teardown(async () => {
    informer.stop();
    for (const r of open) r.destroy();
    http.close();
    await new Promise<void>((r) => server.close(() => r()));
  });
  await informer.start();
  await waitUntil(() => informer.list().length > 0, 10_000, 'an object after the restart');
  t.equal(watches(), 2, 'the failed watch was started again');
  t.same(warnings, [{ msg: 'test watch failed; restarting it', err: 'HTTP 500: boom' }], 'and the failure was logged once');

  // Once stopped, a failure is not retried.
  informer.stop();
  failNext(1);
  for (const r of open.splice(0)) r.end();
  await new Promise((r) => setTimeout(r, 400));
  const after = watches();
  await new Promise((r) => setTimeout(r, 400));
  t.equal(watches(), after, 'no restart after stop');
});
