// Our driver against upstream's own e2e provider (sigs.k8s.io/secrets-store-csi-driver/test/e2eprovider
// at v1.6.0, built by test/peers/e2e-provider/build.sh), checked the way
// upstream's e2e suite (test/bats/e2e-provider.bats) checks it: `foo` reads
// `secret`, `fookey` the PEM block, tokens for every configured audience
// reach the provider, and after its rotation switch is turned on the files
// read `rotated` (object versions v1 → v2). The provider rejects any
// :authority but `localhost`, so every successful mount also checks that.
//
// The provider's HTTP switch listens on :8080 on all interfaces (hard-coded),
// so it runs in a network namespace of its own (loopback only) and the test
// reaches it with nsenter; only where that is impossible does it fall back to
// the host's :8080, which must then be free.

import t from 'tap';
import { spawn } from 'node:child_process';
import { lstat, readlink, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { credentials, Metadata, Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import {
  CSIDriverProviderClient,
  CSIDriverProviderService,
  type CSIDriverProviderServer,
  type MountRequest,
  type MountResponse,
  type ObjectVersion,
} from '../src/gen/provider/v1alpha1/service.js';
import { Harness, NODE, Proc, canary, execFileP, grpcCode, mountsUnder, sleep, waitUntil, type Tap } from './helpers/harness.js';
import { checkPeer } from './helpers/peers.js';
import { skipFile } from './helpers/skip.js';

const BUILD_SCRIPT = 'test/peers/e2e-provider/build.sh';
const PEM = '-----BEGIN PUBLIC KEY-----\nThis is mock key\n-----END PUBLIC KEY-----';

const peer = await checkPeer(BUILD_SCRIPT, "upstream's e2e provider");
if (!peer.built) skipFile('SSCSI_REQUIRE_E2E_PROVIDER', peer.why);
const bin = peer.stdout.trim();

async function hasCommand(cmd: string): Promise<boolean> {
  return execFileP('sh', ['-c', `command -v ${cmd}`]).then(
    () => true,
    () => false,
  );
}

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer()
      .once('error', () => res(false))
      .listen(port, () => s.close(() => res(true)));
  });
}

interface E2EProvider {
  proc: Proc;
  /** GET on its HTTP switch (`/rotation?rotated=true`, `/validate-token-requests?audience=a,b`). */
  http(path: string): Promise<void>;
}

