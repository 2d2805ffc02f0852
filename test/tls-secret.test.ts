// Unit tests of the kubernetes.io/tls Secret-sync data rules (src/kube/tls/), which follow
// upstream's pkg/util/secretutil/secret.go (GetCertPart / getCert / getPrivateKey).
//
// No key material is committed: every key, certificate and PFX is generated at test time with the
// openssl CLI in a t.testdir(). Expected outputs are computed independently with node:crypto
// (OpenSSL's own PKCS#1 / SEC1 encoders, X509Certificate), never with the code under test.

import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import {
  TlsSecretError,
  extractCertChainPem,
  extractPrivateKeyPem,
  getCertPart,
  getSecretType,
  isTlsType,
  rc2CbcDecrypt,
  secretDataFor,
} from '../src/kube/tls/index.js';
import { secretData } from '../src/kube/secret-sync.js';

const dir = t.testdir({});
const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
const file = (name: string) => join(dir, name);
const read = (name: string) => readFileSync(file(name));
const cat = (out: string, ...names: string[]) => writeFileSync(file(out), Buffer.concat(names.map(read)));

// RSA: self-signed cert; OpenSSL 3 writes the key as PKCS#8 ("BEGIN PRIVATE KEY").
ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rsa.key', '-out', 'rsa.crt', '-subj', '/CN=rsa.example', '-days', '2');
ossl('rsa', '-in', 'rsa.key', '-traditional', '-out', 'rsa-pkcs1.key');
// EC P-256 chain: a CA (SEC1 key) and a leaf (PKCS#8 key) signed by it.
ossl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
ossl('req', '-x509', '-key', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=test-ca', '-days', '2');
ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'leaf.key');
ossl('req', '-new', '-key', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=leaf.example');
ossl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.crt', '-days', '2');
// ecparam without -noout writes an "EC PARAMETERS" block before the SEC1 key.
ossl('ecparam', '-name', 'prime256v1', '-genkey', '-out', 'ec-with-params.key');
ossl('genpkey', '-algorithm', 'ed25519', '-out', 'ed25519.key');

const rsaKey = createPrivateKey(read('rsa.key'));
const leafKey = createPrivateKey(read('leaf.key'));
const rsaCert = new X509Certificate(read('rsa.crt'));
const caCert = new X509Certificate(read('ca.crt'));
const leafCert = new X509Certificate(read('leaf.crt'));

const pkcs1Pem = (k: KeyObject) => k.export({ type: 'pkcs1', format: 'pem' }) as string;
const sec1Pem = (k: KeyObject) => k.export({ type: 'sec1', format: 'pem' }) as string;
const spki = (k: KeyObject) => createPublicKey(k).export({ type: 'spki', format: 'der' });
const certPem = (c: X509Certificate) => c.toString();

interface Block {
  headers: string[];
  cert: X509Certificate;
}
/** Splits tls.crt output into certificates, keeping any PEM headers upstream writes. */
function certBlocks(pem: string): Block[] {
  const out: Block[] = [];
  for (const m of pem.matchAll(/-----BEGIN CERTIFICATE-----\n([\s\S]*?)-----END CERTIFICATE-----\n/g)) {
    const body = m[1] ?? '';
    const parts = body.includes('\n\n') ? body.split('\n\n') : ['', body];
    const headers = (parts[0] ?? '').split('\n').filter((l) => l !== '');
    const cert = new X509Certificate(`-----BEGIN CERTIFICATE-----\n${parts[1] ?? ''}-----END CERTIFICATE-----\n`);
    out.push({ headers, cert });
  }
  return out;
}

function thrown(fn: () => unknown): TlsSecretError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TlsSecretError) return err;
    throw err;
  }
  throw new Error('expected a TlsSecretError');
}

