// recv.cc — the receiving half of AF_UNIX descriptor passing (socket.cc has the rest): recvmsg(2)
// and recvmmsg(2) with SCM_RIGHTS and MSG_CMSG_CLOEXEC (unix(7), cmsg(3)), and the checks every
// received message goes through before JavaScript sees it: descriptors counted against maxFds and
// closed on a refusal (MSG_CTRUNC), the real length (MSG_TRUNC), SCM_CREDENTIALS, and tracking of
// every descriptor kept until the program has it. Every call is non-blocking and returns the result
// or -errno; only malformed arguments throw (TypeError).
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "args.h"
#include "kernel.h"
#include "native.h"
#include "release.h"

namespace memseal {
namespace {

// The control buffer RecvOne and RecvBatch give each message: room for the
// sender's credentials too: with SO_PASSCRED on, the kernel puts
// SCM_CREDENTIALS first and, without room for it, would cut the descriptors
// off (MSG_CTRUNC). The extra room can take more descriptors than maxFds:
// they are counted and refused by TakeOne.
constexpr size_t kControlMax = CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * SCM_MAX_FD);
struct alignas(cmsghdr) Control {
  char bytes[kControlMax];
};
void PrepareRecv(msghdr* msg, iovec* iov, Control* control, size_t maxFds) {
  *msg = msghdr{};
  msg->msg_iov = iov;
  msg->msg_iovlen = 1;
  msg->msg_control = control->bytes;
  msg->msg_controllen = CMSG_SPACE(sizeof(ucred)) + (maxFds > 0 ? CMSG_SPACE(sizeof(int) * maxFds) : 0);
}

ssize_t TakeOne(napi_env env, const msghdr& msg, ssize_t r, int32_t* fds, size_t maxFds, int32_t out[6]);

ssize_t RecvOne(napi_env env, int fd, uint8_t* data, size_t len, int32_t* fds, size_t maxFds, int32_t out[6]) {
  if (maxFds > SCM_MAX_FD) maxFds = SCM_MAX_FD;
  iovec iov{data, len};
  msghdr msg;
  Control control;
  PrepareRecv(&msg, &iov, &control, maxFds);
  ssize_t r;
  do {
    r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT | MSG_TRUNC);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  return TakeOne(env, msg, r, fds, maxFds, out);
}

// What one received message brought (RecvOne's out[], see above): every
// descriptor counted, then kept and tracked, or all closed (a refusal).
ssize_t TakeOne(napi_env env, const msghdr& msg, ssize_t r, int32_t* fds, size_t maxFds, int32_t out[6]) {
  out[0] = 0;
  out[1] = 0;
  out[2] = 0;
  out[3] = -1;  // no SCM_CREDENTIALS (yet)
  out[4] = 0;
  out[5] = 0;
  // Count what arrived before keeping any: CMSG_SPACE() rounds the control
  // buffer up to a multiple of 8 bytes, so for an odd maxFds the kernel fits one
  // descriptor more without MSG_CTRUNC. More than maxFds is a refusal, as
  // truncation is: every one is closed and the caller sees MSG_CTRUNC.
  size_t arrived = 0;
  if (msg.msg_controllen > 0) {
    for (cmsghdr* c = CMSG_FIRSTHDR(const_cast<msghdr*>(&msg)); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(0)) {
        arrived += (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
        ucred cred;
        memcpy(&cred, CMSG_DATA(c), sizeof(cred));
        out[3] = static_cast<int32_t>(cred.pid);
        out[4] = static_cast<int32_t>(cred.uid);  // read back as unsigned
        out[5] = static_cast<int32_t>(cred.gid);
      }
    }
  }
  int flags = msg.msg_flags;
  if (arrived > maxFds) flags |= MSG_CTRUNC;
  bool refuse = (flags & MSG_CTRUNC) != 0;
  size_t n = 0;
  if (arrived > 0) {
    for (cmsghdr* c = CMSG_FIRSTHDR(const_cast<msghdr*>(&msg)); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const unsigned char* p = CMSG_DATA(c);
      for (size_t k = 0; k < count; k++) {
        int got;
        memcpy(&got, p + k * sizeof(int), sizeof(int));
        if (refuse) {
          CloseFd(got);  // never leak what a refused message brought
        } else {
          fds[n++] = got;
          TrackUnadopted(env, got);  // the channel's until handed to the program or adopted
        }
      }
    }
  }
  out[0] = static_cast<int32_t>(n);
  out[1] = flags;
  out[2] = static_cast<int32_t>(arrived);
  return r;
}

// recvmsg(fd, buf: Uint8Array, fds: Int32Array, out: Int32Array(2..6)) -> bytes | -errno.
// One message into buf and at most fds.length descriptors: RecvOne above
// (out as it fills it, as far as out has room).
Napi::Value RecvMsg(const Napi::CallbackInfo& info) {
  int fd;
  uint8_t* data;
  size_t len;
  int32_t* fds;
  size_t maxFds;
  int32_t* out;
  size_t outLen;
  if (!ArgFd(info, 0, &fd) || !ArgBytes(info, 1, &data, &len) || !ArgInt32Array(info, 2, &fds, &maxFds) ||
      !ArgInt32Array(info, 3, &out, &outLen)) {
    return info.Env().Undefined();
  }
  if (outLen < 2) return (ArgError(info, "expected an Int32Array of 2"), info.Env().Undefined());
  int32_t got[6];
  ssize_t r = RecvOne(info.Env(), fd, data, len, fds, maxFds, got);
  if (r < 0) return Result(info.Env(), r);
  memcpy(out, got, sizeof(int32_t) * (outLen < 6 ? outLen : 6));
  return Result(info.Env(), r);
}

// recvBatch(fd, buf: Uint8Array, fds: Int32Array, info: Int32Array, maxMsgs, maxFds, room, chunk) -> messages read.
// Drains the socket with recvmmsg(2): up to `chunk` (1..8) messages per system
// call, each taken as RecvOne takes one (TakeOne), again and again until the
// kernel gives fewer than asked (drained: info[1] = -EAGAIN) or an error,
// end-of-stream (an empty message without descriptors ends the batch), or a
// budget: maxMsgs messages, or less than `room` bytes left in buf (the payload
// room each message gets), or less than maxFds entries left in fds. One call
// that finds the queue empty costs no extra system call: the kernel stops
// inside recvmmsg. Payloads are packed in buf, descriptors in fds, one after
// the other. info[0] = messages read, info[1] = what ended the batch: 0 (a
// budget, or an empty message) or -errno; then 8 entries per message: [bytes
// (the real length if over room: MSG_TRUNC), offset in buf, descriptors stored,
// msg_flags, descriptors installed, sender pid (-1: none), uid, gid]. The
// descriptors of message k follow those of messages 0..k-1 in fds. Every one is
// tracked (closed if the environment goes first) until handed over or closed.
// A datagram socket asks chunk 1: two empty datagrams in a row are two messages.
constexpr size_t kBatchEntry = 8;
constexpr uint32_t kChunkMax = 8;
Napi::Value RecvBatch(const Napi::CallbackInfo& info) {
  int fd;
  uint8_t* data;
  size_t len;
  int32_t* fds;
  size_t fdsLen;
  int32_t* out;
  size_t outLen;
  uint32_t maxMsgs, maxFds, room, chunk;
  if (!ArgFd(info, 0, &fd) || !ArgBytes(info, 1, &data, &len) || !ArgInt32Array(info, 2, &fds, &fdsLen) ||
      !ArgInt32Array(info, 3, &out, &outLen) || !ArgUint32(info, 4, &maxMsgs) || !ArgUint32(info, 5, &maxFds) ||
      !ArgUint32(info, 6, &room) || !ArgUint32(info, 7, &chunk)) {
    return info.Env().Undefined();
  }
  if (outLen < 2 || (outLen - 2) / kBatchEntry < maxMsgs) {
    return (ArgError(info, "expected an Int32Array of 2 + 8 per message"), info.Env().Undefined());
  }
  if (maxFds > SCM_MAX_FD) maxFds = SCM_MAX_FD;
  if (chunk < 1) chunk = 1;
  if (chunk > kChunkMax) chunk = kChunkMax;
  size_t n = 0, off = 0, fdOff = 0;
  int32_t end = 0;
  mmsghdr msgs[kChunkMax];
  iovec iovs[kChunkMax];
  Control controls[kChunkMax];
  bool eof = false;
  while (!eof && n < maxMsgs && room > 0 && len - off >= room && fdsLen - fdOff >= maxFds) {
    // As many messages as every budget leaves room for, each with `room` bytes and maxFds descriptors.
    size_t k = 0;
    while (k < chunk && n + k < maxMsgs && len - off >= (k + 1) * static_cast<size_t>(room) &&
           fdsLen - fdOff >= (k + 1) * static_cast<size_t>(maxFds)) {
      iovs[k] = iovec{data + off + k * room, room};
      PrepareRecv(&msgs[k].msg_hdr, &iovs[k], &controls[k], maxFds);
      msgs[k].msg_len = 0;
      k++;
    }
    int got;
    do {
      got = recvmmsg(fd, msgs, static_cast<unsigned>(k), MSG_CMSG_CLOEXEC | MSG_DONTWAIT | MSG_TRUNC, nullptr);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
      end = -errno;
      break;
    }
    // Every message the kernel gave is taken (its descriptors are in this process now); the payloads
    // are packed down to `off` one after the other. On a stream or a SEQPACKET socket an empty
    // message without descriptors is end-of-stream, and the entries after it repeat it: dropped.
    const size_t base = off;
    size_t last = static_cast<size_t>(got);
    // A message whose descriptors the kernel could not install (MSG_CTRUNC: out of descriptors, or
    // refused) can also arrive with no bytes and no control data: it is a message, not an end.
    const auto isEnd = [&msgs](size_t i) {
      return msgs[i].msg_len == 0 && msgs[i].msg_hdr.msg_controllen == 0 && (msgs[i].msg_hdr.msg_flags & MSG_CTRUNC) == 0;
    };
    for (size_t j = 0; j < last; j++) {
      if (!isEnd(j)) continue;
      size_t t = j + 1;
      while (t < last && isEnd(t)) t++;
      if (t == last) last = j + 1;
      break;
    }
    for (size_t j = 0; j < static_cast<size_t>(got); j++) {
      if (j >= last) continue;  // repeated end-of-stream: nothing was taken
      ssize_t r = static_cast<ssize_t>(msgs[j].msg_len);
      int32_t* e = out + 2 + n * kBatchEntry;
      TakeOne(info.Env(), msgs[j].msg_hdr, r, fds + fdOff, maxFds, e + 2);
      size_t kept = static_cast<size_t>(r) < room ? static_cast<size_t>(r) : room;
      if (kept > 0 && off != base + j * room) memmove(data + off, data + base + j * room, kept);
      e[0] = static_cast<int32_t>(r > INT32_MAX ? INT32_MAX : r);
      e[1] = static_cast<int32_t>(off);
      off += kept;
      fdOff += static_cast<size_t>(e[2]);
      n++;
      if (r == 0 && e[2] == 0 && (e[3] & MSG_CTRUNC) == 0) eof = true;  // end-of-stream (or an empty datagram)
    }
    if (static_cast<size_t>(got) < k) {  // drained (an error after a message waits for the next call)
      if (!eof) end = -EAGAIN;
      break;
    }
  }
  out[0] = static_cast<int32_t>(n);
  out[1] = end;
  return Result(info.Env(), static_cast<int64_t>(n));
}

// recvPeek(fd) -> 0 when the next read is end-of-stream, 1 when a message
// waits, -errno otherwise (EAGAIN: nothing yet; ECONNRESET is reported once).
// MSG_PEEK with no control buffer: nothing is consumed and no descriptor is
// installed (the kernel drops its peeked references and sets MSG_CTRUNC). A
// channel whose peer hung up asks this to decide whether anything is left,
// without reading ahead what nobody asked for.
Napi::Value RecvPeek(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  char byte;
  iovec iov{&byte, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t r;
  do {
    r = recvmsg(fd, &msg, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return Result(info.Env(), -errno);
  // zero bytes and no descriptors is how SOCK_SEQPACKET shows end-of-stream
  return Result(info.Env(), r > 0 || (msg.msg_flags & MSG_CTRUNC) != 0 ? 1 : 0);
}

}  // namespace

void InitRecv(Napi::Env env, Napi::Object exports) {
  exports.Set("recvmsg", Napi::Function::New(env, RecvMsg, "recvmsg"));
  exports.Set("recvBatch", Napi::Function::New(env, RecvBatch, "recvBatch"));
  exports.Set("recvPeek", Napi::Function::New(env, RecvPeek, "recvPeek"));
}

}  // namespace memseal
