// PFX (PKCS#12) to PEM blocks, as upstream's golang.org/x/crypto/pkcs12.ToPEM(data, "") does it:
// only the legacy algorithms that package knows (a SHA-1 MAC; pbeWithSHAAnd3-KeyTripleDES-CBC and
// pbeWithSHAAnd40BitRC2-CBC), the same structure checks in the same order, and its error texts, so
// e.g. a PFX made with OpenSSL 3's defaults (AES-256, SHA-256 MAC) is rejected with upstream's
// "pkcs12: unknown digest algorithm: 2.16.840.1.101.3.4.2.1". No such library exists for Node
// within our rules, hence this reader.
//
// Decrypted contents and key bytes are zeroed once converted; the blocks returned own their bytes.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { CONTEXT, DerReader, SEQUENCE, SET, UNIVERSAL, parseOne } from './der.js';
import { Pkcs12Error, TlsSecretError } from './errors.js';
import { type AlgorithmIdentifier, checkIterations, pbDecrypt, pkcs12Kdf, readAlgorithmIdentifier } from './pbe.js';
import { CERT_TYPE, PRIVATE_KEY_TYPE, type PemBlock } from './pem.js';
import { readPrivateKey } from './private-key.js';

const OID_DATA = '1.2.840.113549.1.7.1';
const OID_ENCRYPTED_DATA = '1.2.840.113549.1.7.6';
const OID_SHA1 = '1.3.14.3.2.26';
const OID_FRIENDLY_NAME = '1.2.840.113549.1.9.20';
const OID_LOCAL_KEY_ID = '1.2.840.113549.1.9.21';
const OID_MS_CSP_NAME = '1.3.6.1.4.1.311.17.1';
const OID_CERT_TYPE_X509 = '1.2.840.113549.1.9.22.1';
const OID_SHROUDED_KEY_BAG = '1.2.840.113549.1.12.10.1.2';
const OID_CERT_BAG = '1.2.840.113549.1.12.10.1.3';

const ERR_INCORRECT_PASSWORD = 'pkcs12: decryption password incorrect';
const notImplemented = (m: string) => new Pkcs12Error(`pkcs12: ${m}`);

interface ContentInfo {
  contentType: string;
  /** The body of the [0] EXPLICIT content, null when absent. */
  content: Buffer | null;
}

interface MacData {
  algorithm: AlgorithmIdentifier;
  digest: Buffer;
  salt: Buffer;
  iterations: bigint;
}

interface SafeBag {
  id: string;
  value: Buffer;
  /** Each attribute's id and the body of its value SET. */
  attributes: { id: string; values: Buffer }[];
}

/** ContentInfo ::= SEQUENCE { contentType OBJECT IDENTIFIER, content [0] EXPLICIT ANY OPTIONAL } */
function readContentInfo(s: DerReader, what: string): ContentInfo {
  return { contentType: s.oid(`${what}.contentType`), content: s.explicit(0, `${what}.content`, true) };
}

/** MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 } */
function readMacData(s: DerReader): MacData {
  const mac = s.sequence('MacData.mac');
  const algorithm = readAlgorithmIdentifier(mac, 'DigestInfo.digestAlgorithm');
  const digest = mac.octets('DigestInfo.digest');
  return { algorithm, digest, salt: s.octets('MacData.macSalt'), iterations: s.optionalInteger(1n) };
}

/** SafeBag ::= SEQUENCE { bagId OID, bagValue [0] EXPLICIT ANY, bagAttributes SET OF Attribute OPTIONAL } */
function readSafeBag(s: DerReader): SafeBag {
  const id = s.oid('SafeBag.bagId');
  const value = s.explicit(0, 'SafeBag.bagValue');
  const set = s.optional(UNIVERSAL, SET, true);
  const attributes =
    set === null
      ? []
      : DerReader.elements(set.body, 'SafeBag.bagAttributes').map((a) => {
          const attrId = a.oid('Attribute.attrId');
          return { id: attrId, values: a.any().body };
        });
  return { id, value, attributes };
}

function verifyMac(mac: MacData, message: Buffer, password: Buffer): void {
  if (mac.algorithm.oid !== OID_SHA1) throw notImplemented(`unknown digest algorithm: ${mac.algorithm.oid}`);
  const key = pkcs12Kdf(mac.salt, password, checkIterations(mac.iterations), 3, 20);
  const expected = createHmac('sha1', key).update(message).digest();
  key.fill(0);
  if (mac.digest.length !== expected.length || !timingSafeEqual(mac.digest, expected)) {
    throw new Pkcs12Error(ERR_INCORRECT_PASSWORD);
  }
}