t.test('secret types: only exactly kubernetes.io/tls is special', async (t) => {
  t.equal(isTlsType('kubernetes.io/tls'), true);
  t.equal(isTlsType('kubernetes.io/TLS'), false, 'case-sensitive, like upstream');
  t.equal(isTlsType('Opaque'), false);
  t.equal(isTlsType(''), false, 'empty means Opaque');
  t.equal(getSecretType(''), 'Opaque');
  t.equal(getSecretType('kubernetes.io/basic-auth'), 'kubernetes.io/basic-auth');

  const bytes = read('rsa.key');
  for (const type of ['Opaque', '', 'kubernetes.io/dockerconfigjson', 'kubernetes.io/TLS']) {
    const out = secretDataFor(type, 'ca.crt', bytes, file('rsa.key'));
    t.strictSame(out, bytes, `${type || '(empty)'}: the file's bytes are passed through unchanged`);
    t.not(out, bytes, 'as a copy of their own');
  }
  t.strictSame(secretDataFor('Opaque', 'tls.key', bytes), read('rsa.key'), 'content unchanged');
});

t.test('key names: only tls.key and tls.crt for the tls type', async (t) => {
  const bundle = Buffer.concat([read('rsa.crt'), read('rsa.key')]);
  for (const key of ['ca.crt', 'key', 'TLS.KEY', '']) {
    const err = thrown(() => secretDataFor('kubernetes.io/tls', key, bundle));
    t.equal(err.message, `key '${key}' is not supported. Only 'tls.key' and 'tls.crt' are supported`);
    t.equal(err.reason, 'unsupported-key');
  }
  const err = thrown(() => secretDataFor('kubernetes.io/tls', 'ca.crt', bundle, '/mnt/secrets/bundle.pem'));
  t.equal(
    err.message,
    "failed to get cert data from file /mnt/secrets/bundle.pem, err: key 'ca.crt' is not supported. " +
      "Only 'tls.key' and 'tls.crt' are supported",
    'upstream wraps the error with the file path',
  );
  t.equal(err.detail, "key 'ca.crt' is not supported. Only 'tls.key' and 'tls.crt' are supported");
});

t.test('RSA PEM bundle (cert + PKCS#8 key)', async (t) => {
  const bundle = Buffer.concat([read('rsa.crt'), read('rsa.key')]);
  t.match(read('rsa.key').toString(), /^-----BEGIN PRIVATE KEY-----\n/, 'the input key really is PKCS#8');

  const key = secretDataFor('kubernetes.io/tls', 'tls.key', bundle, file('bundle')).toString();
  t.match(key, /^-----BEGIN RSA PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END RSA PRIVATE KEY-----\n$/);
  t.equal(key, pkcs1Pem(rsaKey), "byte-identical to OpenSSL's PKCS#1 encoding of the same key");
  const loaded = createPrivateKey({ key, format: 'pem' });
  t.equal(loaded.asymmetricKeyType, 'rsa');
  t.strictSame(spki(loaded), rsaCert.publicKey.export({ type: 'spki', format: 'der' }), 'matches the certificate');

  const crt = secretDataFor('kubernetes.io/tls', 'tls.crt', bundle).toString();
  t.equal(crt, certPem(rsaCert), 'exactly the certificate, nothing else');
  t.notMatch(crt, /PRIVATE KEY/);
});

t.test('PKCS#1 input (key before cert) is re-encoded unchanged', async (t) => {
  cat('rsa-keyfirst.pem', 'rsa-pkcs1.key', 'rsa.crt');
  const data = read('rsa-keyfirst.pem');
  t.equal(extractPrivateKeyPem(data).toString(), pkcs1Pem(rsaKey));
  t.equal(extractCertChainPem(data).toString(), certPem(rsaCert));
  t.equal(getCertPart(data, 'tls.key').toString(), read('rsa-pkcs1.key').toString());
});

