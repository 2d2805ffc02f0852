// csi_native: the few Linux syscalls Node has no API for, exposed through
// Node-API (C, node_api.h only, NAPI_VERSION 8):
//
//   - memory hardening: locked, non-dumpable Buffers for secrets
//     (allocSecure), prctl(PR_SET_DUMPABLE), madvise(MADV_DONTDUMP), and
//     mlockall/munlockall (which V8 does not survive a full GC under; kept
//     for small helper processes only);
//   - file-descriptor passing over unix sockets (SCM_RIGHTS), socketpair and
//     fcntl(F_DUPFD_CLOEXEC);
//   - mount-table changes (mount, umount, bindTree: native/src/mount_ops.c),
//     the one asynchronous part: each runs on a thread of its own;
//   - a forked child that makes a list of directory syscalls (forkSyscalls),
//     so that a FUSE server's changes to its own mount are made by another
//     process: a server killed while its own syscall waits on its own mount
//     could never finish dying.
//
// Missing arguments read as undefined (napi_get_cb_info fills them in) and
// fail the type checks.
//
// Every other function is synchronous and runs on the calling JS thread. The socket
// calls block if the socket is blocking; the caller owns that choice. EINTR is
// retried (nothing has been transferred when it is returned); every other
// failure, EAGAIN included, is thrown as an Error with
//   code: 'ERR_SYSCALL', errno: <number>, syscall: <name>,
//   message: '<syscall> failed: <strerror>'.
// Bad argument types throw TypeError with code ERR_INVALID_ARG_TYPE; numbers
// outside their range throw RangeError with code ERR_OUT_OF_RANGE.
//
// The module keeps no global state, so it is safe to load in worker threads.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <node_api.h>

#include "mount_ops.h"

// The kernel's SCM_MAX_FD (include/net/scm.h): the most fds one SCM_RIGHTS
// message may carry. Not exported to userspace headers.
#define CSI_SCM_MAX_FD 253

// Upper bound for recvFds' maxBytes, so a bogus argument cannot make us
// allocate gigabytes.
#define CSI_MAX_RECV_BYTES (64 * 1024 * 1024)

// Control buffer large enough for CSI_SCM_MAX_FD descriptors, aligned for
// struct cmsghdr.
typedef union {
  struct cmsghdr align;
  char buf[CMSG_SPACE(sizeof(int) * CSI_SCM_MAX_FD)];
} csi_fd_control;

// ---------------------------------------------------------------------------
// Error helpers. Each returns NULL so callbacks can `return throw_...(...)`;
// a callback returning NULL with an exception pending throws it to JS.

// A Node-API call itself failed: throw its message unless an exception is
// already pending (in which case that one propagates).
static napi_value throw_napi_failure(napi_env env, const char *call) {
  const napi_extended_error_info *info = NULL;
  const char *detail = "Node-API call failed";
  if (napi_get_last_error_info(env, &info) == napi_ok && info != NULL &&
      info->error_message != NULL) {
    detail = info->error_message;  // static string, survives the next call
  }
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && !pending) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s", call, detail);
    napi_throw_error(env, "ERR_NAPI", msg);
  }
  return NULL;
}

#define NAPI_CALL(env, call)                                                 \
  do {                                                                       \
    if ((call) != napi_ok) return throw_napi_failure((env), #call);          \
  } while (0)

// Variant for helpers that return a bool success flag.
#define NAPI_CALL_BOOL(env, call)                                            \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      throw_napi_failure((env), #call);                                      \
      return false;                                                          \
    }                                                                        \
  } while (0)

// Throws Error{code:'ERR_SYSCALL', errno, syscall}. `detail` replaces
// strerror(err) in the message when given.
static napi_value throw_syscall(napi_env env, const char *syscall, int err,
                                const char *detail) {
  char msg[320];
  snprintf(msg, sizeof msg, "%s failed: %s", syscall,
           detail != NULL ? detail : strerror(err));
  napi_value jcode, jmsg, error, jerrno, jsyscall;
  NAPI_CALL(env, napi_create_string_utf8(env, "ERR_SYSCALL", NAPI_AUTO_LENGTH,
                                         &jcode));
  NAPI_CALL(env, napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg));
  NAPI_CALL(env, napi_create_error(env, jcode, jmsg, &error));
  NAPI_CALL(env, napi_create_int32(env, err, &jerrno));
  NAPI_CALL(env, napi_set_named_property(env, error, "errno", jerrno));
  NAPI_CALL(env, napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH,
                                         &jsyscall));
  NAPI_CALL(env, napi_set_named_property(env, error, "syscall", jsyscall));
  NAPI_CALL(env, napi_throw(env, error));
  return NULL;
}

