// The driver state as keyed records, so that a change re-encodes and sends
// only the records it touched (docs/restart-survival.md), and the state a
// successor rebuilds from all of them (the same DriverState as a whole-state
// blob gives). Each record is [u32 json length][json][file bytes]:
//
//   meta            {version, conns: {m, a?: {mountDir, negotiated, answersOpens, nextId}}}
//   vol:<c>:<dir>   the nodes a volume directory owns (Inode.owner; retired
//                   versions, a pending one, staged files and nodes scrubbed
//                   but still known to the kernel included), the root's
//                   entries naming them, and the volume's tree while served
//   rest:<c>        the nodes no volume owns (the root, without those entries)
//   rec:<target>    a volume record (VolumeRecordState)
//
// <c> is the connection: m (main) or a (audit). Every node of a table is in
// exactly one record: a node's changes (InodeTable.takeChanges) mark the
// record it was last encoded in and the one it belongs to now.

import { ROOT_ID, inodeState, type InodeState, type InodeTable, type TableState } from '../fuse/inode-table.js';
import type { Negotiated } from '../fuse/operations.js';
import type { VolumeTree, VolumeTreeState } from '../fuse/volume-tree.js';
import type { FilesystemState } from '../fuse/filesystem.js';
import type { VolumeRecordState } from '../volume/types.js';
import type { RecordDelta } from './record-codec.js';
import { packJson as pack, unpackJson as unpack, type DriverState } from './state.js';

type Alloc = (n: number) => Buffer;
type Tag = 'm' | 'a';

/** What records are made of, per connection (a SecretsFilesystem). */
export interface RecordConnection {
  readonly mountDir: string;
  readonly table: InodeTable;
  readonly answersOpens: boolean;
  readonly ops: { readonly negotiated: Negotiated | null };
  handles(): Iterable<{ readonly name: string; readonly tree: VolumeTree }>;
}

/** The volume records (VolumeState). */
export interface RecordVolumes {
  trackChanges(on?: boolean): void;
  takeChanges(): Map<string, VolumeRecordState | null>;
}

interface ConnMeta {
  readonly mountDir: string;
  readonly negotiated: Negotiated | null;
  readonly answersOpens: boolean;
  readonly nextId: number;
}

interface NodeRecord {
  readonly nodes: InodeState[];
  /** The root's entries naming nodes of this record (a volume's own name). */
  readonly root?: Array<[string, number]>;
  readonly name?: string;
  readonly tree?: VolumeTreeState;
}

/** One connection's node records and what each was last encoded with. */
class ConnectionRecords {
  /** Node id → owner of the record it was last encoded in. */
  private readonly where = new Map<number, number>();
  private readonly members = new Map<number, Set<number>>();
  /** Child id → the root's entries naming it. */
  private rootEntries = new Map<number, Array<[string, number]>>();
  /** Served volumes by directory id; they come and go with the root's entries, so rebuilt with those. */
  private handles = new Map<number, { readonly name: string; readonly tree: VolumeTree }>();

  constructor(
    readonly tag: Tag,
    readonly conn: RecordConnection,
  ) {
    conn.table.trackChanges(); // everything counts as changed: the first delta has every record
  }

  meta(): ConnMeta {
    const c = this.conn;
    return { mountDir: c.mountDir, negotiated: c.ops.negotiated, answersOpens: c.answersOpens, nextId: c.table.nextNodeId };
  }

