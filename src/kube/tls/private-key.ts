// Private-key parsing and re-encoding through node:crypto (OpenSSL): PKCS#1, PKCS#8 or SEC1 DER
// in, upstream's output formats out (x509.MarshalPKCS1PrivateKey for RSA, MarshalECPrivateKey for
// ECDSA). What upstream accepts is narrower than OpenSSL, so the result is filtered to it: RSA,
// and ECDSA on the curves Go's crypto/x509 parses (the NIST curves P-224, P-256, P-384, P-521),
// with named (not explicit) parameters. PKCS#8 Ed25519 and X25519 keys parse in Go but upstream
// then refuses them, which callers report as an error of its own.
//
// Known differences from Go's hand-rolled checks, accepted to keep key material out of JS strings
// and bigints: an RSA key whose values are inconsistent (Go's crypto/rsa validation fails, so
// upstream writes an empty block) is re-encoded as OpenSSL holds it; an EC key stored without its
// public point, or with a compressed one, keeps that form (Go recomputes an uncompressed point).

import { type KeyObject, createPrivateKey, createPublicKey } from 'node:crypto';

export type KeyFormat = 'pkcs1' | 'pkcs8' | 'sec1';

export const RSA_PRIVATE_KEY_TYPE = 'RSA PRIVATE KEY';
export const EC_PRIVATE_KEY_TYPE = 'EC PRIVATE KEY';

/** A key in upstream's output encoding; `der` is a fresh Buffer the caller zeroes. */
export interface TraditionalKey {
  pemType: typeof RSA_PRIVATE_KEY_TYPE | typeof EC_PRIVATE_KEY_TYPE;
  der: Buffer;
}

export type KeyReading =
  | { kind: 'key'; key: TraditionalKey }
  /** A key Go parses but upstream rejects (PKCS#8 Ed25519 / X25519). */
  | { kind: 'unsupported-type'; type: string }
  /** No format accepted the input, or the key is outside what Go accepts. */
  | { kind: 'unparsable'; reason: string };

/**
 * The AlgorithmIdentifier each allowed curve has in a public key's SPKI encoding (id-ecPublicKey
 * with the curve's OID). OpenSSL names a curve given by explicit parameters after the built-in curve
 * it matches, but re-encodes the parameters explicitly; Go rejects such keys, so the named form is
 * required by looking for this fixed byte string.
 */
const ALLOWED_CURVES: ReadonlyMap<string, Buffer> = new Map(
  [
    ['secp224r1', '301006072a8648ce3d020106052b81040021'],
    ['prime256v1', '301306072a8648ce3d020106082a8648ce3d030107'],
    ['secp384r1', '301006072a8648ce3d020106052b81040022'],
    ['secp521r1', '301006072a8648ce3d020106052b81040023'],
  ].map(([name, algId]) => [name as string, Buffer.from(algId as string, 'hex')]),
);

/** Types a PKCS#8 key may have that Go's parser accepts yet upstream refuses. */
const REFUSED_PKCS8_TYPES = new Set(['ed25519', 'x25519']);

function load(der: Buffer, type: KeyFormat): KeyObject | null {
  try {
    return createPrivateKey({ key: der, format: 'der', type });
  } catch {
    return null;
  }
}

/** Why an EC key is outside Go's accepted set, or null when it is inside. */
function curveProblem(key: KeyObject): string | null {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const algId = curve === undefined ? undefined : ALLOWED_CURVES.get(curve);
  if (algId === undefined) return `unsupported elliptic curve ${curve ?? '(unnamed)'}`;
  const at = createPublicKey(key).export({ type: 'spki', format: 'der' }).indexOf(algId);
  return at === 2 || at === 3 ? null : 'elliptic curve given by explicit parameters';
}

function encode(key: KeyObject): TraditionalKey {
  if (key.asymmetricKeyType === 'rsa') {
    return { pemType: RSA_PRIVATE_KEY_TYPE, der: key.export({ type: 'pkcs1', format: 'der' }) };
  }
  return { pemType: EC_PRIVATE_KEY_TYPE, der: key.export({ type: 'sec1', format: 'der' }) };
}

/** One format's verdict on `der`: a usable key, a refused one, or why not. */
function readAs(der: Buffer, format: KeyFormat): KeyReading {
  const key = load(der, format);
  if (key === null) return { kind: 'unparsable', reason: `not a ${format.toUpperCase()} private key` };
  const type = key.asymmetricKeyType ?? 'unknown';
  // OpenSSL's PKCS#1 and SEC1 readers also take PKCS#8 input, so each format keeps only its own type.
  const wanted = format === 'pkcs1' ? ['rsa'] : format === 'sec1' ? ['ec'] : ['rsa', 'ec'];
  if (!wanted.includes(type)) {
    if (format === 'pkcs8' && REFUSED_PKCS8_TYPES.has(type)) return { kind: 'unsupported-type', type };
    return { kind: 'unparsable', reason: `unsupported private key algorithm ${type}` };
  }
  if (type === 'ec') {
    const problem = curveProblem(key);
    if (problem !== null) return { kind: 'unparsable', reason: problem };
  }
  return { kind: 'key', key: encode(key) };
}

/**
 * Reads `der` as each of `formats` in turn (upstream tries PKCS#1, PKCS#8, then SEC1; the formats
 * do not overlap, so the first that yields a key or a refusal decides).
 */
export function readPrivateKey(der: Buffer, formats: readonly KeyFormat[]): KeyReading {
  let last: KeyReading = { kind: 'unparsable', reason: 'empty key' };
  for (const format of formats) {
    const r = readAs(der, format);
    if (r.kind !== 'unparsable') return r;
    last = r;
  }
  return last;
}