static napi_value throw_arg_type(napi_env env, const char *name,
                                 const char *expected) {
  char msg[256];
  snprintf(msg, sizeof msg, "The \"%s\" argument must be %s", name, expected);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  NAPI_CALL(env, napi_get_undefined(env, &u));
  return u;
}

// ---------------------------------------------------------------------------
// Argument helpers. Return false with a JS exception pending on failure.

// An integral JS number in [min, max].
static bool get_int_arg(napi_env env, napi_value value, const char *name,
                        int64_t min, int64_t max, int64_t *out) {
  napi_valuetype type;
  NAPI_CALL_BOOL(env, napi_typeof(env, value, &type));
  if (type != napi_number) {
    throw_arg_type(env, name, "of type number");
    return false;
  }
  double d;
  NAPI_CALL_BOOL(env, napi_get_value_double(env, value, &d));
  // NaN fails both comparisons; the range check makes the cast defined.
  if (!(d >= (double)min && d <= (double)max) || d != (double)(int64_t)d) {
    char msg[256];
    snprintf(msg, sizeof msg,
             "The value of \"%s\" is out of range. It must be an integer "
             ">= %lld and <= %lld. Received %g",
             name, (long long)min, (long long)max, d);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

static bool get_fd_arg(napi_env env, napi_value value, const char *name,
                       int *out) {
  int64_t v;
  if (!get_int_arg(env, value, name, 0, INT_MAX, &v)) return false;
  *out = (int)v;
  return true;
}

// A Buffer (or other ArrayBufferView Node treats as one).
static bool get_buffer_arg(napi_env env, napi_value value, const char *name,
                           void **data, size_t *len) {
  bool is_buffer = false;
  NAPI_CALL_BOOL(env, napi_is_buffer(env, value, &is_buffer));
  if (!is_buffer) {
    throw_arg_type(env, name, "an instance of Buffer");
    return false;
  }
  NAPI_CALL_BOOL(env, napi_get_buffer_info(env, value, data, len));
  return true;
}

static void close_fds(const int *fds, size_t n) {
  for (size_t i = 0; i < n; i++) close(fds[i]);
}

// ---------------------------------------------------------------------------
// Memory hardening

// lockAll(onFault?: boolean): mlockall(MCL_CURRENT | MCL_FUTURE [| MCL_ONFAULT])
static napi_value LockAll(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool on_fault = false;
  if (argc >= 1) {
    napi_valuetype type;
    NAPI_CALL(env, napi_typeof(env, argv[0], &type));
    if (type == napi_boolean) {
      NAPI_CALL(env, napi_get_value_bool(env, argv[0], &on_fault));
    } else if (type != napi_undefined) {
      return throw_arg_type(env, "onFault", "of type boolean");
    }
  }
  int flags = MCL_CURRENT | MCL_FUTURE;
  if (on_fault) {
#ifdef MCL_ONFAULT
    flags |= MCL_ONFAULT;
#else
    return throw_syscall(env, "mlockall", EINVAL,
                         "MCL_ONFAULT is not supported by this C library");
#endif
  }
  if (mlockall(flags) != 0) return throw_syscall(env, "mlockall", errno, NULL);
  return undefined(env);
}

// unlockAll(): munlockall()
static napi_value UnlockAll(napi_env env, napi_callback_info info) {
  (void)info;
  if (munlockall() != 0) return throw_syscall(env, "munlockall", errno, NULL);
  return undefined(env);
}

// disableDumpable(): prctl(PR_SET_DUMPABLE, 0) -- no core dumps, no ptrace
// attach by same-uid processes, /proc/self/* owned by root.
static napi_value DisableDumpable(napi_env env, napi_callback_info info) {
  (void)info;
  if (prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L) != 0) {
    return throw_syscall(env, "prctl", errno, NULL);
  }
  return undefined(env);
}

// isDumpable(): prctl(PR_GET_DUMPABLE) != 0 (2, "root-only dumps", counts as
// dumpable).
static napi_value IsDumpable(napi_env env, napi_callback_info info) {
  (void)info;
  int r = prctl(PR_GET_DUMPABLE, 0L, 0L, 0L, 0L);
  if (r < 0) return throw_syscall(env, "prctl", errno, NULL);
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, r != 0, &result));
  return result;
}