  /** Re-encodes the records whose nodes changed since the last call. */
  collect(upserts: Array<[string, Buffer]>, deletes: string[], alloc: Alloc): void {
    const t = this.conn.table;
    const dirty = new Set<number>();
    let rootChanged = false;
    for (const id of t.takeChanges()) {
      if (id === ROOT_ID) rootChanged = true;
      const before = this.where.get(id);
      const after = t.get(id)?.owner;
      if (before !== undefined && before !== after) {
        this.members.get(before)?.delete(id);
        dirty.add(before);
      }
      if (after === undefined) {
        this.where.delete(id);
        continue;
      }
      if (before !== after) {
        this.where.set(id, after);
        let set = this.members.get(after);
        if (!set) this.members.set(after, (set = new Set()));
        set.add(id);
      }
      dirty.add(after);
    }
    if (rootChanged) {
      this.rootEntries = new Map();
      for (const [name, id] of t.get(ROOT_ID)?.children ?? []) {
        const e = this.rootEntries.get(id);
        if (e) e.push([name, id]);
        else this.rootEntries.set(id, [[name, id]]);
      }
      this.handles = new Map([...this.conn.handles()].map((h) => [h.tree.dirId, h]));
    }
    for (const owner of dirty) {
      const key = owner === 0 ? `rest:${this.tag}` : `vol:${this.tag}:${owner}`;
      const ids = this.members.get(owner);
      if (!ids || ids.size === 0) {
        this.members.delete(owner);
        deletes.push(key);
        continue;
      }
      upserts.push([key, this.encode(owner, ids, this.handles.get(owner), alloc)]);
    }
  }

  private encode(owner: number, ids: Set<number>, handle: { name: string; tree: VolumeTree } | undefined, alloc: Alloc): Buffer {
    const t = this.conn.table;
    const nodes: InodeState[] = [];
    const data: Buffer[] = [];
    const root: Array<[string, number]> = [];
    for (const id of [...ids].sort((a, b) => a - b)) {
      const n = t.get(id)!;
      let s = inodeState(n);
      // The root's entries go with the records of the nodes they name: a publish does not re-encode all of them.
      if (id === ROOT_ID) s = { ...s, children: s.children!.filter(([, c]) => (this.where.get(c) ?? 0) === 0) };
      nodes.push(s);
      if (n.data) data.push(n.data);
      if (owner !== 0) root.push(...(this.rootEntries.get(id) ?? []));
    }
    const rec: NodeRecord = {
      nodes,
      ...(root.length > 0 ? { root } : {}),
      ...(handle ? { name: handle.name, tree: handle.tree.exportState() } : {}),
    };
    return pack(rec, data, alloc);
  }
}

/** Builds the deltas of one driver process: every record at the first, then those changed. */
export class DriverRecords {
  private main: ConnectionRecords | null = null;
  private audit: ConnectionRecords | null = null;
  private lastMeta = '';
  private volumes: RecordVolumes | null = null;

  constructor(private readonly alloc: Alloc) {}

  /** Stops the change tracking (no keeper to send to any more: the sets would only grow). */
  stop(): void {
    for (const c of [this.main, this.audit]) c?.conn.table.trackChanges(false);
    this.volumes?.trackChanges(false);
  }

  delta(main: RecordConnection, audit: RecordConnection | null, volumes: RecordVolumes): RecordDelta {
    const reset = this.main === null;
    if (reset) {
      this.main = new ConnectionRecords('m', main);
      this.volumes = volumes;
      volumes.trackChanges();
    }
    // The audit connection is mounted at the first audited publish: its records start then.
    if (audit && this.audit?.conn !== audit) this.audit = new ConnectionRecords('a', audit);
    const upserts: Array<[string, Buffer]> = [];
    const deletes: string[] = [];
    const meta = JSON.stringify({ version: 1, conns: { m: this.main!.meta(), ...(this.audit ? { a: this.audit.meta() } : {}) } });
    if (meta !== this.lastMeta) {
      this.lastMeta = meta;
      upserts.push(['meta', pack(meta, [], this.alloc)]);
    }
    this.main!.collect(upserts, deletes, this.alloc);
    this.audit?.collect(upserts, deletes, this.alloc);
    for (const [path, rec] of volumes.takeChanges()) {
      if (rec) upserts.push([`rec:${path}`, pack(rec, [], this.alloc)]);
      else deletes.push(`rec:${path}`);
    }
    return { reset, upserts, deletes };
  }
}

/**
 * The DriverState a set of records describes, and its file bytes (main
 * connection's nodes then the audit one's, in node order, as splitBlob
 * expects), in `alloc`'s memory.
 */
