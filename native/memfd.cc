// memfd.cc — memfd_create(2), memfd_secret(2), fcntl(2) F_ADD_SEALS/F_GET_SEALS.
// The one door through which this code creates a memfd or a secret memfd,
// owned (release.cc adopts it before JavaScript sees it) or handed out as a
// plain number. Thin calls returning the result or -errno. Generic descriptor
// calls (statx, ftruncate, close, dup) and errno names live in fd.cc.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "args.h"
#include "kernel.h"
#include "native.h"
#include "release.h"

namespace memseal {
namespace {

// memfd_create(2) -> fd | -errno. The name limit is checked here too, so a
// name the kernel would refuse is never truncated into one it accepts.
int OpenMemfd(const char* name, size_t len, unsigned flags) {
  if (len > MEMSEAL_MFD_NAME_MAX) return -EINVAL;
  int fd = memfd_create(name, flags);
  return fd < 0 ? -errno : fd;
}

// memfd_secret(2) -> fd | -errno (no C library wrapper: syscall(2)).
int OpenMemfdSecret(unsigned flags) {
#ifdef SYS_memfd_secret
  long fd = syscall(SYS_memfd_secret, flags);
  return fd < 0 ? -errno : static_cast<int>(fd);
#else
  (void)flags;
  return -ENOSYS;
#endif
}

// (name: string, flags: number) at info[0], info[1] -> memfd_create(2)'s fd |
// -errno, or false with a TypeError pending.
bool MemfdFromArgs(const Napi::CallbackInfo& info, int* result) {
  *result = -EINVAL;
  if (info.Length() < 1 || !info[0].IsString()) return ArgError(info, "name must be a string");
  uint32_t flags;
  if (!ArgUint32(info, 1, &flags)) return false;
  // The whole length first: a copy into a short buffer stops before a
  // multi-byte character that does not fit, and would pass a cut name.
  size_t len = 0;
  if (napi_get_value_string_utf8(info.Env(), info[0], nullptr, 0, &len) != napi_ok) return false;
  if (len > MEMSEAL_MFD_NAME_MAX) return true;  // EINVAL, as memfd_create(2) says
  char name[MEMSEAL_MFD_NAME_MAX + 1];
  if (napi_get_value_string_utf8(info.Env(), info[0], name, sizeof name, &len) != napi_ok) return false;
  if (strlen(name) != len) return ArgError(info, "name must not contain NUL");
  *result = OpenMemfd(name, len, flags);
  return true;
}

// memfdCreate(name: string, flags: number) -> fd | -errno
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  int fd;
  if (!MemfdFromArgs(info, &fd)) return info.Env().Undefined();
  return Result(info.Env(), fd);
}

// memfdCreateOwned(name, flags) -> [fd, handle] | -errno: memfd_create(2) whose
// descriptor is owned from the start (no moment in which a terminated worker
// would leak it).
Napi::Value MemfdCreateOwned(const Napi::CallbackInfo& info) {
  int fd;
  if (!MemfdFromArgs(info, &fd)) return info.Env().Undefined();
  if (fd < 0) return Result(info.Env(), fd);
  return Napi::Value(info.Env(), Owned(info.Env(), fd));
}

// memfdSecret(flags: number) -> fd | -errno
Napi::Value MemfdSecret(const Napi::CallbackInfo& info) {
  uint32_t flags;
  if (!ArgUint32(info, 0, &flags)) return info.Env().Undefined();
  return Result(info.Env(), OpenMemfdSecret(flags));
}

// memfdSecretOwned(flags) -> [fd, handle] | -errno: memfd_secret(2), owned from the start.
Napi::Value MemfdSecretOwned(const Napi::CallbackInfo& info) {
  uint32_t flags;
  if (!ArgUint32(info, 0, &flags)) return info.Env().Undefined();
  int fd = OpenMemfdSecret(flags);
  if (fd < 0) return Result(info.Env(), fd);
  return Napi::Value(info.Env(), Owned(info.Env(), fd));
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
  if (!ArgUint32(info, 0, &flags)) return info.Env().Undefined();
  if (info.Length() < 2 || !info[1].IsNumber()) return (ArgError(info, "seal must be a number"), info.Env().Undefined());
  int32_t seal = info[1].As<Napi::Number>().Int32Value();
  static const char kName[] = "memseal-probe";
  int fd = OpenMemfd(kName, sizeof kName - 1, flags);
  if (fd < 0) return Result(info.Env(), fd);
  int r = 0;
  if (seal > 0 && fcntl(fd, F_ADD_SEALS, seal) < 0) r = -errno;
  if (seal == 0 && fcntl(fd, F_GET_SEALS) < 0) r = -errno;
  CloseFd(fd);
  return Result(info.Env(), r);
}

// memfdSecretProbe() -> 0 | -errno: memfd_secret(2) then close(2), in one call (see memfdProbe).
Napi::Value MemfdSecretProbe(const Napi::CallbackInfo& info) {
  int fd = OpenMemfdSecret(O_CLOEXEC);
  if (fd < 0) return Result(info.Env(), fd);
  CloseFd(fd);
  return Result(info.Env(), 0);
}

}  // namespace

void InitMemfd(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("memfdCreateOwned", Napi::Function::New(env, MemfdCreateOwned, "memfdCreateOwned"));
  exports.Set("memfdSecret", Napi::Function::New(env, MemfdSecret, "memfdSecret"));
  exports.Set("memfdSecretOwned", Napi::Function::New(env, MemfdSecretOwned, "memfdSecretOwned"));
  exports.Set("memfdProbe", Napi::Function::New(env, MemfdProbe, "memfdProbe"));
  exports.Set("memfdSecretProbe", Napi::Function::New(env, MemfdSecretProbe, "memfdSecretProbe"));
  exports.Set("addSeals", Napi::Function::New(env, AddSeals, "addSeals"));
  exports.Set("getSeals", Napi::Function::New(env, GetSeals, "getSeals"));
}

}  // namespace memseal