// dontDump(buf: Buffer): madvise(MADV_DONTDUMP) over the pages containing the
// buffer's bytes. Neighbouring data in the same pages (e.g. other pooled
// Buffers) is excluded from core dumps too, which is harmless.
static napi_value DontDump(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data = NULL;
  size_t len = 0;
  if (!get_buffer_arg(env, argv[0], "buf", &data, &len)) return NULL;
  if (len == 0 || data == NULL) return undefined(env);

  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) page = 4096;
  uintptr_t mask = (uintptr_t)page - 1;
  uintptr_t start = (uintptr_t)data & ~mask;
  uintptr_t end = ((uintptr_t)data + len + mask) & ~mask;
  if (madvise((void *)start, end - start, MADV_DONTDUMP) != 0) {
    return throw_syscall(env, "madvise", errno, NULL);
  }
  return undefined(env);
}

// allocSecure(size: number, lock: boolean): Buffer backed by pages of its
// own: mmap'd anonymous memory, excluded from core dumps (MADV_DONTDUMP) and
// from forked children (MADV_DONTFORK), and with lock=true pinned in RAM
// (mlock) so it never reaches swap. When the Buffer is collected its pages are
// zeroed, unlocked and unmapped. This is how secrets are kept locked without
// mlockall: under mlockall V8's own madvise(MADV_DONTNEED) fails with EINVAL
// and V8 aborts the process on a full GC.
typedef struct {
  void *addr;
  size_t maplen;
} csi_secure_region;

static void secure_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  csi_secure_region *r = (csi_secure_region *)hint;
  explicit_bzero(r->addr, r->maplen);
  munlock(r->addr, r->maplen);
  munmap(r->addr, r->maplen);
  free(r);
}

#define CSI_MAX_SECURE_ALLOC ((int64_t)1 << 30)

static napi_value AllocSecure(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t size;
  if (!get_int_arg(env, argv[0], "size", 0, CSI_MAX_SECURE_ALLOC, &size)) return NULL;
  napi_valuetype type;
  NAPI_CALL(env, napi_typeof(env, argv[1], &type));
  if (type != napi_boolean) return throw_arg_type(env, "lock", "of type boolean");
  bool lock = false;
  NAPI_CALL(env, napi_get_value_bool(env, argv[1], &lock));

  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) page = 4096;
  size_t maplen = ((size_t)(size > 0 ? size : 1) + (size_t)page - 1) & ~((size_t)page - 1);
  void *addr = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (addr == MAP_FAILED) return throw_syscall(env, "mmap", errno, NULL);
  if (madvise(addr, maplen, MADV_DONTDUMP) != 0 || madvise(addr, maplen, MADV_DONTFORK) != 0) {
    int err = errno;
    munmap(addr, maplen);
    return throw_syscall(env, "madvise", err, NULL);
  }
  if (lock && mlock(addr, maplen) != 0) {
    int err = errno;
    munmap(addr, maplen);
    return throw_syscall(env, "mlock", err, NULL);
  }
  csi_secure_region *r = (csi_secure_region *)malloc(sizeof *r);
  if (r == NULL) {
    munlock(addr, maplen);
    munmap(addr, maplen);
    return throw_syscall(env, "malloc", ENOMEM, NULL);
  }
  r->addr = addr;
  r->maplen = maplen;
  napi_value buf;
  napi_status st = napi_create_external_buffer(env, (size_t)size, addr, secure_finalize, r, &buf);
  if (st != napi_ok) {
    secure_finalize(env, addr, r);
    return throw_napi_failure(env, "napi_create_external_buffer");
  }
  return buf;
}

// ---------------------------------------------------------------------------
// File-descriptor passing

