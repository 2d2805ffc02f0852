// The driver's list+watch informer against a stand-in API server: it watches
// from the list's resourceVersion with bookmarks, follows the events in its
// cache and handlers, lists again on 410 Gone (as a watch event or as the
// HTTP status), and resumes from its last resourceVersion when a stream ends.

import t from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { KubeHttp } from '../src/kube/client/http.js';
import { Informer } from '../src/kube/client/watch.js';
import type { KubeObject } from '../src/kube/client/resources.js';
import { waitUntil } from './helpers/harness.js';

const obj = (name: string, rv: string): KubeObject => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });
const line = (type: string, object: unknown): string => `${JSON.stringify({ type, object })}\n`;

t.test('410 lists again; a stream that ends is resumed from the last resourceVersion', async (t) => {
  const lists: Array<{ rv: string; items: KubeObject[] }> = [
    { rv: '10', items: [obj('a', '5'), obj('b', '6')] },
    { rv: '20', items: [obj('a', '11'), obj('c', '13')] },
    { rv: '30', items: [obj('c', '13')] },
  ];
  const requests: string[] = [];
  let watches = 0;
  const open: ServerResponse[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const q = url.searchParams;
    if (q.get('watch') !== 'true') {
      requests.push(`list ${q.get('labelSelector')}`);
      const l = lists.shift()!;
      res.writeHead(200).end(JSON.stringify({ metadata: { resourceVersion: l.rv }, items: l.items }));
      return;
    }
    watches++;
    requests.push(`watch rv=${q.get('resourceVersion')} bookmarks=${q.get('allowWatchBookmarks')} ${q.get('labelSelector')}`);
    if (watches === 1) {
      res.writeHead(200);
      res.write(line('MODIFIED', obj('a', '11')));
      res.write(line('BOOKMARK', { metadata: { resourceVersion: '12' } }));
      res.end(line('ERROR', { kind: 'Status', code: 410, message: 'too old resource version: 12 (15)' }));
    } else if (watches === 2) {
      res.writeHead(410).end('{"kind":"Status","code":410,"message":"gone"}');
    } else if (watches === 3) {
      res.writeHead(200);
      res.write(line('ADDED', obj('d', '31')));
      res.end(line('DELETED', obj('c', '32')));
    } else {
      res.writeHead(200);
      open.push(res);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const http = new KubeHttp({
    server: `http://127.0.0.1:${port}`,
    insecureSkipTlsVerify: false,
    token: () => 'tok',
    tokenRejected: () => undefined,
  });
  const seen: string[] = [];
  const warnings: string[] = [];
  const informer = new Informer<KubeObject>(http, {
    path: '/apis/x/v1/things',
    labelSelector: 'k=v',
    what: 'things',
    warn: (_f, m) => warnings.push(m),
    baseDelayMs: 20,
  });
  for (const ev of ['add', 'update', 'delete'] as const)
    informer.on(ev, (o) => seen.push(`${ev} ${o.metadata?.name}@${o.metadata?.resourceVersion}`));
  t.teardown(async () => {
    informer.stop();
    for (const r of open) r.destroy();
    http.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  await informer.start();
  t.same(seen.splice(0), ['add a@5', 'add b@6'], 'the list fills the cache');
  await waitUntil(() => watches >= 4, 10_000, 'the fourth watch');
  t.same(requests, [
    'list k=v',
    'watch rv=10 bookmarks=true k=v',
    'list k=v',
    'watch rv=20 bookmarks=true k=v',
    'list k=v',
    'watch rv=30 bookmarks=true k=v',
    'watch rv=32 bookmarks=true k=v',
  ]);
  t.same(seen, [
    'update a@11',
    // 410 as a watch event: listed again; c is new, b is gone, a unchanged
    'add c@13',
    'delete b@6',
    // 410 as the HTTP status: listed again; a is gone
    'delete a@11',
    'add d@31',
    'delete c@32',
  ]);
  t.same(
    informer.list().map((o) => o.metadata?.name),
    ['d'],
  );
  t.equal(informer.get('d', 'ns')?.metadata?.resourceVersion, '31');
  t.equal(informer.get('d', 'other'), undefined);
  t.same(warnings, [], 'neither 410 nor the end of a stream is a failure');
});

t.test('a first list that fails rejects start()', async (t) => {
  const server = createServer((_req, res) => res.writeHead(403).end('{"kind":"Status","code":403,"message":"forbidden: no"}'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const http = new KubeHttp({
    server: `http://127.0.0.1:${port}`,
    insecureSkipTlsVerify: false,
    token: () => undefined,
    tokenRejected: () => undefined,
  });
  t.teardown(async () => {
    http.close();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const informer = new Informer<KubeObject>(http, { path: '/api/v1/pods', what: 'pods', warn: () => undefined });
  await t.rejects(informer.start(), { status: 403, message: 'HTTP 403: forbidden: no' });
  informer.stop();
});

t.test('a first list the server cannot answer yet (429, 5xx) is retried; one it refuses (403) rejects', async (t) => {
  const answers = [429, 503, 200];
  let lists = 0;
  const open: ServerResponse[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    if (q.get('watch') === 'true') {
      res.writeHead(200);
      open.push(res);
      return;
    }
    lists++;
    const code = req.url?.startsWith('/forbidden') ? 403 : (answers.shift() ?? 200);
    if (code !== 200) {
      res.writeHead(code).end(JSON.stringify({ kind: 'Status', code, message: code === 429 ? 'storage is (re)initializing' : 'nope' }));
      return;
    }
    res.writeHead(200).end(JSON.stringify({ metadata: { resourceVersion: '1' }, items: [obj('a', '1')] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const http = new KubeHttp({
    server: `http://127.0.0.1:${port}`,
    insecureSkipTlsVerify: false,
    token: () => 'tok',
    tokenRejected: () => undefined,
  });
  const warnings: string[] = [];
  const make = (path: string): Informer<KubeObject> =>
    new Informer<KubeObject>(http, { path, what: 'things', warn: (_f, m) => warnings.push(m), baseDelayMs: 20 });
  const ok = make('/apis/x/v1/things');
  const refused = make('/forbidden/x/v1/things');
  t.teardown(async () => {
    ok.stop();
    refused.stop();
    for (const r of open) r.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  await ok.start();
  t.equal(lists, 3, 'listed until the server could answer');
  t.same(
    ok.list().map((o) => o.metadata?.name),
    ['a'],
    'and synced',
  );
  t.same(warnings, ['things list failed; retrying', 'things list failed; retrying'], 'each retry logged');
  await t.rejects(refused.start(), /HTTP 403/, 'a refused list rejects at once');
});
