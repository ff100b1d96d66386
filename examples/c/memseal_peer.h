/* memseal_peer.h — a memseal peer in C (Linux, glibc or musl), header only.
 *
 * Speaks the protocol of docs/protocol.md: AF_UNIX SOCK_SEQPACKET, one message
 * per sendmsg(2), descriptors as SCM_RIGHTS. msp_send_buffer() and
 * msp_receive_buffer() are the messages of Channel.sendBuffer() and
 * Channel.receiveBuffer() in Node, with the same checks before anything is
 * mapped: exactly one descriptor, a memfd (F_GET_SEALS works), the required
 * seals present, the forbidden ones absent, the size within bounds. Whatever a
 * check refuses is closed. Every function returns 0 (or a descriptor) on
 * success and -errno or a negative MSP_E* code on failure; sockets are
 * blocking.
 *
 *   int s = msp_connect("\0my-service");          // or msp_from_parent()
 *   int fd = msp_sealed_create("note", "hi", 2, MSP_DEFAULT_SEALS);
 *   msp_send_buffer(s, fd, "v1", 2); close(fd);
 *   struct msp_policy p = MSP_POLICY_DEFAULT; p.max_size = 64 << 20;
 *   struct msp_buffer b;
 *   if (msp_receive_buffer(s, &p, &b) == 0) { use(b.data, b.size); msp_buffer_close(&b); }
 */
#ifndef MEMSEAL_PEER_H
#define MEMSEAL_PEER_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

#ifndef MADV_POPULATE_READ /* Linux 5.14 */
#define MADV_POPULATE_READ 22
#endif

#define MSP_MAX_PAYLOAD 65536 /* Channel.MAX_PAYLOAD */
#define MSP_MAX_FDS 253       /* SCM_MAX_FD */
#define MSP_DEFAULT_REQUIRED (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
#define MSP_DEFAULT_SEALS (MSP_DEFAULT_REQUIRED | F_SEAL_SEAL)
#define MSP_DEFAULT_MAX_SIZE ((uint64_t)1 << 30) /* DEFAULT_MAX_SIZE: 1 GiB, as every memseal receiver */

/* Refusals, named as memseal's ERR_MEMSEAL_* codes (negative, below any -errno). */
enum {
  MSP_ENOTMEMFD = -1001,  /* no descriptor, or not a memfd */
  MSP_ECTRUNC = -1002,    /* more descriptors than one / than fit */
  MSP_ENOTSEALED = -1003, /* a required seal missing or a forbidden one present */
  MSP_ESIZE = -1004,      /* size out of bounds, or payload over MSP_MAX_PAYLOAD */
  MSP_ECLOSED = -1005,    /* the peer hung up (end-of-stream) */
  MSP_EACCESS = -1006,    /* an O_PATH or write-only descriptor: nothing can be read or mapped */
};

static inline const char *msp_code(int r) {
  switch (r) {
    case MSP_ENOTMEMFD: return "ERR_MEMSEAL_NOT_MEMFD";
    case MSP_ECTRUNC: return "ERR_MEMSEAL_CTRUNC";
    case MSP_ENOTSEALED: return "ERR_MEMSEAL_NOT_SEALED";
    case MSP_ESIZE: return "ERR_MEMSEAL_SIZE";
    case MSP_ECLOSED: return "ERR_MEMSEAL_CLOSED";
    case MSP_EACCESS: return "ERR_MEMSEAL_ACCESS";
    default: return r < 0 ? strerror(-r) : "ok";
  }
}

static inline void msp_close_all(const int *fds, size_t n) {
  for (size_t i = 0; i < n; i++) close(fds[i]);
}

/* A sockaddr_un for a path, or an abstract name when path[0] == '\0' (then
 * `len` counts the name's bytes including that NUL). */
static inline int msp_addr(const char *path, size_t len, struct sockaddr_un *a, socklen_t *alen) {
  if (len == 0 || len > sizeof(a->sun_path)) return -ENAMETOOLONG;
  memset(a, 0, sizeof(*a));
  a->sun_family = AF_UNIX;
  memcpy(a->sun_path, path, len);
  *alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  return 0;
}

static inline size_t msp_path_len(const char *path) {
  return path[0] == '\0' ? 1 + strlen(path + 1) : strlen(path) + 1;
}

/* A SOCK_SEQPACKET socket connected to `path` (listen < 0) or listening there (backlog = listen). */
static inline int msp_socket_at(const char *path, int listen_backlog) {
  struct sockaddr_un a;
  socklen_t alen;
  int r = msp_addr(path, msp_path_len(path), &a, &alen);
  if (r < 0) return r;
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return -errno;
  r = listen_backlog < 0 ? connect(s, (struct sockaddr *)&a, alen)
                         : (bind(s, (struct sockaddr *)&a, alen) < 0 ? -1 : listen(s, listen_backlog));
  if (r < 0) {
    r = -errno;
    close(s);
    return r;
  }
  return s;
}