export function stateFromRecords(
  records: ReadonlyMap<string, Buffer>,
  alloc: Alloc = (n) => Buffer.alloc(n),
): { state: DriverState; blob: Buffer } {
  const metaBuf = records.get('meta');
  if (!metaBuf) throw new Error('the records have no meta record');
  const meta = unpack<{ version: number; conns: Partial<Record<Tag, ConnMeta>> }>(metaBuf).json;
  if (meta.version !== 1) throw new Error(`unknown records version ${String(meta.version)}`);
  type Node = { s: InodeState; data: Buffer | null };
  const conns = new Map<Tag, { nodes: Node[]; root: Array<[string, number]>; volumes: FilesystemState['volumes'] }>();
  const volumes: VolumeRecordState[] = [];
  for (const [key, buf] of records) {
    const m = /^(vol|rest):([ma])(?::(\d+))?$/.exec(key);
    if (key.startsWith('rec:')) volumes.push(unpack<VolumeRecordState>(buf).json);
    if (!m) continue;
    const tag = m[2] as Tag;
    const c = conns.get(tag) ?? { nodes: [], root: [], volumes: [] };
    conns.set(tag, c);
    const { json, data } = unpack<NodeRecord>(buf);
    const owner = m[3] === undefined ? 0 : Number(m[3]);
    let off = 0;
    for (const s of json.nodes) {
      c.nodes.push({
        s: { ...s, ...(owner !== 0 ? { owner } : {}) },
        data: s.dataLen >= 0 ? data.subarray(off, (off += s.dataLen)) : null,
      });
    }
    c.root.push(...(json.root ?? []));
    if (json.name !== undefined && json.tree) c.volumes.push({ name: json.name, tree: json.tree });
  }
  const parts: Buffer[] = [];
  const fsState = (tag: Tag): FilesystemState | undefined => {
    const cm = meta.conns[tag];
    const c = conns.get(tag);
    if (!cm || !c) return undefined;
    c.nodes.sort((a, b) => a.s.id - b.s.id);
    const nodes = c.nodes.map(({ s }) => {
      if (s.id !== ROOT_ID) return s;
      const children = [...(s.children ?? []), ...c.root].sort((a, b) => a[1] - b[1]);
      return { ...s, children };
    });
    for (const n of c.nodes) if (n.data) parts.push(n.data);
    const table: TableState = { nextId: cm.nextId, nodes };
    return {
      mountDir: cm.mountDir,
      negotiated: cm.negotiated,
      answersOpens: cm.answersOpens,
      table,
      volumes: c.volumes.sort((a, b) => a.tree.dirId - b.tree.dirId),
    };
  };
  const fs = fsState('m');
  if (!fs) throw new Error('the records have no main connection');
  const auditFs = fsState('a');
  const blob = alloc(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) off += p.copy(blob, off);
  return { state: { version: 1, fs, ...(auditFs ? { auditFs } : {}), volumes }, blob };
}

/**
 * Owners for the nodes of a table from a whole-state blob that has none (a
 * driver from before records): each volume directory (a child of the root)
 * owns what is below it and its pending version; the rest stays unowned.
 */
export function withOwners(t: TableState, volumes: FilesystemState['volumes']): TableState {
  const byId = new Map(t.nodes.map((n) => [n.id, n]));
  const owner = new Map<number, number>();
  const walk = (id: number, o: number): void => {
    if (owner.has(id)) return;
    owner.set(id, o);
    for (const [, c] of byId.get(id)?.children ?? []) walk(c, o);
  };
  for (const [, c] of byId.get(ROOT_ID)?.children ?? []) walk(c, c);
  for (const { tree } of volumes) {
    const p = tree.pending;
    if (p) for (const id of [p.tsDirId, p.dataLinkId, ...p.added.map(([, i]) => i)]) walk(id, tree.dirId);
  }
  return {
    nextId: t.nextId,
    nodes: t.nodes.map((n) => (n.owner !== undefined || !owner.has(n.id) ? n : { ...n, owner: owner.get(n.id)! })),
  };
}
