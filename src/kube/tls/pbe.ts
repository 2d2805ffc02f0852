// PKCS#12 password-based encryption as golang.org/x/crypto/pkcs12 supports it: the RFC 7292
// appendix B key derivation with SHA-1, and pbeWithSHAAnd3-KeyTripleDES-CBC (via node:crypto) or
// pbeWithSHAAnd40BitRC2-CBC (rc2.ts), followed by upstream's padding check. Derived keys, IVs and
// intermediate values live in Buffers that are zeroed before returning.

import { createDecipheriv, createHash } from 'node:crypto';
import { type DerReader, parseOne } from './der.js';
import { Pkcs12Error } from './errors.js';
import { rc2CbcDecrypt } from './rc2.js';

const OID_PBE_SHA_3DES = '1.2.840.113549.1.12.1.3';
const OID_PBE_SHA_RC2_40 = '1.2.840.113549.1.12.1.6';
const MAX_ITERATIONS = 1 << 20;
const BLOCK_SIZE = 8;

export const ERR_DECRYPTION = 'pkcs12: decryption error, incorrect padding';

export interface AlgorithmIdentifier {
  oid: string;
  /** The parameters' full encoding, or null when absent. */
  parameters: Buffer | null;
}

/** AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL } */
export function readAlgorithmIdentifier(r: DerReader, what: string): AlgorithmIdentifier {
  const s = r.sequence(what);
  const oid = s.oid(`${what}.algorithm`);
  return { oid, parameters: s.optionalAny()?.full ?? null };
}

/** An iteration count upstream accepts, as a number. */
export function checkIterations(n: bigint): number {
  if (n < 0n || n > BigInt(MAX_ITERATIONS)) throw new Pkcs12Error('pkcs12: iteration count is invalid or too high');
  return Number(n);
}

/** `pattern` repeated to the next multiple of `v` bytes (empty stays empty). */
function fillWithRepeats(pattern: Buffer, v: number): Buffer {
  const out = Buffer.alloc(pattern.length === 0 ? 0 : v * Math.ceil(pattern.length / v));
  for (let i = 0; i < out.length; i++) out[i] = pattern[i % pattern.length] ?? 0;
  return out;
}

function sha1(...parts: Buffer[]): Buffer {
  const h = createHash('sha1');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** RFC 7292 appendix B.2 with SHA-1 (u = 20, v = 64): `size` bytes of key (id 1), IV (2) or MAC key (3). */
export function pkcs12Kdf(salt: Buffer, password: Buffer, iterations: number, id: number, size: number): Buffer {
  const v = 64;
  const u = 20;
  const D = Buffer.alloc(v, id);
  const S = fillWithRepeats(salt, v);
  const P = fillWithRepeats(password, v);
  const I = Buffer.concat([S, P]);
  const c = Math.ceil(size / u);
  const A = Buffer.alloc(c * u);
  const B = Buffer.alloc(v);
  try {
    for (let i = 0; i < c; i++) {
      let Ai = sha1(D, I);
      for (let j = 1; j < iterations; j++) {
        const next = sha1(Ai);
        Ai.fill(0);
        Ai = next;
      }
      Ai.copy(A, i * u);
      if (i < c - 1) {
        for (let k = 0; k < v; k++) B[k] = Ai[k % u] ?? 0;
        // I_j = (I_j + B + 1) mod 2^(8v), for each v-byte block of I.
        for (let off = 0; off < I.length; off += v) {
          let carry = 1;
          for (let k = v - 1; k >= 0; k--) {
            const sum = (I[off + k] ?? 0) + (B[k] ?? 0) + carry;
            I[off + k] = sum & 0xff;
            carry = sum >> 8;
          }
        }
      }
      Ai.fill(0);
    }
    return Buffer.from(A.subarray(0, size));
  } finally {
    for (const b of [S, P, I, A, B]) b.fill(0);
  }
}

/**
 * Decrypts `encrypted` with the PBE algorithm and the (BMPString-encoded) password, and strips the
 * padding. The result is a fresh Buffer (or a view of one) the caller zeroes.
 */
export function pbDecrypt(algorithm: AlgorithmIdentifier, encrypted: Buffer | null, password: Buffer): Buffer {
  const isDes = algorithm.oid === OID_PBE_SHA_3DES;
  if (!isDes && algorithm.oid !== OID_PBE_SHA_RC2_40) {
    throw new Pkcs12Error(`pkcs12: algorithm ${algorithm.oid} is not supported`);
  }
  // pbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER }
  const params = parseOne(algorithm.parameters, (r) => {
    const s = r.sequence('pbeParams');
    return { salt: s.octets('pbeParams.salt'), iterations: s.integer('pbeParams.iterations') };
  });
  const iterations = checkIterations(params.iterations);
  const key = pkcs12Kdf(params.salt, password, iterations, 1, isDes ? 24 : 5);
  const iv = pkcs12Kdf(params.salt, password, iterations, 2, BLOCK_SIZE);
  let decrypted: Buffer;
  try {
    if (encrypted === null || encrypted.length === 0) throw new Pkcs12Error('pkcs12: empty encrypted data');
    if (encrypted.length % BLOCK_SIZE !== 0) throw new Pkcs12Error('pkcs12: input is not a multiple of the block size');
    if (isDes) {
      const decipher = createDecipheriv('des-ede3-cbc', key, iv).setAutoPadding(false);
      const head = decipher.update(encrypted);
      const tail = decipher.final();
      decrypted = Buffer.concat([head, tail]);
      head.fill(0);
      tail.fill(0);
    } else {
      decrypted = rc2CbcDecrypt(key, key.length * 8, iv, encrypted);
    }
  } finally {
    key.fill(0);
    iv.fill(0);
  }
  const padLen = decrypted[decrypted.length - 1] ?? 0;
  let padOk = padLen !== 0 && padLen <= BLOCK_SIZE && decrypted.length >= padLen;
  for (let i = decrypted.length - padLen; padOk && i < decrypted.length; i++) padOk = decrypted[i] === padLen;
  if (!padOk) {
    decrypted.fill(0);
    throw new Pkcs12Error(ERR_DECRYPTION);
  }
  return decrypted.subarray(0, decrypted.length - padLen);
}