/* Path: a filesystem path, or "\0name" for an abstract name. */
static inline int msp_connect(const char *path) { return msp_socket_at(path, -1); }
static inline int msp_listen(const char *path, int backlog) { return msp_socket_at(path, backlog < 0 ? 0 : backlog); }

static inline int msp_accept(int server) {
  int s;
  do s = accept4(server, NULL, NULL, SOCK_CLOEXEC); while (s < 0 && errno == EINTR);
  return s < 0 ? -errno : s;
}

/* The socket spawnWithChannel() handed this process: MEMSEAL_CHANNEL_FD. */
static inline int msp_from_parent(void) {
  const char *raw = getenv("MEMSEAL_CHANNEL_FD");
  if (raw == NULL || *raw == '\0') return -ENOENT;
  char *end;
  long fd = strtol(raw, &end, 10);
  if (*end != '\0' || fd < 0 || fd > INT32_MAX) return -EINVAL;
  unsetenv("MEMSEAL_CHANNEL_FD");
  fcntl((int)fd, F_SETFD, FD_CLOEXEC);
  return (int)fd;
}

/* One message. Refuses an empty message without descriptors: it reads as end-of-stream. */
static inline int msp_send(int s, const void *data, size_t len, const int *fds, size_t nfds) {
  if (len > MSP_MAX_PAYLOAD || nfds > MSP_MAX_FDS || (len == 0 && nfds == 0)) return -EINVAL;
  struct iovec iov = {(void *)data, len};
  struct msghdr m = {0};
  union { char buf[CMSG_SPACE(sizeof(int) * MSP_MAX_FDS)]; struct cmsghdr align; } control;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (nfds > 0) {
    m.msg_control = control.buf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    memset(control.buf, 0, m.msg_controllen);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t r;
  do r = sendmsg(s, &m, MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : 0;
}

/* The next message: payload into buf (MSP_MAX_PAYLOAD bytes), descriptors into
 * fds (at most max_fds; close-on-exec). Returns the payload length, MSP_ECLOSED
 * at end-of-stream, MSP_ECTRUNC / MSP_ESIZE for a message that did not fit
 * (every descriptor of it that arrived is closed), or -errno. */
static inline ssize_t msp_recv(int s, void *buf, int *fds, size_t max_fds, size_t *nfds) {
  union { char buf[CMSG_SPACE(sizeof(int) * MSP_MAX_FDS)]; struct cmsghdr align; } control;
  if (max_fds > MSP_MAX_FDS) max_fds = MSP_MAX_FDS;
  struct iovec iov = {buf, MSP_MAX_PAYLOAD};
  struct msghdr m = {0};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (max_fds > 0) {
    m.msg_control = control.buf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * max_fds);
  }
  *nfds = 0;
  ssize_t r;
  do r = recvmsg(s, &m, MSG_CMSG_CLOEXEC); while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  size_t n = 0;
  int stray = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
    /* Only SCM_RIGHTS carries descriptors; other control messages are ignored. */
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t k = 0; k < count; k++) {
      int got;
      memcpy(&got, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
      /* CMSG_SPACE rounds up to 8 bytes: an odd max_fds has room for one more. Count, and refuse. */
      if (n < max_fds) fds[n++] = got;
      else { close(got); stray = 1; }
    }
  }
  if ((m.msg_flags & MSG_CTRUNC) || stray) {
    msp_close_all(fds, n);
    return MSP_ECTRUNC;
  }
  if (m.msg_flags & MSG_TRUNC) {
    msp_close_all(fds, n);
    return MSP_ESIZE;
  }
  if (r == 0 && n == 0) return MSP_ECLOSED;
  *nfds = n;
  return r;
}

/* What a receiver demands before it maps a descriptor (memseal's VerifyOptions). */
struct msp_policy {
  int require;       /* default MSP_DEFAULT_REQUIRED */
  int forbid;
  uint64_t min_size;
  uint64_t max_size; /* default MSP_DEFAULT_MAX_SIZE; set the one you are willing to map */
};
#define MSP_POLICY_DEFAULT {MSP_DEFAULT_REQUIRED, 0, 0, MSP_DEFAULT_MAX_SIZE}