// sendFds(socketFd, fds: number[], payload: Buffer): number of payload bytes
// sent. The fds travel with the first byte. On a SOCK_STREAM socket a partial
// send is possible; the caller sends the rest without fds.
static napi_value SendFds(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));

  int sock;
  if (!get_fd_arg(env, argv[0], "socketFd", &sock)) return NULL;

  bool is_array = false;
  NAPI_CALL(env, napi_is_array(env, argv[1], &is_array));
  if (!is_array) return throw_arg_type(env, "fds", "an array of numbers");
  uint32_t nfds = 0;
  NAPI_CALL(env, napi_get_array_length(env, argv[1], &nfds));
  if (nfds > CSI_SCM_MAX_FD) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "The value of \"fds.length\" is out of range. It must be <= %d. "
             "Received %u",
             CSI_SCM_MAX_FD, nfds);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return NULL;
  }
  int fds[CSI_SCM_MAX_FD];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value element;
    NAPI_CALL(env, napi_get_element(env, argv[1], i, &element));
    char name[32];
    snprintf(name, sizeof name, "fds[%u]", i);
    if (!get_fd_arg(env, element, name, &fds[i])) return NULL;
  }

  void *data = NULL;
  size_t len = 0;
  if (!get_buffer_arg(env, argv[2], "payload", &data, &len)) return NULL;
  if (len == 0) {
    // A zero-length stream write carries no byte to attach the fds to, and an
    // empty read is how recvFds reports end-of-file.
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE",
                          "The \"payload\" argument must not be empty");
    return NULL;
  }

  struct iovec iov = {.iov_base = data, .iov_len = len};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  csi_fd_control control;
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
  }

  ssize_t sent;
  do {
    sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return throw_syscall(env, "sendmsg", errno, NULL);

  napi_value result;
  NAPI_CALL(env, napi_create_int64(env, (int64_t)sent, &result));
  return result;
}

// Builds { data, fds } from received bytes/fds. On failure the caller closes
// the fds.
static napi_value make_recv_result(napi_env env, const char *data, size_t len,
                                   const int *fds, size_t nfds) {
  napi_value result, jdata, jfds;
  NAPI_CALL(env, napi_create_object(env, &result));
  void *copy = NULL;
  NAPI_CALL(env, napi_create_buffer_copy(env, len, data, &copy, &jdata));
  NAPI_CALL(env, napi_create_array_with_length(env, nfds, &jfds));
  for (size_t i = 0; i < nfds; i++) {
    napi_value jfd;
    NAPI_CALL(env, napi_create_int32(env, fds[i], &jfd));
    NAPI_CALL(env, napi_set_element(env, jfds, (uint32_t)i, jfd));
  }
  NAPI_CALL(env, napi_set_named_property(env, result, "data", jdata));
  NAPI_CALL(env, napi_set_named_property(env, result, "fds", jfds));
  return result;
}

// recvFds(socketFd, maxFds, maxBytes): { data: Buffer, fds: number[] }.
// recvmsg(MSG_CMSG_CLOEXEC): every received fd is close-on-exec. If more fds
// arrived than maxFds (MSG_CTRUNC) or, on a datagram/seqpacket socket, the
// message was longer than maxBytes (MSG_TRUNC), the fds that did arrive are
// closed and Error{code:'ERR_SYSCALL', errno: EMSGSIZE} is thrown. Empty
// `data` means end-of-file (sendFds never sends an empty payload).
static napi_value RecvFds(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));

  int sock;
  int64_t max_fds, max_bytes;
  if (!get_fd_arg(env, argv[0], "socketFd", &sock)) return NULL;
  if (!get_int_arg(env, argv[1], "maxFds", 0, CSI_SCM_MAX_FD, &max_fds)) {
    return NULL;
  }
  if (!get_int_arg(env, argv[2], "maxBytes", 1, CSI_MAX_RECV_BYTES,
                   &max_bytes)) {
    return NULL;
  }

  char *data = malloc((size_t)max_bytes);
  if (data == NULL) return throw_syscall(env, "malloc", ENOMEM, NULL);

  struct iovec iov = {.iov_base = data, .iov_len = (size_t)max_bytes};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  csi_fd_control control;
  memset(&control, 0, sizeof control);
  if (max_fds > 0) {
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)max_fds);
  }

  ssize_t got;
  do {
    got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    int err = errno;
    free(data);
    return throw_syscall(env, "recvmsg", err, NULL);
  }

  int fds[CSI_SCM_MAX_FD];
  size_t nfds = 0;
  bool overflow = false;
  if (msg.msg_controllen > 0) {
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL;
         cmsg = CMSG_NXTHDR(&msg, cmsg)) {
      if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
        continue;
      }
      size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const unsigned char *p = CMSG_DATA(cmsg);
      for (size_t i = 0; i < count; i++) {
        int fd;
        memcpy(&fd, p + i * sizeof(int), sizeof fd);
        if (nfds < (size_t)max_fds) {
          fds[nfds++] = fd;
        } else {  // cannot happen with our buffer size; never leak
          close(fd);
          overflow = true;
        }
      }
    }
  }

  if ((msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0 || overflow) {
    close_fds(fds, nfds);
    explicit_bzero(data, (size_t)got);
    free(data);
    char detail[200];
    if ((msg.msg_flags & MSG_TRUNC) != 0) {
      snprintf(detail, sizeof detail,
               "message truncated (longer than maxBytes=%lld); %zu received "
               "fd(s) closed",
               (long long)max_bytes, nfds);
    } else {
      snprintf(detail, sizeof detail,
               "control message truncated (more than maxFds=%lld fds); %zu "
               "received fd(s) closed",
               (long long)max_fds, nfds);
    }
    return throw_syscall(env, "recvmsg", EMSGSIZE, detail);
  }

  napi_value result = make_recv_result(env, data, (size_t)got, fds, nfds);
  // The payload may be a secret: do not leave a copy in freed heap memory.
  explicit_bzero(data, (size_t)got);
  free(data);
  if (result == NULL) close_fds(fds, nfds);
  return result;
}

