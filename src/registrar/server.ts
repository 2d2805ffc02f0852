// The built-in kubelet plugin registrar (--kubelet-registration-path): serves
// kubelet's pluginregistration API on <registration dir>/<driver>-reg.sock,
// in place of the node-driver-registrar sidecar.
//
// Kubelet's plugin watcher finds the socket, calls GetInfo, then calls
// NotifyRegistrationStatus with its verdict; after a restart of its own it
// calls GetInfo again on the same socket, any number of times. If the socket
// file goes (kubelet's directory cleaned or recreated), kubelet would never
// find the driver again: the directory is watched and the socket bound anew.

import { lstat, mkdir, unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { RegistrationService, type RegistrationServer } from '../gen/pluginregistration/v1/api.js';
import { unary } from '../csi/handler.js';
import type { Logger } from '../observability/log.js';
import { bindSocketFile } from '../util/socket-file.js';
import { DirWatch } from './dir-watch.js';
import { REGISTRATION_SOCKET_MODE, csiPluginInfo, entryState, registrationSocketPath, type FileId } from './plugin-info.js';

export interface RegistrarOptions {
  /** Kubelet's plugins_registry directory (--plugin-registration-path). */
  readonly registrationDir: string;
  readonly driverName: string;
  /** The CSI socket path as kubelet sees it (--kubelet-registration-path). */
  readonly kubeletEndpoint: string;
  readonly log: Logger;
  /** Each verdict kubelet reports (a metric). */
  readonly onStatus?: (registered: boolean) => void;
  /** How often a directory that went is looked for again, and a failed bind retried. */
  readonly retryMs?: number;
}

interface Bound extends FileId {
  /** The private address grpc-js bound (its key for unbind). */
  readonly address: string;
}

const DEFAULT_RETRY_MS = 2000;

export class Registrar {
  readonly socketPath: string;
  private readonly server = new Server();
  private readonly watch: DirWatch;
  private bound: Bound | null = null;
  private checking: Promise<void> | null = null;
  private checkAgain = false;
  private retry: NodeJS.Timeout | null = null;
  private foreignLogged = false;
  private stopped = false;

  private constructor(private readonly o: RegistrarOptions) {
    this.socketPath = registrationSocketPath(o.registrationDir, o.driverName);
    this.server.addService(RegistrationService, this.handlers());
    this.watch = new DirWatch({
      dir: o.registrationDir,
      name: basename(this.socketPath),
      onChange: () => this.check(),
      onLost: (err) =>
        o.log.warn({ dir: o.registrationDir, err: err.message }, 'lost the watch of the plugin registration directory; retrying'),
      retryMs: o.retryMs ?? DEFAULT_RETRY_MS,
    });
  }

  /**
   * Binds the socket (replacing one a previous process left there, as the
   * CSI socket does) and starts watching its directory.
   */
  static async start(o: RegistrarOptions): Promise<Registrar> {
    const r = new Registrar(o);
    await mkdir(o.registrationDir, { recursive: true });
    await r.bind();
    try {
      r.watch.start();
    } catch (e) {
      await r.stop();
      throw e;
    }
    o.log.info({ socket: r.socketPath, endpoint: o.kubeletEndpoint }, 'serving kubelet plugin registration');
    return r;
  }

  /**
   * Closes the server and removes the socket if it is still ours. At a
   * handover (`keepSocket`) it stays: kubelet would deregister the driver on
   * its removal, while the successor's socket, renamed over it, simply
   * registers the driver anew.
   */
  async stop(keepSocket = false): Promise<void> {
    this.stopped = true;
    this.watch.close();
    if (this.retry) clearTimeout(this.retry);
    await this.checking;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 1000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    if (!keepSocket && this.bound && (await this.entry().catch(() => 'foreign')) === 'ours')
      await unlink(this.socketPath).catch(() => undefined);
    this.bound = null;
  }

  private handlers(): RegistrationServer {
    const { log, driverName, kubeletEndpoint } = this.o;
    return {
      getInfo: unary(async () => {
        log.info({ socket: this.socketPath }, 'kubelet asked for the plugin info');
        return csiPluginInfo(driverName, kubeletEndpoint);
      }),
      notifyRegistrationStatus: unary(async (req) => {
        if (req.pluginRegistered) log.info({ driverName }, 'kubelet registered the driver');
        // The sidecar exits here; we keep serving so kubelet's next attempt can succeed.
        else log.error({ driverName, err: req.error }, 'kubelet could not register the driver; still serving for its retry');
        this.o.onStatus?.(req.pluginRegistered);
        return {};
      }),
    };
  }

  private async entry(): Promise<'ours' | 'gone' | 'foreign'> {
    const now = await lstat(this.socketPath).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
    return entryState(this.bound, now);
  }

  private async bind(): Promise<void> {
    let address = '';
    await bindSocketFile(
      this.socketPath,
      REGISTRATION_SOCKET_MODE,
      (at) =>
        new Promise<void>((resolve, reject) => {
          address = `unix:${at}`;
          this.server.bindAsync(address, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
        }),
      () => this.server.unbind(address),
    );
    const id = await lstat(this.socketPath);
    const old = this.bound;
    this.bound = { address, dev: id.dev, ino: id.ino };
    this.foreignLogged = false;
    // The old listener can no longer be reached by path: close it.
    if (old) this.server.unbind(old.address);
  }

  /** Looks at the socket path after an event; one look at a time, and one more if events came meanwhile. */
  private check(): void {
    if (this.stopped) return;
    if (this.checking) {
      this.checkAgain = true;
      return;
    }
    this.checking = (async () => {
      do {
        this.checkAgain = false;
        await this.reconcile();
      } while (this.checkAgain && !this.stopped);
    })()
      .catch((e: unknown) => {
        this.o.log.warn({ socket: this.socketPath, err: (e as Error).message }, 'could not bind the registration socket again; retrying');
        this.retryLater();
      })
      .finally(() => {
        this.checking = null;
      });
  }

  private retryLater(): void {
    if (this.stopped || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.check();
    }, this.o.retryMs ?? DEFAULT_RETRY_MS);
  }

  private async reconcile(): Promise<void> {
    const state = await this.entry();
    if (this.stopped || state === 'ours') return;
    if (state === 'foreign') {
      // Our listener can no longer be reached by path: close it.
      if (this.bound) this.server.unbind(this.bound.address);
      this.bound = null;
      if (!this.foreignLogged) {
        this.foreignLogged = true;
        this.o.log.warn(
          { socket: this.socketPath },
          'something else replaced the registration socket; leaving it there (it is bound again if it goes)',
        );
      }
      return;
    }
    this.o.log.info({ socket: this.socketPath }, 'the registration socket was removed; binding it again');
    await this.bind();
  }
}
