// mount_ops: mount-table changes by syscall (mount(2), umount2(2) and the
// new mount API open_tree/mount_setattr/move_mount), each returning a Promise.
//
// Why a thread of its own per call, and not the libuv threadpool
// (napi_create_async_work): resolving a path on one of the driver's own FUSE
// mounts (a bind source under its private mount dir, a target) waits for the
// driver's FUSE server, which runs in this very process and reads /dev/fuse
// on threadpool threads. A few mount calls parked on the pool could take all
// of its threads and leave none to serve the requests they wait for: a
// deadlock. A single worker thread of our own would instead let one stuck
// call hold up every later one. So each call gets a detached pthread (64 KiB
// stack, every signal blocked so its waits are never interrupted), which
// hands its result to the JS thread through a napi_threadsafe_function; the
// pending call keeps the event loop alive, as a mount(8) child did.
//
// Known limit, as with a mount(8) child before: a call whose lookup the FUSE
// server has read but not answered waits uninterruptibly; if the process is
// killed in that window the thread (before: the child) stays in D state until
// the connection is aborted (/sys/fs/fuse/connections/N/abort).
//
// Failures reject with an Error {code: 'ERR_SYSCALL', errno, syscall,
// detail: strerror(errno)}; bad arguments throw synchronously like the rest
// of the addon.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <node_api.h>

#include "mount_ops.h"

// The new mount API (Linux 5.2; mount_setattr 5.12). Numbers and values are
// the same on every architecture but alpha; defined here for older headers.
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
struct mount_attr {
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};
#endif
#ifndef UMOUNT_NOFOLLOW
#define UMOUNT_NOFOLLOW 0x00000008
#endif

#define MOUNT_OPS_STACK (64 * 1024)

enum op_kind { OP_MOUNT, OP_UMOUNT, OP_BIND_TREE };

// One call: its arguments, filled in on the JS thread, and its outcome,
// filled in by the call's thread. Strings are owned copies.
typedef struct {
  enum op_kind kind;
  char *source, *target, *fstype, *data;
  unsigned long flags;  // mount(2) / umount2(2) flags
  uint64_t attr_set;    // OP_BIND_TREE: mount_setattr's attr_set
  int target_fd;        // OP_BIND_TREE: attach at this fd (-1: at target)
  napi_deferred deferred;
  napi_threadsafe_function tsfn;
  int err;              // 0 or errno
  const char *syscall;  // the one that failed
} mount_op;

static void op_free(mount_op *op) {
  free(op->source);
  free(op->target);
  free(op->fstype);
  free(op->data);
  free(op);
}

// ---------------------------------------------------------------------------
// On the call's thread: raw syscalls only.

static int retry_eintr(long rc) { return rc == 0 ? 0 : errno; }

static void run_mount(mount_op *op) {
  int err;
  do {
    err = retry_eintr(mount(op->source, op->target, op->fstype, op->flags, op->data));
  } while (err == EINTR);
  op->err = err;
  op->syscall = "mount";
}

static void run_umount(mount_op *op) {
  int err;
  do {
    err = retry_eintr(umount2(op->target, (int)op->flags));
  } while (err == EINTR);
  op->err = err;
  op->syscall = "umount2";
}

// A bind with its flags set before it is attached: the target never shows a
// writable or flagless mount, not even for a moment.
static void run_bind_tree(mount_op *op) {
  op->syscall = "open_tree";
  int tree;
  do {
    tree = (int)syscall(SYS_open_tree, AT_FDCWD, op->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  } while (tree < 0 && errno == EINTR);
  if (tree < 0) {
    op->err = errno;
    return;
  }
  struct mount_attr attr = {.attr_set = op->attr_set};
  op->syscall = "mount_setattr";
  int err;
  do {
    err = retry_eintr(syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr));
  } while (err == EINTR);
  if (err == 0) {
    op->syscall = "move_mount";
    unsigned flags = MOVE_MOUNT_F_EMPTY_PATH;
    int to_dir = AT_FDCWD;
    const char *to_path = op->target;
    if (op->target_fd >= 0) {
      flags |= MOVE_MOUNT_T_EMPTY_PATH;
      to_dir = op->target_fd;
      to_path = "";
    }
    do {
      err = retry_eintr(syscall(SYS_move_mount, tree, "", to_dir, to_path, flags));
    } while (err == EINTR);
  }
  close(tree);  // unattached, the clone goes with its last fd
  op->err = err;
}

static void *op_thread(void *arg) {
  mount_op *op = arg;
  pthread_setname_np(pthread_self(), "csi-mount");  // a stuck one is easy to spot in /proc/<pid>/task
  switch (op->kind) {
    case OP_MOUNT: run_mount(op); break;
    case OP_UMOUNT: run_umount(op); break;
    default: run_bind_tree(op); break;
  }
  napi_threadsafe_function tsfn = op->tsfn;
  // On success op belongs to settle(); napi_closing (env going away) leaves it to us.
  if (napi_call_threadsafe_function(tsfn, op, napi_tsfn_nonblocking) != napi_ok) op_free(op);
  napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  return NULL;
}

