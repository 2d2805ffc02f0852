// Azure Key Vault provider wire compatibility without a Key Vault: our
// driver against a provider that answers exactly as the Azure provider does
// (test/fixtures/azure-like-provider.ts), with the two SecretProviderClass
// examples of the Azure provider's docs: workload identity (clientID + the
// kubelet token for api://AzureADTokenExchange) and a service principal
// (nodePublishSecretRef keys clientid/clientsecret). Checked: the files and
// their modes (nested `<alias>/<index>` paths for objectVersionHistory), the
// values the provider parsed from the request, object versions on polls, a
// rotation, the provider's gRPC errors reaching the CSI caller with their
// code and upstream's message prefix, and no token or secret in our logs.
// Also one secret listed twice, at its latest version and pinned under an
// alias: the provider sends its object id twice, and unchanged polls must not
// count as rotations (one version per id, the last one winning, as upstream).

import t from 'tap';
import { lstat, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { Harness, canary, freePort, grpcCode, mountsUnder, waitUntil, type Tap } from './helpers/harness.js';
import { startAzureLikeProvider, type AzureCall, type FakeVault } from './fixtures/azure-like-provider.js';

const TENANT = 'tid';
const WI_CLIENT = '7e3c1a52-0d5f-4c1e-9c55-2b1f0e6a9d01';
const SP_CLIENT = 'c0ffee00-1234-4abc-8def-000000000042';
const PREFIX = 'failed to mount secrets store objects for pod default/pod-a, err: rpc error: code = Unknown desc = ';
const KEY_PEM = '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfake-key-for-tests\n-----END PUBLIC KEY-----\n';

const at = (min: number) => new Date(Date.UTC(2026, 0, 1, 0, min));

/** The SPC manifests of the Azure provider's docs (Example A: workload identity; Example B: service principal). */
async function writeSpcs(h: Harness): Promise<void> {
  await writeFile(
    join(h.spcDir, 'azure-kvname-wi.yaml'),
    `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: azure-kvname-wi
spec:
  provider: azure
  parameters:
    usePodIdentity: "false"
    clientID: "${WI_CLIENT}"
    keyvaultName: "kvname"
    cloudName: ""
    objects: |
      array:
        - |
          objectName: secret1
          objectType: secret
          objectVersion: ""
        - |
          objectName: key1
          objectType: key
          objectVersion: ""
        - |
          objectName: dbpass
          objectAlias: db
          objectType: secret
          objectVersionHistory: 2
    tenantID: "${TENANT}"
`,
  );
  await writeFile(
    join(h.spcDir, 'azure-tls.yaml'),
    `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: azure-tls}
spec:
  provider: azure
  secretObjects:
  - secretName: ingress-tls
    type: kubernetes.io/tls
    data:
    - {objectName: mycert, key: tls.key}
    - {objectName: mycert, key: tls.crt}
  parameters:
    keyvaultName: "kvname"
    tenantID: "${TENANT}"
    objects: |
      array:
        - |
          objectName: mycert
          objectType: secret          # private key + cert, PEM by default
          objectFormat: pem
        - |
          objectName: api-token
          objectAlias: API_TOKEN
          objectType: secret
          objectEncoding: base64
          filePermission: 0440
`,
  );
  // "Current" and "previous" side by side: one secret at its latest version
  // and pinned under an alias, in both orders. The provider's object id does
  // not include the alias, so each id comes twice.
  await writeFile(
    join(h.spcDir, 'azure-current-previous.yaml'),
    `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: azure-current-previous}
spec:
  provider: azure
  parameters:
    keyvaultName: kvname
    tenantID: ${TENANT}
    objects: |
      array:
        - |
          objectName: db-password
          objectType: secret
        - |
          objectName: db-password
          objectAlias: db-password-previous
          objectType: secret
          objectVersion: "db-v1"
        - |
          objectName: api-key
          objectAlias: api-key-previous
          objectType: secret
          objectVersion: "api-v1"
        - |
          objectName: api-key
          objectType: secret
`,
  );
  // The deprecated tenantId spelling, still read by the provider.
  await writeFile(
    join(h.spcDir, 'azure-legacy-tenant.yaml'),
    `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: azure-legacy-tenant}
spec:
  provider: azure
  parameters:
    keyvaultName: kvname
    tenantId: ${TENANT}
    objects: |
      array:
        - |
          objectName: secret1
          objectType: secret
`,
  );
}

/** How many times the driver logged a rotation of `target`. */
function rotationsLogged(out: string, target: string): number {
  return out.split('\n').filter((l) => l.includes('"rotated volume content"') && l.includes(`"targetPath":${JSON.stringify(target)}`))
    .length;
}

async function rotatedTotal(port: number): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = /^rotation_reconcile_total\{provider="azure",os_type="linux",rotated="true"\} (\d+)/m.exec(body);
  return m ? Number(m[1]) : 0;
}