async function startE2EProvider(t: Tap, socket: string): Promise<E2EProvider> {
  const isolated = (await hasCommand('unshare')) && (await hasCommand('ip'));
  let proc: Proc;
  if (isolated) {
    // unshare and sh exec in place, so the child's pid is the provider's, in its own netns.
    proc = new Proc(
      spawn('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', bin, `--endpoint=unix://${socket}`], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
  } else {
    if (!(await portFree(8080)))
      throw new Error(
        'the e2e provider listens on :8080 (hard-coded), which is in use, and no network namespace is possible (unshare and ip are needed)',
      );
    proc = new Proc(spawn(bin, [`--endpoint=unix://${socket}`], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }
  t.teardown(() => proc.stop());
  await proc.waitFor(/Listening for connections/);
  const http = async (path: string): Promise<void> => {
    const url = `http://127.0.0.1:8080${path}`;
    // Its HTTP server starts just after the gRPC one: retry briefly.
    for (let i = 0; ; i++) {
      try {
        if (isolated) {
          await execFileP('nsenter', [
            `--target=${proc.child.pid}`,
            '--net',
            '--',
            NODE,
            '-e',
            'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), (e) => { console.error(String(e)); process.exit(2); })',
            url,
          ]);
        } else {
          const r = await fetch(url);
          if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
        }
        return;
      } catch (e) {
        if (i >= 40) throw e;
        await sleep(100);
      }
    }
  };
  return { proc, http };
}

interface Relayed {
  req: MountRequest;
  authority: string;
  res?: MountResponse;
  err?: string;
}

/**
 * A transparent relay in front of the e2e provider, so the object versions
 * (which the provider does not log) can be seen: it forwards every Mount with
 * the :authority the driver sent, and records request and response.
 */
async function relay(t: Tap, socket: string, upstream: string): Promise<Relayed[]> {
  const seen: Relayed[] = [];
  const clients = new Map<string, InstanceType<typeof CSIDriverProviderClient>>();
  const client = (authority: string) => {
    let c = clients.get(authority);
    if (!c) {
      c = new CSIDriverProviderClient(`unix:${upstream}`, credentials.createInsecure(), { 'grpc.default_authority': authority });
      clients.set(authority, c);
    }
    return c;
  };
  const impl: CSIDriverProviderServer = {
    version: (call, cb) => client(call.getHost()).version(call.request, cb),
    mount: (call, cb) => {
      const rec: Relayed = { req: call.request, authority: call.getHost() };
      seen.push(rec);
      client(rec.authority).mount(call.request, new Metadata(), (err: ServiceError | null, res?: MountResponse) => {
        if (err) rec.err = err.details;
        else rec.res = res;
        cb(err, res);
      });
    },
  };
  const server = new Server();
  server.addService(CSIDriverProviderService, impl);
  await new Promise<void>((res, rej) =>
    server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())),
  );
  t.teardown(async () => {
    for (const c of clients.values()) c.close();
    await new Promise<void>((r) => server.tryShutdown(() => r()));
  });
  return seen;
}

/** upstream's test/bats/tests/e2e_provider/e2e_provider_v1_secretproviderclass.yaml, with its default values. */
async function writeSpc(h: Harness, name: string, provider: string): Promise<void> {
  await writeFile(
    join(h.spcDir, `${name}.yaml`),
    [
      'apiVersion: secrets-store.csi.x-k8s.io/v1',
      'kind: SecretProviderClass',
      'metadata:',
      `  name: ${name}`,
      'spec:',
      `  provider: ${provider}`,
      '  parameters:',
      '    objects: |',
      '      array:',
      '        - |',
      '          objectName: foo',
      '          objectVersion: v1',
      '        - |',
      '          objectName: fookey',
      '          objectVersion: v1',
      '',
    ].join('\n'),
  );
}

const versions = (v: readonly ObjectVersion[] | undefined) => (v ?? []).map((o) => `${o.id}=${o.version}`).sort();

t.test('upstream e2e provider: mount, tokens, rotation v1 → v2, unmount', async (t) => {
  const h = await Harness.start(t as Tap, {
    startProvider: false,
    providerName: 'e2e-provider',
    driverArgs: ['--rotation-poll-interval=1s'],
  });
  const e2e = await startE2EProvider(t as Tap, join(h.providerDir, 'e2e-provider.sock'));
  const relayed = await relay(t as Tap, join(h.providerDir, 'e2e-relay.sock'), join(h.providerDir, 'e2e-provider.sock'));
  await writeSpc(h, 'e2e-provider', 'e2e-provider');
  await writeSpc(h, 'e2e-provider-relay', 'e2e-relay');

  // As upstream's suite: the provider checks that every audience of the
  // CSIDriver's tokenRequests arrived in csi.storage.k8s.io/serviceAccount.tokens.
  await e2e.http(`/validate-token-requests?audience=${encodeURIComponent('aud1,aud2')}`);
  const token = canary('e2e-token');
  const tokens = JSON.stringify({
    aud1: { token, expirationTimestamp: '2030-01-01T00:00:00Z' },
    aud2: { token: `${token}-2`, expirationTimestamp: '2030-01-01T00:00:00Z' },
  });
  const request = (target: string, spc: string, uid: string, withTokens = true) => {
    const r = h.publishRequest(target, spc);
    r.volumeContext['csi.storage.k8s.io/pod.uid'] = uid;
    if (withTokens) r.volumeContext['csi.storage.k8s.io/serviceAccount.tokens'] = tokens;
    return r;
  };

  // Without the tokens the provider refuses; its plain Go error reaches the caller as Unknown.
  const direct = h.target('e2e-direct');
  const e = await h.publish(request(direct, 'e2e-provider', 'uid-e2e-direct', false)).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.UNKNOWN, 'a provider error without a gRPC code: Unknown');
  t.equal(
    (e as ServiceError).details,
    'failed to mount secrets store objects for pod default/pod-a, err: rpc error: code = Unknown desc = failed to validate token, error: service account tokens is not set',
    "upstream's message around the provider's",
  );
  t.same(await mountsUnder(direct), [], 'nothing mounted');

  await h.publish(request(direct, 'e2e-provider', 'uid-e2e-direct'));
  const viaRelay = h.target('e2e-relay');
  await h.publish(request(viaRelay, 'e2e-provider-relay', 'uid-e2e-relay'));
  t.notMatch(e2e.proc.out, /want authority localhost/, 'the provider accepted the :authority of every call');
  t.equal(relayed[0]?.authority, 'localhost', ':authority is localhost');

  for (const target of [direct, viaRelay]) {
    t.equal(await readFile(join(target, 'foo'), 'utf8'), 'secret', 'foo reads "secret"');
    t.equal(await readFile(join(target, 'fookey'), 'utf8'), PEM, 'fookey reads the PEM block');
    t.ok((await lstat(join(target, 'foo'))).isSymbolicLink(), "foo is a top-level symlink, as upstream's atomic writer makes");
    t.equal(await readlink(join(target, 'foo')), '..data/foo');
    // The provider sends no mode: upstream writes such files with mode 0000 (root still reads them).
    t.equal((await stat(join(target, 'foo'))).mode & 0o7777, 0, 'mode 0 as the provider sent it');
  }
  t.same(versions(relayed[0]?.res?.objectVersion), ['secret/foo=v1', 'secret/fookey=v1'], 'first mount: v1');
  t.same(relayed[0]?.req.currentObjectVersion, [], 'first mount sends no current versions');

  // Rotation is off in the provider: polls go on and keep v1.
  const before = relayed.length;
  const answered = () => relayed.filter((r) => r.res || r.err);
  await waitUntil(() => answered().length >= before + 2, 10_000, 'two answered polls');
  const poll = answered()[answered().length - 1]!;
  t.same(versions(poll.req.currentObjectVersion), ['secret/foo=v1', 'secret/fookey=v1'], 'polls send the served versions');
  t.same(versions(poll.res?.objectVersion), ['secret/foo=v1', 'secret/fookey=v1'], 'still v1 while rotation is off');
  t.equal(await readFile(join(direct, 'foo'), 'utf8'), 'secret', 'no change while rotation is off');

  // Upstream's rotation test: turn rotation on, the files read "rotated".
  await e2e.http('/rotation?rotated=true');
  const turnedOn = relayed.length;
  for (const target of [direct, viaRelay]) {
    await waitUntil(async () => (await readFile(join(target, 'foo'), 'utf8')) === 'rotated', 10_000, `${target} foo rotated`);
    t.equal(await readFile(join(target, 'fookey'), 'utf8'), 'rotated', 'fookey rotated too');
  }
  const rotatedAt = relayed.findIndex(
    (r, i) => i >= turnedOn && versions(r.res?.objectVersion).join() === 'secret/foo=v2,secret/fookey=v2',
  );
  t.ok(rotatedAt >= turnedOn, 'the provider answered v2');
  await waitUntil(() => relayed.length > rotatedAt + 1, 10_000, 'a poll after the rotation');
  t.same(
    versions(relayed[rotatedAt + 1]!.req.currentObjectVersion),
    ['secret/foo=v2', 'secret/fookey=v2'],
    'the next poll sends v2 as the served versions',
  );
  t.notOk(
    relayed.some((r) => r.err),
    'no relayed call failed',
  );

  await e2e.http('/rotation?rotated=false');
  await h.unpublish(direct);
  await h.unpublish(viaRelay);
  t.same(await mountsUnder(join(h.dir, 'pods')), [], 'unmounted');
  t.notMatch(h.driver.out, /failed to clean and unmount target path/, "no unmount error in the driver's logs");
  t.notOk(h.driver.out.includes(token), "the token is not in the driver's logs");
});
