/* memseal_peer_demo.c — the C peer the memseal test-suite drives; also a
 * usage example of memseal_peer.h. Build: cc -std=c11 -Wall -O2 -o peer memseal_peer_demo.c
 *
 *   echo [path]              for each buffer received, reply with a sealed copy and meta "echo:"+meta;
 *                            a refused message is answered with {"refused":"CODE"}; ends at hang-up
 *   refuse [path]            receive buffers (max 1 MiB) until hang-up, one JSON line per message and
 *                            the descriptor counts at start and end; answers each with "next"
 *   send SIZE SEALS [path]   send one buffer (byte i = i % 251) sealed with exactly SEALS
 *   hostile [path]           send what a receiver must refuse, then one good buffer
 *   listen PATH              accept one connection, then behave as echo
 *   blocking                 report whether the inherited socket is non-blocking, wait for one message,
 *                            reply with its text and descriptor count
 * Without a path the channel is MEMSEAL_CHANNEL_FD (spawnWithChannel). */
#include "memseal_peer.h"

#include <dirent.h>
#include <stdio.h>

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = -1; /* not the directory's own */
  if (d == NULL) return -1;
  while (readdir(d) != NULL) n++;
  closedir(d);
  return n - 2; /* . and .. */
}

static int channel(int argc, char **argv, int index) {
  return argc > index ? msp_connect(argv[index]) : msp_from_parent();
}

static int die(const char *what, int r) {
  fprintf(stderr, "memseal_peer_demo: %s: %s\n", what, msp_code(r));
  return 1;
}

static void wait_reply(int s) {
  static unsigned char buf[MSP_MAX_PAYLOAD];
  int fds[MSP_MAX_FDS];
  size_t n;
  if (msp_recv(s, buf, fds, MSP_MAX_FDS, &n) >= 0) msp_close_all(fds, n);
}

static int echo(int s) {
  static struct msp_buffer b;
  struct msp_policy p = MSP_POLICY_DEFAULT;
  p.max_size = 1u << 30;
  for (;;) {
    int r = msp_receive_buffer(s, &p, &b);
    if (r == MSP_ECLOSED) break;
    if (r < 0) {
      char msg[64];
      int len = snprintf(msg, sizeof msg, "{\"refused\":\"%s\"}", msp_code(r));
      msp_send(s, msg, (size_t)len, NULL, 0);
      continue;
    }
    int copy = msp_sealed_create("echo", b.data, b.size, MSP_DEFAULT_SEALS);
    static unsigned char meta[5 + MSP_MAX_PAYLOAD];
    memcpy(meta, "echo:", 5);
    size_t mlen = 5 + b.meta_len;
    if (mlen > MSP_MAX_PAYLOAD) mlen = MSP_MAX_PAYLOAD;
    memcpy(meta + 5, b.meta, mlen - 5);
    msp_buffer_close(&b);
    if (copy < 0) return die("memfd", copy);
    r = msp_send_buffer(s, copy, meta, mlen);
    close(copy);
    if (r < 0) return die("send", r);
  }
  close(s);
  return 0;
}

static int refuse(int s) {
  static struct msp_buffer b;
  struct msp_policy p = MSP_POLICY_DEFAULT;
  p.max_size = 1u << 20;
  int start = count_fds();
  printf("{\"fds\":%d}\n", start);
  fflush(stdout);
  for (;;) {
    int r = msp_receive_buffer(s, &p, &b);
    if (r == MSP_ECLOSED) break;
    if (r < 0) {
      printf("{\"ok\":false,\"code\":\"%s\"}\n", msp_code(r));
    } else {
      size_t head = b.size < 8 ? b.size : 8;
      printf("{\"ok\":true,\"size\":%zu,\"meta\":\"%.*s\",\"head\":\"%.*s\"}\n", b.size, (int)b.meta_len, (const char *)b.meta,
             (int)head, (const char *)b.data);
      msp_buffer_close(&b);
    }
    fflush(stdout);
    msp_send(s, "next", 4, NULL, 0);
  }
  printf("{\"fds\":%d,\"start\":%d}\n", count_fds(), start);
  fflush(stdout);
  close(s);
  return 0;
}