/* memseal's verifySeals(): 0 and *size, or a refusal. Leaves fd open. */
static inline int msp_verify(int fd, const struct msp_policy *p, uint64_t *size, int *seals_out) {
  int flags = fcntl(fd, F_GETFL); /* F_GET_SEALS answers a bare EBADF for O_PATH */
  if (flags < 0) return -errno;
  if ((flags & O_PATH) != 0 || (flags & O_ACCMODE) == O_WRONLY) return MSP_EACCESS;
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) return errno == EINVAL ? MSP_ENOTMEMFD : -errno;
  struct stat st; /* after the seals: once SHRINK|GROW are seen, the size is final */
  if (fstat(fd, &st) < 0) return -errno;
  if (!S_ISREG(st.st_mode)) return MSP_ENOTMEMFD;
  if ((p->require & ~seals) != 0 || (seals & p->forbid) != 0) return MSP_ENOTSEALED;
  if ((uint64_t)st.st_size < p->min_size || (uint64_t)st.st_size > p->max_size) return MSP_ESIZE;
  *size = (uint64_t)st.st_size;
  if (seals_out) *seals_out = seals;
  return 0;
}

/* A verified buffer from a peer: read-only shared mapping of a sealed memfd. */
struct msp_buffer {
  int fd;
  int seals;
  const unsigned char *data;
  size_t size;
  unsigned char meta[MSP_MAX_PAYLOAD];
  size_t meta_len;
};

static inline void msp_buffer_close(struct msp_buffer *b) {
  if (b->data != NULL && b->size > 0) munmap((void *)b->data, b->size);
  if (b->fd >= 0) close(b->fd);
  b->data = NULL;
  b->fd = -1;
}

/* Channel.receiveBuffer(): the next message must carry exactly one descriptor
 * that passes msp_verify; then it is mapped. On refusal every descriptor of the
 * message is closed and the code returned. An empty meta arrives as one NUL
 * byte (or, from older senders, no bytes): both give meta_len 0. */
static inline int msp_receive_buffer(int s, const struct msp_policy *p, struct msp_buffer *b) {
  int fds[MSP_MAX_FDS];
  size_t n;
  b->fd = -1;
  b->data = NULL;
  ssize_t len = msp_recv(s, b->meta, fds, MSP_MAX_FDS, &n);
  if (len < 0) return (int)len;
  if (n != 1) {
    msp_close_all(fds, n);
    return n == 0 ? MSP_ENOTMEMFD : MSP_ECTRUNC;
  }
  uint64_t size = 0;
  int r = msp_verify(fds[0], p, &size, &b->seals);
  if (r == 0 && size > SIZE_MAX) r = MSP_ESIZE;
  if (r < 0) {
    close(fds[0]);
    return r;
  }
  void *map = NULL;
  if (size > 0) {
    map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fds[0], 0);
    if (map == MAP_FAILED) {
      r = -errno;
      close(fds[0]);
      return r;
    }
    /* A hugetlb file may be sparse: the first read of a missing page is charged to this
     * process, and when that fails the kernel sends SIGBUS. Fault every page in now:
     * -EFAULT (-ENOMEM) instead; -EINVAL before Linux 5.14, where a hugetlb file is refused. */
    struct stat st;
    if (fstat(fds[0], &st) < 0 ||
        (st.st_blksize > sysconf(_SC_PAGESIZE) && madvise(map, (size_t)size, MADV_POPULATE_READ) < 0)) {
      r = -errno;
      munmap(map, (size_t)size);
      close(fds[0]);
      return r;
    }
  }
  b->fd = fds[0];
  b->data = map;
  b->size = (size_t)size;
  b->meta_len = (len == 1 && b->meta[0] == 0) ? 0 : (size_t)len;
  return 0;
}

/* Channel.sendBuffer(): one message with the memfd and meta (an empty meta is
 * sent as one NUL byte; a meta of exactly one NUL byte is refused, -EINVAL). */
static inline int msp_send_buffer(int s, int memfd, const void *meta, size_t len) {
  static const unsigned char empty = 0;
  if (len == 1 && ((const unsigned char *)meta)[0] == 0) return -EINVAL;
  if (len == 0) return msp_send(s, &empty, 1, &memfd, 1);
  return msp_send(s, meta, len, &memfd, 1);
}

/* A memfd holding `data`, sealed with exactly `seals`. Returns the fd or -errno.
 * Without F_SEAL_EXEC in `seals` it asks for MFD_EXEC (Linux 6.3), since under
 * vm.memfd_noexec=1 a memfd made with neither flag is exec-sealed; older
 * kernels (EINVAL) and vm.memfd_noexec=2 (EACCES: then F_SEAL_EXEC is forced)
 * get a plain memfd_create. */
static inline int msp_sealed_create(const char *name, const void *data, size_t len, int seals) {
  int fd = -1;
  if (!(seals & F_SEAL_EXEC)) fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd < 0) fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -errno;
  size_t done = 0;
  while (done < len) {
    ssize_t w = pwrite(fd, (const char *)data + done, len - done, (off_t)done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) goto fail;
    done += (size_t)w;
  }
  if (fcntl(fd, F_ADD_SEALS, seals) < 0) goto fail;
  return fd;
fail: {
    int e = -errno;
    close(fd);
    return e;
  }
}

#endif /* MEMSEAL_PEER_H */