/** The safe bags of every content of the authenticated safe, in order, and the password that worked. */
function getSafeContents(p12: Buffer, password: Buffer): { bags: SafeBag[]; password: Buffer } {
  let pfx: { version: bigint; authSafe: ContentInfo; mac: MacData | null };
  try {
    // PFX ::= SEQUENCE { version INTEGER, authSafe ContentInfo, macData MacData OPTIONAL }
    pfx = parseOne(p12, (r) => {
      const s = r.sequence('PFX');
      const version = s.integer('PFX.version');
      const authSafe = readContentInfo(s.sequence('PFX.authSafe'), 'ContentInfo');
      const mac = s.optional(UNIVERSAL, SEQUENCE, true);
      return { version, authSafe, mac: mac === null ? null : readMacData(new DerReader(mac.body)) };
    });
  } catch (err) {
    if (err instanceof Pkcs12Error) throw new Pkcs12Error(`pkcs12: error reading P12 data: ${err.message}`);
    throw err;
  }
  if (pfx.version !== 3n) throw notImplemented("can only decode v3 PFX PDU's");
  if (pfx.authSafe.contentType !== OID_DATA) throw notImplemented('only password-protected PFX is implemented');
  const authSafe = parseOne(pfx.authSafe.content, (r) => r.any().body);
  if (pfx.mac === null) throw new Pkcs12Error('pkcs12: no MAC in data');

  let pw = password;
  try {
    verifyMac(pfx.mac, authSafe, pw);
  } catch (err) {
    const emptyBmp = pw.length === 2 && pw[0] === 0 && pw[1] === 0;
    if (!(err instanceof Pkcs12Error && err.message === ERR_INCORRECT_PASSWORD && emptyBmp)) throw err;
    // Some implementations use an empty byte string for the empty password.
    pw = Buffer.alloc(0);
    verifyMac(pfx.mac, authSafe, pw);
  }

  const contents = parseOne(authSafe, (r) => r.sequenceOf('AuthenticatedSafe').map((s) => readContentInfo(s, 'ContentInfo')));
  if (contents.length !== 2) throw notImplemented('expected exactly two items in the authenticated safe');
  const bags: SafeBag[] = [];
  for (const ci of contents) {
    let data: Buffer;
    let decrypted = false;
    if (ci.contentType === OID_DATA) {
      data = parseOne(ci.content, (r) => r.octets('Data'));
    } else if (ci.contentType === OID_ENCRYPTED_DATA) {
      // EncryptedData ::= SEQUENCE { version INTEGER, encryptedContentInfo EncryptedContentInfo }
      // EncryptedContentInfo ::= SEQUENCE { contentType OID, contentEncryptionAlgorithm
      //   AlgorithmIdentifier, encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }
      const ed = parseOne(ci.content, (r) => {
        const s = r.sequence('EncryptedData');
        const version = s.integer('EncryptedData.version');
        const eci = s.sequence('EncryptedContentInfo');
        eci.oid('EncryptedContentInfo.contentType');
        const algorithm = readAlgorithmIdentifier(eci, 'EncryptedContentInfo.contentEncryptionAlgorithm');
        return { version, algorithm, encrypted: eci.optional(CONTEXT, 0, false)?.body ?? null };
      });
      if (ed.version !== 0n) throw notImplemented('only version 0 of EncryptedData is supported');
      data = pbDecrypt(ed.algorithm, ed.encrypted, pw);
      decrypted = true;
    } else {
      throw notImplemented('only data and encryptedData content types are supported in authenticated safe');
    }
    try {
      // Copies: the decrypted contents are zeroed below.
      for (const bag of parseOne(data, (r) => r.sequenceOf('SafeContents').map(readSafeBag))) {
        bags.push({
          id: bag.id,
          value: Buffer.from(bag.value),
          attributes: bag.attributes.map((a) => ({ id: a.id, values: Buffer.from(a.values) })),
        });
      }
    } finally {
      if (decrypted) data.fill(0);
    }
  }
  return { bags, password: pw };
}

/** A BMPString (UTF-16BE, optionally NUL-terminated) as Go's UTF-8 string, in latin1 form. */
function decodeBmpString(b: Buffer): string {
  if (b.length % 2 !== 0) throw new Pkcs12Error('pkcs12: odd-length BMP string');
  const s = b.length >= 2 && b[b.length - 1] === 0 && b[b.length - 2] === 0 ? b.subarray(0, b.length - 2) : b;
  let str = '';
  for (let i = 0; i < s.length; i += 2) str += String.fromCharCode(((s[i] ?? 0) << 8) | (s[i + 1] ?? 0));
  // Buffer's UTF-8 encoder turns unpaired surrogates into U+FFFD, as Go's utf16.Decode does.
  return Buffer.from(str, 'utf8').toString('latin1');
}

