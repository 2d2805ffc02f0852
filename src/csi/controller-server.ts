// CSI Controller, registered as upstream registers it: the plugin advertises
// CONTROLLER_SERVICE, but an ephemeral inline driver has no volumes to create,
// attach or snapshot, so every Controller RPC answers Unimplemented.
//
// One difference: upstream's ControllerGetCapabilities lists a single
// RPC_UNKNOWN capability, which csi-sanity's "ControllerGetCapabilities should
// return appropriate capabilities" rejects (UNKNOWN is not an allowed value).
// Here the list is empty, which means the same to a CO: no controller RPC is
// supported.

import { status, type handleUnaryCall } from '@grpc/grpc-js';
import type { ControllerServer } from '../gen/csi/v1/csi.js';
import { DriverError } from '../errors.js';
import { unary } from './handler.js';

function unimplemented<Req, Res>(rpc: string): handleUnaryCall<Req, Res> {
  return unary<Req, Res>(async () => {
    throw new DriverError(
      `${rpc} is not implemented: this driver only serves ephemeral inline volumes on the node, it has no controller`,
      'ERR_UNIMPLEMENTED',
      status.UNIMPLEMENTED,
    );
  });
}

export function controllerServer(): ControllerServer {
  return {
    controllerGetCapabilities: unary(async () => ({ capabilities: [] })),
    createVolume: unimplemented('CreateVolume'),
    deleteVolume: unimplemented('DeleteVolume'),
    controllerPublishVolume: unimplemented('ControllerPublishVolume'),
    controllerUnpublishVolume: unimplemented('ControllerUnpublishVolume'),
    validateVolumeCapabilities: unimplemented('ValidateVolumeCapabilities'),
    listVolumes: unimplemented('ListVolumes'),
    getCapacity: unimplemented('GetCapacity'),
    createSnapshot: unimplemented('CreateSnapshot'),
    deleteSnapshot: unimplemented('DeleteSnapshot'),
    listSnapshots: unimplemented('ListSnapshots'),
    getSnapshot: unimplemented('GetSnapshot'),
    controllerExpandVolume: unimplemented('ControllerExpandVolume'),
    controllerGetVolume: unimplemented('ControllerGetVolume'),
    controllerModifyVolume: unimplemented('ControllerModifyVolume'),
  };
}