// ---------------------------------------------------------------------------
// On the JS thread.

static napi_value make_error(napi_env env, int err, const char *syscall_name) {
  char msg[320];
  snprintf(msg, sizeof msg, "%s failed: %s", syscall_name, strerror(err));
  napi_value jcode, jmsg, error, v;
  if (napi_create_string_utf8(env, "ERR_SYSCALL", NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
      napi_create_error(env, jcode, jmsg, &error) != napi_ok) {
    return NULL;
  }
  if (napi_create_int32(env, err, &v) == napi_ok) napi_set_named_property(env, error, "errno", v);
  if (napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &v) == napi_ok) {
    napi_set_named_property(env, error, "syscall", v);
  }
  if (napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &v) == napi_ok) {
    napi_set_named_property(env, error, "detail", v);
  }
  return error;
}

// The threadsafe function's call_js: settles the promise. env is NULL when
// the environment is being torn down; then only the memory is freed.
static void settle(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)js_cb;
  (void)context;
  mount_op *op = data;
  if (env != NULL) {
    napi_value v = NULL;
    if (op->err == 0) {
      if (napi_get_undefined(env, &v) == napi_ok) napi_resolve_deferred(env, op->deferred, v);
    } else {
      v = make_error(env, op->err, op->syscall);
      if (v == NULL) napi_get_undefined(env, &v);
      napi_reject_deferred(env, op->deferred, v);
    }
  }
  op_free(op);
}

static napi_value throw_arg(napi_env env, const char *name, const char *expected) {
  char msg[200];
  snprintf(msg, sizeof msg, "The \"%s\" argument must be %s", name, expected);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

// A string argument copied to the heap (NULL for null/undefined when
// optional). Returns false with an exception pending.
static bool get_string(napi_env env, napi_value value, const char *name, bool optional, char **out) {
  *out = NULL;
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return false;
  if (optional && (type == napi_null || type == napi_undefined)) return true;
  if (type != napi_string) {
    throw_arg(env, name, optional ? "a string or null" : "of type string");
    return false;
  }
  size_t len;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) return false;
  if (len == 0 || len >= PATH_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "a mount argument is empty or longer than PATH_MAX");
    return false;
  }
  char *s = malloc(len + 1);
  if (s == NULL) {
    napi_throw_error(env, "ERR_SYSCALL", "malloc failed");
    return false;
  }
  if (napi_get_value_string_utf8(env, value, s, len + 1, &len) != napi_ok || strlen(s) != len) {
    free(s);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "a mount argument holds a NUL byte");
    return false;
  }
  *out = s;
  return true;
}

static bool get_uint(napi_env env, napi_value value, const char *name, int64_t min, uint32_t max, int64_t *out) {
  napi_valuetype type;
  double d;
  if (napi_typeof(env, value, &type) != napi_ok) return false;
  if (type != napi_number || napi_get_value_double(env, value, &d) != napi_ok) {
    throw_arg(env, name, "of type number");
    return false;
  }
  if (!(d >= (double)min && d <= (double)max) || d != (double)(int64_t)d) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "a mount flag or fd is out of range");
    return false;
  }
  *out = (int64_t)d;
  return true;
}

// Starts op on a thread of its own and returns its promise; frees op on failure.
static napi_value start(napi_env env, mount_op *op) {
  napi_value promise, name;
  if (napi_create_promise(env, &op->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "csi_native:mount", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, settle, &op->tsfn) != napi_ok) {
    op_free(op);
    napi_throw_error(env, "ERR_NAPI", "mount: could not create its promise");
    return NULL;
  }
  pthread_attr_t attr;
  sigset_t all, old;
  sigfillset(&all);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, MOUNT_OPS_STACK);
  pthread_sigmask(SIG_SETMASK, &all, &old);  // the thread inherits the mask
  pthread_t thread;
  int err = pthread_create(&thread, &attr, op_thread, op);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    // Rejected on the JS thread right away; the tsfn is released so it cannot keep the loop alive.
    napi_release_threadsafe_function(op->tsfn, napi_tsfn_abort);
    napi_value e = make_error(env, err, "pthread_create");
    if (e != NULL) napi_reject_deferred(env, op->deferred, e);
    op_free(op);
  }
  return promise;
}

static mount_op *new_op(napi_env env, enum op_kind kind) {
  mount_op *op = calloc(1, sizeof *op);
  if (op == NULL) napi_throw_error(env, "ERR_SYSCALL", "calloc failed");
  else {
    op->kind = kind;
    op->target_fd = -1;
  }
  return op;
}

