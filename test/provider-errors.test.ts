// Every way a publish can fail before anything is served: SecretProviderClass
// problems, provider problems, and every rule a provider's answer must pass.
// Each must give upstream's message, a fitting gRPC code, mount nothing, and
// leave an already served volume exactly as it was.

import t from 'tap';
import { readFile } from 'node:fs/promises';
import { status } from '@grpc/grpc-js';
import { Harness, freePort, grpcCode, mountsUnder, sleep, type Tap, type SourceSpec } from './helpers/harness.js';

async function metricsText(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

t.test('SecretProviderClass and provider lookup errors', async (t) => {
  const port = await freePort();
  const h = await Harness.start(t as Tap, { driverArgs: [`--metrics-addr=127.0.0.1:${port}`] });
  await h.source('s.json', { files: [{ path: 'a', contents: 'x' }] });
  const target = h.target('lookup');

  let e = await h.publish(h.publishRequest(target, 'missing')).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.NOT_FOUND);
  t.match(
    (e as Error).message,
    'failed to get secretproviderclass default/missing, error: secretproviderclasses.secrets-store.csi.x-k8s.io "missing" not found',
  );

  // The SPC must be in the pod's namespace.
  await h.spc('other-ns', 's.json', {}, 'elsewhere');
  e = await h.publish(h.publishRequest(target, 'other-ns')).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.NOT_FOUND);
  t.match((e as Error).message, /failed to get secretproviderclass default\/other-ns.*not found/);

  const noSpc = h.publishRequest(target, '');
  e = await h.publish(noSpc).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.INVALID_ARGUMENT);
  t.match((e as Error).message, 'secretProviderClass is not set');

  await h.spc('unknown-provider', 's.json', {}, 'default', 'nosuchprovider');
  e = await h.publish(h.publishRequest(target, 'unknown-provider')).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.FAILED_PRECONDITION);
  t.match(
    (e as Error).message,
    'failed to mount secrets store objects for pod default/pod-a, err: error connecting to provider "nosuchprovider": provider not found: provider "nosuchprovider"',
  );

  await h.spc('bad-name', 's.json', {}, 'default', '../etc/evil');
  e = await h.publish(h.publishRequest(target, 'bad-name')).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.INVALID_ARGUMENT);
  t.match((e as Error).message, 'invalid provider: provider "../etc/evil"');

  await h.spc('no-provider', 's.json', {}, 'default', '');
  e = await h.publish(h.publishRequest(target, 'no-provider')).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.FAILED_PRECONDITION);
  t.match((e as Error).message, 'provider not set in default/no-provider');

  const { writeFile } = await import('node:fs/promises');
  await writeFile(
    `${h.spcDir}/noparams.yaml`,
    'apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: no-params}\nspec:\n  provider: example\n',
  );
  e = await h.publish(h.publishRequest(target, 'no-params')).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.FAILED_PRECONDITION);
  t.match((e as Error).message, 'parameters not set in default/no-params');

  t.same(await mountsUnder(`${h.dir}/pods`), [], 'nothing mounted after any failure');

  // A failed first publish is counted with its provider once the SecretProviderClass named it; before that, without.
  const metrics = await metricsText(port);
  t.match(
    metrics,
    /node_publish_error_total\{provider="nosuchprovider",error_type="",os_type="linux"\} 1\n/,
    'provider label after the SPC was resolved',
  );
  t.match(
    metrics,
    /node_publish_error_total\{provider="",error_type="SecretProviderClassNotFound",os_type="linux"\} 2\n/,
    'no provider while the SPC is missing',
  );
});

