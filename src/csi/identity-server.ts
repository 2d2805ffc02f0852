// CSI Identity: name and version, capabilities, readiness.

import type { IdentityServer } from '../gen/csi/v1/csi.js';
import { errors } from '../errors.js';
import { unary } from './handler.js';

export interface IdentityOptions {
  readonly driverName: string;
  readonly version: string;
  /** Probe answers not ready until the FUSE connection is up. */
  readonly ready: () => boolean;
}

export function identityServer(o: IdentityOptions): IdentityServer {
  return {
    getPluginInfo: unary(async () => {
      if (!o.driverName || !o.version) throw errors.shuttingDown('driver name/version not configured');
      return { name: o.driverName, vendorVersion: o.version, manifest: {} };
    }),
    // No CONTROLLER_SERVICE: this driver has no controller RPCs to offer
    // (upstream advertises it and then answers Unimplemented to all of them).
    getPluginCapabilities: unary(async () => ({ capabilities: [] })),
    probe: unary(async () => ({ ready: o.ready() })),
  };
}
