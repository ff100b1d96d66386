// fd.cc — calls on any file descriptor: statx(2) (as fstat), ftruncate(2),
// close(2), fcntl(2) F_DUPFD_CLOEXEC, and the names and messages of errno
// values (libuv's uv_err_name, strerror_r(3)). Thin, 1:1 calls returning the
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

namespace memseal {
namespace {

// fstat(fd) -> [size, mode] | -errno. Used by verification and inspection.
// Through statx(fd, "", AT_EMPTY_PATH) rather than fstat(): glibc ≥ 2.33 binds
// fstat to a new symbol (fstat64@GLIBC_2.33), which would raise the prebuilt
// binary's glibc floor from 2.28 (Node's own) to 2.33. glibc's statx wrapper
// (2.28) falls back to fstatat on kernels before 4.11.
Napi::Value Fstat(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  struct statx st;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_MODE, &st) < 0) return Errno(info.Env());
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, Napi::Number::New(info.Env(), static_cast<double>(st.stx_size)));
  out.Set(1u, Napi::Number::New(info.Env(), static_cast<double>(st.stx_mode)));
  return out;
}

// ftruncate(fd, length) -> 0 | -errno (64-bit length).
Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  int fd;
  int64_t len;
  if (!ArgFd(info, 0, &fd) || !ArgInt64(info, 1, &len)) return info.Env().Undefined();
  int r = ftruncate(fd, static_cast<off_t>(len));
  return Errno(info.Env(), r);
}

// close(fd) -> 0 | -errno
Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  int r = close(fd);
  return Errno(info.Env(), r);
}

// dup(fd) -> a new close-on-exec descriptor (fcntl F_DUPFD_CLOEXEC) | -errno.
// Lets a queued send keep its own reference to a file the caller may close.
Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return Errno(info.Env(), r);
}

// errorName(-errno) -> 'EPERM' (libuv's names, as in Node's own errors);
// errorMessage(-errno) -> 'operation not permitted' (strerror(3), lower-cased
// as in Node's messages: 'EBUSY: device or resource busy, fcntl(F_ADD_SEALS)').
Napi::Value ErrorName(const Napi::CallbackInfo& info) {
  int32_t e;
  if (!ArgInt32(info, 0, &e)) return info.Env().Undefined();
  return Napi::String::New(info.Env(), uv_err_name(e));
}

Napi::Value ErrorMessage(const Napi::CallbackInfo& info) {
  int32_t e;
  if (!ArgInt32(info, 0, &e)) return info.Env().Undefined();
  char buf[128];
  std::string msg = strerror_r(-e, buf, sizeof buf);  // GNU strerror_r returns the text
  if (!msg.empty()) msg[0] = static_cast<char>(tolower(static_cast<unsigned char>(msg[0])));
  return Napi::String::New(info.Env(), msg);
}

}  // namespace

void InitFd(Napi::Env env, Napi::Object exports) {
  exports.Set("fstat", Napi::Function::New(env, Fstat, "fstat"));
  exports.Set("ftruncate", Napi::Function::New(env, Ftruncate, "ftruncate"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
  exports.Set("errorName", Napi::Function::New(env, ErrorName, "errorName"));
  exports.Set("errorMessage", Napi::Function::New(env, ErrorMessage, "errorMessage"));
}

}  // namespace memseal
