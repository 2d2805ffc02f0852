// Secret sync data for `type: kubernetes.io/tls` (upstream pkg/util/secretutil/secret.go:
// GetCertPart, getCert, getPrivateKey, GetSecretType, and the TLS branch of GetSecretData).
//
// Upstream's rules (byte for byte, but for the key-reading differences noted in private-key.ts):
//   - Only a secret object whose type is exactly `kubernetes.io/tls` is special. Every other type
//     (including empty, which means Opaque) gets the mounted file's bytes unchanged.
//   - For the TLS type only the keys `tls.key` and `tls.crt` are allowed.
//   - `tls.crt`: every PEM block of type CERTIFICATE, in file order, re-encoded (headers kept). If the
//     file has none, the bytes after the last PEM block are read as PKCS#12 (PFX) with an empty
//     password and the certificate bags are emitted in bag order, with the bag attributes
//     (friendlyName, localKeyId, Microsoft CSP Name) as PEM headers, as Go's pkcs12.ToPEM does.
//   - `tls.key`: the body of the LAST PEM block that is not a CERTIFICATE (whatever its type). If
//     there is none, the LAST private key of the PFX read as above. That DER is read as PKCS#1,
//     PKCS#8 or SEC1 and re-encoded as `RSA PRIVATE KEY` (PKCS#1) or `EC PRIVATE KEY` (SEC1).
//     A PKCS#8 Ed25519/X25519 key is an error; a block that is not a key upstream reads (encrypted
//     key, public key, unsupported curve or algorithm) is NOT an error: upstream then emits an empty
//     `-----BEGIN PRIVATE KEY-----` block.
//
// The parts: pem.ts (Go's PEM rules), private-key.ts (node:crypto with Go's accepted key set),
// pkcs12.ts with der.ts, pbe.ts and rc2.ts (the legacy PFX format), cert-parts.ts (the rules above).

import { getCertPart } from './cert-parts.js';
import { TlsSecretError } from './errors.js';

export { TLS_CERT_KEY, TLS_PRIVATE_KEY_KEY, extractCertChainPem, extractPrivateKeyPem, getCertPart } from './cert-parts.js';
export { TlsSecretError, type TlsSecretErrorReason } from './errors.js';
export { rc2CbcDecrypt } from './rc2.js';

export const SECRET_TYPE_TLS = 'kubernetes.io/tls';
export const SECRET_TYPE_OPAQUE = 'Opaque';

/** Upstream's GetSecretType: empty means Opaque, any other string is passed through. */
export function getSecretType(type: string): string {
  return type === '' ? SECRET_TYPE_OPAQUE : type;
}

/** Whether a secretObject's type gets upstream's TLS processing (exact, case-sensitive match). */
export function isTlsType(type: string): boolean {
  return getSecretType(type) === SECRET_TYPE_TLS;
}

/**
 * The bytes to store under `key` in a synced Secret of `type`, from the mounted file's bytes.
 * `key` must already be trimmed (upstream TrimSpace's it before use). Non-TLS types get a copy of
 * `fileBytes`. For the TLS type a failure throws TlsSecretError; when `file` (the mounted file's
 * path) is given its message is upstream's full "failed to get cert data from file <file>, err: <detail>".
 */
export function secretDataFor(type: string, key: string, fileBytes: Buffer, file?: string): Buffer {
  // A copy: the caller zeroes what it gets once the Secret is written, and
  // fileBytes is a view of the bytes the mount serves.
  if (!isTlsType(type)) return Buffer.from(fileBytes);
  try {
    return getCertPart(fileBytes, key);
  } catch (err) {
    if (file !== undefined && err instanceof TlsSecretError) {
      throw new TlsSecretError(`failed to get cert data from file ${file}, err: ${err.detail}`, err.reason, err.detail);
    }
    throw err;
  }
}