static int send_one(int s, size_t size, int seals) {
  unsigned char *data = malloc(size ? size : 1);
  if (data == NULL) return die("malloc", -ENOMEM);
  for (size_t i = 0; i < size; i++) data[i] = (unsigned char)(i % 251);
  int fd = msp_sealed_create("from-c", data, size, seals);
  free(data);
  if (fd < 0) return die("memfd", fd);
  int r = msp_send_buffer(s, fd, "from c", 6);
  close(fd);
  if (r < 0) return die("send", r);
  wait_reply(s);
  close(s);
  return 0;
}

static int hostile(int s) {
  int unsealed = memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (unsealed < 0 || write(unsealed, "changeable", 10) != 10) return die("memfd", -errno);
  int noshrink = msp_sealed_create("noshrink", "shrinkable", 10, F_SEAL_GROW | F_SEAL_WRITE);
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) return die("pipe", -errno);
  int huge = memfd_create("huge", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (huge < 0 || ftruncate(huge, (off_t)1 << 40) < 0 || fcntl(huge, F_ADD_SEALS, MSP_DEFAULT_SEALS) < 0) {
    return die("huge", -errno); /* 1 TiB, sparse: costs nothing to send */
  }
  int good = msp_sealed_create("good", "good bytes", 10, MSP_DEFAULT_SEALS);
  int two[2] = {msp_sealed_create("a", "a", 1, MSP_DEFAULT_SEALS), msp_sealed_create("b", "b", 1, MSP_DEFAULT_SEALS)};
  struct { const char *meta; const int *fds; size_t n; } cases[] = {
    {"unsealed", &unsealed, 1}, {"noshrink", &noshrink, 1}, {"pipe", &pipefd[0], 1}, {"huge", &huge, 1},
    {"two", two, 2}, {"none", NULL, 0}, {"good", &good, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int r = msp_send(s, cases[i].meta, strlen(cases[i].meta), cases[i].fds, cases[i].n);
    if (r < 0) return die(cases[i].meta, r);
    wait_reply(s);
  }
  int all[] = {unsealed, noshrink, pipefd[0], pipefd[1], huge, good, two[0], two[1]};
  msp_close_all(all, sizeof all / sizeof all[0]);
  close(s);
  return 0;
}

/* The spawn hand-over as a plain C program sees it: the inherited socket is
 * blocking, so recvmsg waits for the parent. */
static int blocking(int s) {
  static unsigned char buf[MSP_MAX_PAYLOAD + 1];
  int fds[4];
  size_t n;
  printf("{\"nonblock\":%s}\n", (fcntl(s, F_GETFL) & O_NONBLOCK) ? "true" : "false");
  fflush(stdout);
  ssize_t len = msp_recv(s, buf, fds, 4, &n);
  if (len < 0) return die("recv", (int)len);
  msp_close_all(fds, n);
  char reply[MSP_MAX_PAYLOAD + 64];
  int rlen = snprintf(reply, sizeof reply, "{\"text\":\"%.*s\",\"nfds\":%zu}", (int)len, (const char *)buf, n);
  msp_send(s, reply, (size_t)rlen, NULL, 0);
  close(s);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return die("usage", -EINVAL);
  const char *mode = argv[1];
  if (strcmp(mode, "listen") == 0 && argc > 2) {
    int server = msp_listen(argv[2], 4);
    if (server < 0) return die("listen", server);
    printf("{\"listening\":\"%s\"}\n", argv[2]);
    fflush(stdout);
    int s = msp_accept(server);
    close(server);
    if (s < 0) return die("accept", s);
    return echo(s);
  }
  int s = channel(argc, argv, strcmp(mode, "send") == 0 ? 4 : 2);
  if (s < 0) return die("channel", s);
  if (strcmp(mode, "echo") == 0) return echo(s);
  if (strcmp(mode, "refuse") == 0) return refuse(s);
  if (strcmp(mode, "hostile") == 0) return hostile(s);
  if (strcmp(mode, "blocking") == 0) return blocking(s);
  if (strcmp(mode, "send") == 0 && argc > 3) return send_one(s, strtoull(argv[2], NULL, 0), (int)strtol(argv[3], NULL, 0));
  return die("unknown mode", -EINVAL);
}
