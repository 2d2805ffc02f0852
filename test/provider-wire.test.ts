// What the driver sends a provider, byte for byte, checked by a provider
// served from this test process (a real gRPC server on a unix socket) that
// records every MountRequest. Also: secrets and tokens never reach the logs
// or the disk (canary values, grepped for).

import t from 'tap';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { CSIDriverProviderService, type CSIDriverProviderServer, type MountRequest } from '../src/gen/provider/v1alpha1/service.js';
import { Harness, canary, grepDisk, waitUntil, ROOT, type Tap } from './helpers/harness.js';

interface Recorded {
  req: MountRequest;
  authority: string;
}

async function recordingProvider(t: Tap, socket: string, contents: () => string): Promise<Recorded[]> {
  const seen: Recorded[] = [];
  const server = new Server();
  const impl: CSIDriverProviderServer = {
    version: (_c, cb) => cb(null, { version: 'v1alpha1', runtimeName: 'recorder', runtimeVersion: 'v0.0.1' }),
    mount: (call, cb) => {
      seen.push({ req: call.request, authority: call.getHost() });
      const c = contents();
      cb(null, {
        objectVersion: [
          { id: 'secret/zeta', version: c },
          { id: 'secret/alpha', version: '1' },
        ],
        files: [{ path: 'value', mode: 0o440, contents: Buffer.from(c) }],
      });
    },
  };
  server.addService(CSIDriverProviderService, impl);
  await new Promise<void>((res, rej) =>
    server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())),
  );
  t.teardown(() => new Promise<void>((r) => server.tryShutdown(() => r())));
  return seen;
}

t.test('MountRequest bytes, secrets and tokens, and no secret in logs or on disk', async (t) => {
  const h = await Harness.start(t as Tap, {
    startProvider: false,
    providerName: 'recorder',
    driverArgs: ['--rotation-poll-interval=400ms'],
  });
  let current = canary('content');
  const seen = await recordingProvider(t as Tap, join(h.providerDir, 'recorder.sock'), () => current);
  const { writeFile } = await import('node:fs/promises');
  await writeFile(
    join(h.spcDir, 'spc.yaml'),
    [
      'apiVersion: secrets-store.csi.x-k8s.io/v1',
      'kind: SecretProviderClass',
      'metadata: {name: wire, namespace: team-a}',
      'spec:',
      '  provider: recorder',
      '  parameters:',
      '    objects: "- objectName: <db&pw>"',
      '    region: eu-west-1',
      '    secretProviderClass: from-spc',
      '    "\u00e9": "x\u2028y"',
    ].join('\n'),
  );

  const token = canary('token');
  const clientSecret = canary('clientsecret');
  const tokens = JSON.stringify({ 'api://AzureADTokenExchange': { token, expirationTimestamp: '2026-11-28T03:00:00Z' } });
  const target = h.target('wire');
  const req = h.publishRequest(target, 'wire', {
    volumeContext: {
      secretProviderClass: 'wire',
      'csi.storage.k8s.io/pod.name': 'web-0',
      'csi.storage.k8s.io/pod.namespace': 'team-a',
      'csi.storage.k8s.io/pod.uid': 'uid-9',
      'csi.storage.k8s.io/serviceAccount.name': 'web',
      'csi.storage.k8s.io/ephemeral': 'true',
      'csi.storage.k8s.io/serviceAccount.tokens': tokens,
      region: 'us-east-1',
    },
    secrets: { clientid: 'app-id', clientsecret: clientSecret },
  });
  await h.publish(req);
  t.equal(seen.length, 1);
  const first = seen[0]!;
  t.equal(first.authority, 'localhost', ':authority is localhost');
  const expected =
    '{' +
    [
      '"csi.storage.k8s.io/ephemeral":"true"',
      '"csi.storage.k8s.io/pod.name":"web-0"',
      '"csi.storage.k8s.io/pod.namespace":"team-a"',
      '"csi.storage.k8s.io/pod.uid":"uid-9"',
      '"csi.storage.k8s.io/serviceAccount.name":"web"',
      `"csi.storage.k8s.io/serviceAccount.tokens":${JSON.stringify(tokens).replace(/&/g, '\\u0026')}`,
      '"objects":"- objectName: \\u003cdb\\u0026pw\\u003e"',
      '"region":"us-east-1"',
      '"secretProviderClass":"wire"',
      '"\u00e9":"x\\u2028y"',
    ].join(',') +
    '}';
  t.equal(first.req.attributes, expected, 'attributes: SPC parameters, overridden by volume_context, tokens; Go json.Marshal bytes');
  t.equal(first.req.secrets, `{"clientid":"app-id","clientsecret":"${clientSecret}"}`, 'secrets: nodePublishSecretRef data');
  t.equal(first.req.permission, '420');
  t.equal(first.req.targetPath, target);
  t.same(first.req.currentObjectVersion, [], 'no versions on the first mount');
  t.equal(await readFile(`${target}/value`, 'utf8'), current);

  // kubelet's republish refreshes secrets and tokens for the next poll.
  const token2 = canary('token2');
  const tokens2 = JSON.stringify({ aud: { token: token2, expirationTimestamp: '2026-11-28T04:00:00Z' } });
  await h.publish({ ...req, secrets: { 'csi.storage.k8s.io/serviceAccount.tokens': tokens2 } });
  const before = seen.length;
  const firstContent = current;
  current = canary('content2');
  await waitUntil(() => seen.length > before, 10_000, 'a poll');
  const poll = seen[seen.length - 1]!;
  t.same(
    poll.req.currentObjectVersion,
    [
      { id: 'secret/alpha', version: '1' },
      { id: 'secret/zeta', version: firstContent },
    ],
    'polls send the versions currently served, sorted by id',
  );
  t.equal(
    poll.req.secrets,
    JSON.stringify({ 'csi.storage.k8s.io/serviceAccount.tokens': tokens2 }).replace(/&/g, '\\u0026'),
    'the refreshed publish secrets are sent',
  );
  t.match(
    poll.req.attributes,
    `"csi.storage.k8s.io/serviceAccount.tokens":${JSON.stringify(tokens2)}`,
    'tokens from req.secrets are preferred over volume_context',
  );
  await waitUntil(async () => (await readFile(`${target}/value`, 'utf8')) === current, 10_000, 'the rotated content');

  // Nothing secret in the driver's logs, on disk under /tmp, or in the repository.
  for (const c of [token, token2, clientSecret, current]) {
    t.notOk(h.driver.out.includes(c), `driver logs do not contain ${c.split('-')[1]}`);
    t.same(await grepDisk('/tmp', c), [], `no file under /tmp contains ${c.split('-')[1]}`);
    t.same(await grepDisk(ROOT, c), [], `no file in the repository contains ${c.split('-')[1]}`);
  }
  t.ok(h.driver.out.length > 200, 'the driver did log');
  await h.unpublish(target);
});
