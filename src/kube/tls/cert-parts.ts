// Upstream's GetCertPart, getCert and getPrivateKey (pkg/util/secretutil/secret.go): which part of
// a PEM or PFX file becomes tls.crt and tls.key. See index.ts for the rules.

import { TlsSecretError } from './errors.js';
import { CERT_TYPE, PRIVATE_KEY_TYPE, type PemBlock, pemDecode, pemEncode } from './pem.js';
import { pfxToPem } from './pkcs12.js';
import { readPrivateKey } from './private-key.js';

export const TLS_PRIVATE_KEY_KEY = 'tls.key';
export const TLS_CERT_KEY = 'tls.crt';

/** Every PEM block of `input` in order, and the bytes after the last one. */
function pemBlocks(input: Buffer): { blocks: PemBlock[]; rest: Buffer } {
  const blocks: PemBlock[] = [];
  let rest = input;
  for (let d = pemDecode(rest); d !== null; d = pemDecode(rest)) {
    blocks.push(d.block);
    rest = d.rest;
  }
  return { blocks, rest };
}

/** Zeroes the decoded bodies that are not certificates (i.e. possibly keys). */
function scrubKeys(blocks: readonly PemBlock[]): void {
  for (const b of blocks) if (b.type !== CERT_TYPE) b.bytes.fill(0);
}

/** Upstream's GetCertPart. */
export function getCertPart(data: Buffer, key: string): Buffer {
  if (key === TLS_PRIVATE_KEY_KEY) return extractPrivateKeyPem(data);
  if (key === TLS_CERT_KEY) return extractCertChainPem(data);
  throw new TlsSecretError(`key '${key}' is not supported. Only 'tls.key' and 'tls.crt' are supported`, 'unsupported-key');
}

/** Upstream's getCert: the CERTIFICATE PEM blocks of a PEM file, else of a PFX (empty password). */
export function extractCertChainPem(input: Buffer): Buffer {
  const pem = pemBlocks(input);
  scrubKeys(pem.blocks);
  let certs = pem.blocks.filter((b) => b.type === CERT_TYPE);
  if (certs.length === 0) {
    const pfx = pfxToPem(pem.rest);
    scrubKeys(pfx);
    certs = pfx.filter((b) => b.type === CERT_TYPE);
  }
  return Buffer.concat(certs.map(pemEncode));
}

/**
 * Upstream's getPrivateKey: the last non-certificate PEM block, else the last key of a PFX, re-encoded
 * as PKCS#1 (RSA) or SEC1 (ECDSA) PEM; an empty PRIVATE KEY block when it is not a key upstream reads.
 */
export function extractPrivateKeyPem(input: Buffer): Buffer {
  const pem = pemBlocks(input);
  const blocks = pem.blocks.some((b) => b.type !== CERT_TYPE) ? pem.blocks : pfxToPem(pem.rest);
  const wanted = blocks === pem.blocks ? (b: PemBlock) => b.type !== CERT_TYPE : (b: PemBlock) => b.type === PRIVATE_KEY_TYPE;
  const der = blocks.findLast(wanted)?.bytes ?? Buffer.alloc(0);
  try {
    const read = readPrivateKey(der, ['pkcs1', 'pkcs8', 'sec1']);
    if (read.kind === 'unsupported-type') {
      throw new TlsSecretError(
        'unknown private key type found while getting key. Only rsa and ecdsa are supported',
        'unsupported-private-key-type',
      );
    }
    if (read.kind === 'unparsable') return pemEncode({ type: PRIVATE_KEY_TYPE, headers: new Map(), bytes: Buffer.alloc(0) });
    try {
      return pemEncode({ type: read.key.pemType, headers: new Map(), bytes: read.key.der });
    } finally {
      read.key.der.fill(0);
    }
  } finally {
    scrubKeys(pem.blocks);
    if (blocks !== pem.blocks) scrubKeys(blocks);
  }
}
