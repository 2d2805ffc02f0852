/* Watches one directory with inotify and prints each event as
 * "<MASK> <name>" on stdout, for the real-kubelet suite's rotation scenario
 * (Debian's busybox has no inotifyd). Usage: inotify-watch DIR */
#include <stdio.h>
#include <sys/inotify.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: inotify-watch DIR\n"); return 2; }
  int fd = inotify_init1(0);
  if (fd < 0 || inotify_add_watch(fd, argv[1], IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO) < 0) {
    perror("inotify");
    return 1;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("WATCHING %s\n", argv[1]);
  char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) { perror("read"); return 1; }
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *e = (struct inotify_event *)p;
      const char *what = (e->mask & IN_CREATE) ? "CREATE" : (e->mask & IN_DELETE) ? "DELETE"
                       : (e->mask & IN_MOVED_FROM) ? "MOVED_FROM" : (e->mask & IN_MOVED_TO) ? "MOVED_TO" : "OTHER";
      printf("%s%s %s\n", what, (e->mask & IN_ISDIR) ? ",ISDIR" : "", e->len ? e->name : "");
      p += sizeof *e + e->len;
    }
  }
}
