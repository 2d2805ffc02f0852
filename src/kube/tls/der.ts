// A small DER reader for the PKCS#12 structures (pkcs12.ts, pbe.ts) and nothing else. It accepts
// and rejects what Go's encoding/asn1 does for those structures (minimal lengths, no indefinite
// form, minimal integers, trailing bytes allowed inside a SEQUENCE but not after the value), and
// keeps Go's error texts where upstream's messages surface them (e.g. "asn1: syntax error:
// sequence truncated" for an empty file).

import { Pkcs12Error } from './errors.js';

export class DerError extends Pkcs12Error {}

const structural = (m: string) => new DerError(`asn1: structure error: ${m}`);
const syntax = (m: string) => new DerError(`asn1: syntax error: ${m}`);

export const UNIVERSAL = 0;
export const CONTEXT = 2;
const INTEGER = 2;
const OCTET_STRING = 4;
const OBJECT_IDENTIFIER = 6;
export const SEQUENCE = 16;
export const SET = 17;

/** One element: its body, and its full encoding (header included). */
export interface Tlv {
  cls: number;
  tag: number;
  compound: boolean;
  body: Buffer;
  full: Buffer;
}

interface Header {
  cls: number;
  tag: number;
  compound: boolean;
  length: number;
  start: number;
  bodyStart: number;
}

const UNIVERSAL_NAMES: Record<number, string> = {
  [INTEGER]: 'INTEGER',
  [OCTET_STRING]: 'OCTET STRING',
  [OBJECT_IDENTIFIER]: 'OBJECT IDENTIFIER',
  [SEQUENCE]: 'SEQUENCE',
  [SET]: 'SET',
};
const CLASS_NAMES = ['UNIVERSAL', 'APPLICATION', 'CONTEXT', 'PRIVATE'];

function describe(cls: number, tag: number): string {
  const name = cls === UNIVERSAL ? UNIVERSAL_NAMES[tag] : undefined;
  return name ?? `[${CLASS_NAMES[cls] ?? cls} ${tag}]`;
}

/** A base-128 number (OID arcs, high tag numbers), at most 31 bits, minimally encoded. */
function readBase128(b: Buffer, start: number): { value: number; next: number } {
  let value = 0;
  let off = start;
  for (let shifted = 0; off < b.length; shifted++) {
    if (shifted === 5) throw structural('base 128 integer too large');
    const c = b[off] ?? 0;
    if (shifted === 0 && c === 0x80) throw syntax('integer is not minimally encoded');
    value = value * 128 + (c & 0x7f);
    off++;
    if ((c & 0x80) === 0) {
      if (value > 0x7fffffff) throw structural('base 128 integer too large');
      return { value, next: off };
    }
  }
  throw syntax('truncated base 128 integer');
}

function readHeader(b: Buffer, start: number): Header {
  let off = start;
  let c = b[off++] ?? 0;
  const h: Header = { cls: c >> 6, tag: c & 0x1f, compound: (c & 0x20) !== 0, length: 0, start, bodyStart: 0 };
  if (h.tag === 0x1f) {
    const r = readBase128(b, off);
    h.tag = r.value;
    off = r.next;
    if (h.tag < 0x1f) throw syntax('non-minimal tag');
  }
  if (off >= b.length) throw syntax('truncated tag or length');
  c = b[off++] ?? 0;
  if ((c & 0x80) === 0) {
    h.length = c;
  } else {
    const count = c & 0x7f;
    if (count === 0) throw syntax('indefinite length found (not DER)');
    for (let i = 0; i < count; i++) {
      if (off >= b.length) throw syntax('truncated tag or length');
      if (h.length >= 1 << 23) throw structural('length too large');
      h.length = h.length * 256 + (b[off++] ?? 0);
      if (h.length === 0) throw structural('superfluous leading zeros in length');
    }
    if (h.length < 0x80) throw structural('non-minimal length');
  }
  h.bodyStart = off;
  return h;
}

/** Reads the elements of one constructed value (or of a whole input) in order. */
export class DerReader {
  private off = 0;

  constructor(private readonly b: Buffer) {}

  get atEnd(): boolean {
    return this.off >= this.b.length;
  }

  /** The next element's header, not consumed; null at the end. */
  private peek(): Header | null {
    return this.atEnd ? null : readHeader(this.b, this.off);
  }

  private required(): Header {
    const h = this.peek();
    if (h === null) throw syntax('sequence truncated');
    return h;
  }

  private consume(h: Header): Tlv {
    const end = h.bodyStart + h.length;
    if (end > this.b.length) throw syntax('data truncated');
    this.off = end;
    return { cls: h.cls, tag: h.tag, compound: h.compound, body: this.b.subarray(h.bodyStart, end), full: this.b.subarray(h.start, end) };
  }

  private mismatch(what: string, expected: string, h: Header): DerError {
    return structural(`${what}: expected ${expected}, found ${describe(h.cls, h.tag)} at offset ${h.start}`);
  }

