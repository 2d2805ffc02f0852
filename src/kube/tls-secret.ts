// Secret sync data for `type: kubernetes.io/tls` (upstream pkg/util/secretutil/secret.go:
// GetCertPart, getCert, getPrivateKey, GetSecretType, and the TLS branch of GetSecretData).
//
// Upstream's rules, reproduced byte for byte:
//   - Only a secret object whose type is exactly `kubernetes.io/tls` is special. Every other type
//     (including empty, which means Opaque) gets the mounted file's bytes unchanged.
//   - For the TLS type only the keys `tls.key` and `tls.crt` are allowed.
//   - `tls.crt`: every PEM block of type CERTIFICATE, in file order, re-encoded (headers kept). If the
//     file has none, the bytes after the last PEM block are read as PKCS#12 (PFX) with an empty
//     password and the certificate bags are emitted in bag order, with the bag attributes
//     (friendlyName, localKeyId, Microsoft CSP Name) as PEM headers, as Go's pkcs12.ToPEM does.
//   - `tls.key`: the body of the LAST PEM block that is not a CERTIFICATE (whatever its type). If
//     there is none, the LAST private key of the PFX read as above. That DER is tried as PKCS#1, then
//     PKCS#8, then SEC1, and re-encoded as `RSA PRIVATE KEY` (PKCS#1) or `EC PRIVATE KEY` (SEC1).
//     A PKCS#8 Ed25519/X25519 key is an error; a block that none of the parsers accept (encrypted
//     key, public key, unsupported curve or algorithm) is NOT an error: upstream then emits an empty
//     `-----BEGIN PRIVATE KEY-----` block.
//
// Upstream parses with Go's encoding/pem, encoding/asn1, crypto/x509 and golang.org/x/crypto/pkcs12.
// Their acceptance rules and error texts are reproduced here on top of node:crypto (hashes, HMAC,
// 3DES, EC point multiplication). pkcs12 only knows the legacy PFX algorithms: a SHA-1 MAC and
// pbeWithSHAAnd3-KeyTripleDES-CBC / pbeWithSHAAnd40BitRC2-CBC. A PFX made with OpenSSL 3's defaults
// (AES-256 + SHA-256 MAC) is rejected with upstream's "pkcs12: unknown digest algorithm: …" error.
// RC2 is not available in Node's default OpenSSL provider, so its decryption is implemented below.
//
// Errors never carry key material: only tags, lengths, OIDs, versions and file paths.

