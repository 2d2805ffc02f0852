// The CSI gRPC server on --endpoint: Identity, Node, and the Controller
// service upstream also registers (no capabilities, every RPC Unimplemented).

import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { ControllerService, IdentityService, NodeService, type IdentityServer, type NodeServer } from '../gen/csi/v1/csi.js';
import { bindSocketFile, socketFileRemover } from '../util/socket-file.js';
import { controllerServer } from './controller-server.js';
import { grpcAddress, parseEndpoint } from './endpoint.js';

/**
 * Whoever may connect to the CSI socket may publish and unpublish as root:
 * owner and group only (kubelet and the registrar run as root), never
 * through the umask.
 */
export const CSI_SOCKET_MODE = 0o660;

export interface CsiServer {
  readonly server: Server;
  /** Removes the unix socket if it is still ours (upstream removes its socket on exit too). */
  readonly removeSocket: () => Promise<void>;
}

export async function startCsiServer(endpoint: string, identity: IdentityServer, node: NodeServer): Promise<CsiServer> {
  const ep = parseEndpoint(endpoint);
  const server = new Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  server.addService(IdentityService, identity);
  server.addService(NodeService, node);
  server.addService(ControllerService, controllerServer());
  const bind = (address: string): Promise<Server> =>
    new Promise<Server>((resolve, reject) => {
      server.bindAsync(address, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve(server)));
    });
  if (ep.kind === 'tcp') return { server: await bind(grpcAddress(ep)), removeSocket: async () => undefined };
  await mkdir(dirname(ep.path), { recursive: true });
  // Bound elsewhere and renamed over the path: this also replaces a socket a
  // previous process left (grpc-js would fail with EADDRINUSE).
  await bindSocketFile(
    ep.path,
    CSI_SOCKET_MODE,
    (at) => bind(grpcAddress({ kind: 'unix', path: at })),
    (s) => s.forceShutdown(),
  );
  return { server, removeSocket: await socketFileRemover(ep.path) };
}