t.test('EC P-256 chain (leaf, CA, PKCS#8 key)', async (t) => {
  cat('ec-chain.pem', 'leaf.crt', 'ca.crt', 'leaf.key');
  const data = read('ec-chain.pem');

  const key = getCertPart(data, 'tls.key').toString();
  t.match(key, /^-----BEGIN EC PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END EC PRIVATE KEY-----\n$/);
  t.equal(key, sec1Pem(leafKey), "byte-identical to OpenSSL's SEC1 encoding of the same key");
  const loaded = createPrivateKey(key);
  t.equal(loaded.asymmetricKeyType, 'ec');
  t.equal(loaded.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.strictSame(spki(loaded), leafCert.publicKey.export({ type: 'spki', format: 'der' }), 'matches the leaf certificate');

  const crt = getCertPart(data, 'tls.crt').toString();
  t.equal(crt, certPem(leafCert) + certPem(caCert), 'exactly the two certificates, leaf first');
  const blocks = certBlocks(crt);
  t.equal(blocks.length, 2);
  t.equal(blocks[0]?.cert.subject, 'CN=leaf.example');
  t.equal(blocks[1]?.cert.subject, 'CN=test-ca');
  t.ok(blocks[0]?.cert.checkIssued(caCert), 'the leaf is issued by the second certificate');
});

t.test('certificates keep file order (upstream does not sort the chain)', async (t) => {
  cat('ec-cafirst.pem', 'ca.crt', 'leaf.key', 'leaf.crt');
  const crt = getCertPart(read('ec-cafirst.pem'), 'tls.crt').toString();
  t.equal(crt, certPem(caCert) + certPem(leafCert));
});

t.test('SEC1 key after an EC PARAMETERS block', async (t) => {
  t.match(read('ec-with-params.key').toString(), /^-----BEGIN EC PARAMETERS-----\n[\s\S]*-----BEGIN EC PRIVATE KEY-----\n/);
  const key = getCertPart(read('ec-with-params.key'), 'tls.key').toString();
  t.equal(key, sec1Pem(createPrivateKey(read('ec-with-params.key'))));
});

t.test('several keys: the last non-certificate block wins', async (t) => {
  cat('two-keys-a.pem', 'rsa.crt', 'rsa.key', 'leaf.key');
  cat('two-keys-b.pem', 'leaf.key', 'rsa.crt', 'rsa.key');
  t.equal(getCertPart(read('two-keys-a.pem'), 'tls.key').toString(), sec1Pem(leafKey));
  t.equal(getCertPart(read('two-keys-b.pem'), 'tls.key').toString(), pkcs1Pem(rsaKey));
});

t.test('PFX / PKCS#12 with an empty password', async (t) => {
  t.test('RSA, legacy algorithms (RC2-40 certificates, 3DES key)', async (t) => {
    ossl('pkcs12', '-export', '-legacy', '-passout', 'pass:', '-inkey', 'rsa.key', '-in', 'rsa.crt', '-out', 'rsa.pfx');
    const pfx = read('rsa.pfx');
    t.equal(pfx[0], 0x30, 'binary DER input');
    const key = secretDataFor('kubernetes.io/tls', 'tls.key', pfx).toString();
    t.equal(key, pkcs1Pem(rsaKey));
    t.strictSame(spki(createPrivateKey(key)), rsaCert.publicKey.export({ type: 'spki', format: 'der' }));

    const crt = secretDataFor('kubernetes.io/tls', 'tls.crt', pfx).toString();
    const blocks = certBlocks(crt);
    t.equal(blocks.length, 1);
    t.ok(blocks[0]?.cert.raw.equals(rsaCert.raw), 'the certificate');
    // Upstream writes the bag attributes as PEM headers (pkcs12.ToPEM), here OpenSSL's localKeyID.
    const keyId = rsaCert.fingerprint.replace(/:/g, '').toLowerCase();
    t.strictSame(blocks[0]?.headers, [`localKeyId: ${keyId}`]);
    t.ok(crt.startsWith(`-----BEGIN CERTIFICATE-----\nlocalKeyId: ${keyId}\n\n`));
  });

  t.test('EC chain, 3DES, friendly name', async (t) => {
    ossl(
      'pkcs12',
      '-export',
      '-certpbe',
      'PBE-SHA1-3DES',
      '-keypbe',
      'PBE-SHA1-3DES',
      '-macalg',
      'sha1',
      '-passout',
      'pass:',
      '-inkey',
      'leaf.key',
      '-in',
      'leaf.crt',
      '-certfile',
      'ca.crt',
      '-name',
      'leaf name',
      '-out',
      'ec.pfx',
    );
    const pfx = read('ec.pfx');
    const key = getCertPart(pfx, 'tls.key').toString();
    t.equal(key, sec1Pem(leafKey));
    t.strictSame(spki(createPrivateKey(key)), leafCert.publicKey.export({ type: 'spki', format: 'der' }));

    const blocks = certBlocks(getCertPart(pfx, 'tls.crt').toString());
    t.equal(blocks.length, 2, 'leaf and CA');
    t.ok(blocks[0]?.cert.raw.equals(leafCert.raw), 'leaf first, as OpenSSL stores it');
    t.ok(blocks[1]?.cert.raw.equals(caCert.raw), 'then the CA');
    const keyId = leafCert.fingerprint.replace(/:/g, '').toLowerCase();
    t.strictSame(blocks[0]?.headers, ['friendlyName: leaf name', `localKeyId: ${keyId}`], 'sorted attribute headers');
    t.strictSame(blocks[1]?.headers, [], 'the CA bag has no attributes');
  });

  t.test('OpenSSL 3 default algorithms (AES, SHA-256 MAC) are rejected like upstream', async (t) => {
    ossl('pkcs12', '-export', '-passout', 'pass:', '-inkey', 'rsa.key', '-in', 'rsa.crt', '-out', 'modern.pfx');
    for (const key of ['tls.key', 'tls.crt']) {
      const err = thrown(() => secretDataFor('kubernetes.io/tls', key, read('modern.pfx'), '/mnt/s/modern.pfx'));
      t.equal(
        err.message,
        'failed to get cert data from file /mnt/s/modern.pfx, err: pkcs12: unknown digest algorithm: 2.16.840.1.101.3.4.2.1',
      );
      t.equal(err.reason, 'pkcs12');
    }
  });

  t.test('a non-empty password is not tried', async (t) => {
    ossl('pkcs12', '-export', '-legacy', '-passout', 'pass:secret', '-inkey', 'rsa.key', '-in', 'rsa.crt', '-out', 'pw.pfx');
    t.equal(thrown(() => getCertPart(read('pw.pfx'), 'tls.key')).message, 'pkcs12: decryption password incorrect');
  });

  t.test('no MAC, no key bag', async (t) => {
    ossl('pkcs12', '-export', '-legacy', '-nomac', '-passout', 'pass:', '-inkey', 'rsa.key', '-in', 'rsa.crt', '-out', 'nomac.pfx');
    t.equal(thrown(() => getCertPart(read('nomac.pfx'), 'tls.crt')).message, 'pkcs12: no MAC in data');
    ossl('pkcs12', '-export', '-legacy', '-nokeys', '-passout', 'pass:', '-in', 'rsa.crt', '-out', 'nokeys.pfx');
    t.equal(
      thrown(() => getCertPart(read('nokeys.pfx'), 'tls.key')).message,
      'pkcs12: expected exactly two items in the authenticated safe',
    );
  });

  t.test('trailing bytes after the PFX', async (t) => {
    const pfx = Buffer.concat([read('rsa.pfx'), Buffer.from('\n')]);
    t.equal(thrown(() => getCertPart(pfx, 'tls.key')).message, 'pkcs12: error reading P12 data: pkcs12: trailing data found');
  });
});

t.test('missing parts: upstream falls back to PFX parsing of what follows the last PEM block', async (t) => {
  const certOnly = read('rsa.crt');
  const want = 'pkcs12: error reading P12 data: asn1: syntax error: sequence truncated';
  let err = thrown(() => secretDataFor('kubernetes.io/tls', 'tls.key', certOnly, '/mnt/secrets-store/cert'));
  t.equal(err.message, `failed to get cert data from file /mnt/secrets-store/cert, err: ${want}`, 'no key in the file');
  t.equal(err.detail, want);
  t.equal(err.reason, 'pkcs12');

  err = thrown(() => getCertPart(read('leaf.key'), 'tls.crt'));
  t.equal(err.message, want, 'no certificate in the file');

  err = thrown(() => getCertPart(Buffer.concat([certOnly, Buffer.from('\n')]), 'tls.key'));
  t.equal(err.message, 'pkcs12: error reading P12 data: asn1: syntax error: truncated tag or length', 'one extra newline');

  err = thrown(() => getCertPart(Buffer.from('hello'), 'tls.key'));
  t.equal(
    err.message,
    'pkcs12: error reading P12 data: asn1: structure error: PFX: expected SEQUENCE, found ' + '[APPLICATION 8] at offset 0',
    'not PEM, not PFX',
  );

  err = thrown(() => getCertPart(Buffer.alloc(0), 'tls.crt'));
  t.equal(err.message, want, 'empty file');
});

t.test('an unusable key block is not an error upstream: an empty PRIVATE KEY block', async (t) => {
  const empty = '-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n';
  writeFileSync(file('pub.pem'), createPublicKey(rsaKey).export({ type: 'spki', format: 'pem' }));
  cat('cert-and-pub.pem', 'rsa.crt', 'pub.pem');
  t.equal(getCertPart(read('cert-and-pub.pem'), 'tls.key').toString(), empty, 'a public key');
  ossl('pkcs8', '-topk8', '-in', 'rsa.key', '-passout', 'pass:x', '-out', 'enc.key');
  t.equal(getCertPart(read('enc.key'), 'tls.key').toString(), empty, 'an encrypted PKCS#8 key');
  ossl('ecparam', '-name', 'secp256k1', '-genkey', '-noout', '-out', 'k1.key');
  t.equal(getCertPart(read('k1.key'), 'tls.key').toString(), empty, 'a curve Go does not support');
});

t.test("Ed25519 keys are rejected with upstream's error", async (t) => {
  cat('ed.pem', 'rsa.crt', 'ed25519.key');
  const err = thrown(() => secretDataFor('kubernetes.io/tls', 'tls.key', read('ed.pem'), '/x/ed.pem'));
  t.equal(err.detail, 'unknown private key type found while getting key. Only rsa and ecdsa are supported');
  t.equal(err.message, `failed to get cert data from file /x/ed.pem, err: ${err.detail}`);
  t.equal(err.reason, 'unsupported-private-key-type');
  t.equal(getCertPart(read('ed.pem'), 'tls.crt').toString(), certPem(rsaCert), 'the certificate part still works');
});

t.test('PEM parsing follows Go: CRLF, junk between blocks, headers, bad base64', async (t) => {
  const bundle = Buffer.concat([read('rsa.crt'), read('rsa.key')]).toString();
  const crlf = Buffer.from(bundle.replace(/\n/g, '\r\n'));
  t.equal(getCertPart(crlf, 'tls.key').toString(), pkcs1Pem(rsaKey), 'CRLF line endings');
  t.equal(getCertPart(crlf, 'tls.crt').toString(), certPem(rsaCert), 'CRLF input, LF output');

  const junk = Buffer.from(`text before\n${read('rsa.crt').toString()}between\n${read('rsa.key').toString()}after`);
  t.equal(getCertPart(junk, 'tls.key').toString(), pkcs1Pem(rsaKey));
  t.equal(getCertPart(junk, 'tls.crt').toString(), certPem(rsaCert));

  const body = certPem(rsaCert).split('\n').slice(1, -2).join('\n');
  const withHeaders = `-----BEGIN CERTIFICATE-----\nZed: z\nProc-Type: 4,TEST\n  Alpha :  a \n\n${body}\n-----END CERTIFICATE-----\n`;
  t.equal(
    getCertPart(Buffer.from(withHeaders), 'tls.crt').toString(),
    certPem(rsaCert).replace('-----BEGIN CERTIFICATE-----\n', '-----BEGIN CERTIFICATE-----\nProc-Type: 4,TEST\nAlpha: a\nZed: z\n\n'),
    'headers kept, trimmed, Proc-Type first then sorted',
  );

  const lines = certPem(rsaCert).split('\n');
  lines[3] = `${(lines[3] ?? '').slice(0, 10)}*${(lines[3] ?? '').slice(11)}`;
  const broken = Buffer.concat([Buffer.from(lines.join('\n')), read('leaf.crt')]);
  t.equal(getCertPart(broken, 'tls.crt').toString(), certPem(leafCert), 'a block with invalid base64 is skipped');
});

t.test('errors carry no key material', async (t) => {
  const keyBody = read('leaf.key').toString().split('\n').slice(1, -2).join('');
  for (const [data, key] of [
    [read('leaf.key'), 'tls.crt'],
    [read('rsa.key'), 'ca.crt'],
  ] as const) {
    const err = thrown(() => secretDataFor('kubernetes.io/tls', key, data, '/f'));
    for (let i = 0; i + 16 <= keyBody.length; i += 16) {
      if (err.message.includes(keyBody.slice(i, i + 16))) t.fail('key material in the error message');
    }
    t.notMatch(err.message, /BEGIN|MII/, 'no PEM or DER text');
  }
});

t.test('RC2 decryption: RFC 2268 known-answer vectors', async (t) => {
  const vectors: [string, number, string, string][] = [
    ['0000000000000000', 63, '0000000000000000', 'ebb773f993278eff'],
    ['ffffffffffffffff', 64, 'ffffffffffffffff', '278b27e42e2f0d49'],
    ['3000000000000000', 64, '1000000000000001', '30649edf9be7d2c2'],
    ['88', 64, '0000000000000000', '61a8a244adacccf0'],
    ['88bca90e90875a', 64, '0000000000000000', '6ccf4308974c267f'],
    ['88bca90e90875a7f0f79c384627bafb2', 64, '0000000000000000', '1a807d272bbe5db1'],
    ['88bca90e90875a7f0f79c384627bafb2', 128, '0000000000000000', '2269552ab0f85ca6'],
    ['88bca90e90875a7f0f79c384627bafb216f80a6f85920584c42fceb0be255daf1e', 129, '0000000000000000', '5b78d3a43dfff1f1'],
  ];
  for (const [key, bits, plain, cipher] of vectors) {
    // One CBC block with a zero IV is a plain block decryption.
    const out = rc2CbcDecrypt(Buffer.from(key, 'hex'), bits, Buffer.alloc(8), Buffer.from(cipher, 'hex'));
    t.equal(out.toString('hex'), plain, `key ${key} / ${bits} bits`);
  }
});

t.test('secretData hands out copies: zeroing them never touches the served bytes', (t) => {
  const served = Buffer.from('served-canary');
  const bundle = Buffer.concat([read('rsa.crt'), read('rsa.key')]);
  for (const [type, key, bytes] of [
    ['Opaque', 'k', served],
    ['kubernetes.io/tls', 'tls.crt', bundle],
    ['kubernetes.io/tls', 'tls.key', bundle],
  ] as const) {
    const before = Buffer.from(bytes);
    const data = secretData({ secretName: 's', type, data: [{ objectName: 'f', key }] }, () => bytes);
    for (const b of Object.values(data)) b.fill(0);
    t.same(bytes, before, `${type}: the source is intact after the caller scrubs its copy`);
  }
  t.end();
});