import { createDecipheriv, createECDH, createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const SECRET_TYPE_TLS = 'kubernetes.io/tls';
export const SECRET_TYPE_OPAQUE = 'Opaque';
export const TLS_PRIVATE_KEY_KEY = 'tls.key';
export const TLS_CERT_KEY = 'tls.crt';

export type TlsSecretErrorReason =
  /** The data key is neither tls.key nor tls.crt. */
  | 'unsupported-key'
  /** A PKCS#8 key of a type other than RSA/ECDSA (Ed25519, X25519). */
  | 'unsupported-private-key-type'
  /** The input is not PEM with the requested part, and PFX decoding failed. */
  | 'pkcs12';

export class TlsSecretError extends Error {
  readonly code = 'ERR_TLS_SECRET_DATA';
  constructor(
    message: string,
    readonly reason: TlsSecretErrorReason,
    /** Upstream's GetCertPart error text, without the "failed to get cert data from file" prefix. */
    readonly detail: string = message,
  ) {
    super(message);
    this.name = 'TlsSecretError';
  }
}

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
 * `key` must already be trimmed (upstream TrimSpace's it before use). Non-TLS types return
 * `fileBytes` itself. For the TLS type a failure throws TlsSecretError; when `file` (the mounted
 * file's path) is given its message is upstream's full
 * "failed to get cert data from file <file>, err: <detail>".
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

/** Upstream's GetCertPart. */
export function getCertPart(data: Buffer, key: string): Buffer {
  if (key === TLS_PRIVATE_KEY_KEY) return extractPrivateKeyPem(data);
  if (key === TLS_CERT_KEY) return extractCertChainPem(data);
  throw new TlsSecretError(`key '${key}' is not supported. Only 'tls.key' and 'tls.crt' are supported`, 'unsupported-key');
}

/** Upstream's getCert: the CERTIFICATE PEM blocks of a PEM file, else of a PFX (empty password). */
export function extractCertChainPem(input: Buffer): Buffer {
  const out: Buffer[] = [];
  let data = input;
  for (;;) {
    const d = pemDecode(data);
    if (d === null) break;
    if (d.block.type === CERT_TYPE) out.push(pemEncode(d.block));
    data = d.rest;
  }
  if (out.length === 0) {
    for (const block of pfxToPem(data)) {
      if (block.type === CERT_TYPE) out.push(pemEncode(block));
    }
  }
  return Buffer.concat(out);
}

/** Upstream's getPrivateKey: the key re-encoded as PKCS#1 or SEC1 PEM (see the header comment). */
export function extractPrivateKeyPem(input: Buffer): Buffer {
  let der: Buffer | null = null;
  let data = input;
  for (;;) {
    const d = pemDecode(data);
    if (d === null) break;
    if (d.block.type !== CERT_TYPE) der = d.block.bytes;
    data = d.rest;
  }
  if (der === null) {
    for (const block of pfxToPem(data)) {
      if (block.type === PRIVATE_KEY_TYPE) der = block.bytes;
    }
  }

  let type = PRIVATE_KEY_TYPE;
  let derKey: Buffer | null = null;
  const input2 = der ?? Buffer.alloc(0);
  const rsa = parsePkcs1PrivateKey(input2);
  if (rsa.key) {
    type = RSA_PRIVATE_KEY_TYPE;
    derKey = marshalPkcs1PrivateKey(rsa.key);
  }
  const p8 = parsePkcs8PrivateKey(input2);
  if (p8.key) {
    switch (p8.key.kind) {
      case 'rsa':
        derKey = marshalPkcs1PrivateKey(p8.key);
        type = RSA_PRIVATE_KEY_TYPE;
        break;
      case 'ec':
        derKey = marshalEcPrivateKey(p8.key);
        type = EC_PRIVATE_KEY_TYPE;
        break;
      default:
        throw new TlsSecretError('unknown private key type found while getting key. Only rsa and ecdsa are supported',
          'unsupported-private-key-type');
    }
  }
  const ec = parseEcPrivateKey(null, input2);
  if (ec.key) {
    derKey = marshalEcPrivateKey(ec.key);
    type = EC_PRIVATE_KEY_TYPE;
  }
  return pemEncode({ type, headers: new Map(), bytes: derKey ?? Buffer.alloc(0) });
}

// ---------------------------------------------------------------------------------------------
// PEM (Go encoding/pem). Types and header strings are kept as latin1 strings, i.e. raw bytes.

const CERT_TYPE = 'CERTIFICATE';
const PRIVATE_KEY_TYPE = 'PRIVATE KEY';
const RSA_PRIVATE_KEY_TYPE = 'RSA PRIVATE KEY';
const EC_PRIVATE_KEY_TYPE = 'EC PRIVATE KEY';

interface PemBlock {
  type: string;
  headers: Map<string, string>;
  bytes: Buffer;
}

const PEM_BEGIN = Buffer.from('-----BEGIN ', 'latin1');
const PEM_END = Buffer.from('\n-----END ', 'latin1');
const PEM_EOL = Buffer.from('-----', 'latin1');
const NL = 0x0a;

function getLine(data: Buffer): { line: Buffer; rest: Buffer; consumed: number } {
  let i = data.indexOf(NL);
  let j: number;
  if (i < 0) {
    i = data.length;
    j = i;
  } else {
    j = i + 1;
    if (i > 0 && data[i - 1] === 0x0d) i--;
  }
  let e = i;
  while (e > 0 && (data[e - 1] === 0x20 || data[e - 1] === 0x09)) e--;
  return { line: data.subarray(0, e), rest: data.subarray(j), consumed: j };
}

const hasSuffix = (b: Buffer, s: Buffer) => b.length >= s.length && b.subarray(b.length - s.length).equals(s);
const hasPrefix = (b: Buffer, s: Buffer) => b.length >= s.length && b.subarray(0, s.length).equals(s);

/** Length of a Unicode white-space rune (Go unicode.IsSpace) encoded at b[i..], or 0. */
function spaceRuneAt(b: Buffer, i: number): number {
  const c = b[i];
  if (c === undefined) return 0;
  if (c === 0x09 || c === 0x0a || c === 0x0b || c === 0x0c || c === 0x0d || c === 0x20) return 1;
  const c1 = b[i + 1];
  if (c === 0xc2 && (c1 === 0x85 || c1 === 0xa0)) return 2;
  const c2 = b[i + 2];
  if (c1 === undefined || c2 === undefined) return 0;
  if (c === 0xe1 && c1 === 0x9a && c2 === 0x80) return 3; // U+1680
  if (c === 0xe2 && c1 === 0x80 && ((c2 >= 0x80 && c2 <= 0x8a) || c2 === 0xa8 || c2 === 0xa9 || c2 === 0xaf)) return 3;
  if (c === 0xe2 && c1 === 0x81 && c2 === 0x9f) return 3; // U+205F
  if (c === 0xe3 && c1 === 0x80 && c2 === 0x80) return 3; // U+3000
  return 0;
}

/** Go bytes.TrimSpace. */
function trimSpace(b: Buffer): Buffer {
  let s = 0;
  for (let n = spaceRuneAt(b, s); n > 0 && s < b.length; n = spaceRuneAt(b, s)) s += n;
  let e = b.length;
  for (;;) {
    let found = false;
    for (const n of [1, 2, 3]) {
      if (e - n >= s && spaceRuneAt(b, e - n) === n) {
        e -= n;
        found = true;
        break;
      }
    }
    if (!found) break;
  }
  return b.subarray(s, e);
}

/** Go base64.StdEncoding.Decode on PEM body bytes: '\r' and '\n' are ignored, padding is required. */
function decodeStdBase64(b: Buffer): Buffer | null {
  const s = b.toString('latin1').replace(/[\r\n]/g, '');
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
  return Buffer.from(s, 'base64');
}

/** Go pem.Decode: the first well-formed block and the input after its END line, or null. */
function pemDecode(data: Buffer): { block: PemBlock; rest: Buffer } | null {
  let rest = data;
  let endTrailerIndex = 0;
  for (;;) {
    if (endTrailerIndex < 0 || endTrailerIndex > rest.length) return null;
    rest = rest.subarray(endTrailerIndex);

    let endIndex = rest.indexOf(PEM_END);
    if (endIndex < 0) return null;
    endTrailerIndex = endIndex + PEM_END.length;
    const beginIndex = rest.subarray(0, endIndex).lastIndexOf(PEM_BEGIN);
    if (beginIndex < 0 || (beginIndex > 0 && rest[beginIndex - 1] !== NL)) continue;
    const skip = beginIndex + PEM_BEGIN.length;
    rest = rest.subarray(skip);
    endIndex -= skip;
    endTrailerIndex -= skip;

    const tl = getLine(rest);
    rest = tl.rest;
    endIndex -= tl.consumed;
    endTrailerIndex -= tl.consumed;
    if (!hasSuffix(tl.line, PEM_EOL)) continue;
    const typeLine = tl.line.subarray(0, tl.line.length - PEM_EOL.length);

    const headers = new Map<string, string>();
    let truncated = false;
    for (;;) {
      if (rest.length === 0) {
        truncated = true;
        break;
      }
      const l = getLine(rest);
      const colon = l.line.indexOf(0x3a);
      if (colon < 0) break;
      headers.set(trimSpace(l.line.subarray(0, colon)).toString('latin1'),
        trimSpace(l.line.subarray(colon + 1)).toString('latin1'));
      rest = l.rest;
      endIndex -= l.consumed;
      endTrailerIndex -= l.consumed;
    }
    if (truncated) return null;

    if (headers.size > 0 && endIndex < 0) continue;
    if (endTrailerIndex < 0) continue; // unreachable in Go (it would panic); be safe

    let endTrailer = rest.subarray(endTrailerIndex);
    const endTrailerLen = typeLine.length + PEM_EOL.length;
    if (endTrailer.length < endTrailerLen) continue;
    const restOfEndLine = endTrailer.subarray(endTrailerLen);
    endTrailer = endTrailer.subarray(0, endTrailerLen);
    if (!hasPrefix(endTrailer, typeLine) || !hasSuffix(endTrailer, PEM_EOL)) continue;
    if (getLine(restOfEndLine).line.length !== 0) continue;

    let bytes: Buffer = Buffer.alloc(0);
    if (endIndex > 0) {
      const body = rest.subarray(0, endIndex);
      const decoded = decodeStdBase64(body.includes(0x20) || body.includes(0x09)
        ? Buffer.from(body.filter((c) => c !== 0x20 && c !== 0x09)) : body);
      if (decoded === null) continue;
      bytes = decoded;
    }
    const after = getLine(rest.subarray(endIndex + PEM_END.length - 1)).rest;
    return { block: { type: typeLine.toString('latin1'), headers, bytes }, rest: after };
  }
}

/** Go pem.EncodeToMemory (Proc-Type header first, the others sorted, 64-column base64). */
function pemEncode(block: PemBlock): Buffer {
  let s = `-----BEGIN ${block.type}-----\n`;
  if (block.headers.size > 0) {
    const keys = [...block.headers.keys()].filter((k) => k !== 'Proc-Type').sort();
    const procType = block.headers.get('Proc-Type');
    if (procType !== undefined) s += `Proc-Type: ${procType}\n`;
    for (const k of keys) s += `${k}: ${block.headers.get(k) ?? ''}\n`;
    s += '\n';
  }
  const b64 = block.bytes.toString('base64');
  for (let i = 0; i < b64.length; i += 64) s += `${b64.slice(i, i + 64)}\n`;
  s += `-----END ${block.type}-----\n`;
  return Buffer.from(s, 'latin1');
}

// ---------------------------------------------------------------------------------------------
// ASN.1 DER decoding (a port of Go encoding/asn1's Unmarshal for the types the structures below
// use), so that what is accepted, and the error texts, are Go's.

interface RawValue {
  cls: number;
  tag: number;
  compound: boolean;
  bytes: Buffer | null;
  fullBytes: Buffer | null;
}
interface BitStr {
  bits: Buffer | null;
  bitLength: number;
}
type Val = bigint | Buffer | null | number[] | RawValue | BitStr | Rec | Val[];
interface Rec {
  [field: string]: Val;
}

interface Params {
  optional?: boolean;
  explicit?: boolean;
  tag?: number;
  set?: boolean;
  def?: bigint;
}
type Schema =
  | { k: 'int' } // Go int (64-bit)
  | { k: 'bigint' } // *big.Int
  | { k: 'bytes' } // []byte (OCTET STRING)
  | { k: 'oid' }
  | { k: 'raw' } // asn1.RawValue
  | { k: 'bits' } // asn1.BitString
  | { k: 'struct'; name: string; fields: readonly { name: string; s: Schema; p: Params }[] }
  | { k: 'slice'; elem: Schema };

const sInt: Schema = { k: 'int' };
const sBig: Schema = { k: 'bigint' };
const sBytes: Schema = { k: 'bytes' };
const sOid: Schema = { k: 'oid' };
const sRaw: Schema = { k: 'raw' };
const sBits: Schema = { k: 'bits' };
const struct = (name: string, fields: [string, Schema, Params?][]): Schema =>
  ({ k: 'struct', name, fields: fields.map(([n, s, p]) => ({ name: n, s, p: p ?? {} })) });

const structural = (m: string) => `asn1: structure error: ${m}`;
const syntax = (m: string) => `asn1: syntax error: ${m}`;

function zeroOf(s: Schema): Val {
  switch (s.k) {
    case 'int': return 0n;
    case 'bigint': case 'bytes': case 'slice': return null;
    case 'oid': return [];
    case 'raw': return { cls: 0, tag: 0, compound: false, bytes: null, fullBytes: null };
    case 'bits': return { bits: null, bitLength: 0 };
    case 'struct': {
      const r: Rec = {};
      for (const f of s.fields) r[f.name] = zeroOf(f.s);
      return r;
    }
  }
}

/** Go's setDefaultValue: ok when optional; ints get their default. */
function defaulted(s: Schema, p: Params): Val {
  return s.k === 'int' && p.def !== undefined ? p.def : zeroOf(s);
}

interface TagLen {
  cls: number;
  tag: number;
  length: number;
  compound: boolean;
}

function parseBase128Int(b: Buffer, init: number): { v: number; off: number; err?: string } {
  let off = init;
  let ret = 0;
  for (let shifted = 0; off < b.length; shifted++) {
    if (shifted === 5) return { v: 0, off, err: structural('base 128 integer too large') };
    const c = b[off] ?? 0;
    if (shifted === 0 && c === 0x80) return { v: 0, off, err: syntax('integer is not minimally encoded') };
    ret = ret * 128 + (c & 0x7f);
    off++;
    if ((c & 0x80) === 0) {
      if (ret > 0x7fffffff) return { v: ret, off, err: structural('base 128 integer too large') };
      return { v: ret, off };
    }
  }
  return { v: 0, off, err: syntax('truncated base 128 integer') };
}

function parseTagAndLength(b: Buffer, init: number): { t: TagLen; off: number; err?: string } {
  const t: TagLen = { cls: 0, tag: 0, length: 0, compound: false };
  let off = init;
  if (off >= b.length) return { t, off, err: 'asn1: internal error in parseTagAndLength' };
  let c = b[off++] ?? 0;
  t.cls = c >> 6;
  t.compound = (c & 0x20) === 0x20;
  t.tag = c & 0x1f;
  if (t.tag === 0x1f) {
    const r = parseBase128Int(b, off);
    t.tag = r.v;
    off = r.off;
    if (r.err) return { t, off, err: r.err };
    if (t.tag < 0x1f) return { t, off, err: syntax('non-minimal tag') };
  }
  if (off >= b.length) return { t, off, err: syntax('truncated tag or length') };
  c = b[off++] ?? 0;
  if ((c & 0x80) === 0) {
    t.length = c & 0x7f;
  } else {
    const numBytes = c & 0x7f;
    if (numBytes === 0) return { t, off, err: syntax('indefinite length found (not DER)') };
    t.length = 0;
    for (let i = 0; i < numBytes; i++) {
      if (off >= b.length) return { t, off, err: syntax('truncated tag or length') };
      c = b[off++] ?? 0;
      if (t.length >= 1 << 23) return { t, off, err: structural('length too large') };
      t.length = t.length * 256 + c;
      if (t.length === 0) return { t, off, err: structural('superfluous leading zeros in length') };
    }
    if (t.length < 0x80) return { t, off, err: structural('non-minimal length') };
  }
  return { t, off };
}

function checkInteger(b: Buffer): string | undefined {
  if (b.length === 0) return structural('empty integer');
  if (b.length === 1) return undefined;
  const b0 = b[0] ?? 0;
  const b1 = b[1] ?? 0;
  if ((b0 === 0 && (b1 & 0x80) === 0) || (b0 === 0xff && (b1 & 0x80) === 0x80)) {
    return structural('integer not minimally-encoded');
  }
  return undefined;
}

function twosComplement(b: Buffer): bigint {
  if (b.length === 0) return 0n;
  const u = BigInt(`0x${b.toString('hex')}`);
  return ((b[0] ?? 0) & 0x80) !== 0 ? u - (1n << BigInt(b.length * 8)) : u;
}

function parseObjectIdentifier(b: Buffer): { v: number[]; err?: string } {
  if (b.length === 0) return { v: [], err: syntax('zero length OBJECT IDENTIFIER') };
  const out: number[] = [];
  let r = parseBase128Int(b, 0);
  if (r.err) return { v: [], err: r.err };
  if (r.v < 80) out.push(Math.floor(r.v / 40), r.v % 40);
  else out.push(2, r.v - 80);
  let off = r.off;
  while (off < b.length) {
    r = parseBase128Int(b, off);
    if (r.err) return { v: [], err: r.err };
    out.push(r.v);
    off = r.off;
  }
  return { v: out };
}

function universalType(s: Schema): { matchAny: boolean; tag: number; compound: boolean } {
  switch (s.k) {
    case 'raw': return { matchAny: true, tag: -1, compound: false };
    case 'oid': return { matchAny: false, tag: 6, compound: false };
    case 'bits': return { matchAny: false, tag: 3, compound: false };
    case 'int': case 'bigint': return { matchAny: false, tag: 2, compound: false };
    case 'bytes': return { matchAny: false, tag: 4, compound: false };
    case 'struct': case 'slice': return { matchAny: false, tag: 16, compound: true };
  }
}

/** Go's reflect.Type.Name() of the field type, as printed in "tags don't match". */
function goTypeName(s: Schema): string {
  switch (s.k) {
    case 'int': return 'int';
    case 'oid': return 'ObjectIdentifier';
    case 'raw': return 'RawValue';
    case 'bits': return 'BitString';
    case 'struct': return s.name;
    default: return ''; // []byte, *big.Int and unnamed slices have no name
  }
}

/** Go's %+v of fieldParameters. Pointer fields print as addresses in Go; a stand-in is used here. */
function fmtParams(p: Params): string {
  const ptr = (x: unknown) => (x === undefined ? '<nil>' : '0xc000012345');
  return `{optional:${p.optional === true} explicit:${p.explicit === true} application:false private:false `
    + `defaultValue:${ptr(p.def)} tag:${ptr(p.tag)} stringType:0 timeType:0 set:${p.set === true} omitEmpty:false}`;
}

interface FieldResult {
  off: number;
  v: Val;
  err?: string;
}

function parseSequenceOf(b: Buffer, elem: Schema): { v: Val[]; err?: string } {
  const u = universalType(elem);
  let n = 0;
  for (let off = 0; off < b.length;) {
    const r = parseTagAndLength(b, off);
    if (r.err) return { v: [], err: r.err };
    off = r.off;
    let tag = r.t.tag;
    if ([22, 27, 20, 12, 18, 30].includes(tag)) tag = 19; // string types count as PrintableString
    else if (tag === 24 || tag === 23) tag = 23; // both time types count as UTCTime
    if (!u.matchAny && (r.t.cls !== 0 || r.t.compound !== u.compound || tag !== u.tag)) {
      return { v: [], err: structural('sequence tag mismatch') };
    }
    if (off + r.t.length > b.length) return { v: [], err: syntax('truncated sequence') };
    off += r.t.length;
    n++;
  }
  const out: Val[] = [];
  let off = 0;
  for (let i = 0; i < n; i++) {
    const r = parseField(elem, b, off, {});
    out.push(r.v);
    if (r.err) return { v: out, err: r.err };
    off = r.off;
  }
  return { v: out };
}

function parseField(s: Schema, b: Buffer, init: number, p: Params): FieldResult {
  let off = init;
  if (off === b.length) {
    if (!p.optional) return { off, v: zeroOf(s), err: syntax('sequence truncated') };
    return { off, v: defaulted(s, p) };
  }
  let r = parseTagAndLength(b, off);
  off = r.off;
  if (r.err) return { off, v: zeroOf(s), err: r.err };
  let t = r.t;
  if (p.explicit) {
    if (off === b.length) return { off, v: zeroOf(s), err: structural('explicit tag has no child') };
    if (t.cls === 2 && t.tag === p.tag && (t.length === 0 || t.compound)) {
      if (s.k === 'raw') {
        // the inner element is not parsed for RawValues
      } else if (t.length > 0) {
        r = parseTagAndLength(b, off);
        off = r.off;
        if (r.err) return { off, v: zeroOf(s), err: r.err };
        t = r.t;
      } else {
        return { off, v: zeroOf(s), err: structural('zero length explicit tag was not an asn1.Flag') };
      }
    } else {
      if (p.optional) return { off: init, v: defaulted(s, p) };
      return { off, v: zeroOf(s), err: structural("explicitly tagged member didn't match") };
    }
  }

  const u = universalType(s);
  let universalTag = u.tag;
  if (p.set) universalTag = 17;
  let matchAnyClassAndTag = u.matchAny;
  let expectedClass = 0;
  let expectedTag = universalTag;
  if (!p.explicit && p.tag !== undefined) {
    expectedClass = 2;
    expectedTag = p.tag;
    matchAnyClassAndTag = false;
  }
  if ((!matchAnyClassAndTag && (t.cls !== expectedClass || t.tag !== expectedTag))
    || (!u.matchAny && t.compound !== u.compound)) {
    if (p.optional) return { off: init, v: defaulted(s, p) };
    const tl = `{class:${t.cls} tag:${t.tag} length:${t.length} isCompound:${t.compound}}`;
    return {
      off, v: zeroOf(s),
      err: structural(`tags don't match (${expectedTag} vs ${tl}) ${fmtParams(p)} ${goTypeName(s)} @${off}`),
    };
  }
  if (off + t.length > b.length) return { off, v: zeroOf(s), err: syntax('data truncated') };
  const inner = b.subarray(off, off + t.length);
  off += t.length;

  switch (s.k) {
    case 'raw':
      return { off, v: { cls: t.cls, tag: t.tag, compound: t.compound, bytes: inner, fullBytes: b.subarray(init, off) } };
    case 'oid': {
      const o = parseObjectIdentifier(inner);
      return o.err ? { off, v: [], err: o.err } : { off, v: o.v };
    }
    case 'bits': {
      if (inner.length === 0) return { off, v: zeroOf(s), err: syntax('zero length BIT STRING') };
      const pad = inner[0] ?? 0;
      const last = inner[inner.length - 1] ?? 0;
      if (pad > 7 || (inner.length === 1 && pad > 0) || (last & ((1 << pad) - 1)) !== 0) {
        return { off, v: zeroOf(s), err: syntax('invalid padding bits in BIT STRING') };
      }
      return { off, v: { bits: inner.subarray(1), bitLength: (inner.length - 1) * 8 - pad } };
    }
    case 'bigint': {
      const e = checkInteger(inner);
      return e ? { off, v: null, err: e } : { off, v: twosComplement(inner) };
    }
    case 'int': {
      const e = checkInteger(inner) ?? (inner.length > 8 ? structural('integer too large') : undefined);
      return e ? { off, v: 0n, err: e } : { off, v: twosComplement(inner) };
    }
    case 'bytes':
      return { off, v: Buffer.from(inner) };
    case 'slice': {
      const sq = parseSequenceOf(inner, s.elem);
      return sq.err ? { off, v: null, err: sq.err } : { off, v: sq.v };
    }
    case 'struct': {
      const rec: Rec = {};
      for (const f of s.fields) rec[f.name] = zeroOf(f.s);
      let io = 0;
      for (const f of s.fields) {
        const fr = parseField(f.s, inner, io, f.p);
        rec[f.name] = fr.v;
        if (fr.err) return { off, v: rec, err: fr.err }; // Go returns the offset past the whole SEQUENCE
        io = fr.off;
      }
      return { off, v: rec }; // trailing bytes inside a SEQUENCE are allowed
    }
  }
}

/** Go asn1.Unmarshal: the value, the unparsed rest, or an error. */
function unmarshal(b: Buffer, s: Schema): { v: Val; rest: Buffer; err?: string } {
  const r = parseField(s, b, 0, {});
  return { v: r.v, rest: b.subarray(r.off), ...(r.err !== undefined ? { err: r.err } : {}) };
}

class Pkcs12Error extends Error {}

/** golang.org/x/crypto/pkcs12's unmarshal: Go's Unmarshal plus a trailing-data check; throws. */
function unmarshalStrict(b: Buffer | null, s: Schema): Val {
  const r = unmarshal(b ?? Buffer.alloc(0), s);
  if (r.err !== undefined) throw new Pkcs12Error(r.err);
  if (r.rest.length !== 0) throw new Pkcs12Error('pkcs12: trailing data found');
  return r.v;
}

// Typed field access on decoded records (the schema guarantees the shapes).
function fInt(r: Val, f: string): bigint {
  const v = (r as Rec)[f];
  if (typeof v !== 'bigint') throw new Error(`internal: ${f} is not an integer`);
  return v;
}
function fBig(r: Val, f: string): bigint | null {
  const v = (r as Rec)[f];
  return typeof v === 'bigint' ? v : null;
}
function fBytes(r: Val, f: string): Buffer | null {
  const v = (r as Rec)[f];
  return Buffer.isBuffer(v) ? v : null;
}
function fOid(r: Val, f: string): number[] {
  const v = (r as Rec)[f];
  return Array.isArray(v) ? (v as number[]) : [];
}
function fRaw(r: Val, f: string): RawValue {
  return (r as Rec)[f] as RawValue;
}
function fRec(r: Val, f: string): Rec {
  return (r as Rec)[f] as Rec;
}
function fList(r: Val, f: string): Val[] {
  const v = (r as Rec)[f];
  return Array.isArray(v) ? (v as Val[]) : [];
}

const oidEq = (a: number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const oidStr = (a: number[]) => a.join('.');

// ---------------------------------------------------------------------------------------------
// Structures (crypto/x509, golang.org/x/crypto/pkcs12)

const sAlgorithmIdentifier = struct('AlgorithmIdentifier', [['algorithm', sOid], ['parameters', sRaw, { optional: true }]]);
const sPkcs8 = struct('pkcs8', [['version', sInt], ['algo', sAlgorithmIdentifier], ['privateKey', sBytes]]);
const sEcPrivateKey = struct('ecPrivateKey', [
  ['version', sInt],
  ['privateKey', sBytes],
  ['namedCurveOID', sOid, { optional: true, explicit: true, tag: 0 }],
  ['publicKey', sBits, { optional: true, explicit: true, tag: 1 }],
]);
const sPkcs1AdditionalPrime = struct('pkcs1AdditionalRSAPrime', [['prime', sBig], ['exp', sBig], ['coeff', sBig]]);
const sPkcs1PrivateKey = struct('pkcs1PrivateKey', [
  ['version', sInt], ['n', sBig], ['e', sInt], ['d', sBig], ['p', sBig], ['q', sBig],
  ['dp', sBig, { optional: true }], ['dq', sBig, { optional: true }], ['qinv', sBig, { optional: true }],
  ['additionalPrimes', { k: 'slice', elem: sPkcs1AdditionalPrime }, { optional: true }],
]);

const sContentInfo = struct('contentInfo', [['contentType', sOid], ['content', sRaw, { tag: 0, explicit: true, optional: true }]]);
const sDigestInfo = struct('digestInfo', [['algorithm', sAlgorithmIdentifier], ['digest', sBytes]]);
const sMacData = struct('macData', [['mac', sDigestInfo], ['macSalt', sBytes], ['iterations', sInt, { optional: true, def: 1n }]]);
const sPfxPdu = struct('pfxPdu', [['version', sInt], ['authSafe', sContentInfo], ['macData', sMacData, { optional: true }]]);
const sEncryptedContentInfo = struct('encryptedContentInfo', [
  ['contentType', sOid], ['contentEncryptionAlgorithm', sAlgorithmIdentifier], ['encryptedContent', sBytes, { tag: 0, optional: true }],
]);
const sEncryptedData = struct('encryptedData', [['version', sInt], ['encryptedContentInfo', sEncryptedContentInfo]]);
const sPkcs12Attribute = struct('pkcs12Attribute', [['id', sOid], ['value', sRaw, { set: true }]]);
const sSafeBag = struct('safeBag', [
  ['id', sOid], ['value', sRaw, { tag: 0, explicit: true }], ['attributes', { k: 'slice', elem: sPkcs12Attribute }, { set: true, optional: true }],
]);
const sCertBag = struct('certBag', [['id', sOid], ['data', sBytes, { tag: 0, explicit: true }]]);
const sEncryptedPrivateKeyInfo = struct('encryptedPrivateKeyInfo', [['algorithmIdentifier', sAlgorithmIdentifier], ['encryptedData', sBytes]]);
const sPbeParams = struct('pbeParams', [['salt', sBytes], ['iterations', sInt]]);

const OID_RSA = [1, 2, 840, 113549, 1, 1, 1];
const OID_EC = [1, 2, 840, 10045, 2, 1];
const OID_ED25519 = [1, 3, 101, 112];
const OID_X25519 = [1, 3, 101, 110];
const OID_DATA = [1, 2, 840, 113549, 1, 7, 1];
const OID_ENCRYPTED_DATA = [1, 2, 840, 113549, 1, 7, 6];
const OID_FRIENDLY_NAME = [1, 2, 840, 113549, 1, 9, 20];
const OID_LOCAL_KEY_ID = [1, 2, 840, 113549, 1, 9, 21];
const OID_MS_CSP_NAME = [1, 3, 6, 1, 4, 1, 311, 17, 1];
const OID_SHA1 = [1, 3, 14, 3, 2, 26];
const OID_PBE_SHA_3DES = [1, 2, 840, 113549, 1, 12, 1, 3];
const OID_PBE_SHA_RC2_40 = [1, 2, 840, 113549, 1, 12, 1, 6];
const OID_CERT_TYPE_X509 = [1, 2, 840, 113549, 1, 9, 22, 1];
const OID_SHROUDED_KEY_BAG = [1, 2, 840, 113549, 1, 12, 10, 1, 2];
const OID_CERT_BAG = [1, 2, 840, 113549, 1, 12, 10, 1, 3];

// Go's namedCurveFromOID: only the NIST curves.
interface Curve {
  oid: readonly number[];
  node: string;
  size: number; // (N.BitLen()+7)/8
}
const CURVES: readonly Curve[] = [
  { oid: [1, 3, 132, 0, 33], node: 'secp224r1', size: 28 },
  { oid: [1, 2, 840, 10045, 3, 1, 7], node: 'prime256v1', size: 32 },
  { oid: [1, 3, 132, 0, 34], node: 'secp384r1', size: 48 },
  { oid: [1, 3, 132, 0, 35], node: 'secp521r1', size: 66 },
];

// ---------------------------------------------------------------------------------------------
// Private keys (crypto/x509 ParsePKCS1PrivateKey / ParsePKCS8PrivateKey / ParseECPrivateKey and
// MarshalPKCS1PrivateKey / MarshalECPrivateKey).

interface RsaKey {
  kind: 'rsa';
  n: bigint;
  e: bigint;
  d: bigint;
  primes: bigint[];
  dp: bigint | null;
  dq: bigint | null;
  qinv: bigint | null;
}
interface EcKey {
  kind: 'ec';
  curve: Curve;
  d: Buffer; // curve.size bytes
  pub: Buffer; // uncompressed point
}
type Pkcs8Key = RsaKey | EcKey | { kind: 'ed25519' } | { kind: 'x25519' };
interface Parsed<K> {
  key?: K;
  err?: string;
}

const bitLen = (x: bigint) => (x <= 0n ? 0 : x.toString(2).length);
const mod = (a: bigint, m: bigint) => ((a % m) + m) % m;
function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n % m;
  let x = mod(b, m);
  for (let k = e; k > 0n; k >>= 1n) {
    if (k & 1n) r = (r * x) % m;
    x = (x * x) % m;
  }
  return r;
}
/** big.Int.ModInverse, or null when not invertible. */
function modInverse(g: bigint, n: bigint): bigint | null {
  const m = n < 0n ? -n : n;
  if (m === 0n) return null;
  let [a, b] = [mod(g, m), m];
  let [x0, x1] = [1n, 0n];
  while (b !== 0n) {
    const q = a / b;
    [a, b] = [b, a - q * b];
    [x0, x1] = [x1, x0 - q * x1];
  }
  return a === 1n ? mod(x0, m) : null;
}

/** crypto/rsa's public-key checks. */
function checkRsaPublic(n: bigint, e: bigint): string | undefined {
  if (n % 2n === 0n) return 'crypto/rsa: public modulus is even';
  if (e < 2n) return 'crypto/rsa: public exponent too small or negative';
  if (e % 2n === 0n) return 'crypto/rsa: public exponent is even';
  if (e > 0x7fffffffn) return 'crypto/rsa: public exponent too large';
  return undefined;
}

/** crypto/rsa's validation of a two-prime key (Go 1.24+ FIPS checks). */
function checkRsaTwoPrime(k: RsaKey): string | undefined {
  const [p, q] = [k.primes[0] ?? 0n, k.primes[1] ?? 0n];
  const { n, e, d } = k;
  if (n < 1n || p < 1n || q < 1n) return 'bigmod: modulus is smaller than one';
  if (d >= n) return 'input overflows the modulus';
  let dp: bigint;
  let dq: bigint;
  let qinv: bigint;
  if (k.dp !== null && k.dq !== null && k.qinv !== null) {
    if (k.qinv >= p) return 'input overflows the modulus';
    ({ dp, dq, qinv } = { dp: k.dp, dq: k.dq, qinv: k.qinv });
  } else {
    if (p - 1n < 1n || q - 1n < 1n) return 'bigmod: modulus is smaller than one';
    dp = d % (p - 1n);
    dq = d % (q - 1n);
    if (p % 2n === 0n) return 'crypto/rsa: p is even';
    qinv = modPow(q % p, p - 2n, p);
  }
  const pub = checkRsaPublic(n, e);
  if (pub) return pub;
  if (p >= n || q >= n) return 'crypto/rsa: invalid prime';
  if ((p * q) % n !== 0n) return 'crypto/rsa: p * q != n';
  if (p - 1n < 1n) return 'crypto/rsa: invalid prime';
  if (dp >= p - 1n) return 'crypto/rsa: invalid CRT exponent';
  if (mod(e * dp, p - 1n) !== 1n) return 'crypto/rsa: invalid CRT exponent';
  if (q - 1n < 1n) return 'crypto/rsa: invalid prime';
  if (dq >= q - 1n) return 'crypto/rsa: invalid CRT exponent';
  if (mod(e * dq, q - 1n) !== 1n) return 'crypto/rsa: invalid CRT exponent';
  if ((mod(q, p) * qinv) % p !== 1n) return 'crypto/rsa: invalid CRT coefficient';
  if (d % (p - 1n) !== dp) return 'crypto/rsa: d does not match dP';
  if (d % (q - 1n) !== dq) return 'crypto/rsa: d does not match dQ';
  if (p === q) return 'crypto/rsa: p == q';
  const diff = p > q ? p - q : q - p;
  if (bitLen(diff) <= Math.trunc(bitLen(n) / 2) - 100) return 'crypto/rsa: |p - q| too small';
  if (bitLen(d) <= Math.trunc(bitLen(n) / 2)) return 'crypto/rsa: d too small';
  return undefined;
}

/** The (legacy) validation crypto/rsa applies to a multi-prime key. */
function checkRsaMultiPrime(k: RsaKey): string | undefined {
  if (k.n < 1n) return 'bigmod: modulus is smaller than one';
  if (k.d >= k.n) return 'input overflows the modulus';
  const pub = checkRsaPublic(k.n, k.e);
  if (pub) return pub;
  for (const prime of k.primes) if (prime <= 1n) return 'crypto/rsa: prime factor is <= 1';
  const [p, q] = [k.primes[0] ?? 0n, k.primes[1] ?? 0n];
  if (modInverse(q, p) === null) return 'crypto/rsa: prime factors are not relatively prime';
  let r = p * q;
  for (const prime of k.primes.slice(2)) {
    if (modInverse(r, prime) === null) return 'crypto/rsa: prime factors are not relatively prime';
    r *= prime;
  }
  return undefined;
}

function parsePkcs1PrivateKey(der: Buffer): Parsed<RsaKey> {
  const r = unmarshal(der, sPkcs1PrivateKey);
  if (r.rest.length > 0) return { err: syntax('trailing data') };
  if (r.err !== undefined) {
    if (unmarshal(der, sEcPrivateKey).err === undefined) {
      return { err: 'x509: failed to parse private key (use ParseECPrivateKey instead for this key format)' };
    }
    if (unmarshal(der, sPkcs8).err === undefined) {
      return { err: 'x509: failed to parse private key (use ParsePKCS8PrivateKey instead for this key format)' };
    }
    return { err: r.err };
  }
  const v = r.v;
  if (fInt(v, 'version') > 1n) return { err: 'x509: unsupported private key version' };
  const [n, d, p, q] = [fBig(v, 'n') ?? 0n, fBig(v, 'd') ?? 0n, fBig(v, 'p') ?? 0n, fBig(v, 'q') ?? 0n];
  const [dp, dq, qinv] = [fBig(v, 'dp'), fBig(v, 'dq'), fBig(v, 'qinv')];
  if (n <= 0n || d <= 0n || p <= 0n || q <= 0n || (dp !== null && dp <= 0n) || (dq !== null && dq <= 0n)
    || (qinv !== null && qinv <= 0n)) {
    return { err: 'x509: private key contains zero or negative value' };
  }
  const primes = [p, q];
  for (const a of fList(v, 'additionalPrimes')) {
    const prime = fBig(a, 'prime') ?? 0n;
    if (prime <= 0n) return { err: 'x509: private key contains zero or negative prime' };
    primes.push(prime);
  }
  const key: RsaKey = { kind: 'rsa', n, e: fInt(v, 'e'), d, primes, dp, dq, qinv };
  const err = primes.length === 2 ? checkRsaTwoPrime(key) : checkRsaMultiPrime(key);
  return err ? { err } : { key };
}

function parseEcPrivateKey(namedCurveOid: number[] | null, der: Buffer): Parsed<EcKey> {
  const r = unmarshal(der, sEcPrivateKey);
  if (r.err !== undefined) {
    if (unmarshal(der, sPkcs8).err === undefined) {
      return { err: 'x509: failed to parse private key (use ParsePKCS8PrivateKey instead for this key format)' };
    }
    if (unmarshal(der, sPkcs1PrivateKey).err === undefined) {
      return { err: 'x509: failed to parse private key (use ParsePKCS1PrivateKey instead for this key format)' };
    }
    return { err: `x509: failed to parse EC private key: ${r.err}` };
  }
  const version = fInt(r.v, 'version');
  if (version !== 1n) return { err: `x509: unknown EC private key version ${version}` };
  const oid = namedCurveOid ?? fOid(r.v, 'namedCurveOID');
  const curve = CURVES.find((c) => oidEq(oid, c.oid));
  if (!curve) return { err: 'x509: unknown elliptic curve' };
  let priv = fBytes(r.v, 'privateKey') ?? Buffer.alloc(0);
  while (priv.length > curve.size) {
    if (priv[0] !== 0) return { err: 'x509: invalid private key length' };
    priv = priv.subarray(1);
  }
  const d = Buffer.alloc(curve.size);
  priv.copy(d, curve.size - priv.length);
  try {
    // Like Go, the public key is recomputed from the scalar; an embedded one is ignored.
    const ecdh = createECDH(curve.node);
    ecdh.setPrivateKey(d);
    return { key: { kind: 'ec', curve, d, pub: ecdh.getPublicKey(null, 'uncompressed') } };
  } catch {
    return { err: 'crypto/ecdsa: invalid private key' };
  }
}

function parsePkcs8PrivateKey(der: Buffer): Parsed<Pkcs8Key> {
  const r = unmarshal(der, sPkcs8);
  if (r.err !== undefined) {
    if (unmarshal(der, sEcPrivateKey).err === undefined) {
      return { err: 'x509: failed to parse private key (use ParseECPrivateKey instead for this key format)' };
    }
    if (unmarshal(der, sPkcs1PrivateKey).err === undefined) {
      return { err: 'x509: failed to parse private key (use ParsePKCS1PrivateKey instead for this key format)' };
    }
    return { err: r.err };
  }
  const algo = fRec(r.v, 'algo');
  const alg = fOid(algo, 'algorithm');
  const params = fRaw(algo, 'parameters').fullBytes ?? Buffer.alloc(0);
  const inner = fBytes(r.v, 'privateKey') ?? Buffer.alloc(0);
  if (oidEq(alg, OID_RSA)) {
    const k = parsePkcs1PrivateKey(inner);
    return k.key ? k : { err: `x509: failed to parse RSA private key embedded in PKCS#8: ${k.err ?? ''}` };
  }
  if (oidEq(alg, OID_EC)) {
    const o = unmarshal(params, sOid);
    const k = parseEcPrivateKey(o.err === undefined ? (o.v as number[]) : null, inner);
    return k.key ? k : { err: `x509: failed to parse EC private key embedded in PKCS#8: ${k.err ?? ''}` };
  }
  for (const [oid, name, kind] of [[OID_ED25519, 'Ed25519', 'ed25519'], [OID_X25519, 'X25519', 'x25519']] as const) {
    if (!oidEq(alg, oid)) continue;
    if (params.length !== 0) return { err: `x509: invalid ${name} private key parameters` };
    const c = unmarshal(inner, sBytes);
    if (c.err !== undefined) return { err: `x509: invalid ${name} private key: ${c.err}` };
    const len = Buffer.isBuffer(c.v) ? c.v.length : 0;
    if (len !== 32) {
      return { err: kind === 'ed25519' ? `x509: invalid Ed25519 private key length: ${len}` : 'crypto/ecdh: invalid private key size' };
    }
    return { key: { kind } };
  }
  return { err: `x509: PKCS#8 wrapping contained private key with unknown algorithm: ${oidStr(alg)}` };
}

// DER encoding for the two key formats.
function derLen(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let x = n; x > 0; x = Math.floor(x / 256)) bytes.unshift(x & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, content: Buffer) => Buffer.concat([Buffer.from([tag]), derLen(content.length), content]);
function derInt(x: bigint): Buffer {
  // Only non-negative values are marshalled here.
  let hex = x.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let b = Buffer.from(hex, 'hex');
  if (((b[0] ?? 0) & 0x80) !== 0) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}
function derOid(oid: readonly number[]): Buffer {
  const out: number[] = [];
  const push = (v: number) => {
    const chunk = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) chunk.unshift(0x80 | (x & 0x7f));
    out.push(...chunk);
  };
  push((oid[0] ?? 0) * 40 + (oid[1] ?? 0));
  for (const v of oid.slice(2)) push(v);
  return tlv(0x06, Buffer.from(out));
}

/** x509.MarshalPKCS1PrivateKey (CRT values recomputed, as Go's Precompute does). */
function marshalPkcs1PrivateKey(k: RsaKey): Buffer {
  const [p, q] = [k.primes[0] ?? 0n, k.primes[1] ?? 0n];
  const parts = [
    derInt(k.primes.length > 2 ? 1n : 0n), derInt(k.n), derInt(k.e), derInt(k.d), derInt(p), derInt(q),
    derInt(k.d % (p - 1n)), derInt(k.d % (q - 1n)), derInt(modInverse(q, p) ?? 0n),
  ];
  if (k.primes.length > 2) {
    const extra: Buffer[] = [];
    let r = p * q;
    for (const prime of k.primes.slice(2)) {
      extra.push(tlv(0x30, Buffer.concat([derInt(prime), derInt(k.d % (prime - 1n)), derInt(modInverse(r, prime) ?? 0n)])));
      r *= prime;
    }
    parts.push(tlv(0x30, Buffer.concat(extra)));
  }
  return tlv(0x30, Buffer.concat(parts));
}

/** x509.MarshalECPrivateKey: version 1, padded scalar, named curve, uncompressed public key. */
function marshalEcPrivateKey(k: EcKey): Buffer {
  return tlv(0x30, Buffer.concat([
    derInt(1n),
    tlv(0x04, k.d),
    tlv(0xa0, derOid(k.curve.oid)),
    tlv(0xa1, tlv(0x03, Buffer.concat([Buffer.from([0]), k.pub]))),
  ]));
}

// ---------------------------------------------------------------------------------------------
// PKCS#12 (golang.org/x/crypto/pkcs12 ToPEM with password "")

const MAX_ITERATIONS = 1 << 20;
const notImplemented = (m: string) => new Pkcs12Error(`pkcs12: ${m}`);
const ERR_INCORRECT_PASSWORD = 'pkcs12: decryption password incorrect';
const ERR_DECRYPTION = 'pkcs12: decryption error, incorrect padding';

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest();

function fillWithRepeats(pattern: Buffer, v: number): Buffer {
  if (pattern.length === 0) return Buffer.alloc(0);
  const outLen = v * Math.ceil(pattern.length / v);
  const out = Buffer.alloc(outLen);
  for (let i = 0; i < outLen; i++) out[i] = pattern[i % pattern.length] ?? 0;
  return out;
}

/** RFC 7292 appendix B key derivation with SHA-1 (u=20, v=64). */
function pkcs12Kdf(salt: Buffer, password: Buffer, iterations: number, id: number, size: number): Buffer {
  const v = 64;
  const u = 20;
  const D = Buffer.alloc(v, id);
  const I = Buffer.concat([fillWithRepeats(salt, v), fillWithRepeats(password, v)]);
  const c = Math.ceil(size / u);
  const A = Buffer.alloc(c * u);
  for (let i = 0; i < c; i++) {
    let Ai = sha1(Buffer.concat([D, I]));
    for (let j = 1; j < iterations; j++) Ai = sha1(Ai);
    Ai.copy(A, i * u);
    if (i < c - 1) {
      const B = fillWithRepeats(Ai, v).subarray(0, v);
      const Bn = BigInt(`0x${B.toString('hex')}`);
      for (let j = 0; j < I.length / v; j++) {
        const Ij = BigInt(`0x${I.subarray(j * v, (j + 1) * v).toString('hex')}`);
        const sum = (Ij + Bn + 1n) & ((1n << BigInt(v * 8)) - 1n);
        Buffer.from(sum.toString(16).padStart(v * 2, '0'), 'hex').copy(I, j * v);
      }
    }
  }
  return A.subarray(0, size);
}

/** Go's hmac.Equal. */
const hmacEqual = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);

function verifyMac(macData: Rec, message: Buffer, password: Buffer): void {
  const alg = fOid(fRec(fRec(macData, 'mac'), 'algorithm'), 'algorithm');
  if (!oidEq(alg, OID_SHA1)) throw notImplemented(`unknown digest algorithm: ${oidStr(alg)}`);
  const iterations = fInt(macData, 'iterations');
  if (iterations < 0n || iterations > BigInt(MAX_ITERATIONS)) throw notImplemented('iteration count is invalid or too high');
  const key = pkcs12Kdf(fBytes(macData, 'macSalt') ?? Buffer.alloc(0), password, Number(iterations), 3, 20);
  const expected = createHmac('sha1', key).update(message).digest();
  if (!hmacEqual(fBytes(fRec(macData, 'mac'), 'digest') ?? Buffer.alloc(0), expected)) {
    throw new Pkcs12Error(ERR_INCORRECT_PASSWORD);
  }
}

// RC2 (RFC 2268) decryption, for pbeWithSHAAnd40BitRC2-CBC; OpenSSL 3 only has it in its legacy provider.
const RC2_PI = Buffer.from(
  'd978f9c419ddb5ed28e9fd794aa0d89dc67e37832b76538e624c6488448bfba2179a59f587b34f1361456d8d09817d32'
  + 'bd8f40eb86b77b0bf09521225c6b4e8254d66593ce60b21c7356c014a78cf1dc1275ca1f3bbee4d1423dd430a33cb626'
  + '6fbf0eda4669075727f21d9bbc944303f811c7f690ef3ee706c3d52fc8661ed708e8eade8052eef784aa72ac354d6a2a'
  + '961ad2715a1549744b9fd05e0418a4ecc2e0416e0f51cbcc2491af50a1f47039997c3a8523b8b47afc02365b25559731'
  + '2d5dfa98e38a92ae05df2910676cbac9d300e6cfe19ea82c6316013f58e289a90d38341bab33ffb0bb480c5fb9b1cd2e'
  + 'c5f3db47e5a59c770aa62068fe7fc1ad', 'hex');

function rc2ExpandKey(key: Buffer, t1: number): Uint16Array {
  const l = Buffer.alloc(128);
  key.copy(l);
  const t = key.length;
  const t8 = Math.floor((t1 + 7) / 8);
  const tm = 255 % (1 << (8 + t1 - 8 * t8));
  for (let i = t; i < 128; i++) l[i] = RC2_PI[((l[i - 1] ?? 0) + (l[i - t] ?? 0)) & 0xff] ?? 0;
  l[128 - t8] = RC2_PI[(l[128 - t8] ?? 0) & tm] ?? 0;
  for (let i = 127 - t8; i >= 0; i--) l[i] = RC2_PI[(l[i + 1] ?? 0) ^ (l[i + t8] ?? 0)] ?? 0;
  const k = new Uint16Array(64);
  for (let i = 0; i < 64; i++) k[i] = (l[2 * i] ?? 0) | ((l[2 * i + 1] ?? 0) << 8);
  return k;
}

function rc2DecryptBlock(k: Uint16Array, src: Buffer, dst: Buffer): void {
  const K = (i: number) => k[i] ?? 0;
  const rotr = (x: number, n: number) => ((x >>> n) | (x << (16 - n))) & 0xffff;
  let r0 = src.readUInt16LE(0);
  let r1 = src.readUInt16LE(2);
  let r2 = src.readUInt16LE(4);
  let r3 = src.readUInt16LE(6);
  let j = 63;
  const mixRounds = (stop: number) => {
    while (j >= stop) {
      r3 = (rotr(r3, 5) - K(j) - (r2 & r1) - (~r2 & r0)) & 0xffff; j--;
      r2 = (rotr(r2, 3) - K(j) - (r1 & r0) - (~r1 & r3)) & 0xffff; j--;
      r1 = (rotr(r1, 2) - K(j) - (r0 & r3) - (~r0 & r2)) & 0xffff; j--;
      r0 = (rotr(r0, 1) - K(j) - (r3 & r2) - (~r3 & r1)) & 0xffff; j--;
    }
  };
  const mash = () => {
    r3 = (r3 - K(r2 & 63)) & 0xffff;
    r2 = (r2 - K(r1 & 63)) & 0xffff;
    r1 = (r1 - K(r0 & 63)) & 0xffff;
    r0 = (r0 - K(r3 & 63)) & 0xffff;
  };
  mixRounds(44);
  mash();
  mixRounds(20);
  mash();
  mixRounds(0);
  dst.writeUInt16LE(r0, 0);
  dst.writeUInt16LE(r1, 2);
  dst.writeUInt16LE(r2, 4);
  dst.writeUInt16LE(r3, 6);
}

/** RC2-CBC decryption without padding removal (the caller checks the padding like Go does). */
export function rc2CbcDecrypt(key: Buffer, effectiveBits: number, iv: Buffer, data: Buffer): Buffer {
  const k = rc2ExpandKey(key, effectiveBits);
  const out = Buffer.alloc(data.length);
  let prev = iv;
  for (let off = 0; off + 8 <= data.length; off += 8) {
    const block = data.subarray(off, off + 8);
    const plain = out.subarray(off, off + 8);
    rc2DecryptBlock(k, block, plain);
    for (let i = 0; i < 8; i++) plain[i] = (plain[i] ?? 0) ^ (prev[i] ?? 0);
    prev = block;
  }
  return out;
}

/** pbDecrypt: PKCS#12 PBE with SHA-1 and 3DES-CBC or RC2-40-CBC, then Go's padding check. */
function pbDecrypt(algorithm: Rec, encrypted: Buffer | null, password: Buffer): Buffer {
  const alg = fOid(algorithm, 'algorithm');
  const isDes = oidEq(alg, OID_PBE_SHA_3DES);
  if (!isDes && !oidEq(alg, OID_PBE_SHA_RC2_40)) throw notImplemented(`algorithm ${oidStr(alg)} is not supported`);
  const params = unmarshalStrict(fRaw(algorithm, 'parameters').fullBytes, sPbeParams);
  const iterations = fInt(params, 'iterations');
  if (iterations < 0n || iterations > BigInt(MAX_ITERATIONS)) throw notImplemented('iteration count is invalid or too high');
  const salt = fBytes(params, 'salt') ?? Buffer.alloc(0);
  const key = pkcs12Kdf(salt, password, Number(iterations), 1, isDes ? 24 : 5);
  const iv = pkcs12Kdf(salt, password, Number(iterations), 2, 8);
  const blockSize = 8;
  if (encrypted === null || encrypted.length === 0) throw new Pkcs12Error('pkcs12: empty encrypted data');
  if (encrypted.length % blockSize !== 0) throw new Pkcs12Error('pkcs12: input is not a multiple of the block size');
  let decrypted: Buffer;
  if (isDes) {
    const decipher = createDecipheriv('des-ede3-cbc', key, iv).setAutoPadding(false);
    decrypted = Buffer.concat([decipher.update(encrypted), decipher.final()]);
  } else {
    decrypted = rc2CbcDecrypt(key, key.length * 8, iv, encrypted);
  }
  const psLen = decrypted[decrypted.length - 1] ?? 0;
  if (psLen === 0 || psLen > blockSize || decrypted.length < psLen) throw new Pkcs12Error(ERR_DECRYPTION);
  for (let i = decrypted.length - psLen; i < decrypted.length; i++) {
    if (decrypted[i] !== psLen) throw new Pkcs12Error(ERR_DECRYPTION);
  }
  return decrypted.subarray(0, decrypted.length - psLen);
}

function getSafeContents(p12: Buffer, password: Buffer): { bags: Rec[]; password: Buffer } {
  const top = unmarshal(p12, sPfxPdu);
  if (top.err !== undefined) throw new Pkcs12Error(`pkcs12: error reading P12 data: ${top.err}`);
  if (top.rest.length !== 0) throw new Pkcs12Error('pkcs12: error reading P12 data: pkcs12: trailing data found');
  const pfx = top.v;
  if (fInt(pfx, 'version') !== 3n) throw notImplemented("can only decode v3 PFX PDU's");
  const authSafe = fRec(pfx, 'authSafe');
  if (!oidEq(fOid(authSafe, 'contentType'), OID_DATA)) throw notImplemented('only password-protected PFX is implemented');
  const content = unmarshalStrict(fRaw(authSafe, 'content').bytes, sRaw) as RawValue;
  const authSafeBytes = content.bytes ?? Buffer.alloc(0);

  const macData = fRec(pfx, 'macData');
  if (fOid(fRec(fRec(macData, 'mac'), 'algorithm'), 'algorithm').length === 0) throw new Pkcs12Error('pkcs12: no MAC in data');
  let pw = password;
  try {
    verifyMac(macData, authSafeBytes, pw);
  } catch (err) {
    if (!(err instanceof Pkcs12Error && err.message === ERR_INCORRECT_PASSWORD && pw.length === 2 && pw[0] === 0 && pw[1] === 0)) {
      throw err;
    }
    // Some implementations use an empty byte array for the empty password.
    pw = Buffer.alloc(0);
    verifyMac(macData, authSafeBytes, pw);
  }

  const safe = unmarshalStrict(authSafeBytes, { k: 'slice', elem: sContentInfo }) as Val[];
  if (safe.length !== 2) throw notImplemented('expected exactly two items in the authenticated safe');
  const bags: Rec[] = [];
  for (const ci of safe) {
    let data: Buffer;
    const ct = fOid(ci, 'contentType');
    const ciBytes = fRaw(ci, 'content').bytes;
    if (oidEq(ct, OID_DATA)) {
      data = (unmarshalStrict(ciBytes, sBytes) as Buffer | null) ?? Buffer.alloc(0);
    } else if (oidEq(ct, OID_ENCRYPTED_DATA)) {
      const ed = unmarshalStrict(ciBytes, sEncryptedData);
      if (fInt(ed, 'version') !== 0n) throw notImplemented('only version 0 of EncryptedData is supported');
      const eci = fRec(ed, 'encryptedContentInfo');
      data = pbDecrypt(fRec(eci, 'contentEncryptionAlgorithm'), fBytes(eci, 'encryptedContent'), pw);
    } else {
      throw notImplemented('only data and encryptedData content types are supported in authenticated safe');
    }
    const list = unmarshalStrict(data, { k: 'slice', elem: sSafeBag }) as Val[] | null;
    for (const b of list ?? []) bags.push(b as Rec);
  }
  return { bags, password: pw };
}

/** decodeBMPString: UTF-16BE with an optional NUL terminator, to a Go (UTF-8) string as latin1. */
function decodeBmpString(b: Buffer): string {
  if (b.length % 2 !== 0) throw new Pkcs12Error('pkcs12: odd-length BMP string');
  let s = b;
  if (s.length >= 2 && s[s.length - 1] === 0 && s[s.length - 2] === 0) s = s.subarray(0, s.length - 2);
  let str = '';
  for (let i = 0; i < s.length; i += 2) str += String.fromCharCode(((s[i] ?? 0) << 8) | (s[i + 1] ?? 0));
  // Buffer's UTF-8 encoder turns unpaired surrogates into U+FFFD, as Go's utf16.Decode does.
  return Buffer.from(str, 'utf8').toString('latin1');
}

function convertAttribute(attr: Val): [string, string] | null {
  const id = fOid(attr, 'id');
  let key: string;
  let isString = false;
  if (oidEq(id, OID_FRIENDLY_NAME)) {
    key = 'friendlyName';
    isString = true;
  } else if (oidEq(id, OID_LOCAL_KEY_ID)) {
    key = 'localKeyId';
  } else if (oidEq(id, OID_MS_CSP_NAME)) {
    key = 'Microsoft CSP Name';
    isString = true;
  } else {
    return null;
  }
  const inner = fRaw(attr, 'value').bytes;
  if (isString) {
    const v = unmarshalStrict(inner, sRaw) as RawValue;
    return [key, decodeBmpString(v.bytes ?? Buffer.alloc(0))];
  }
  const idBytes = unmarshalStrict(inner, sBytes) as Buffer | null;
  return [key, (idBytes ?? Buffer.alloc(0)).toString('hex')];
}

function decodePkcs8ShroudedKeyBag(der: Buffer | null, password: Buffer): Pkcs8Key {
  let info: Val;
  try {
    info = unmarshalStrict(der, sEncryptedPrivateKeyInfo);
  } catch (err) {
    throw new Pkcs12Error(`pkcs12: error decoding PKCS#8 shrouded key bag: ${(err as Error).message}`);
  }
  let pk: Buffer;
  try {
    pk = pbDecrypt(fRec(info, 'algorithmIdentifier'), fBytes(info, 'encryptedData'), password);
  } catch (err) {
    throw new Pkcs12Error(`pkcs12: error decrypting PKCS#8 shrouded key bag: ${(err as Error).message}`);
  }
  try {
    unmarshalStrict(pk, sRaw);
  } catch (err) {
    throw new Pkcs12Error(`pkcs12: error unmarshaling decrypted private key: ${(err as Error).message}`);
  }
  const parsed = parsePkcs8PrivateKey(pk);
  if (!parsed.key) throw new Pkcs12Error(`pkcs12: error parsing PKCS#8 private key: ${parsed.err ?? ''}`);
  return parsed.key;
}

function convertBag(bag: Rec, password: Buffer): PemBlock {
  const headers = new Map<string, string>();
  for (const attr of fList(bag, 'attributes')) {
    const kv = convertAttribute(attr);
    if (kv) headers.set(kv[0], kv[1]);
  }
  const id = fOid(bag, 'id');
  const value = fRaw(bag, 'value').bytes;
  if (oidEq(id, OID_CERT_BAG)) {
    let cb: Val;
    try {
      cb = unmarshalStrict(value, sCertBag);
    } catch (err) {
      throw new Pkcs12Error(`pkcs12: error decoding cert bag: ${(err as Error).message}`);
    }
    if (!oidEq(fOid(cb, 'id'), OID_CERT_TYPE_X509)) throw notImplemented('only X509 certificates are supported');
    return { type: CERT_TYPE, headers, bytes: fBytes(cb, 'data') ?? Buffer.alloc(0) };
  }
  if (oidEq(id, OID_SHROUDED_KEY_BAG)) {
    const key = decodePkcs8ShroudedKeyBag(value, password);
    if (key.kind === 'rsa') return { type: PRIVATE_KEY_TYPE, headers, bytes: marshalPkcs1PrivateKey(key) };
    if (key.kind === 'ec') return { type: PRIVATE_KEY_TYPE, headers, bytes: marshalEcPrivateKey(key) };
    throw new Pkcs12Error('found unknown private key type in PKCS#8 wrapping');
  }
  throw new Pkcs12Error(`don't know how to convert a safe bag of type ${oidStr(id)}`);
}

/** pkcs12.ToPEM(data, ""), throwing TlsSecretError with pkcs12's message. */
function pfxToPem(data: Buffer): PemBlock[] {
  try {
    // bmpString(""): just the two-byte terminator.
    const { bags, password } = getSafeContents(data, Buffer.alloc(2));
    return bags.map((bag) => convertBag(bag, password));
  } catch (err) {
    if (err instanceof Pkcs12Error) throw new TlsSecretError(err.message, 'pkcs12');
    throw err;
  }
}
