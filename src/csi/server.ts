// The CSI gRPC server on --endpoint: Identity, Node, and the Controller
// service upstream also registers (no capabilities, every RPC Unimplemented).

import { unlink } from 'node:fs/promises';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { ControllerService, IdentityService, NodeService, type IdentityServer, type NodeServer } from '../gen/csi/v1/csi.js';
import { controllerServer } from './controller-server.js';
import { grpcAddress, parseEndpoint } from './endpoint.js';

export async function startCsiServer(endpoint: string, identity: IdentityServer, node: NodeServer): Promise<Server> {
  const ep = parseEndpoint(endpoint);
  if (ep.kind === 'unix') {
    await mkdir(dirname(ep.path), { recursive: true });
    // grpc-js does not replace a socket left by a previous process (EADDRINUSE).
    await unlink(ep.path).catch(() => undefined);
  }
  const server = new Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  server.addService(IdentityService, identity);
  server.addService(NodeService, node);
  server.addService(ControllerService, controllerServer());
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(grpcAddress(ep), ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
  });
  return server;
}
