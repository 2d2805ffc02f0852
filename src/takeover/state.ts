// The state handed from one driver process to the next through the keeper:
// the filesystem (inode table, volume trees) and the volume table (pods,
// providers, versions, and the attributes and publish secrets the next poll
// needs). Encoded as [u32 json length][json][file bytes], into locked,
// non-dumpable memory; never written anywhere. With an audit connection
// (docs/audit.md) its filesystem is in `auditFs` and its bytes follow the
// main one's.

import type { FilesystemState } from '../fuse/filesystem.js';
import type { VolumeRecordState } from '../volume/types.js';

export interface DriverState {
  readonly version: 1;
  readonly fs: FilesystemState;
  /** The audit connection's filesystem, when there is one (its volumes' records say auditReads). */
  readonly auditFs?: FilesystemState;
  readonly volumes: VolumeRecordState[];
}

/** [u32 json length][json][bytes]: the layout of a whole state and of each record (records.ts). */
export function packJson(json: unknown, data: readonly Buffer[], alloc: (n: number) => Buffer): Buffer {
  const j = Buffer.from(typeof json === 'string' ? json : JSON.stringify(json), 'utf8');
  const out = alloc(4 + j.length + data.reduce((n, d) => n + d.length, 0));
  out.writeUInt32LE(j.length, 0);
  let off = 4 + j.copy(out, 4);
  j.fill(0);
  for (const d of data) off += d.copy(out, off);
  return out;
}

export function unpackJson<T>(buf: Buffer): { json: T; data: Buffer } {
  const len = buf.readUInt32LE(0);
  return { json: JSON.parse(buf.toString('utf8', 4, 4 + len)) as T, data: buf.subarray(4 + len) };
}

export function encodeState(s: DriverState, data: readonly Buffer[], alloc: (n: number) => Buffer): Buffer {
  return packJson(s, data, alloc);
}

export function decodeState(buf: Buffer): { state: DriverState; blob: Buffer } {
  const { json: state, data: blob } = unpackJson<DriverState>(buf);
  if (state.version !== 1) throw new Error(`unknown state version ${String(state.version)}`);
  return { state, blob };
}

/** Splits the file bytes between the main connection's table and the audit connection's (in that order). */
export function splitBlob(state: DriverState, blob: Buffer): { main: Buffer; audit: Buffer } {
  let n = 0;
  for (const node of state.fs.table.nodes) if (node.dataLen > 0) n += node.dataLen;
  return { main: blob.subarray(0, n), audit: blob.subarray(n) };
}
