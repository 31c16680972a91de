/*
 * A floor for an asynchronous archive_command's latency on this machine: the least work a pusher
 * with a remote, durable acknowledgement must do for a segment PostgreSQL has just finished. Not a
 * tool: a yardstick for `bench/wal.sh` (mode `minimal-c`), in C so that no runtime, protocol or
 * check of ours is in it. It stores no WAL (only the last bytes of each file): the bench runs no
 * backlog nor replay on it.
 *
 * minimal-pusher server <port> <dir> <sync: 1|0>
 *   One connection at a time; per message "<name> <len>\n" and <len> bytes: writes them to
 *   <dir>/<name>.tmp, fdatasync, rename to <dir>/<name>, fsync of <dir>, answers "ok\n" (sync 0:
 *   neither fdatasync nor fsync).
 * minimal-pusher agent <pg_wal> <spool> <port> <rest> <log>
 *   On each new pg_wal/archive_status/<name>.ready (inotify): reads the last <rest> bytes of the
 *   file (what a pre-streaming pusher still has to send at that moment), sends them, waits for
 *   "ok", creates <spool>/<name>.ok. Appends "<ms since the epoch> <name> <ms to the .ok>" to <log>.
 * minimal-pusher wait <spool> <name>
 *   Exits 0 once <spool>/<name>.ok exists (inotify), 1 after 60 s. The archive_command is
 *   `test -f <spool>/%f.ok || minimal-pusher wait <spool> %f`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double nowMs(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

static int ioAll(int fd, char *buf, size_t n, int writing) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = writing ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    done += (size_t)r;
  }
  return 0;
}

/* A line up to '\n' (not kept) into buf; -1 at EOF. */
static int lineRead(int fd, char *buf, size_t max) {
  size_t n = 0;
  while (n + 1 < max) {
    char c;
    ssize_t r = read(fd, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    if (c == '\n') break;
    buf[n++] = c;
  }
  buf[n] = 0;
  return 0;
}

static int tcpSocket(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (s < 0) die("socket");
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  return s;
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static int server(int port, const char *dir, int sync) {
  int s = tcpSocket(), dfd = open(dir, O_RDONLY | O_DIRECTORY);
  struct sockaddr_in a = loopback(port);
  if (dfd < 0) die(dir);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 4) < 0) die("bind");
  for (;;) {
    int c = accept(s, NULL, NULL), one = 1;
    char head[512], tmp[PATH_MAX], fin[PATH_MAX], name[256];
    size_t len;
    if (c < 0) continue;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    while (lineRead(c, head, sizeof head) == 0 && sscanf(head, "%255s %zu", name, &len) == 2) {
      char *buf = malloc(len ? len : 1);
      int fd;
      if (!buf || ioAll(c, buf, len, 0) < 0) break;
      snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
      snprintf(fin, sizeof fin, "%s/%s", dir, name);
      fd = open(tmp, O_CREAT | O_WRONLY | O_TRUNC, 0600);
      if (fd < 0 || ioAll(fd, buf, len, 1) < 0 || (sync && fdatasync(fd) < 0) || close(fd) < 0 ||
          rename(tmp, fin) < 0 || (sync && fsync(dfd) < 0)) die(tmp);
      free(buf);
      if (ioAll(c, "ok\n", 3, 1) < 0) break;
    }
    close(c);
  }
  return 0;
}