// mount(source|null, target, fstype|null, flags, data|null): Promise<void>
static napi_value Mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  mount_op *op = new_op(env, OP_MOUNT);
  if (op == NULL) return NULL;
  int64_t flags;
  if (!get_string(env, argv[0], "source", true, &op->source) ||
      !get_string(env, argv[1], "target", false, &op->target) ||
      !get_string(env, argv[2], "fstype", true, &op->fstype) ||
      !get_uint(env, argv[3], "flags", 0, UINT32_MAX, &flags) ||
      !get_string(env, argv[4], "data", true, &op->data)) {
    op_free(op);
    return NULL;
  }
  op->flags = (unsigned long)flags;
  return start(env, op);
}

// umount2(target, flags): Promise<void>
static napi_value Umount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  mount_op *op = new_op(env, OP_UMOUNT);
  if (op == NULL) return NULL;
  int64_t flags;
  if (!get_string(env, argv[0], "target", false, &op->target) ||
      !get_uint(env, argv[1], "flags", 0, INT32_MAX, &flags)) {
    op_free(op);
    return NULL;
  }
  op->flags = (unsigned long)flags;
  return start(env, op);
}

// bindTree(source, targetFd, target|null, attrSet): Promise<void>
// open_tree(OPEN_TREE_CLONE) + mount_setattr + move_mount, onto the
// directory behind targetFd (when >= 0) or at the path target.
static napi_value BindTree(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  mount_op *op = new_op(env, OP_BIND_TREE);
  if (op == NULL) return NULL;
  int64_t fd, attr_set;
  if (!get_string(env, argv[0], "source", false, &op->source) ||
      !get_uint(env, argv[1], "targetFd", -1, INT32_MAX, &fd) ||
      !get_string(env, argv[2], "target", true, &op->target) ||
      !get_uint(env, argv[3], "attrSet", 0, UINT32_MAX, &attr_set)) {
    op_free(op);
    return NULL;
  }
  if ((fd < 0) == (op->target == NULL)) {
    op_free(op);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "bindTree needs exactly one of targetFd and target");
    return NULL;
  }
  op->target_fd = (int)fd;
  op->attr_set = (uint64_t)attr_set;
  return start(env, op);
}

// mountApi(): whether open_tree, move_mount and mount_setattr are there.
// Each is called with arguments it rejects before touching any path; ENOSYS
// (old kernel) or EPERM (a seccomp filter) means no.
static napi_value MountApi(napi_env env, napi_callback_info info) {
  (void)info;
  bool ok = true;
  long rc = syscall(SYS_mount_setattr, -1, NULL, 0, NULL, 0);
  ok = ok && !(rc < 0 && (errno == ENOSYS || errno == EPERM));
  rc = syscall(SYS_open_tree, -1, NULL, ~0U);
  ok = ok && !(rc < 0 && (errno == ENOSYS || errno == EPERM));
  rc = syscall(SYS_move_mount, -1, NULL, -1, NULL, ~0U);
  ok = ok && !(rc < 0 && (errno == ENOSYS || errno == EPERM));
  napi_value v;
  if (napi_get_boolean(env, ok, &v) != napi_ok) return NULL;
  return v;
}

static bool set_const(napi_env env, napi_value obj, const char *name, uint32_t value) {
  napi_value v;
  return napi_create_uint32(env, value, &v) == napi_ok && napi_set_named_property(env, obj, name, v) == napi_ok;
}

// The flag values from this system's headers, so the TypeScript side never
// spells a kernel constant itself.
static napi_value constants(napi_env env) {
  napi_value c;
  if (napi_create_object(env, &c) != napi_ok) return NULL;
  bool ok = set_const(env, c, "MS_RDONLY", MS_RDONLY) && set_const(env, c, "MS_NOSUID", MS_NOSUID) &&
            set_const(env, c, "MS_NODEV", MS_NODEV) && set_const(env, c, "MS_NOEXEC", MS_NOEXEC) &&
            set_const(env, c, "MS_REMOUNT", MS_REMOUNT) && set_const(env, c, "MS_BIND", MS_BIND) &&
            set_const(env, c, "MNT_DETACH", MNT_DETACH) && set_const(env, c, "UMOUNT_NOFOLLOW", UMOUNT_NOFOLLOW) &&
            set_const(env, c, "MOUNT_ATTR_RDONLY", MOUNT_ATTR_RDONLY) &&
            set_const(env, c, "MOUNT_ATTR_NOSUID", MOUNT_ATTR_NOSUID) &&
            set_const(env, c, "MOUNT_ATTR_NODEV", MOUNT_ATTR_NODEV) &&
            set_const(env, c, "MOUNT_ATTR_NOEXEC", MOUNT_ATTR_NOEXEC);
  return ok ? c : NULL;
}

bool csi_mount_ops_init(napi_env env, napi_value exports) {
  napi_value c = constants(env);
  napi_property_descriptor props[] = {
      {"mount", NULL, Mount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"umount", NULL, Umount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"bindTree", NULL, BindTree, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mountApi", NULL, MountApi, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mountConstants", NULL, NULL, NULL, NULL, c, napi_enumerable, NULL},
  };
  return c != NULL && napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
