// Benchmark reader, run by the bench (bench/lib/readloop.ts) as a separate
// process (never read a FUSE mount synchronously from the process that
// serves it).
//
//   readloop lat <path> <iterations> <warmup> <expect-file>
//       Times open + read-to-EOF + close of <path>, <iterations> times after
//       <warmup> untimed ones, and prints one latency in nanoseconds per line.
//       Every iteration must read exactly as many bytes as <expect-file> has;
//       warm-up iterations also compare the bytes. Exit 1 on any mismatch.
//
//   readloop watch <path> <sleep-us> <timeout-ms>
//       Reads <path> once, prints "ready", then re-reads it every <sleep-us>
//       until the content differs and prints
//       "changed <CLOCK_MONOTONIC ns> <CLOCK_REALTIME ns> <length> <ns the
//       open+read+close that saw it took>" followed by the new content.
//       Exit 3 on timeout.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (1u << 20)
static char buf[BUF_SIZE];
static char expect[BUF_SIZE];
static char first[BUF_SIZE];

static uint64_t now_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* open + read to EOF + close; returns bytes read, or -1 (errno set). */
static ssize_t read_all(const char *path, char *dst, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t total = 0;
  for (;;) {
    ssize_t n = read(fd, dst + total, cap - total);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    if (n == 0) break;
    total += (size_t)n;
    if (total == cap) break;
  }
  close(fd);
  return (ssize_t)total;
}

static int lat(const char *path, long iters, long warmup, const char *expect_file) {
  ssize_t want = read_all(expect_file, expect, sizeof expect);
  if (want < 0) { perror(expect_file); return 1; }
  for (long i = 0; i < warmup; i++) {
    ssize_t n = read_all(path, buf, sizeof buf);
    if (n < 0) { perror(path); return 1; }
    if (n != want || memcmp(buf, expect, (size_t)n) != 0) {
      fprintf(stderr, "%s: content differs from %s (%zd vs %zd bytes)\n", path, expect_file, n, want);
      return 1;
    }
  }
  uint64_t *samples = malloc(sizeof(uint64_t) * (size_t)iters);
  if (!samples) return 1;
  for (long i = 0; i < iters; i++) {
    uint64_t t0 = now_ns(CLOCK_MONOTONIC);
    ssize_t n = read_all(path, buf, sizeof buf);
    uint64_t t1 = now_ns(CLOCK_MONOTONIC);
    if (n != want) {
      if (n < 0) perror(path);
      else fprintf(stderr, "%s: read %zd bytes, want %zd\n", path, n, want);
      return 1;
    }
    samples[i] = t1 - t0;
  }
  for (long i = 0; i < iters; i++) printf("%llu\n", (unsigned long long)samples[i]);
  free(samples);
  return fflush(stdout) == 0 ? 0 : 1;
}

static int watch(const char *path, long sleep_us, long timeout_ms) {
  ssize_t n0 = read_all(path, first, sizeof first);
  if (n0 < 0) { perror(path); return 1; }
  printf("ready\n");
  fflush(stdout);
  uint64_t deadline = now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000ull;
  struct timespec pause = { sleep_us / 1000000, (sleep_us % 1000000) * 1000 };
  for (;;) {
    uint64_t start = now_ns(CLOCK_MONOTONIC);
    ssize_t n = read_all(path, buf, sizeof buf);
    uint64_t mono = now_ns(CLOCK_MONOTONIC);
    uint64_t real = now_ns(CLOCK_REALTIME);
    /* A failed open (e.g. ENOENT in a swap window) is a finding too: report it. */
    if (n < 0) {
      printf("error %llu %llu %d\n", (unsigned long long)mono, (unsigned long long)real, errno);
      return 2;
    }
    if (n != n0 || memcmp(buf, first, (size_t)n) != 0) {
      printf("changed %llu %llu %zd %llu\n", (unsigned long long)mono, (unsigned long long)real, n,
             (unsigned long long)(mono - start));
      fwrite(buf, 1, (size_t)n, stdout);
      return fflush(stdout) == 0 ? 0 : 1;
    }
    if (mono > deadline) return 3;
    nanosleep(&pause, NULL);
  }
}

int main(int argc, char **argv) {
  if (argc == 6 && strcmp(argv[1], "lat") == 0) return lat(argv[2], atol(argv[3]), atol(argv[4]), argv[5]);
  if (argc == 5 && strcmp(argv[1], "watch") == 0) return watch(argv[2], atol(argv[3]), atol(argv[4]));
  fprintf(stderr, "usage: readloop lat <path> <iterations> <warmup> <expect-file>\n"
                  "       readloop watch <path> <sleep-us> <timeout-ms>\n");
  return 2;
}
