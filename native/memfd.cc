// memfd.cc — memfd_create(2), memfd_secret(2), fcntl(2) F_ADD_SEALS/F_GET_SEALS.
// Thin, 1:1 calls returning the result or -errno. Generic descriptor calls
// (statx, ftruncate, close, dup) and errno names live in fd.cc.
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "args.h"
#include "kernel.h"
#include "native.h"

namespace memseal {
namespace {

// memfdCreate(name: string, flags: number) -> fd | -errno
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) return (ArgError(info, "name must be a string"), info.Env().Undefined());
  uint32_t flags;
  if (!ArgUint32(info, 1, &flags)) return info.Env().Undefined();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name.find('\0') != std::string::npos) return (ArgError(info, "name must not contain NUL"), info.Env().Undefined());
  int fd = memfd_create(name.c_str(), flags);
  return Errno(info.Env(), fd);
}

// memfdSecret(flags: number) -> fd | -errno
Napi::Value MemfdSecret(const Napi::CallbackInfo& info) {
  uint32_t flags;
  if (!ArgUint32(info, 0, &flags)) return info.Env().Undefined();
#ifdef SYS_memfd_secret
  long fd = syscall(SYS_memfd_secret, flags);
  return Errno(info.Env(), fd);
#else
  return Result(info.Env(), -ENOSYS);
#endif
}

// addSeals(fd, seals) -> 0 | -errno
Napi::Value AddSeals(const Napi::CallbackInfo& info) {
  int fd;
  uint32_t seals;
  if (!ArgFd(info, 0, &fd) || !ArgUint32(info, 1, &seals)) return info.Env().Undefined();
  int r = fcntl(fd, F_ADD_SEALS, static_cast<int>(seals));
  return Errno(info.Env(), r);
}

// getSeals(fd) -> seals | -errno
Napi::Value GetSeals(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  int r = fcntl(fd, F_GET_SEALS);
  return Errno(info.Env(), r);
}

// memfdProbe(flags, seal) -> 0 | -errno: memfd_create(2) with `flags`, then
// (seal > 0) F_ADD_SEALS of `seal`, or (seal == 0) F_GET_SEALS, then close(2),
// all in one call: feature detection runs in require(), where a worker may be
// terminated between any two JavaScript statements, and a descriptor number
// returned to JavaScript to be closed by the next statement would then leak.
Napi::Value MemfdProbe(const Napi::CallbackInfo& info) {
  uint32_t flags;
  int32_t seal;
  if (!ArgUint32(info, 0, &flags)) return info.Env().Undefined();
  if (info.Length() < 2 || !info[1].IsNumber()) return (ArgError(info, "seal must be a number"), info.Env().Undefined());
  seal = info[1].As<Napi::Number>().Int32Value();
  int fd = memfd_create("memseal-probe", flags);
  if (fd < 0) return Result(info.Env(), -errno);
  int r = 0;
  if (seal > 0 && fcntl(fd, F_ADD_SEALS, seal) < 0) r = -errno;
  if (seal == 0 && fcntl(fd, F_GET_SEALS) < 0) r = -errno;
  close(fd);
  return Result(info.Env(), r);
}

// memfdSecretProbe() -> 0 | -errno: memfd_secret(2) then close(2), in one call (see memfdProbe).
Napi::Value MemfdSecretProbe(const Napi::CallbackInfo& info) {
#ifdef SYS_memfd_secret
  long fd = syscall(SYS_memfd_secret, static_cast<unsigned>(O_CLOEXEC));
  if (fd < 0) return Result(info.Env(), -errno);
  close(static_cast<int>(fd));
  return Result(info.Env(), 0);
#else
  return Result(info.Env(), -ENOSYS);
#endif
}

}  // namespace

void InitMemfd(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("memfdSecret", Napi::Function::New(env, MemfdSecret, "memfdSecret"));
  exports.Set("memfdProbe", Napi::Function::New(env, MemfdProbe, "memfdProbe"));
  exports.Set("memfdSecretProbe", Napi::Function::New(env, MemfdSecretProbe, "memfdSecretProbe"));
  exports.Set("addSeals", Napi::Function::New(env, AddSeals, "addSeals"));
  exports.Set("getSeals", Napi::Function::New(env, GetSeals, "getSeals"));
}

}  // namespace memseal
