// Unit tests of src/kube/tls/private-key.ts (which keys upstream re-encodes, read through
// node:crypto) and of the byte-level base64 in src/kube/tls/pem.ts. Keys are generated at test
// time; expected encodings come from OpenSSL's own exporters or Buffer's base64, not the code under test.

import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readPrivateKey } from '../src/kube/tls/private-key.js';
import { pemDecode, pemEncode } from '../src/kube/tls/pem.js';

const ALL = ['pkcs1', 'pkcs8', 'sec1'] as const;

t.test('ECDSA keys on the NIST curves Go parses are re-encoded as SEC1', async (t) => {
  for (const namedCurve of ['P-224', 'P-256', 'P-384', 'P-521']) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve });
    const sec1 = privateKey.export({ type: 'sec1', format: 'der' });
    for (const [name, der] of [
      ['PKCS#8', privateKey.export({ type: 'pkcs8', format: 'der' })],
      ['SEC1', sec1],
    ] as const) {
      const r = readPrivateKey(der, ALL);
      t.equal(r.kind, 'key', `${namedCurve} ${name}`);
      if (r.kind === 'key') {
        t.equal(r.key.pemType, 'EC PRIVATE KEY');
        t.ok(r.key.der.equals(sec1), `${namedCurve} ${name}: OpenSSL's SEC1 encoding`);
      }
    }
  }
});

t.test('keys outside what Go accepts are unparsable, Ed25519/X25519 are refused', async (t) => {
  const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey;
  t.equal(readPrivateKey(k1.export({ type: 'sec1', format: 'der' }), ALL).kind, 'unparsable', 'secp256k1');

  const dir = t.testdir({});
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const named = join(dir, 'named.pem');
  const explicit = join(dir, 'explicit.pem');
  writeFileSync(named, p256.export({ type: 'sec1', format: 'pem' }));
  execFileSync('openssl', ['ec', '-in', named, '-param_enc', 'explicit', '-out', explicit], { stdio: 'ignore' });
  const explicitKey = createPrivateKey(readFileSync(explicit));
  t.equal(explicitKey.asymmetricKeyDetails?.namedCurve, 'prime256v1', 'OpenSSL names the explicit curve');
  const r = readPrivateKey(explicitKey.export({ type: 'sec1', format: 'der' }), ALL);
  t.strictSame(r, { kind: 'unparsable', reason: 'elliptic curve given by explicit parameters' });

  for (const type of ['ed25519', 'x25519'] as const) {
    const { privateKey } = generateKeyPairSync(type as 'ed25519');
    t.strictSame(readPrivateKey(privateKey.export({ type: 'pkcs8', format: 'der' }), ALL), { kind: 'unsupported-type', type });
  }
  const ed448 = generateKeyPairSync('ed448').privateKey.export({ type: 'pkcs8', format: 'der' });
  t.equal(readPrivateKey(ed448, ALL).kind, 'unparsable', 'Ed448: Go does not parse it at all');
  t.equal(readPrivateKey(Buffer.alloc(0), ALL).kind, 'unparsable', 'empty');
});

t.test('RSA keys become PKCS#1 whatever the input format', async (t) => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'der' });
  for (const der of [pkcs1, privateKey.export({ type: 'pkcs8', format: 'der' })]) {
    const r = readPrivateKey(der, ALL);
    t.ok(r.kind === 'key' && r.key.pemType === 'RSA PRIVATE KEY' && r.key.der.equals(pkcs1));
  }
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'der' });
  t.equal(readPrivateKey(ec, ['pkcs1']).kind, 'unparsable', "an EC key is not taken for PKCS#1 by OpenSSL's lenient reader");
});

t.test('PEM bodies round-trip through the byte-level base64', async (t) => {
  for (let n = 0; n <= 200; n++) {
    const bytes = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff));
    const pem = pemEncode({ type: 'TEST', headers: new Map(), bytes });
    const b64 = bytes.toString('base64');
    const lines = b64 === '' ? '' : `${b64.match(/.{1,64}/g)?.join('\n')}\n`;
    t.equal(pem.toString('latin1'), `-----BEGIN TEST-----\n${lines}-----END TEST-----\n`, `encode ${n} bytes`);
    const d = pemDecode(pem);
    t.ok(d?.block.bytes.equals(bytes), `decode ${n} bytes`);
  }
  for (const body of ['QUJD=', 'QU=D', 'Q===', '====', 'QUJ*']) {
    t.equal(pemDecode(Buffer.from(`-----BEGIN X-----\n${body}\n-----END X-----\n`)), null, `invalid body ${body}`);
  }
  t.ok(
    pemDecode(Buffer.from('-----BEGIN X-----\nQU\r\n J D\t\n-----END X-----\n'))?.block.bytes.equals(Buffer.from('ABC')),
    'spaces, tabs and CR LF inside the body are ignored',
  );
});
