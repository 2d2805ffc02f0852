// A connection without a mount, for the keeper records' tests: an inode
// table and its volumes, read by the records builder (RecordConnection) and
// exported whole as a SecretsFilesystem would (exportState).

import { InodeTable, ROOT_ID } from '../../src/fuse/inode-table.js';
import { VolumeTree, type VolumeFile } from '../../src/fuse/volume-tree.js';
import type { FilesystemState, VolumeHandle } from '../../src/fuse/filesystem.js';
import type { RecordConnection } from '../../src/takeover/records.js';
import type { Volume } from '../../src/volume/types.js';

export const files = (v: number, extra = false): VolumeFile[] => [
  { path: 'password', mode: 0o400, contents: Buffer.from(`pw-${v}`) },
  { path: 'config/app.json', mode: 0o444, contents: Buffer.from(`{"v":${v}}`) },
  ...(extra ? [{ path: 'extra', mode: 0o444, contents: Buffer.from('x') }] : []),
];

/** One connection without a mount: a table, its volumes, and what the records builder reads. */
export class Conn implements RecordConnection {
  readonly table = new InodeTable();
  readonly answersOpens = false;
  readonly ops = { negotiated: { major: 7, minor: 31, flags: 5, maxReadahead: 4096 } };
  readonly vols = new Map<string, VolumeHandle>();
  constructor(readonly mountDir: string) {}
  handles(): Iterable<VolumeHandle> {
    return this.vols.values();
  }
  create(name: string): VolumeHandle {
    const dir = this.table.mkdir(0o755, 1000);
    this.table.link(ROOT_ID, name, dir.id);
    const v = { name, tree: new VolumeTree(this.table, dir.id, 0), sourcePath: `${this.mountDir}/${name}` };
    this.vols.set(name, v);
    return v;
  }
  destroy(v: VolumeHandle): void {
    this.vols.delete(v.name);
    this.table.scrub(v.tree.dirId);
    this.table.unlink(ROOT_ID, v.name);
  }
  whole(): { fs: FilesystemState; data: Buffer[] } {
    const t = this.table.exportState();
    const volumes = [...this.vols.values()].map((v) => ({ name: v.name, tree: v.tree.exportState() }));
    return { fs: { mountDir: this.mountDir, negotiated: this.ops.negotiated, answersOpens: false, table: t.state, volumes }, data: t.data };
  }
  exportState(): { state: FilesystemState; data: Buffer[] } {
    const w = this.whole();
    return { state: w.fs, data: w.data };
  }
}

export function record(path: string, v: VolumeHandle): Volume {
  return {
    targetPath: path,
    volumeId: `id-${path}`,
    podName: 'p',
    podNamespace: 'ns',
    podUid: 'uid',
    spcName: 'spc',
    provider: 'prov',
    volumeContext: { a: 'b' },
    secrets: { token: 's3cret' },
    objectVersions: [{ id: 'o', version: '1' }],
    mock: false,
    lastPolledAt: 1,
    handle: v,
  };
}
