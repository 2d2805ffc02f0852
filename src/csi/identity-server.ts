// CSI Identity: name and version, capabilities, readiness.

import { PluginCapability_Service_Type, type IdentityServer } from '../gen/csi/v1/csi.js';
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
    // CONTROLLER_SERVICE, as upstream: the Controller service is registered
    // (controller-server.ts) and lists no capabilities. csi-sanity runs its
    // positive NodePublish specs only for a plugin that advertises it.
    getPluginCapabilities: unary(async () => ({
      capabilities: [{ type: { $case: 'service', value: { type: PluginCapability_Service_Type.CONTROLLER_SERVICE } } }],
    })),
    probe: unary(async () => ({ ready: o.ready() })),
  };
}
