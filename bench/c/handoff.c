// The C floor for a sealed-buffer handoff, for side-by-side comparison with
// SealedBuffer.from in bench/run.js: the same steps, in C. Parent:
// memfd_create + ftruncate to the final size + pwrite of the bytes +
// F_ADD_SEALS, then sendmsg(SCM_RIGHTS) to a forked child, which checks
// F_GET_SEALS and fstat, maps MAP_PRIVATE, checksums one byte per page,
// unmaps, closes and replies with the sum.
// Usage: handoff <bytes> <iterations> [mode...]   prints JSON {min,median,max} in ms.
// Modes (as SealedBuffer.from does under the same settings):
//   mapped   fill through a MADV_HUGEPAGE mapping populated with MADV_POPULATE_WRITE
//            (from() under shmem THP `advise`) instead of pwrite
//   hugetlb  MFD_HUGETLB, size rounded up to 2 MiB, filled through a mapping; the
//            child maps MAP_SHARED | PROT_READ (from() with hugePages: true)
//   defer    the child replies first and unmaps/closes afterwards (the release
//            off the critical path that a thread pool gives)
//   children=N  N children (at most 64), each on its own socket: the one file goes to all of
//            them, and an iteration ends when every one has replied (the fan-out's floor)
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static int mapped, hugetlb, defer, nchildren = 1;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static uint64_t checksum(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; i += 4096) s += p[i];
  return n ? s + p[n - 1] : 0;
}

static int recv_fd(int sock) {
  char byte;
  char ctl[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {&byte, 1};
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) <= 0) return -1;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

static int send_fd(int sock, int fd) {
  char byte = 0;
  char ctl[CMSG_SPACE(sizeof(int))];
  memset(ctl, 0, sizeof ctl);
  struct iovec iov = {&byte, 1};
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static void child(int sock) {
  for (;;) {
    int fd = recv_fd(sock);
    if (fd < 0) _exit(0);
    int seals = fcntl(fd, F_GET_SEALS);
    struct stat st;
    uint64_t sum = UINT64_MAX;
    int need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
    void* p = MAP_FAILED;
    size_t n = 0;
    if (seals >= 0 && (seals & need) == need && fstat(fd, &st) == 0) {
      n = (size_t)st.st_size;
      p = n ? mmap(NULL, n, PROT_READ, hugetlb ? MAP_SHARED : MAP_PRIVATE, fd, 0) : NULL;
      if (p != MAP_FAILED) sum = checksum(p, hugetlb ? n - 1 : n);
    }
    if (!defer) {
      if (p != MAP_FAILED && n) munmap(p, n);
      close(fd);
    }
    if (send(sock, &sum, sizeof sum, MSG_NOSIGNAL) != sizeof sum) _exit(1);
    if (defer) {
      if (p != MAP_FAILED && n) munmap(p, n);
      close(fd);
    }
  }
}

/** Fills a sized memfd through a shared mapping, as SealedBuffer's mapped path does. */
static int fill_mapped(int fd, const uint8_t* src, size_t size, size_t file_size) {
  uint8_t* p = mmap(NULL, file_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return -1;
  if (!hugetlb) {
    madvise(p, file_size, MADV_HUGEPAGE);
    madvise(p, file_size, MADV_POPULATE_WRITE);
  }
  memcpy(p, src, size);
  munmap(p, file_size);
  return 0;
}

int main(int argc, char** argv) {
  size_t size = argc > 1 ? strtoull(argv[1], NULL, 10) : 1 << 20;
  int iters = argc > 2 ? atoi(argv[2]) : 10;
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "mapped")) mapped = 1;
    else if (!strcmp(argv[i], "hugetlb")) hugetlb = 1;
    else if (!strcmp(argv[i], "defer")) defer = 1;
    else if (!strncmp(argv[i], "children=", 9)) nchildren = atoi(argv[i] + 9);
    else return 3;
  }
  const size_t huge = 2 << 20;
  size_t file_size = hugetlb ? (size + huge - 1) / huge * huge : size;
  if (nchildren < 1 || nchildren > 64) return 3;
  int socks[64];
  pid_t pids[64];
  for (int c = 0; c < nchildren; c++) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return 1;
    pids[c] = fork();
    if (pids[c] < 0) return 1;
    if (pids[c] == 0) {
      close(sv[0]);
      for (int o = 0; o < c; o++) close(socks[o]);
      child(sv[1]);
    }
    close(sv[1]);
    socks[c] = sv[0];
  }
  uint8_t* src = malloc(size ? size : 1);
  for (size_t i = 0; i < size; i++) src[i] = (uint8_t)(i * 31 + 7);
  // a hugetlb file is padded with zeros: the child leaves out its last byte, so the sums agree
  // where the size is a whole number of huge pages (the only sizes bench/run.js sends)
  uint64_t want = checksum(src, hugetlb ? size - 1 : size);
  double* t = calloc(iters, sizeof *t);
  for (int it = -2; it < iters; it++) {  // two warm-up rounds
    double a = now_ms();
    unsigned extra = hugetlb ? MFD_HUGETLB : 0;
    int fd = memfd_create("bench", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL | extra);
    if (fd < 0) fd = memfd_create("bench", MFD_CLOEXEC | MFD_ALLOW_SEALING | extra);
    if (fd < 0) return 1;
    if (file_size && ftruncate(fd, (off_t)file_size) < 0) return 1;
    if (file_size && (mapped || hugetlb)) {
      if (fill_mapped(fd, src, size, file_size) < 0) return 1;
    } else {
      for (size_t done = 0; done < size;) {
        ssize_t w = pwrite(fd, src + done, size - done, (off_t)done);
        if (w <= 0) return 1;
        done += (size_t)w;
      }
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) return 1;
    for (int c = 0; c < nchildren; c++) {
      if (send_fd(socks[c], fd) < 0) return 1;
    }
    close(fd);
    for (int c = 0; c < nchildren; c++) {
      uint64_t sum;
      if (recv(socks[c], &sum, sizeof sum, 0) != sizeof sum || sum != want) return 2;
    }
    if (it >= 0) t[it] = now_ms() - a;
  }
  for (int c = 0; c < nchildren; c++) close(socks[c]);
  for (int c = 0; c < nchildren; c++) waitpid(pids[c], NULL, 0);
  qsort(t, iters, sizeof *t, cmp);
  printf("{\"min\":%.4f,\"median\":%.4f,\"max\":%.4f}\n", t[0], t[iters / 2], t[iters - 1]);
  return 0;
}
