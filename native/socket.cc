// socket.cc — AF_UNIX sockets (SOCK_SEQPACKET, SOCK_STREAM, SOCK_DGRAM) and descriptor passing:
// (the receiving half, recvmsg/recvmmsg and the checks of each message, is recv.cc)
// socketpair(2), socket(2), bind(2), listen(2), accept4(2), connect(2),
// sendmsg(2)/recvmsg(2) with SCM_RIGHTS (unix(7), cmsg(3)), getsockopt(2)
// SO_PEERCRED/SO_DOMAIN/SO_TYPE and fcntl(2) for adopted sockets. The libuv
// watcher that drives them lives in poll.cc.
//
// Every call is non-blocking and returns the result or -errno; only malformed
// arguments throw (TypeError).
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "args.h"
#include "kernel.h"
#include "native.h"
#include "release.h"

namespace memseal {
namespace {

constexpr int kSockFlags = SOCK_NONBLOCK | SOCK_CLOEXEC;

// A sockaddr_un from raw sun_path bytes: a filesystem path (the caller
// includes the terminating NUL) or an abstract name (leading NUL).
bool MakeAddr(const uint8_t* path, size_t len, sockaddr_un* addr, socklen_t* addrlen) {
  if (len == 0 || len > sizeof(addr->sun_path)) return false;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path, len);
  *addrlen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  return true;
}

// socketpair() -> [fd0, fd1] | -errno
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | kSockFlags, 0, sv) < 0) return Errno(info.Env());
  TrackUnadopted(info.Env(), sv[0]);
  TrackUnadopted(info.Env(), sv[1]);
  napi_value items[2] = {Double(info.Env(), sv[0]), Double(info.Env(), sv[1])};
  return Napi::Value(info.Env(), ArrayOf(info.Env(), items, 2));
}

// socket(type = SOCK_SEQPACKET) -> fd | -errno. type: SOCK_SEQPACKET, SOCK_STREAM or SOCK_DGRAM.
Napi::Value Socket(const Napi::CallbackInfo& info) {
  int32_t type = SOCK_SEQPACKET;
  if (info.Length() > 0 && !info[0].IsUndefined() && !ArgInt32(info, 0, &type)) return info.Env().Undefined();
  if (type != SOCK_SEQPACKET && type != SOCK_STREAM && type != SOCK_DGRAM) return Result(info.Env(), -EPROTOTYPE);
  int fd = socket(AF_UNIX, type | kSockFlags, 0);
  if (fd >= 0) TrackUnadopted(info.Env(), fd);
  return Errno(info.Env(), fd);
}

// bind() and connect(): (fd, sunPath: Uint8Array) -> 0 | -errno. A malformed
// argument throws a TypeError; a sun_path that does not fit is -ENAMETOOLONG.
using AddrCall = int (*)(int fd, const sockaddr* addr, socklen_t addrlen);
Napi::Value CallWithAddr(const Napi::CallbackInfo& info, AddrCall call) {
  int fd;
  uint8_t* path;
  size_t len;
  if (!ArgFd(info, 0, &fd) || !ArgBytes(info, 1, &path, &len)) return info.Env().Undefined();
  sockaddr_un addr;
  socklen_t addrlen;
  if (!MakeAddr(path, len, &addr, &addrlen)) return Result(info.Env(), -ENAMETOOLONG);
  return Errno(info.Env(), call(fd, reinterpret_cast<sockaddr*>(&addr), addrlen));
}

// bind(fd, sunPath) -> 0 | -errno
Napi::Value Bind(const Napi::CallbackInfo& info) {
  return CallWithAddr(info, [](int fd, const sockaddr* addr, socklen_t addrlen) { return bind(fd, addr, addrlen); });
}

// connect(fd, sunPath) -> 0 | -errno (EAGAIN: the listener's backlog is full).
// No retry on EINTR: an interrupted connect(2) goes on in the background and a
// second call would fail with EALREADY; the caller sees EINTR instead.
Napi::Value Connect(const Napi::CallbackInfo& info) {
  return CallWithAddr(info, [](int fd, const sockaddr* addr, socklen_t addrlen) { return connect(fd, addr, addrlen); });
}

// listen(fd, backlog) -> 0 | -errno
Napi::Value Listen(const Napi::CallbackInfo& info) {
  int fd;
  int32_t backlog;
  if (!ArgFd(info, 0, &fd) || !ArgInt32(info, 1, &backlog)) return info.Env().Undefined();
  return Errno(info.Env(), listen(fd, backlog));
}

// accept(fd) -> fd | -errno; the new socket is non-blocking and close-on-exec.
Napi::Value Accept(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  int r;
  do {
    r = accept4(fd, nullptr, nullptr, kSockFlags);
  } while (r < 0 && errno == EINTR);
  if (r >= 0) TrackUnadopted(info.Env(), r);
  return Errno(info.Env(), r);
}

