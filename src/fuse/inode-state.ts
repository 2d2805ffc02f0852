// An inode's state as handed to a process taking the connection over (whole,
// or record by record: src/takeover/records.ts); its bytes travel separately.

import type { Inode, InodeKind } from './inode-table.js';

export interface InodeState {
  readonly id: number;
  readonly kind: InodeKind;
  readonly mode: number;
  /** Absent (0) in states from before volumes had a group. */
  readonly gid?: number;
  readonly mtimeMs: number;
  readonly links: number;
  readonly scrubbed: boolean;
  /** Length of this inode's bytes in the data blob (-1: none). */
  readonly dataLen: number;
  readonly children?: Array<[string, number]>;
  /** See Inode.owner (absent: 0, or a state from before owners). */
  readonly owner?: number;
}

/** One inode's state; its bytes (`data`) travel separately. */
export function inodeState(n: Inode): InodeState {
  return {
    id: n.id,
    kind: n.kind,
    mode: n.mode,
    ...(n.gid !== 0 ? { gid: n.gid } : {}),
    mtimeMs: n.mtimeMs,
    links: n.links,
    scrubbed: n.scrubbed,
    dataLen: n.data ? n.data.length : -1,
    ...(n.children ? { children: [...n.children.entries()] } : {}),
    ...(n.owner !== 0 ? { owner: n.owner } : {}),
  };
}

export interface TableState {
  readonly nextId: number;
  readonly nodes: InodeState[];
}
