// A Mount call over a size limit: the hint must name the side to change. A
// request (attributes, secrets, permission) over the provider's receive limit
// is the provider's to accept, not --max-call-recv-msg-size, which is about
// responses. A real gRPC provider on a unix socket, with small limits.

import t from 'tap';
import { join } from 'node:path';
import { Server, ServerCredentials, status, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { CSIDriverProviderService, type MountRequest, type MountResponse } from '../src/gen/provider/v1alpha1/service.js';
import { ProviderClients } from '../src/provider/client.js';
import { isDriverError } from '../src/errors.js';
import { tempDir, type Tap } from './helpers/harness.js';

const KIB = 1024;

/** A provider answering every Mount with one file of `fileBytes`, accepting requests up to `maxRecv` bytes. */
async function startProvider(
  t: Tap,
  dir: string,
  name: string,
  o: { maxRecv?: number; maxSend?: number; fileBytes: number },
): Promise<void> {
  const server = new Server({
    ...(o.maxRecv ? { 'grpc.max_receive_message_length': o.maxRecv } : {}),
    ...(o.maxSend ? { 'grpc.max_send_message_length': o.maxSend } : {}),
  });
  server.addService(CSIDriverProviderService, {
    version: (_call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<unknown>) => cb(null, {}),
    mount: (_call: ServerUnaryCall<MountRequest, MountResponse>, cb: sendUnaryData<MountResponse>) =>
      cb(null, {
        objectVersion: [{ id: 'a', version: '1' }],
        error: undefined,
        files: [{ path: 'a', mode: 0o644, contents: Buffer.alloc(o.fileBytes, 'x') }],
      }),
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${join(dir, `${name}.sock`)}`, ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())),
  );
  t.teardown(() => server.forceShutdown());
}

function request(attributeBytes: number): MountRequest {
  return {
    attributes: JSON.stringify({ big: 'a'.repeat(attributeBytes) }),
    secrets: '{"clientsecret":"s"}',
    targetPath: '/t',
    permission: '420',
    currentObjectVersion: [],
  };
}

async function mountError(clients: ProviderClients, provider: string, req: MountRequest): Promise<Error> {
  const e = await clients.mount(provider, req, new Date(Date.now() + 10_000)).then(
    () => null,
    (x: unknown) => x,
  );
  if (!isDriverError(e)) throw new Error(`expected a DriverError, got ${String(e)}`);
  return e;
}

t.test('the hint names the side whose limit was exceeded', async (t) => {
  const dir = await tempDir(t as Tap, 'sscsi-size-');
  await startProvider(t as Tap, dir, 'small-recv', { maxRecv: 4 * KIB, fileBytes: 100 });
  await startProvider(t as Tap, dir, 'big-answer', { fileBytes: 64 * KIB });
  await startProvider(t as Tap, dir, 'small-send', { maxSend: 4 * KIB, fileBytes: 64 * KIB });
  const clients = new ProviderClients({ socketDirs: [dir], maxRecvMsgSize: 16 * KIB, alloc: (n) => Buffer.alloc(n) });
  t.teardown(() => clients.close());

  t.ok((await clients.mount('small-recv', request(100), new Date(Date.now() + 10_000))).files.length === 1, 'a small request is served');

  let e = await mountError(clients, 'small-recv', request(8 * KIB));
  t.equal((e as { grpcCode?: number }).grpcCode, status.RESOURCE_EXHAUSTED);
  t.match(e.message, /the request is larger than the provider accepts/, "a request over the provider's limit: the request is too large");
  t.match(e.message, /attributes.*secrets.*permission/);
  t.notMatch(e.message, /max-call-recv-msg-size/, 'not a hint about responses');

  e = await mountError(clients, 'big-answer', request(100));
  t.equal((e as { grpcCode?: number }).grpcCode, status.RESOURCE_EXHAUSTED);
  t.match(
    e.message,
    /response is larger than --max-call-recv-msg-size \(16384 bytes\)/,
    'a response over our limit: --max-call-recv-msg-size',
  );
  t.notMatch(e.message, /request is larger/);

  e = await mountError(clients, 'small-send', request(100));
  t.match(e.message, /larger than the provider's own maximum send message size/, "a response over the provider's own send limit");
  t.notMatch(e.message, /max-call-recv-msg-size|request is larger/);
});

t.test('with equal limits on both sides, a request too large is still the request', async (t) => {
  const dir = await tempDir(t as Tap, 'sscsi-size-');
  await startProvider(t as Tap, dir, 'same-limit', { maxRecv: 16 * KIB, fileBytes: 64 * KIB });
  const clients = new ProviderClients({ socketDirs: [dir], maxRecvMsgSize: 16 * KIB, alloc: (n) => Buffer.alloc(n) });
  t.teardown(() => clients.close());
  let e = await mountError(clients, 'same-limit', request(20 * KIB));
  t.match(e.message, /the request is larger than the provider accepts/);
  t.notMatch(e.message, /max-call-recv-msg-size/);
  e = await mountError(clients, 'same-limit', request(100));
  t.match(e.message, /--max-call-recv-msg-size/, 'and a response too large is the response');
});