// One sendmsg(2) of `msg` (its iov and address set) with `nfds` descriptors
// as SCM_RIGHTS, MSG_NOSIGNAL | MSG_DONTWAIT: bytes sent or -errno.
ssize_t SendOne(int fd, msghdr* msg, const int32_t* fds, size_t nfds) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * SCM_MAX_FD)];
  if (nfds > 0) {
    msg->msg_control = control;
    msg->msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    memset(control, 0, msg->msg_controllen);
    cmsghdr* c = CMSG_FIRSTHDR(msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t r;
  do {
    r = sendmsg(fd, msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : r;
}

// A typed array of `type` at arr[i]: its data and element count; false if it is not one.
bool TypedAt(napi_env env, napi_value arr, uint32_t i, napi_typedarray_type type, void** data, size_t* len) {
  napi_value v;
  napi_typedarray_type t;
  // napi_invalid_arg (no exception pending) for anything that is not a typed array
  return napi_get_element(env, arr, i, &v) == napi_ok &&
         napi_get_typedarray_info(env, v, &t, len, data, nullptr, nullptr) == napi_ok && t == type;
}

// sendmsg(fd, data: Uint8Array, fds: Int32Array, to?: sunPath) -> bytes sent | -errno.
// One message; SEQPACKET and DGRAM send all of it or nothing, STREAM may send
// a prefix (the descriptors go with it). MSG_NOSIGNAL: a gone peer is EPIPE,
// not SIGPIPE. The kernel checks every descriptor (EBADF) and the count
// (EINVAL over SCM_MAX_FD) before anything is queued. `to` addresses one
// datagram on an unconnected SOCK_DGRAM socket.
Napi::Value SendMsg(const Napi::CallbackInfo& info) {
  int fd;
  uint8_t* data;
  size_t len;
  int32_t* fds;
  size_t nfds;
  if (!ArgFd(info, 0, &fd) || !ArgBytes(info, 1, &data, &len) || !ArgInt32Array(info, 2, &fds, &nfds)) {
    return info.Env().Undefined();
  }
  if (nfds > SCM_MAX_FD) return Result(info.Env(), -EINVAL);
  iovec iov{data, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  sockaddr_un to;
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    uint8_t* path;
    size_t pathLen;
    socklen_t toLen;
    if (!ArgBytes(info, 3, &path, &pathLen)) return info.Env().Undefined();
    if (!MakeAddr(path, pathLen, &to, &toLen)) return Result(info.Env(), -ENAMETOOLONG);
    msg.msg_name = &to;
    msg.msg_namelen = toLen;
  }
  return Result(info.Env(), SendOne(fd, &msg, fds, nfds));
}

// sendBatch(fd, datas: Uint8Array[], fds: Int32Array[], results: Int32Array) -> messages done.
// A send queue's flush in one call: sendmsg (as SendOne) of datas[i] with the
// descriptors fds[i], in order, until the kernel pushes back. results[i] = bytes
// sent or -errno. Stops at EAGAIN (results[i] = -EAGAIN; message i and its
// descriptors untouched, not counted) and after a stream took a prefix of a
// message (counted: the caller sends the rest next, alone; results[done] = -EAGAIN
// then, when there is a next). Another error is
// that message's alone (counted), and the next one is tried. The descriptors of
// every counted message are the queue's own duplicates: they are closed here
// (the kernel holds its own references to what went), so the caller forgets them.
Napi::Value SendBatch(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd;
  int32_t* results;
  size_t count;
  if (!ArgFd(info, 0, &fd) || !ArgInt32Array(info, 3, &results, &count)) return info.Env().Undefined();
  uint32_t nd = 0, nf = 0;
  if (info.Length() < 3 || !info[1].IsArray() || !info[2].IsArray() ||
      napi_get_array_length(env, info[1], &nd) != napi_ok || napi_get_array_length(env, info[2], &nf) != napi_ok ||
      nd != nf) {
    return (ArgError(info, "expected two arrays of the same length"), info.Env().Undefined());
  }
  if (nd < count) count = nd;
  size_t done = 0;
  for (; done < count; done++) {
    void* data;
    size_t len;
    void* fdsData;
    size_t nfds;
    uint32_t i = static_cast<uint32_t>(done);
    if (!TypedAt(env, info[1], i, napi_uint8_array, &data, &len) ||
        !TypedAt(env, info[2], i, napi_int32_array, &fdsData, &nfds)) {
      ThrowTypeError(env, "expected Uint8Array payloads and Int32Array descriptors");
      break;
    }
    iovec iov{data, len};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    const int32_t* fds = static_cast<const int32_t*>(fdsData);
    ssize_t r = nfds > SCM_MAX_FD ? -EINVAL : SendOne(fd, &msg, fds, nfds);
    results[done] = static_cast<int32_t>(r);
    if (r == -EAGAIN) break;
    for (size_t k = 0; k < nfds; k++) {
      Untrack(env, fds[k]);
      CloseFd(fds[k]);
    }
    if (r >= 0 && static_cast<size_t>(r) < len) {
      done++;
      if (done < count) results[done] = -EAGAIN;  // the kernel took what it could: the next waits too
      break;
    }
  }
  return Result(env, static_cast<int64_t>(done));
}

// One recvmsg(2) of a message into data[0..len) and at most maxFds descriptors
// (the control buffer is sized for exactly that many) with MSG_CMSG_CLOEXEC:
// the byte count (the real length with MSG_TRUNC, larger than len) or -errno.
// out[0] = descriptors stored in fds, out[1] = msg_flags, with MSG_CTRUNC also
// when more than maxFds arrived (see below). On MSG_CTRUNC every descriptor that
// did arrive is closed here and out[0] is 0: a message whose descriptors were
// cut off is unusable, and leaking the rest would let a peer exhaust our
// descriptor table. out[2] = descriptors the kernel installed before it
// stopped: fewer than maxFds with MSG_CTRUNC means it ran out of descriptor
// slots (RLIMIT_NOFILE), not of control buffer. out[3..5] = the sender's pid,
// uid, gid from SCM_CREDENTIALS (SO_PASSCRED on), or out[3] = -1 when the
// message carried none. Every descriptor kept is tracked (TrackUnadopted) from
// the moment recvmsg returns.
// peerCred(fd) -> [pid, uid, gid] | -errno (SO_PEERCRED: the peer at connect/socketpair time)
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return Errno(info.Env());
  napi_value items[3] = {Double(info.Env(), cred.pid), Double(info.Env(), cred.uid), Double(info.Env(), cred.gid)};
  return Napi::Value(info.Env(), ArrayOf(info.Env(), items, 3));
}

// passCred(fd) -> 0 | -errno: SO_PASSCRED on, so that every message received
// carries its sender's credentials (SCM_CREDENTIALS): for a datagram socket,
// the only way to know who sent each datagram.
Napi::Value PassCred(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  int one = 1;
  return Errno(info.Env(), setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)));
}

