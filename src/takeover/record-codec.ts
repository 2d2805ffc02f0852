// The wire formats of the keeper's keyed records (docs/restart-survival.md):
// a RECORDS message (driver → keeper: records replaced and records deleted,
// or, with `reset`, the whole set) and the container a keeper hands over in
// STATE (every record it holds). The keeper treats record bytes as opaque;
// records.ts says what is in them. Keys are short ASCII strings.
//
//   RECORDS:   [u8 reset][u32 n]([u16 klen][key][u32 len][bytes])*n [u32 m]([u16 klen][key])*m
//   container: "SSR1" [u32 n]([u16 klen][key][u32 len][bytes])*n
//
// A whole-state blob (state.ts) starts with the u32 length of its JSON, whose
// first byte is '{': it can never start with the container's magic.

export const CONTAINER_MAGIC = Buffer.from('SSR1', 'latin1');

export interface RecordDelta {
  /** The keeper drops every record it holds first. */
  readonly reset: boolean;
  readonly upserts: ReadonlyArray<readonly [string, Buffer]>;
  readonly deletes: readonly string[];
}

function entriesSize(entries: ReadonlyArray<readonly [string, Buffer]>): number {
  let n = 4;
  for (const [k, b] of entries) n += 2 + Buffer.byteLength(k) + 4 + b.length;
  return n;
}

function writeEntries(out: Buffer, off: number, entries: ReadonlyArray<readonly [string, Buffer]>): number {
  off = out.writeUInt32LE(entries.length, off);
  for (const [k, b] of entries) {
    off = out.writeUInt16LE(Buffer.byteLength(k), off);
    off += out.write(k, off);
    off = out.writeUInt32LE(b.length, off);
    off += b.copy(out, off);
  }
  return off;
}

/** Reads `[u32 n]` entries at `off`; the bytes are views of `buf`. */
function readEntries(buf: Buffer, off: number): { entries: Array<[string, Buffer]>; off: number } {
  const n = buf.readUInt32LE(off);
  off += 4;
  const entries: Array<[string, Buffer]> = [];
  for (let i = 0; i < n; i++) {
    const klen = buf.readUInt16LE(off);
    const key = buf.toString('utf8', off + 2, off + 2 + klen);
    off += 2 + klen;
    const len = buf.readUInt32LE(off);
    off += 4;
    if (off + len > buf.length) throw new Error('a record runs past the end of its message');
    entries.push([key, buf.subarray(off, off + len)]);
    off += len;
  }
  return { entries, off };
}

/** Into `alloc`'s memory (the records carry secrets). */
export function encodeDelta(d: RecordDelta, alloc: (n: number) => Buffer): Buffer {
  let size = 1 + entriesSize(d.upserts) + 4;
  for (const k of d.deletes) size += 2 + Buffer.byteLength(k);
  const out = alloc(size);
  out[0] = d.reset ? 1 : 0;
  let off = writeEntries(out, 1, d.upserts);
  off = out.writeUInt32LE(d.deletes.length, off);
  for (const k of d.deletes) {
    off = out.writeUInt16LE(Buffer.byteLength(k), off);
    off += out.write(k, off);
  }
  return out;
}

/** The upserted bytes are views of `buf`. */
export function decodeDelta(buf: Buffer): RecordDelta {
  const { entries, off: at } = readEntries(buf, 1);
  let off = at;
  const m = buf.readUInt32LE(off);
  off += 4;
  const deletes: string[] = [];
  for (let i = 0; i < m; i++) {
    const klen = buf.readUInt16LE(off);
    deletes.push(buf.toString('utf8', off + 2, off + 2 + klen));
    off += 2 + klen;
  }
  return { reset: buf[0] === 1, upserts: entries, deletes };
}

export function encodeContainer(records: ReadonlyMap<string, Buffer>, alloc: (n: number) => Buffer): Buffer {
  const entries = [...records];
  const out = alloc(CONTAINER_MAGIC.length + entriesSize(entries));
  CONTAINER_MAGIC.copy(out, 0);
  writeEntries(out, CONTAINER_MAGIC.length, entries);
  return out;
}

export function isContainer(buf: Buffer): boolean {
  return buf.length >= CONTAINER_MAGIC.length && buf.subarray(0, CONTAINER_MAGIC.length).equals(CONTAINER_MAGIC);
}

/** Every record of a container; the bytes are views of `buf`. */
export function decodeContainer(buf: Buffer): Map<string, Buffer> {
  if (!isContainer(buf)) throw new Error('not a record container');
  return new Map(readEntries(buf, CONTAINER_MAGIC.length).entries);
}

/** Whether a HELLO or EMPTY payload (JSON) says its sender handles records (`records: 1`). */
export function saysRecords(payload: Buffer): boolean {
  try {
    return (JSON.parse(payload.toString('utf8')) as { records?: unknown }).records === 1;
  } catch {
    return false;
  }
}