  /** The next element, whatever its tag (an ASN.1 ANY). */
  any(): Tlv {
    return this.consume(this.required());
  }

  /** The next element, which must be the universal `tag`. */
  universal(tag: number, what: string): Tlv {
    const h = this.required();
    if (h.cls !== UNIVERSAL || h.tag !== tag || h.compound !== (tag === SEQUENCE || tag === SET)) {
      throw this.mismatch(what, describe(UNIVERSAL, tag), h);
    }
    return this.consume(h);
  }

  /** The next element if it has this class, tag and form; null (nothing consumed) otherwise. */
  optional(cls: number, tag: number, compound: boolean): Tlv | null {
    const h = this.peek();
    if (h === null || h.cls !== cls || h.tag !== tag || h.compound !== compound) return null;
    return this.consume(h);
  }

  /** An optional element of any tag (an ASN.1 ANY OPTIONAL, e.g. AlgorithmIdentifier parameters). */
  optionalAny(): Tlv | null {
    return this.atEnd ? null : this.any();
  }

  /** The body of an EXPLICIT [tagNo] element; null when absent and `optional`. */
  explicit(tagNo: number, what: string, optional: true): Buffer | null;
  explicit(tagNo: number, what: string, optional?: false): Buffer;
  explicit(tagNo: number, what: string, optional = false): Buffer | null {
    const h = optional ? this.peek() : this.required();
    if (h === null) return null;
    if (h.cls !== CONTEXT || h.tag !== tagNo || !(h.length === 0 || h.compound)) {
      if (optional) return null;
      throw this.mismatch(what, `explicit [${tagNo}]`, h);
    }
    if (h.bodyStart === this.b.length) throw structural(`${what}: explicit tag has no child`);
    return this.consume(h).body;
  }

  sequence(what: string): DerReader {
    return new DerReader(this.universal(SEQUENCE, what).body);
  }

  /** A SEQUENCE OF (or, with `tag` SET, a SET OF) SEQUENCEs: one reader per element. */
  sequenceOf(what: string, tag = SEQUENCE): DerReader[] {
    return DerReader.elements(this.universal(tag, what).body, what);
  }

  /** The SEQUENCE elements of a SEQUENCE OF's body, each checked before any is read (as Go does). */
  static elements(body: Buffer, what: string): DerReader[] {
    const out: DerReader[] = [];
    for (let off = 0; off < body.length;) {
      const h = readHeader(body, off);
      if (h.cls !== UNIVERSAL || h.tag !== SEQUENCE || !h.compound) throw structural(`${what}: sequence tag mismatch`);
      off = h.bodyStart + h.length;
      if (off > body.length) throw syntax('truncated sequence');
      out.push(new DerReader(body.subarray(h.bodyStart, off)));
    }
    return out;
  }

  /** An INTEGER that fits Go's int (at most 8 bytes), minimally encoded. */
  integer(what: string): bigint {
    return decodeInteger(this.universal(INTEGER, what).body);
  }

  /** An optional INTEGER, `fallback` when absent. */
  optionalInteger(fallback: bigint): bigint {
    const t = this.optional(UNIVERSAL, INTEGER, false);
    return t === null ? fallback : decodeInteger(t.body);
  }

  octets(what: string): Buffer {
    return this.universal(OCTET_STRING, what).body;
  }

  /** An OBJECT IDENTIFIER in dotted form. */
  oid(what: string): string {
    const body = this.universal(OBJECT_IDENTIFIER, what).body;
    if (body.length === 0) throw syntax('zero length OBJECT IDENTIFIER');
    let r = readBase128(body, 0);
    const arcs = r.value < 80 ? [Math.floor(r.value / 40), r.value % 40] : [2, r.value - 80];
    while (r.next < body.length) {
      r = readBase128(body, r.next);
      arcs.push(r.value);
    }
    return arcs.join('.');
  }
}

function decodeInteger(b: Buffer): bigint {
  if (b.length === 0) throw structural('empty integer');
  const b0 = b[0] ?? 0;
  const b1 = b[1] ?? 0;
  if (b.length > 1 && ((b0 === 0 && (b1 & 0x80) === 0) || (b0 === 0xff && (b1 & 0x80) !== 0))) {
    throw structural('integer not minimally-encoded');
  }
  if (b.length > 8) throw structural('integer too large');
  let v = 0n;
  for (const c of b) v = (v << 8n) | BigInt(c);
  return (b0 & 0x80) !== 0 ? v - (1n << BigInt(b.length * 8)) : v;
}

/**
 * Reads exactly one value from `b` with `read` (given a reader positioned on it), then requires
 * that nothing follows, as golang.org/x/crypto/pkcs12's unmarshal does.
 */
export function parseOne<T>(b: Buffer | null, read: (r: DerReader) => T): T {
  const r = new DerReader(b ?? Buffer.alloc(0));
  const v = read(r);
  if (!r.atEnd) throw new DerError('pkcs12: trailing data found');
  return v;
}
