/* A STAND-IN for registry.k8s.io/sig-storage/livenessprobe, the chart's
 * liveness-probe sidecar, for the real-kubelet chart test only: the Go
 * module proxy refuses that module, so the real image cannot be built here.
 * It takes the chart's arguments (--csi-address, --http-endpoint,
 * --probe-timeout, -v) and answers GET /healthz with 200 when a connect() to
 * the CSI socket succeeds and 500 when it does not. The real one calls the
 * driver's Probe RPC; this one only checks that something listens. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static int csi_up(const char *path) {
  struct sockaddr_un a = {0};
  a.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(a.sun_path)) return 0;
  strcpy(a.sun_path, path);
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  if (s < 0) return 0;
  int ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(s);
  return ok;
}

static void reply(int c, const char *status, const char *body) {
  char buf[256];
  int n = snprintf(buf, sizeof(buf), "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   status, strlen(body), body);
  if (write(c, buf, (size_t)n) < 0) { /* the prober went away */ }
}

int main(int argc, char **argv) {
  const char *csi = "/csi/csi.sock";
  int port = 9808;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--csi-address=", 14) == 0) csi = argv[i] + 14;
    else if (strncmp(argv[i], "--http-endpoint=", 16) == 0) {
      const char *colon = strrchr(argv[i], ':');
      if (colon) port = atoi(colon + 1);
    } else if (strncmp(argv[i], "--probe-timeout=", 16) != 0 && strncmp(argv[i], "-v=", 3) != 0) {
      fprintf(stderr, "livenessprobe stand-in: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  struct sigaction sa = {0};
  sa.sa_handler = stop;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  int l = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 16) != 0) {
    perror("livenessprobe stand-in: listen");
    return 1;
  }
  fprintf(stderr, "livenessprobe stand-in: serving /healthz on :%d for %s\n", port, csi);
  for (;;) {
    int c = accept(l, NULL, NULL);
    if (c < 0) continue;
    struct timeval tv = {2, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[1024];
    ssize_t n = read(c, req, sizeof(req) - 1);
    req[n > 0 ? n : 0] = 0;
    if (strncmp(req, "GET /healthz", 12) != 0) reply(c, "404 Not Found", "not found\n");
    else if (csi_up(csi)) reply(c, "200 OK", "ok\n");
    else {
      fprintf(stderr, "livenessprobe stand-in: %s: no CSI driver listening\n", csi);
      reply(c, "500 Internal Server Error", "no CSI driver listening\n");
    }
    close(c);
  }
}
