// fd.cc — calls on any file descriptor: statx(2) (as fstat), ftruncate(2),
// close(2), fcntl(2) F_DUPFD_CLOEXEC, and the names and messages of errno
// values (libuv's uv_err_name, strerror_r(3) in its portable form). Thin, 1:1 calls returning the
// result or -errno.
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <string>

#include "args.h"
#include "native.h"
#include "release.h"

namespace memseal {
namespace {

// fstat(fd) -> [size, mode, blksize, status flags] | -errno. Used by verification
// and inspection; blksize tells a hugetlb file (the huge page size) from shmem,
// the status flags (fcntl(F_GETFL): O_PATH, the access mode) whether the
// descriptor can be read and mapped at all.
// Through statx(fd, "", AT_EMPTY_PATH) rather than fstat(): glibc ≥ 2.33 binds
// fstat to a new symbol (fstat64@GLIBC_2.33), which would raise the prebuilt
// binary's glibc floor from 2.28 (Node's own) to 2.33. glibc's statx wrapper
// (2.28) falls back to fstatat on kernels before 4.11.
Napi::Value Fstat(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
#ifdef STATX_SIZE
  struct statx st;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_MODE, &st) < 0) return Errno(info.Env());
  double size = static_cast<double>(st.stx_size), mode = st.stx_mode, blksize = st.stx_blksize;
#else  // a C library without statx(3) (musl before 1.2.5) has no symbol versions to avoid either
  struct stat st;
  if (fstat(fd, &st) < 0) return Errno(info.Env());
  double size = static_cast<double>(st.st_size), mode = st.st_mode, blksize = static_cast<double>(st.st_blksize);
#endif
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return Errno(info.Env());
  napi_value items[4] = {Double(info.Env(), size), Double(info.Env(), mode), Double(info.Env(), blksize),
                         Double(info.Env(), static_cast<double>(flags))};
  return Napi::Value(info.Env(), ArrayOf(info.Env(), items, 4));
}

// ftruncate(fd, length) -> 0 | -errno (64-bit length).
Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  int fd;
  int64_t len;
  if (!ArgFd(info, 0, &fd) || !ArgInt64(info, 1, &len)) return info.Env().Undefined();
  int r = ftruncate(fd, static_cast<off_t>(len));
  return Errno(info.Env(), r);
}

// close(fd) -> 0 | -errno (EINTR counts as closed: see CloseFd)
Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  Untrack(info.Env(), fd);
  return Result(info.Env(), CloseFd(fd));
}

// dup(fd) -> a new close-on-exec descriptor (fcntl F_DUPFD_CLOEXEC) | -errno.
// Lets a queued send keep its own reference to a file the caller may close.
Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r >= 0) TrackUnadopted(info.Env(), r);  // a queued send's own: closed with the env if it dies first
  return Errno(info.Env(), r);
}

// untrack(fd) -> undefined. A descriptor recvmsg() or dup() returned is handed
// to the program: from now on the program alone closes it (a number it closes
// may be reused, so teardown must not close it again).
Napi::Value UntrackFd(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  Untrack(info.Env(), fd);
  return info.Env().Undefined();
}

// untrackAll(fds: Int32Array) / closeAll(fds: Int32Array) -> undefined: untrack (closeAll: and
// close) every descriptor of a message in one call into the addon, so that a worker terminated
// between two of them cannot leave some untracked and not yet anybody's.
Napi::Value UntrackEach(const Napi::CallbackInfo& info, bool close) {
  int32_t* fds;
  size_t n;
  if (!ArgInt32Array(info, 0, &fds, &n)) return info.Env().Undefined();
  for (size_t i = 0; i < n; i++) {
    if (fds[i] < 0) continue;
    Untrack(info.Env(), fds[i]);
    if (close) CloseFd(fds[i]);
  }
  return info.Env().Undefined();
}

Napi::Value UntrackAll(const Napi::CallbackInfo& info) { return UntrackEach(info, false); }
Napi::Value CloseAll(const Napi::CallbackInfo& info) { return UntrackEach(info, true); }

// errorName(-errno) -> 'EPERM' (libuv's names, as in Node's own errors);
// errorMessage(-errno) -> 'operation not permitted' (strerror(3), lower-cased
// as in Node's messages: 'EBUSY: device or resource busy, fcntl(F_ADD_SEALS)').
// Errors this code can meet that libuv has no name for (it would say
// "Unknown system error -109"): named here from the kernel's own table.
#define MEMSEAL_EXTRA_ERRNOS(X) \
  X(ETOOMANYREFS)               \
  X(EBADFD)                     \
  X(EOWNERDEAD)                 \
  X(ENOTRECOVERABLE)            \
  X(EKEYREVOKED)                \
  X(ENOKEY)

const char* ExtraErrnoName(int e) {
  switch (e) {
#define MEMSEAL_ERRNO_CASE(name) \
  case name:                     \
    return #name;
    MEMSEAL_EXTRA_ERRNOS(MEMSEAL_ERRNO_CASE)
#undef MEMSEAL_ERRNO_CASE
    default:
      return nullptr;
  }
}

Napi::Value ErrorName(const Napi::CallbackInfo& info) {
  int32_t e;
  if (!ArgInt32(info, 0, &e)) return info.Env().Undefined();
  const char* extra = ExtraErrnoName(-e);
  return Napi::Value(info.Env(), String(info.Env(), extra != nullptr ? extra : uv_err_name(e)));
}

// strerror_r(3) comes in two forms: XSI (POSIX; musl, and glibc without
// _GNU_SOURCE) returns 0 and fills buf; GNU (glibc with _GNU_SOURCE, which g++
// always defines) returns the text, which may not be buf. Overloading on the
// return type takes either, so the same source builds against both C libraries.
[[maybe_unused]] const char* StrerrorText(int r, const char* buf) { return r == 0 ? buf : nullptr; }
[[maybe_unused]] const char* StrerrorText(const char* text, const char*) { return text; }

Napi::Value ErrorMessage(const Napi::CallbackInfo& info) {
  int32_t e;
  if (!ArgInt32(info, 0, &e)) return info.Env().Undefined();
  char buf[128];
  buf[0] = '\0';
  const char* text = StrerrorText(strerror_r(-e, buf, sizeof buf), buf);
  std::string msg = text != nullptr && *text != '\0' ? text : "Unknown error " + std::to_string(-e);
  msg[0] = static_cast<char>(tolower(static_cast<unsigned char>(msg[0])));
  return Napi::Value(info.Env(), String(info.Env(), msg.c_str()));
}

}  // namespace

void InitFd(Napi::Env env, Napi::Object exports) {
  exports.Set("fstat", Napi::Function::New(env, Fstat, "fstat"));
  exports.Set("untrack", Napi::Function::New(env, UntrackFd, "untrack"));
  exports.Set("untrackAll", Napi::Function::New(env, UntrackAll, "untrackAll"));
  exports.Set("closeAll", Napi::Function::New(env, CloseAll, "closeAll"));
  exports.Set("ftruncate", Napi::Function::New(env, Ftruncate, "ftruncate"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
  exports.Set("errorName", Napi::Function::New(env, ErrorName, "errorName"));
  exports.Set("errorMessage", Napi::Function::New(env, ErrorMessage, "errorMessage"));
}

}  // namespace memseal