t.test('Azure provider wire: workload identity, service principal, versions, rotation, errors', async (t) => {
  const port = await freePort();
  const h = await Harness.start(t as Tap, {
    startProvider: false,
    providerName: 'azure',
    driverArgs: ['--rotation-poll-interval=1s', `--metrics-addr=127.0.0.1:${port}`],
  });
  await writeSpcs(h);

  const wiToken = canary('wi-token');
  const otherToken = canary('other-token');
  const spSecret = canary('sp-secret');
  const secret1 = canary('kv-secret1');
  const secret1b = canary('kv-secret1-rotated');
  const db1 = canary('kv-db-v1');
  const db2 = canary('kv-db-v2');
  const tlsKey = canary('kv-tls-key');
  const tlsPem = `-----BEGIN PRIVATE KEY-----\n${tlsKey}\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n`;
  const apiToken = canary('kv-api-token');
  const dbPw1 = canary('kv-db-password-v1');
  const dbPw2 = canary('kv-db-password-v2');
  const dbPw3 = canary('kv-db-password-v3');
  const apiKey1 = canary('kv-api-key-v1');
  const apiKey2 = canary('kv-api-key-v2');
  const apiKey3 = canary('kv-api-key-v3');
  const vaults: Record<string, FakeVault> = {
    kvname: {
      principals: [
        { tenantID: TENANT, clientID: WI_CLIENT, federatedToken: wiToken },
        { tenantID: TENANT, clientID: SP_CLIENT, clientSecret: spSecret },
      ],
      secrets: {
        secret1: [{ version: '6d0f5c5e8a9b4b1c9f2d3e4a5b6c7d8e', value: secret1, created: at(1) }],
        dbpass: [
          { version: '0aa1', value: db1, created: at(1) },
          { version: '0bb2', value: db2, created: at(2) },
        ],
        mycert: [{ version: 'c3c3', value: tlsPem, created: at(1) }],
        'api-token': [{ version: 'a7a7', value: Buffer.from(apiToken).toString('base64'), created: at(1) }],
        'db-password': [
          { version: 'db-v1', value: dbPw1, created: at(1) },
          { version: 'db-v2', value: dbPw2, created: at(2) },
        ],
        'api-key': [
          { version: 'api-v1', value: apiKey1, created: at(1) },
          { version: 'api-v2', value: apiKey2, created: at(2) },
        ],
      },
      keys: { key1: [{ version: 'k1k1', value: KEY_PEM, created: at(1) }] },
    },
  };
  const azure = await startAzureLikeProvider(join(h.providerDir, 'azure.sock'), vaults);
  t.teardown(() => azure.close());
  const lastCall = (): AzureCall => azure.calls[azure.calls.length - 1]!;
  const tokens = JSON.stringify({
    [`api://AzureADTokenExchange`]: { token: wiToken, expirationTimestamp: '2030-01-01T00:00:00Z' },
    'api://AKSIdentityBinding': { token: otherToken, expirationTimestamp: '2030-01-01T00:00:00Z' },
  });
  const withTokens = (target: string, spc: string, secrets: Record<string, string> = {}) => {
    const r = h.publishRequest(target, spc, { secrets });
    r.volumeContext['csi.storage.k8s.io/serviceAccount.tokens'] = tokens;
    return r;
  };

  await t.test('Example A: workload identity', async (t) => {
    const target = h.target('azure-wi');
    await h.publish(withTokens(target, 'azure-kvname-wi'));
    const call = lastCall();
    t.equal(call.error, undefined, 'the provider answered');
    t.equal(call.authority, 'localhost');
    t.equal(call.request.secrets, 'null', 'no nodePublishSecretRef: secrets is null, as upstream sends');
    t.equal(call.request.permission, '420');
    t.strictSame(
      call.parsed,
      {
        keyvaultName: 'kvname',
        cloudName: '',
        tenantID: TENANT,
        podName: 'pod-a',
        podNamespace: 'default',
        defaultFilePermission: 0o644,
        usePodIdentity: false,
        useVMManagedIdentity: false,
        useAzureTokenProxy: false,
        identityMode: 'None',
        clientID: WI_CLIENT,
        credential: { kind: 'workload-identity', clientID: WI_CLIENT, token: wiToken },
        objects: [
          {
            objectName: 'secret1',
            objectAlias: '',
            objectVersion: '',
            objectVersionHistory: 0,
            objectType: 'secret',
            objectFormat: '',
            objectEncoding: '',
            filePermission: '',
          },
          {
            objectName: 'key1',
            objectAlias: '',
            objectVersion: '',
            objectVersionHistory: 0,
            objectType: 'key',
            objectFormat: '',
            objectEncoding: '',
            filePermission: '',
          },
          {
            objectName: 'dbpass',
            objectAlias: 'db',
            objectVersion: '',
            objectVersionHistory: 2,
            objectType: 'secret',
            objectFormat: '',
            objectEncoding: '',
            filePermission: '',
          },
        ],
      },
      'the provider parsed exactly the SPC parameters, the pod and the workload identity token',
    );
    t.strictSame(
      call.objectVersion,
      [
        { id: 'secret/secret1', version: '6d0f5c5e8a9b4b1c9f2d3e4a5b6c7d8e' },
        { id: 'key/key1', version: 'k1k1' },
        { id: 'secret/dbpass/0', version: '0bb2' },
        { id: 'secret/dbpass/1', version: '0aa1' },
      ],
      "the provider's object ids and versions",
    );

    t.equal(await readFile(join(target, 'secret1'), 'utf8'), secret1);
    t.equal(await readFile(join(target, 'key1'), 'utf8'), KEY_PEM);
    t.equal(await readFile(join(target, 'db/0'), 'utf8'), db2, 'db/0: the newest version');
    t.equal(await readFile(join(target, 'db/1'), 'utf8'), db1, 'db/1: the one before');
    t.ok((await lstat(join(target, 'db'))).isSymbolicLink(), 'db is a top-level symlink');
    t.equal(await readlink(join(target, 'db')), '..data/db');
    t.ok((await stat(join(target, 'db'))).isDirectory(), 'to a directory');
    for (const f of ['secret1', 'key1', 'db/0', 'db/1'])
      t.equal((await stat(join(target, f))).mode & 0o7777, 0o644, `${f}: mode 0644 (the request's permission)`);

    // Polls send what is served, sorted by id.
    const n = azure.calls.length;
    await waitUntil(() => azure.calls.length > n, 10_000, 'a poll');
    t.strictSame(
      lastCall().request.currentObjectVersion,
      [
        { id: 'key/key1', version: 'k1k1' },
        { id: 'secret/dbpass/0', version: '0bb2' },
        { id: 'secret/dbpass/1', version: '0aa1' },
        { id: 'secret/secret1', version: '6d0f5c5e8a9b4b1c9f2d3e4a5b6c7d8e' },
      ],
      'current_object_version on polls',
    );
    t.match(lastCall().request.attributes, `"csi.storage.k8s.io/serviceAccount.tokens":`, 'polls carry the tokens again');

    // A new version in Key Vault is served by the next poll.
    vaults.kvname!.secrets!.secret1!.push({ version: 'ffff0002', value: secret1b, created: at(3) });
    await waitUntil(async () => (await readFile(join(target, 'secret1'), 'utf8')) === secret1b, 10_000, 'the rotated secret1');
    const m = azure.calls.length;
    await waitUntil(() => azure.calls.length > m, 10_000, 'a poll after the rotation');
    t.same(
      lastCall().request.currentObjectVersion.find((v) => v.id === 'secret/secret1'),
      { id: 'secret/secret1', version: 'ffff0002' },
      'the rotated version is the one served',
    );
    t.equal(await readFile(join(target, 'db/0'), 'utf8'), db2, 'the rest is unchanged');
    await h.unpublish(target);
  });

  await t.test('Example B: service principal from nodePublishSecretRef', async (t) => {
    const target = h.target('azure-sp');
    // Key case does not matter to the provider; tokens are there (the chart asks for them) but unused without clientID.
    await h.publish(withTokens(target, 'azure-tls', { ClientID: SP_CLIENT, ClientSecret: spSecret }));
    const call = lastCall();
    t.equal(call.error, undefined, 'the provider answered');
    t.equal(call.request.secrets, `{"ClientID":"${SP_CLIENT}","ClientSecret":"${spSecret}"}`, 'the publish secrets, as Go marshals them');
    t.strictSame(
      call.parsed,
      {
        keyvaultName: 'kvname',
        cloudName: '',
        tenantID: TENANT,
        podName: 'pod-a',
        podNamespace: 'default',
        defaultFilePermission: 0o644,
        usePodIdentity: false,
        useVMManagedIdentity: false,
        useAzureTokenProxy: false,
        identityMode: 'None',
        clientID: '',
        credential: { kind: 'service-principal', clientID: SP_CLIENT, clientSecret: spSecret },
        objects: [
          {
            objectName: 'mycert',
            objectAlias: '',
            objectVersion: '',
            objectVersionHistory: 0,
            objectType: 'secret',
            objectFormat: 'pem',
            objectEncoding: '',
            filePermission: '',
          },
          {
            objectName: 'api-token',
            objectAlias: 'API_TOKEN',
            objectVersion: '',
            objectVersionHistory: 0,
            objectType: 'secret',
            objectFormat: '',
            objectEncoding: 'base64',
            filePermission: '0440',
          },
        ],
      },
      'the provider parsed the parameters and the service principal',
    );
    t.strictSame(call.objectVersion, [
      { id: 'secret/mycert', version: 'c3c3' },
      { id: 'secret/api-token', version: 'a7a7' },
    ]);
    t.equal(await readFile(join(target, 'mycert'), 'utf8'), tlsPem);
    t.equal(await readFile(join(target, 'API_TOKEN'), 'utf8'), apiToken, 'base64 decoded by the provider');
    t.equal((await stat(join(target, 'mycert'))).mode & 0o7777, 0o644);
    t.equal((await stat(join(target, 'API_TOKEN'))).mode & 0o7777, 0o440, 'filePermission 0440');
    await h.unpublish(target);

    const legacy = h.target('azure-legacy');
    await h.publish(h.publishRequest(legacy, 'azure-legacy-tenant', { secrets: { clientid: SP_CLIENT, clientsecret: spSecret } }));
    t.equal(lastCall().parsed?.tenantID, TENANT, 'the deprecated tenantId is read');
    t.equal(await readFile(join(legacy, 'secret1'), 'utf8'), secret1b);
    await h.unpublish(legacy);
  });

  await t.test('one secret at its latest version and pinned: the id twice, unchanged polls are no rotation', async (t) => {
    const target = h.target('azure-current-previous');
    await h.publish(h.publishRequest(target, 'azure-current-previous', { secrets: { clientid: SP_CLIENT, clientsecret: spSecret } }));
    t.equal(lastCall().error, undefined, 'the provider answered');
    t.strictSame(
      lastCall().objectVersion,
      [
        { id: 'secret/db-password', version: 'db-v2' },
        { id: 'secret/db-password', version: 'db-v1' },
        { id: 'secret/api-key', version: 'api-v1' },
        { id: 'secret/api-key', version: 'api-v2' },
      ],
      'the provider sends each id twice',
    );
    t.equal(await readFile(join(target, 'db-password'), 'utf8'), dbPw2, 'current: the latest');
    t.equal(await readFile(join(target, 'db-password-previous'), 'utf8'), dbPw1, 'previous: the pinned one');
    t.equal(await readFile(join(target, 'api-key'), 'utf8'), apiKey2);
    t.equal(await readFile(join(target, 'api-key-previous'), 'utf8'), apiKey1);

    const polls = (): AzureCall[] =>
      azure.calls.filter((c) => c.request.targetPath === target && c.request.currentObjectVersion.length > 0);
    const rotatedBefore = await rotatedTotal(port);
    await waitUntil(() => polls().length >= 3, 15_000, 'three polls');
    // One version per id, the one sent last, as upstream's map keeps it.
    const oneEach = [
      { id: 'secret/api-key', version: 'api-v2' },
      { id: 'secret/db-password', version: 'db-v1' },
    ];
    for (const [i, c] of polls().entries())
      t.strictSame(c.request.currentObjectVersion, oneEach, `poll ${i + 1}: current_object_version has each id once`);
    t.equal(rotationsLogged(h.driver.out, target), 0, 'unchanged polls: no rotation logged');
    t.equal(await rotatedTotal(port), rotatedBefore, 'unchanged polls: no rotated="true" poll');

    // A new latest version of the secret whose pinned entry comes last: the content changes, the recorded version does not.
    vaults.kvname!.secrets!['db-password']!.push({ version: 'db-v3', value: dbPw3, created: at(3) });
    await waitUntil(async () => (await readFile(join(target, 'db-password'), 'utf8')) === dbPw3, 10_000, 'the new latest db-password');
    t.equal(await readFile(join(target, 'db-password-previous'), 'utf8'), dbPw1, 'the pinned one stays');
    await waitUntil(() => rotationsLogged(h.driver.out, target) === 1, 5000, 'the rotation logged');
    // A new latest version of the secret whose latest entry comes last: content and version change.
    vaults.kvname!.secrets!['api-key']!.push({ version: 'api-v3', value: apiKey3, created: at(3) });
    await waitUntil(async () => (await readFile(join(target, 'api-key'), 'utf8')) === apiKey3, 10_000, 'the new latest api-key');
    await waitUntil(() => rotationsLogged(h.driver.out, target) === 2, 5000, 'the second rotation logged');
    t.equal(await rotatedTotal(port), rotatedBefore + 2, 'two rotated="true" polls, one per real change');

    const n = polls().length;
    await waitUntil(() => polls().length >= n + 3, 15_000, 'three more polls');
    t.strictSame(
      polls().at(-1)!.request.currentObjectVersion,
      [
        { id: 'secret/api-key', version: 'api-v3' },
        { id: 'secret/db-password', version: 'db-v1' },
      ],
      'the new versions are sent, still one per id',
    );
    t.equal(rotationsLogged(h.driver.out, target), 2, 'no rotation after the changes were served');
    t.equal(await rotatedTotal(port), rotatedBefore + 2, 'no rotated="true" poll after them either');
    await h.unpublish(target);
  });

  await t.test("provider errors reach the caller with its code and upstream's prefix", async (t) => {
    const target = h.target('azure-err');
    const wrongSecret = canary('wrong-secret');
    const cases: Array<[string, ReturnType<typeof h.publishRequest>, string]> = [
      [
        'neither auth mode',
        h.publishRequest(target, 'azure-tls'),
        'failed to mount objects, error: failed to build auth config for mode None: failed to get credentials, nodePublishSecretRef secret is not set',
      ],
      [
        'no client secret',
        h.publishRequest(target, 'azure-tls', { secrets: { clientid: SP_CLIENT } }),
        'failed to mount objects, error: failed to build auth config for mode None: could not find clientsecret in secrets',
      ],
      [
        'workload identity without its token',
        h.publishRequest(target, 'azure-kvname-wi'),
        'failed to mount objects, error: failed to build auth config for mode None: failed to parse workload identity tokens, error: service account tokens not found',
      ],
      [
        'a wrong client secret',
        h.publishRequest(target, 'azure-tls', { secrets: { clientid: SP_CLIENT, clientsecret: wrongSecret } }),
        'failed to mount objects, error: failed to get objectType:secret, objectName:mycert, objectVersion:: ClientSecretCredential: authentication failed',
      ],
    ];
    for (const [name, req, msg] of cases) {
      const e = await h.publish(req).catch((x: unknown) => x);
      t.equal(grpcCode(e), status.UNKNOWN, `${name}: the provider's code (Unknown: a plain Go error)`);
      t.equal((e as ServiceError).details, `${PREFIX}${msg}`, `${name}: upstream's prefix, the provider's message`);
      t.equal(lastCall().error, msg, `${name}: as the provider said it`);
      t.same(await mountsUnder(target), [], `${name}: nothing mounted`);
    }
    t.notOk(h.driver.out.includes(wrongSecret), 'the wrong secret is not in the logs either');
  });

  for (const [name, value] of Object.entries({
    wiToken,
    otherToken,
    spSecret,
    secret1,
    secret1b,
    db1,
    db2,
    tlsKey,
    apiToken,
    dbPw1,
    dbPw2,
    dbPw3,
    apiKey1,
    apiKey2,
    apiKey3,
  })) {
    t.notOk(h.driver.out.includes(value), `the driver's logs do not contain ${name}`);
  }
  t.ok(h.driver.out.length > 200, 'the driver did log');
});