/* Pushes <name> (a file of pg_wal): its last `rest` bytes to the server, then <spool>/<name>.ok. */
static void push(int c, const char *walDir, const char *spool, const char *name, size_t rest, FILE *log) {
  char file[PATH_MAX], ok[PATH_MAX], head[512], reply[16];
  double t0 = nowMs();
  struct stat st;
  int fd, okFd;
  char *buf;
  size_t n;
  snprintf(file, sizeof file, "%s/%s", walDir, name);
  fd = open(file, O_RDONLY);
  if (fd < 0 || fstat(fd, &st) < 0) die(file);
  n = (size_t)st.st_size < rest ? (size_t)st.st_size : rest;
  buf = malloc(n ? n : 1);
  if (!buf || pread(fd, buf, n, st.st_size - (off_t)n) != (ssize_t)n) die(file);
  close(fd);
  snprintf(head, sizeof head, "%s %zu\n", name, n);
  if (ioAll(c, head, strlen(head), 1) < 0 || ioAll(c, buf, n, 1) < 0 || lineRead(c, reply, sizeof reply) < 0 || strcmp(reply, "ok") != 0) die("push");
  free(buf);
  snprintf(ok, sizeof ok, "%s/%s.ok", spool, name);
  okFd = open(ok, O_CREAT | O_WRONLY, 0644);
  if (okFd < 0) die(ok);
  close(okFd);
  fprintf(log, "%.3f %s %.3f\n", t0, name, nowMs() - t0);
  fflush(log);
}

static int readyName(const char *entry, char *name, size_t max) {
  size_t l = strlen(entry);
  if (l <= 6 || l - 6 >= max || strcmp(entry + l - 6, ".ready") != 0) return 0;
  memcpy(name, entry, l - 6);
  name[l - 6] = 0;
  return 1;
}

static int agent(const char *walDir, const char *spool, int port, size_t rest, const char *logPath) {
  char status[PATH_MAX], name[256], ok[PATH_MAX];
  char events[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
  int c = tcpSocket(), in = inotify_init1(0);
  struct sockaddr_in a = loopback(port);
  FILE *log = fopen(logPath, "a");
  DIR *d;
  struct dirent *e;
  if (!log) die(logPath);
  /* The server may still be starting: a few seconds of tries. */
  for (int tries = 0; connect(c, (struct sockaddr *)&a, sizeof a) < 0; tries++) {
    if (tries == 100) die("connect");
    usleep(50000);
  }
  snprintf(status, sizeof status, "%s/archive_status", walDir);
  if (in < 0 || inotify_add_watch(in, status, IN_CREATE | IN_MOVED_TO) < 0) die(status);
  /* What was ready before the watch began. */
  if (!(d = opendir(status))) die(status);
  while ((e = readdir(d))) {
    if (!readyName(e->d_name, name, sizeof name)) continue;
    snprintf(ok, sizeof ok, "%s/%s.ok", spool, name);
    if (access(ok, F_OK) != 0) push(c, walDir, spool, name, rest, log);
  }
  closedir(d);
  for (;;) {
    ssize_t r = read(in, events, sizeof events);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("inotify");
    for (char *p = events; p < events + r;) {
      struct inotify_event *ev = (struct inotify_event *)p;
      if (ev->len && readyName(ev->name, name, sizeof name)) push(c, walDir, spool, name, rest, log);
      p += sizeof *ev + ev->len;
    }
  }
  return 0;
}

static int waitOk(const char *spool, const char *name) {
  char ok[PATH_MAX];
  int in = inotify_init1(0);
  double until = nowMs() + 60000;
  snprintf(ok, sizeof ok, "%s/%s.ok", spool, name);
  if (in < 0 || inotify_add_watch(in, spool, IN_CREATE | IN_MOVED_TO) < 0) die(spool);
  while (access(ok, F_OK) != 0) {
    char events[4096];
    struct pollfd p = { in, POLLIN, 0 };
    double left = until - nowMs();
    if (left <= 0) return 1;
    if (poll(&p, 1, (int)left) > 0 && read(in, events, sizeof events) < 0 && errno != EINTR) die("inotify");
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "server") == 0) return server(atoi(argv[2]), argv[3], atoi(argv[4]));
  if (argc == 7 && strcmp(argv[1], "agent") == 0) return agent(argv[2], argv[3], atoi(argv[4]), (size_t)atol(argv[5]), argv[6]);
  if (argc == 4 && strcmp(argv[1], "wait") == 0) return waitOk(argv[2], argv[3]);
  fprintf(stderr, "usage: minimal-pusher server <port> <dir> <sync> | agent <pg_wal> <spool> <port> <rest> <log> | wait <spool> <name>\n");
  return 2;
}