// dupFd(fd): fcntl(fd, F_DUPFD_CLOEXEC, 0)
static napi_value DupFd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  if (!get_fd_arg(env, argv[0], "fd", &fd)) return NULL;
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return throw_syscall(env, "fcntl", errno, NULL);
  napi_value result;
  if (napi_create_int32(env, dup, &result) != napi_ok) {
    close(dup);
    return throw_napi_failure(env, "napi_create_int32");
  }
  return result;
}

// [a, b] as a JS array, or NULL with an exception pending.
static napi_value int_pair(napi_env env, int a, int b, const char *what) {
  napi_value result, ja, jb;
  if (napi_create_array_with_length(env, 2, &result) != napi_ok ||
      napi_create_int32(env, a, &ja) != napi_ok ||
      napi_create_int32(env, b, &jb) != napi_ok ||
      napi_set_element(env, result, 0, ja) != napi_ok ||
      napi_set_element(env, result, 1, jb) != napi_ok) {
    return throw_napi_failure(env, what);
  }
  return result;
}

// socketPair(): socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC) -> [a, b]
static napi_value SocketPair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return throw_syscall(env, "socketpair", errno, NULL);
  }
  napi_value result = int_pair(env, sv[0], sv[1], "socketPair result");
  if (result == NULL) close_fds(sv, 2);
  return result;
}

// Unix SOCK_SEQPACKET sockets for the keeper channel. Node's net module only
// makes SOCK_STREAM sockets and reads them itself, which would discard the
// SCM_RIGHTS descriptors; these sockets are read only through recvFds. All
// are non-blocking and close-on-exec: callers poll on EAGAIN.

#include <sys/un.h>

static bool get_path_arg(napi_env env, napi_value value, struct sockaddr_un *addr) {
  char path[sizeof addr->sun_path];
  size_t len = 0;
  napi_valuetype type;
  NAPI_CALL_BOOL(env, napi_typeof(env, value, &type));
  if (type != napi_string) {
    throw_arg_type(env, "path", "of type string");
    return false;
  }
  NAPI_CALL_BOOL(env, napi_get_value_string_utf8(env, value, path, sizeof path, &len));
  if (len == 0 || len >= sizeof path - 1) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "unix socket path is empty or too long");
    return false;
  }
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path, len);
  return true;
}

static napi_value fd_value(napi_env env, int fd) {
  napi_value v;
  if (napi_create_int32(env, fd, &v) != napi_ok) {
    close(fd);
    return throw_napi_failure(env, "napi_create_int32");
  }
  return v;
}

// unixListen(path): a listening SOCK_SEQPACKET socket at path (an existing
// file there is replaced), mode 0600.
static napi_value UnixListen(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un addr;
  if (!get_path_arg(env, argv[0], &addr)) return NULL;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_syscall(env, "socket", errno, NULL);
  unlink(addr.sun_path);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || chmod(addr.sun_path, 0600) != 0 || listen(fd, 16) != 0) {
    int err = errno;
    close(fd);
    return throw_syscall(env, "bind/listen", err, NULL);
  }
  return fd_value(env, fd);
}

// unixAccept(listenFd): a connected non-blocking socket, or -1 when no
// connection is waiting.
static napi_value UnixAccept(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int lfd;
  if (!get_fd_arg(env, argv[0], "listenFd", &lfd)) return NULL;
  int fd;
  do {
    fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return fd_value(env, -1);
    return throw_syscall(env, "accept4", errno, NULL);
  }
  return fd_value(env, fd);
}

