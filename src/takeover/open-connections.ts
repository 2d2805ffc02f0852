// The driver's FUSE connections at start: with a keeper, the ones a previous
// driver left there (crash or upgrade), each volume on the connection it was
// published on; otherwise, or when there is nothing to take over, the main
// connection mounted afresh (the audit one comes at the first audited
// publish). Every connection mounted afresh is handed to the keeper.

import { closeSync } from 'node:fs';
import type { Logger } from 'pino';
import { SecretsFilesystem } from '../fuse/filesystem.js';
import { Connections, auditMountDir, type ConnectionsOptions } from '../fuse/connections.js';
import type { KeeperClient } from './keeper-client.js';
import { decodeState, splitBlob, type DriverState } from './state.js';
import { decodeContainer, isContainer } from './record-codec.js';
import { stateFromRecords, withOwners } from './records.js';

export type OpenOptions = Omit<ConnectionsOptions, 'mountAudit' | 'onAuditMounted'>;

export async function openConnections(
  keeper: KeeperClient | null,
  log: Logger,
  o: OpenOptions,
): Promise<{ conns: Connections; inherited: DriverState | null }> {
  const co: ConnectionsOptions = {
    ...o,
    mountAudit: (fo) => SecretsFilesystem.mount(fo),
    onAuditMounted: (fs) => {
      keeper?.registerAudit(fs.session.fd);
      log.info({ mountDir: fs.mountDir }, 'mounted the audit FUSE connection (opens of audited volumes reach the driver)');
    },
  };
  const hello = keeper ? await keeper.hello() : { kind: 'empty' as const };
  if (hello.kind !== 'state') {
    let main: SecretsFilesystem | null = null;
    main = await SecretsFilesystem.mount(Connections.optionsFor(co, o.base.mountDir, false, () => main));
    keeper?.register(main.session.fd);
    return { conns: new Connections(main, co), inherited: null };
  }
  const started = performance.now();
  const records = isContainer(hello.state);
  const decoded = records ? stateFromRecords(decodeContainer(hello.state), o.base.alloc) : wholeState(hello.state);
  const { state } = decoded;
  const blob = splitBlob(state, decoded.blob);
  let main: SecretsFilesystem | null = null;
  let audit: SecretsFilesystem | null = null;
  // Whether a connection answers OPEN is its own (kept in its state), not this process's flag.
  main = await SecretsFilesystem.adopt(
    Connections.optionsFor(co, state.fs.mountDir, false, () => main),
    hello.fd,
    state.fs,
    blob.main,
  );
  const conns = new Connections(main, co);
  if (state.auditFs && hello.auditFd !== null) {
    audit = await SecretsFilesystem.adopt(
      Connections.optionsFor(co, state.auditFs.mountDir, true, () => audit),
      hello.auditFd,
      state.auditFs,
      blob.audit,
    );
    conns.adoptAudit(
      audit,
      state.auditFs.volumes.map((v) => v.name),
    );
  } else if (state.auditFs) {
    log.warn(
      { mountDir: auditMountDir(state.fs.mountDir), volumes: state.auditFs.volumes.length },
      'the keeper did not hold the audit FUSE connection (a keeper older than the driver?): audited volumes were not taken over',
    );
  } else if (hello.auditFd !== null) {
    // Registered, but the driver died before any state named it: nothing on it is recorded.
    closeSync(hello.auditFd);
  }
  hello.state.fill(0);
  if (records) decoded.blob.fill(0); // a copy: the table has its own
  if (main.answersOpens) {
    log.warn(
      {},
      'the FUSE connection taken over answers every open (it was mounted by a driver that served audited volumes on it): ' +
        'unaudited volumes pay a round trip per open until it is mounted anew',
    );
  }
  log.info(
    { volumes: state.volumes.length, connections: conns.all().length, records, ms: Math.round(performance.now() - started) },
    'took over the FUSE connection from the previous driver',
  );
  return { conns, inherited: state };
}

/** A whole-state blob; one from a driver before records has no node owners: they are derived. */
function wholeState(buf: Buffer): { state: DriverState; blob: Buffer } {
  const { state, blob } = decodeState(buf);
  const owned = (fs: NonNullable<DriverState['auditFs']>) => ({ ...fs, table: withOwners(fs.table, fs.volumes) });
  return { state: { ...state, fs: owned(state.fs), ...(state.auditFs ? { auditFs: owned(state.auditFs) } : {}) }, blob };
}
