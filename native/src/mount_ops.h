// mount_ops.c: mount-table changes by syscall, each on a thread of its own.
#ifndef CSI_MOUNT_OPS_H
#define CSI_MOUNT_OPS_H

#include <stdbool.h>
#include <node_api.h>

// Adds mount, umount, bindTree, mountApi and mountConstants to `exports`.
// False with an exception pending (or a Node-API failure) on error.
bool csi_mount_ops_init(napi_env env, napi_value exports);

#endif