// sockType(fd) -> [domain, type] | -errno (SO_DOMAIN, SO_TYPE)
Napi::Value SockType(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  int domain = 0, type = 0;
  socklen_t len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) return Errno(info.Env());
  len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) return Errno(info.Env());
  napi_value items[2] = {Double(info.Env(), domain), Double(info.Env(), type)};
  return Napi::Value(info.Env(), ArrayOf(info.Env(), items, 2));
}

// setBlocking(fd) -> 0 | -errno: clears O_NONBLOCK. For the end of a socketpair a
// child inherits: most programs (Python's socket.recv_fds, plain C) expect a
// blocking socket. O_NONBLOCK belongs to the open file description, and each
// end of a socketpair is its own, so the other end stays non-blocking.
Napi::Value SetBlocking(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) return Result(info.Env(), -errno);
  return Result(info.Env(), 0);
}

// setNonblockCloexec(fd) -> 0 | -errno: O_NONBLOCK and FD_CLOEXEC on an adopted socket.
Napi::Value SetNonblockCloexec(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return Errno(info.Env());
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) return Errno(info.Env());
  return Result(info.Env(), 0);
}

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("socketpair", Napi::Function::New(env, SocketPair, "socketpair"));
  exports.Set("socket", Napi::Function::New(env, Socket, "socket"));
  exports.Set("bind", Napi::Function::New(env, Bind, "bind"));
  exports.Set("connect", Napi::Function::New(env, Connect, "connect"));
  exports.Set("listen", Napi::Function::New(env, Listen, "listen"));
  exports.Set("accept", Napi::Function::New(env, Accept, "accept"));
  exports.Set("sendmsg", Napi::Function::New(env, SendMsg, "sendmsg"));
  exports.Set("sendBatch", Napi::Function::New(env, SendBatch, "sendBatch"));
  exports.Set("passCred", Napi::Function::New(env, PassCred, "passCred"));
  exports.Set("peerCred", Napi::Function::New(env, PeerCred, "peerCred"));
  exports.Set("sockType", Napi::Function::New(env, SockType, "sockType"));
  exports.Set("setNonblockCloexec", Napi::Function::New(env, SetNonblockCloexec, "setNonblockCloexec"));
  exports.Set("setBlocking", Napi::Function::New(env, SetBlocking, "setBlocking"));

  exports.Set("channelConstants", ConstTable(env, {MEMSEAL_NAMED(SCM_MAX_FD), MEMSEAL_NAMED(UNIX_PATH_MAX),
      MEMSEAL_NAMED(MSG_TRUNC), MEMSEAL_NAMED(MSG_CTRUNC), MEMSEAL_NAMED(AF_UNIX), MEMSEAL_NAMED(SOCK_SEQPACKET),
      MEMSEAL_NAMED(SOCK_STREAM), MEMSEAL_NAMED(SOCK_DGRAM)}));
}

}  // namespace memseal
