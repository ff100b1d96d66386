// The C floor for Channel: one fd per message over AF_UNIX SOCK_SEQPACKET.
// Ping-pong: the parent sends a memfd, the child sends it back, each closes
// what it received. Pipelined: the parent sends n messages with one fd each,
// the child receives and closes them and answers once at the end.
// Usage: pingpong <iterations>   prints JSON {pingPongUs, fdsPerSec}.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int xfer(int sock, int fd_out) {  // fd_out >= 0: send it; else receive one and return it
  char byte = 0;
  char ctl[CMSG_SPACE(sizeof(int))];
  memset(ctl, 0, sizeof ctl);
  struct iovec iov = {&byte, 1};
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  if (fd_out >= 0) {
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd_out, sizeof fd_out);
    return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
  }
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) <= 0) return -1;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (!c) return -2;  // a message without fds: the end marker
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return 1;
  pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    for (long i = 0; i < n; i++) {  // phase 1: echo
      int fd = xfer(sv[1], -1);
      if (fd < 0 || xfer(sv[1], fd) < 0) _exit(1);
      close(fd);
    }
    for (;;) {  // phase 2: drain until the end marker
      int fd = xfer(sv[1], -1);
      if (fd == -2) break;
      if (fd < 0) _exit(1);
      close(fd);
    }
    char ok = 1;
    send(sv[1], &ok, 1, 0);
    _exit(0);
  }
  close(sv[1]);
  int memfd = memfd_create("bench", MFD_CLOEXEC);
  double a = now_s();
  for (long i = 0; i < n; i++) {
    if (xfer(sv[0], memfd) < 0) return 1;
    int back = xfer(sv[0], -1);
    if (back < 0) return 1;
    close(back);
  }
  double b = now_s();
  for (long i = 0; i < n; i++) if (xfer(sv[0], memfd) < 0) return 1;
  char end = 0, ok;
  send(sv[0], &end, 1, 0);
  if (recv(sv[0], &ok, 1, 0) != 1) return 1;
  double c = now_s();
  waitpid(pid, NULL, 0);
  printf("{\"pingPongUs\":%.3f,\"fdsPerSec\":%.0f}\n", (b - a) / n * 1e6, n / (c - b));
  return 0;
}