/** A bag attribute as the PEM header ToPEM writes, or null for the attributes it skips. */
function convertAttribute(attr: { id: string; values: Buffer }): [string, string] | null {
  switch (attr.id) {
    case OID_FRIENDLY_NAME:
      return ['friendlyName', decodeBmpString(parseOne(attr.values, (r) => r.any().body))];
    case OID_MS_CSP_NAME:
      return ['Microsoft CSP Name', decodeBmpString(parseOne(attr.values, (r) => r.any().body))];
    case OID_LOCAL_KEY_ID:
      return ['localKeyId', parseOne(attr.values, (r) => r.octets('localKeyId')).toString('hex')];
    default:
      return null;
  }
}

/** A shrouded key bag's key, in upstream's encoding (PKCS#1 or SEC1 DER). */
function decodeShroudedKeyBag(value: Buffer, password: Buffer): Buffer {
  const wrap = <T>(prefix: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof Pkcs12Error) throw new Pkcs12Error(`pkcs12: ${prefix}: ${err.message}`);
      throw err;
    }
  };
  // EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm AlgorithmIdentifier, encryptedData OCTET STRING }
  const info = wrap('error decoding PKCS#8 shrouded key bag', () =>
    parseOne(value, (r) => {
      const s = r.sequence('EncryptedPrivateKeyInfo');
      const algorithm = readAlgorithmIdentifier(s, 'EncryptedPrivateKeyInfo.encryptionAlgorithm');
      return { algorithm, encrypted: s.octets('EncryptedPrivateKeyInfo.encryptedData') };
    }),
  );
  const pkcs8 = wrap('error decrypting PKCS#8 shrouded key bag', () => pbDecrypt(info.algorithm, info.encrypted, password));
  try {
    wrap('error unmarshaling decrypted private key', () => parseOne(pkcs8, (r) => r.any().body));
    const read = readPrivateKey(pkcs8, ['pkcs8']);
    if (read.kind === 'unsupported-type') throw new Pkcs12Error('found unknown private key type in PKCS#8 wrapping');
    if (read.kind === 'unparsable') throw new Pkcs12Error(`pkcs12: error parsing PKCS#8 private key: ${read.reason}`);
    return read.key.der;
  } finally {
    pkcs8.fill(0);
  }
}

function convertBag(bag: SafeBag, password: Buffer): PemBlock {
  const headers = new Map<string, string>();
  for (const attr of bag.attributes) {
    const kv = convertAttribute(attr);
    if (kv) headers.set(kv[0], kv[1]);
  }
  if (bag.id === OID_CERT_BAG) {
    let cert: { id: string; data: Buffer };
    try {
      // CertBag ::= SEQUENCE { certId OID, certValue [0] EXPLICIT OCTET STRING }
      cert = parseOne(bag.value, (r) => {
        const s = r.sequence('CertBag');
        const id = s.oid('CertBag.certId');
        return { id, data: new DerReader(s.explicit(0, 'CertBag.certValue')).octets('CertBag.certValue') };
      });
    } catch (err) {
      if (err instanceof Pkcs12Error) throw new Pkcs12Error(`pkcs12: error decoding cert bag: ${err.message}`);
      throw err;
    }
    if (cert.id !== OID_CERT_TYPE_X509) throw notImplemented('only X509 certificates are supported');
    return { type: CERT_TYPE, headers, bytes: Buffer.from(cert.data) };
  }
  if (bag.id === OID_SHROUDED_KEY_BAG) {
    return { type: PRIVATE_KEY_TYPE, headers, bytes: decodeShroudedKeyBag(bag.value, password) };
  }
  throw new Pkcs12Error(`don't know how to convert a safe bag of type ${bag.id}`);
}

/**
 * pkcs12.ToPEM(data, ""): a CERTIFICATE block per certificate bag and a PRIVATE KEY block (PKCS#1
 * or SEC1 DER) per key bag, in bag order. Throws TlsSecretError with pkcs12's message.
 */
export function pfxToPem(data: Buffer): PemBlock[] {
  const blocks: PemBlock[] = [];
  try {
    // The BMPString encoding of "": just the two-byte terminator.
    const { bags, password } = getSafeContents(data, Buffer.alloc(2));
    for (const bag of bags) blocks.push(convertBag(bag, password));
    return blocks;
  } catch (err) {
    for (const b of blocks) b.bytes.fill(0);
    if (err instanceof Pkcs12Error) throw new TlsSecretError(err.message, 'pkcs12');
    throw err;
  }
}
