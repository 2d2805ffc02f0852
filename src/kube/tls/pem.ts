// PEM as Go's encoding/pem reads and writes it (upstream decodes with pem.Decode and writes with
// pem.EncodeToMemory), so that which blocks are found, skipped or kept is upstream's. Bodies are
// base64-decoded and encoded byte by byte into Buffers, never through JS strings, so key material
// can be zeroed once used. Types and header values are latin1 strings, i.e. the raw bytes.

export const CERT_TYPE = 'CERTIFICATE';
export const PRIVATE_KEY_TYPE = 'PRIVATE KEY';

export interface PemBlock {
  type: string;
  headers: Map<string, string>;
  /** The decoded body; owned by the block (a fresh Buffer the caller may zero). */
  bytes: Buffer;
}

const PEM_BEGIN = Buffer.from('-----BEGIN ', 'latin1');
const PEM_END = Buffer.from('\n-----END ', 'latin1');
const PEM_EOL = Buffer.from('-----', 'latin1');
const NL = 0x0a;

/** One line (without its CR LF, trailing spaces and tabs trimmed) and what follows it. */
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

/** Length of a Unicode white-space rune (Go unicode.IsSpace) encoded in UTF-8 at b[i..], or 0. */
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

/** Go's bytes.TrimSpace (header names and values). */
function trimSpace(b: Buffer): Buffer {
  let s = 0;
  for (let n = spaceRuneAt(b, s); n > 0 && s < b.length; n = spaceRuneAt(b, s)) s += n;
  let e = b.length;
  for (;;) {
    const n = [1, 2, 3].find((k) => e - k >= s && spaceRuneAt(b, e - k) === k);
    if (n === undefined) break;
    e -= n;
  }
  return b.subarray(s, e);
}

const ALPHABET = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', 'latin1');
const SEXTET = new Int8Array(256).fill(-1);
ALPHABET.forEach((c, i) => {
  SEXTET[c] = i;
});
const PAD = 0x3d;

/**
 * A PEM body as Go decodes it: spaces, tabs, CR and LF are ignored, padding is required, and any
 * other byte makes the block invalid (null).
 */
function decodeBody(body: Buffer): Buffer | null {
  const clean = Buffer.alloc(body.length);
  try {
    let n = 0;
    for (const c of body) if (c !== 0x0d && c !== 0x0a && c !== 0x20 && c !== 0x09) clean[n++] = c;
    if (n % 4 !== 0) return null;
    let pad = 0;
    if (n > 0 && clean[n - 1] === PAD) pad++;
    if (n > 1 && clean[n - 2] === PAD) pad++;
    const out = Buffer.alloc((n / 4) * 3 - pad);
    for (let i = 0, o = 0; i < n; i += 4) {
      let group = 0;
      for (let j = i; j < i + 4; j++) {
        const v = j >= n - pad ? 0 : (SEXTET[clean[j] ?? 0] ?? -1);
        if (v < 0) {
          out.fill(0);
          return null;
        }
        group = (group << 6) | v;
      }
      for (let k = 16; k >= 0 && o < out.length; k -= 8) out[o++] = (group >> k) & 0xff;
    }
    return out;
  } finally {
    clean.fill(0);
  }
}

/** Go's pem.Decode: the first well-formed block and the input after its END line, or null. */
export function pemDecode(data: Buffer): { block: PemBlock; rest: Buffer } | null {
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
      headers.set(trimSpace(l.line.subarray(0, colon)).toString('latin1'), trimSpace(l.line.subarray(colon + 1)).toString('latin1'));
      rest = l.rest;
      endIndex -= l.consumed;
      endTrailerIndex -= l.consumed;
    }
    if (truncated) return null;

    if (headers.size > 0 && endIndex < 0) continue;
    if (endTrailerIndex < 0) continue; // Go would panic here; skip the block instead

    let endTrailer = rest.subarray(endTrailerIndex);
    const endTrailerLen = typeLine.length + PEM_EOL.length;
    if (endTrailer.length < endTrailerLen) continue;
    const restOfEndLine = endTrailer.subarray(endTrailerLen);
    endTrailer = endTrailer.subarray(0, endTrailerLen);
    if (!hasPrefix(endTrailer, typeLine) || !hasSuffix(endTrailer, PEM_EOL)) continue;
    if (getLine(restOfEndLine).line.length !== 0) continue;

    let bytes: Buffer = Buffer.alloc(0);
    if (endIndex > 0) {
      const decoded = decodeBody(rest.subarray(0, endIndex));
      if (decoded === null) continue;
      bytes = decoded;
    }
    const after = getLine(rest.subarray(endIndex + PEM_END.length - 1)).rest;
    return { block: { type: typeLine.toString('latin1'), headers, bytes }, rest: after };
  }
}

/** Go's pem.EncodeToMemory: Proc-Type header first, the others sorted, 64-column base64. */
export function pemEncode(block: PemBlock): Buffer {
  let head = `-----BEGIN ${block.type}-----\n`;
  if (block.headers.size > 0) {
    const procType = block.headers.get('Proc-Type');
    if (procType !== undefined) head += `Proc-Type: ${procType}\n`;
    for (const k of [...block.headers.keys()].filter((k) => k !== 'Proc-Type').sort()) {
      head += `${k}: ${block.headers.get(k) ?? ''}\n`;
    }
    head += '\n';
  }
  const headBytes = Buffer.from(head, 'latin1');
  const tailBytes = Buffer.from(`-----END ${block.type}-----\n`, 'latin1');

  const src = block.bytes;
  const chars = Math.ceil(src.length / 3) * 4;
  const out = Buffer.alloc(headBytes.length + chars + Math.ceil(chars / 64) + tailBytes.length);
  let o = headBytes.copy(out, 0);
  for (let i = 0, col = 0; i < src.length; i += 3) {
    const left = src.length - i;
    const group = ((src[i] ?? 0) << 16) | ((src[i + 1] ?? 0) << 8) | (src[i + 2] ?? 0);
    out[o++] = ALPHABET[group >> 18] ?? 0;
    out[o++] = ALPHABET[(group >> 12) & 63] ?? 0;
    out[o++] = left > 1 ? (ALPHABET[(group >> 6) & 63] ?? 0) : PAD;
    out[o++] = left > 2 ? (ALPHABET[group & 63] ?? 0) : PAD;
    col += 4;
    if (col === 64 || i + 3 >= src.length) {
      out[o++] = NL;
      col = 0;
    }
  }
  tailBytes.copy(out, o);
  return out;
}