t.test('bad provider answers are rejected whole and never touch a served volume', async (t) => {
  const port = await freePort();
  const h = await Harness.start(t as Tap, {
    driverArgs: ['--max-call-recv-msg-size=65536', '--enable-secret-rotation=false', `--metrics-addr=127.0.0.1:${port}`],
  });
  // A good volume that must survive every failure below.
  await h.source('good.json', { files: [{ path: 'keep', contents: 'GOOD-CONTENT' }] });
  await h.spc('good', 'good.json');
  const served = h.target('served');
  await h.publish(h.publishRequest(served, 'good'));

  const target = h.target('bad');
  const huge = 'x'.repeat(70_000);
  const cases: Array<[string, SourceSpec, number, string | RegExp]> = [
    ['provider error code', { errorCode: 'AccessDenied' }, status.INTERNAL, 'mount request failed with provider error code AccessDenied'],
    [
      'provider gRPC error',
      { grpcError: { code: status.PERMISSION_DENIED, message: 'no access to store' } },
      status.PERMISSION_DENIED,
      'failed to mount secrets store objects for pod default/pod-a, err: rpc error: code = PermissionDenied desc = no access to store',
    ],
    ['missing object versions', { files: [{ path: 'a', contents: 'x' }], objectVersions: [] }, status.INTERNAL, 'missing object versions'],
    ['empty path', { files: [{ path: '', contents: 'x' }] }, status.INTERNAL, 'invalid path: must not be empty: ""'],
    [
      'absolute path',
      { files: [{ path: '/etc/passwd', contents: 'x' }] },
      status.INTERNAL,
      'invalid path: must be relative path: /etc/passwd',
    ],
    ['.. element', { files: [{ path: 'a/../../b', contents: 'x' }] }, status.INTERNAL, "invalid path: must not contain '..': a/../../b"],
    ['starts with ..', { files: [{ path: '..data', contents: 'x' }] }, status.INTERNAL, "invalid path: must not start with '..': ..data"],
    [
      'element over 255',
      { files: [{ path: 'a'.repeat(256), contents: 'x' }] },
      status.INTERNAL,
      'invalid path: filenames must be less than or equal to 255 characters',
    ],
    [
      'path over 4096',
      { files: [{ path: Array(20).fill('b'.repeat(250)).join('/'), contents: 'x' }] },
      status.INTERNAL,
      'invalid path: must be less than or equal to 4096 characters',
    ],
    ['not clean', { files: [{ path: 'a//b', contents: 'x' }] }, status.INTERNAL, 'invalid filepath: "a//b"'],
    ['dot segment', { files: [{ path: './a', contents: 'x' }] }, status.INTERNAL, 'invalid filepath: "./a"'],
    ['trailing slash', { files: [{ path: 'a/', contents: 'x' }] }, status.INTERNAL, 'invalid filepath: "a/"'],
    [
      'duplicate paths',
      {
        files: [
          { path: 'a', contents: 'x' },
          { path: 'a', contents: 'y' },
        ],
      },
      status.INTERNAL,
      'invalid path: duplicate path: a',
    ],
    [
      'file and directory',
      {
        files: [
          { path: 'a', contents: 'x' },
          { path: 'a/b', contents: 'y' },
        ],
      },
      status.INTERNAL,
      'invalid path: a is both a file and a directory',
    ],
    ['bad mode', { files: [{ path: 'a', contents: 'x', mode: 70000 }] }, status.INTERNAL, 'invalid file mode 70000 for a'],
    ['response over the size limit', { files: [{ path: 'big', contents: huge }] }, status.RESOURCE_EXHAUSTED, /max-call-recv-msg-size/],
  ];
  for (const [name, spec, code, msg] of cases) {
    await h.source('bad.json', spec);
    await h.spc('bad', 'bad.json');
    const e = await h.publish(h.publishRequest(target, 'bad')).catch((x: unknown) => x);
    t.equal(grpcCode(e), code, `${name}: code`);
    t.match((e as Error)?.message, msg, `${name}: message`);
    t.same(await mountsUnder(target), [], `${name}: nothing mounted`);
  }
  t.equal(await readFile(`${served}/keep`, 'utf8'), 'GOOD-CONTENT', 'the served volume is untouched');
  t.match(
    await metricsText(port),
    /node_publish_error_total\{provider="example",error_type="AccessDenied",os_type="linux"\} 1\n/,
    'a failed first publish is counted with its provider',
  );
  t.equal(h.driver.out.includes('x'.repeat(1000)), false, 'no response content in the logs');
  await h.unpublish(served);
});

t.test('a provider that hangs: the call ends at the caller deadline, nothing is mounted', async (t) => {
  const h = await Harness.start(t as Tap);
  await h.source('slow.json', { files: [{ path: 'a', contents: 'x' }], delayMs: 5000 });
  await h.spc('slow', 'slow.json');
  const target = h.target('slow');
  const started = Date.now();
  const e = await h.publish(h.publishRequest(target, 'slow'), 1000).catch((x: unknown) => x);
  t.equal(grpcCode(e), status.DEADLINE_EXCEEDED);
  t.ok(Date.now() - started < 4500, 'did not wait for the provider');
  await sleep(200);
  t.same(await mountsUnder(target), []);
});