// A unix socket of `type` (CLOEXEC added) connected to `addr`, or -1 with a
// JS exception pending. EINTR is retried.
static int connect_unix(napi_env env, int type, const struct sockaddr_un *addr) {
  int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_syscall(env, "socket", errno, NULL);
    return -1;
  }
  int rc;
  do {
    rc = connect(fd, (const struct sockaddr *)addr, sizeof *addr);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    close(fd);
    throw_syscall(env, "connect", err, NULL);
    return -1;
  }
  return fd;
}

// unixConnect(path): a connected non-blocking SOCK_SEQPACKET socket.
static napi_value UnixConnect(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un addr;
  if (!get_path_arg(env, argv[0], &addr)) return NULL;
  int fd = connect_unix(env, SOCK_SEQPACKET, &addr);
  if (fd < 0) return NULL;
  // A large send buffer, so a state snapshot fits without waiting for the
  // peer to read (SO_SNDBUFFORCE needs CAP_NET_ADMIN; SO_SNDBUF is capped by
  // wmem_max). Best effort: the caller still handles EAGAIN.
  int sndbuf = 16 * 1024 * 1024;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0) {
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    int err = errno;
    close(fd);
    return throw_syscall(env, "fcntl", err, NULL);
  }
  return fd_value(env, fd);
}

// peerPid(path): the pid of the process listening on the SOCK_STREAM unix
// socket at `path` (SO_PEERCRED of a connection made and closed at once), as
// seen from our pid namespace; 0 when that process is outside it. The driver
// uses it to know which process a provider is, so that only the provider may
// write into a volume during its Mount call. Non-blocking: a full backlog
// fails with EAGAIN instead of stalling the JS thread.
static napi_value PeerPid(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un addr;
  if (!get_path_arg(env, argv[0], &addr)) return NULL;
  int fd = connect_unix(env, SOCK_STREAM | SOCK_NONBLOCK, &addr);
  if (fd < 0) return NULL;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    int err = errno;
    close(fd);
    return throw_syscall(env, "getsockopt", err, NULL);
  }
  close(fd);
  napi_value out;
  NAPI_CALL(env, napi_create_int32(env, (int32_t)cred.pid, &out));
  return out;
}

// exitNow(code): _exit(2). A process whose threadpool threads are parked in
// read(2) on a /dev/fuse connection that outlives it (the keeper holds it)
// cannot exit normally: libuv joins its threads at exit and they never
// return. Callers flush what they must before.
static napi_value ExitNow(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t code;
  if (!get_int_arg(env, argv[0], "code", 0, 255, &code)) return NULL;
  _exit((int)code);
}

// ---------------------------------------------------------------------------
// forkSyscalls(script) -> [pid, fd]
//
// `script` is a list of records, each an op byte and NUL-terminated paths:
//   'd' path          mkdir(path, 0755)
//   's' target path   symlink(target, path)
//   'r' from to       rename(from, to)
//   'u' path          unlink(path)
//   'x' path          rmdir(path)
// A forked child makes them in order and writes one int32 (0 or errno) per
// syscall made to the pipe whose read end is returned; it stops at the first
// failure and exits when done (EOF on the pipe). The child only makes raw
// syscalls (the parent is multi-threaded: nothing else is safe after fork),
// holds no descriptor but the pipe's write end, and dies with its parent
// (PR_SET_PDEATHSIG). Reap it with reapChild(pid).

// Checks the script's shape in the parent, so the child can walk it blindly.
static bool script_valid(const char *p, const char *end) {
  while (p < end) {
    char op = *p++;
    int paths = (op == 's' || op == 'r') ? 2 : (op == 'd' || op == 'u' || op == 'x') ? 1 : 0;
    if (paths == 0) return false;
    for (int i = 0; i < paths; i++) {
      const char *nul = memchr(p, '\0', (size_t)(end - p));
      if (nul == NULL || nul == p) return false;
      p = nul + 1;
    }
  }
  return true;
}

static void child_close_all_but(int keep) {
  // close_range(2) (Linux 5.9+), else one close per possible descriptor.
  bool ok = keep <= 0 || syscall(SYS_close_range, 0, (unsigned)keep - 1, 0) == 0;
  ok = ok && syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0) == 0;
  if (!ok) {
    for (int fd = 0; fd < 65536; fd++) if (fd != keep) close(fd);
  }
}

static void child_write_all(int fd, const void *buf, size_t len) {
  const char *b = buf;
  while (len > 0) {
    ssize_t n = write(fd, b, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(2);
    b += n;
    len -= (size_t)n;
  }
}

static void child_run(const char *p, const char *end, int out) {
  while (p < end) {
    char op = *p++;
    const char *a = p;
    while (*p != '\0') p++;
    p++;
    const char *b = NULL;
    if (op == 's' || op == 'r') {
      b = p;
      while (*p != '\0') p++;
      p++;
    }
    int rc;
    do {
      switch (op) {
        case 'd': rc = mkdir(a, 0755); break;
        case 's': rc = symlink(a, b); break;
        case 'r': rc = rename(a, b); break;
        case 'u': rc = unlink(a); break;
        default: rc = rmdir(a); break;
      }
    } while (rc != 0 && errno == EINTR);
    int32_t result = rc == 0 ? 0 : errno;
    child_write_all(out, &result, sizeof result);
    if (result != 0) return;
  }
}

static napi_value ForkSyscalls(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data;
  size_t len;
  if (!get_buffer_arg(env, argv[0], "script", &data, &len)) return NULL;
  // A copy the child reads: a Buffer on pages excluded from fork (allocSecure's
  // MADV_DONTFORK) would not exist in the child.
  char *script = malloc(len > 0 ? len : 1);
  if (script == NULL) return throw_syscall(env, "malloc", ENOMEM, NULL);
  memcpy(script, data, len);
  if (!script_valid(script, script + len)) {
    free(script);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "The \"script\" argument is not a valid syscall script");
    return NULL;
  }
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    int err = errno;
    free(script);
    return throw_syscall(env, "pipe2", err, NULL);
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    free(script);
    close(pipefd[0]);
    close(pipefd[1]);
    return throw_syscall(env, "fork", err, NULL);
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(3);
    int out = pipefd[1];
    if (out != 3) {
      if (dup2(out, 3) < 0) _exit(4);
      out = 3;
    }
    child_close_all_but(out);
    child_run(script, script + len, out);
    _exit(0);
  }
  free(script);
  close(pipefd[1]);
  napi_value result = int_pair(env, pid, pipefd[0], "forkSyscalls result");
  if (result == NULL) close(pipefd[0]);
  return result;
}

// reapChild(pid) -> exit status (a signal as 128 + signo), or -1 while it runs:
// waitpid(WNOHANG) for a child Node did not spawn and so will not reap.
static napi_value ReapChild(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t pid;
  if (!get_int_arg(env, argv[0], "pid", 1, INT_MAX, &pid)) return NULL;
  int status = 0;
  pid_t r;
  do {
    r = waitpid((pid_t)pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return throw_syscall(env, "waitpid", errno, NULL);
  int code = r == 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  napi_value v;
  NAPI_CALL(env, napi_create_int32(env, code, &v));
  return v;
}

// ---------------------------------------------------------------------------

#define EXPORT_FN(name, fn) \
  { (name), NULL, (fn), NULL, NULL, NULL, napi_enumerable, NULL }

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      EXPORT_FN("lockAll", LockAll),
      EXPORT_FN("unlockAll", UnlockAll),
      EXPORT_FN("disableDumpable", DisableDumpable),
      EXPORT_FN("isDumpable", IsDumpable),
      EXPORT_FN("dontDump", DontDump),
      EXPORT_FN("allocSecure", AllocSecure),
      EXPORT_FN("sendFds", SendFds),
      EXPORT_FN("recvFds", RecvFds),
      EXPORT_FN("dupFd", DupFd),
      EXPORT_FN("socketPair", SocketPair),
      EXPORT_FN("unixListen", UnixListen),
      EXPORT_FN("unixAccept", UnixAccept),
      EXPORT_FN("unixConnect", UnixConnect),
      EXPORT_FN("peerPid", PeerPid),
      EXPORT_FN("exitNow", ExitNow),
      EXPORT_FN("forkSyscalls", ForkSyscalls),
      EXPORT_FN("reapChild", ReapChild),
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0],
                             props) != napi_ok) {
    return throw_napi_failure(env, "napi_define_properties");
  }
  if (!csi_mount_ops_init(env, exports)) return throw_napi_failure(env, "csi_mount_ops_init");
  return exports;
}
