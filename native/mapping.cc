// mapping.cc — mmap(2), munmap(2), mprotect(2), madvise(2), msync(2), mlock(2),
// munlock(2) and mseal(2) over one owned region.
//
// Ownership: a region is reachable from JavaScript through a type-tagged
// External handle and through the external ArrayBuffers created over it (the
// whole region, or windows of it where the region is larger than this Node's
// ArrayBuffer limit). Each of those holds one reference; the pages are unmapped
// when the last one is garbage-collected (or at environment teardown, when Node
// runs the remaining finalizers), so a forgotten mapping does not leak and a
// view that outlives its Mapping object never points at freed memory. An
// explicit munmap detaches every ArrayBuffer first, so a stale view reads as
// length 0 instead of touching freed memory.
//
// Wipe-on-release regions (SecretBuffer) are zeroed with explicit_bzero(3)
// before their pages go, however they go: munmap, the last reference being
// collected, or wipeLive() from the process 'exit' hook. They are listed in a
// process-wide registry (worker threads share it; each entry knows its env).
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>
#include <set>
#include <vector>

#include "args.h"
#include "kernel.h"
#include "native.h"

namespace memseal {
namespace {

const napi_type_tag kRegionTag = {0x6d656d7365616c00ULL, 0x726567696f6e0001ULL};

struct Region {
  void* addr;
  size_t len;
  int refs;        // the handle and every ArrayBuffer over the pages
  int prot;        // as last set by mmap/mprotect: wiping needs PROT_WRITE
  bool unmapped;
  bool sealed;     // mseal'd: the kernel refuses munmap until exit
  bool wipe;       // zero the pages before they are unmapped (and at exit)
  napi_env owner;  // the env whose 'exit' hook wipes it
  std::vector<napi_ref> buffers;  // weak: lets munmap detach them
};

// Never destroyed: finalizers may run during static destruction at exit.
std::mutex& WipeMutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}
std::set<Region*>& WipeRegistry() {
  static std::set<Region*>* live = new std::set<Region*>;
  return *live;
}

// Zeroes a writable, mapped region. Callers hold WipeMutex() or own the region.
void Zero(Region* r) {
  if (!r->unmapped && (r->prot & PROT_WRITE) != 0) explicit_bzero(r->addr, r->len);
}

// Wipes (if asked) and forgets a region that is about to be unmapped.
void Unregister(Region* r) {
  if (!r->wipe) return;
  std::lock_guard<std::mutex> lock(WipeMutex());
  Zero(r);
  WipeRegistry().erase(r);
}

void DropPages(Napi::Env env, Region* r) {
  if (r->unmapped) return;
  if (!r->sealed) {
    Unregister(r);
    munmap(r->addr, r->len);
  }
  r->unmapped = true;
  int64_t ignored;
  napi_adjust_external_memory(env, -static_cast<int64_t>(r->len), &ignored);
}

void Release(Napi::Env env, Region* r) {
  if (--r->refs > 0) return;
  DropPages(env, r);
  for (napi_ref ref : r->buffers) napi_delete_reference(env, ref);
  if (r->wipe) {  // a sealed region skipped Unregister: it must not outlive its entry
    std::lock_guard<std::mutex> lock(WipeMutex());
    WipeRegistry().erase(r);
  }
  delete r;
}

// An external ArrayBuffer over [offset, offset + length) of the region, or
// nullptr with a pending exception.
napi_value NewBuffer(napi_env env, Region* r, size_t offset, size_t length) {
  napi_value ab;
  napi_status st = napi_create_external_arraybuffer(
      env, static_cast<char*>(r->addr) + offset, length,
      [](napi_env e, void*, void* hint) { Release(Napi::Env(e), static_cast<Region*>(hint)); }, r, &ab);
  if (st != napi_ok) return nullptr;
  r->refs++;
  napi_ref ref;
  if (napi_create_reference(env, ab, 0, &ref) == napi_ok) r->buffers.push_back(ref);
  return ab;
}

Region* GetRegion(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsExternal() ||
      !info[i].As<Napi::Object>().CheckTypeTag(&kRegionTag)) {
    ArgError(info, "expected a mapping handle");
    return nullptr;
  }
  return info[i].As<Napi::External<Region>>().Data();
}

// mmap(length, prot, flags, fd, offset) -> [handle, address] | -errno. The
// ArrayBuffers over the pages are made on demand by view().
Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t len, offset;
  int32_t prot, flags, fd;
  if (!ArgInt64(info, 0, &len) || !ArgInt32(info, 1, &prot) || !ArgInt32(info, 2, &flags) ||
      !ArgInt32(info, 3, &fd) || !ArgInt64(info, 4, &offset)) {
    return env.Undefined();
  }
  if (len <= 0) return Result(env, -EINVAL);  // what mmap(2) says of length 0
  // No address is passed, so MAP_FIXED would replace whatever is mapped at 0..len
  // (this process's code and heap): refuse it, as the TypeScript layer does.
  if (flags & MAP_FIXED) return Result(env, -EINVAL);
  void* addr = mmap(nullptr, static_cast<size_t>(len), prot, flags, fd, static_cast<off_t>(offset));
  if (addr == MAP_FAILED) return Errno(env);

  Region* r = new Region{addr, static_cast<size_t>(len), 1, prot, false, false, false, env, {}};
  int64_t ignored;
  napi_adjust_external_memory(env, len, &ignored);
  Napi::External<Region> handle = Napi::External<Region>::New(env, r, [](Napi::Env e, Region* reg) { Release(e, reg); });
  handle.TypeTag(&kRegionTag);

  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, handle);
  out.Set(1u, Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(addr))));
  return out;
}

void DetachAll(Napi::Env env, Region* r) {
  for (napi_ref ref : r->buffers) {
    napi_value ab;
    if (napi_get_reference_value(env, ref, &ab) == napi_ok && ab != nullptr) Napi::ArrayBuffer(env, ab).Detach();
  }
}

// munmap(handle) -> 0 | -errno. Detaches every ArrayBuffer before the pages go.
// A sealed region is put to the kernel as it is (it answers EPERM and every
// view stays valid); should it ever agree, the views are detached before any
// JavaScript runs again.
Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Region* r = GetRegion(info, 0);
  if (r == nullptr) return env.Undefined();
  if (r->unmapped) return Result(env, 0);
  if (r->sealed) {
    if (munmap(r->addr, r->len) < 0) return Errno(env);
    DetachAll(env, r);
  } else {
    DetachAll(env, r);
    Unregister(r);
    if (munmap(r->addr, r->len) < 0) return Errno(env);
  }
  r->unmapped = true;
  int64_t ignored;
  napi_adjust_external_memory(env, -static_cast<int64_t>(r->len), &ignored);
  return Result(env, 0);
}

#define REGION_OR_RETURN(i)                                  \
  Region* r = GetRegion(info, i);                            \
  if (r == nullptr) return info.Env().Undefined();           \
  if (r->unmapped) return Result(info.Env(), -EINVAL)

// mprotect(handle, prot) -> 0 | -errno
Napi::Value Mprotect(const Napi::CallbackInfo& info) {
  REGION_OR_RETURN(0);
  int32_t prot;
  if (!ArgInt32(info, 1, &prot)) return info.Env().Undefined();
  std::lock_guard<std::mutex> lock(WipeMutex());  // an exit-time wipe must not see PROT_WRITE that is gone
  if (mprotect(r->addr, r->len, prot) < 0) return Errno(info.Env());
  r->prot = prot;
  return Result(info.Env(), 0);
}

// madvise(handle, advice, offset, length) -> 0 | -errno
Napi::Value Madvise(const Napi::CallbackInfo& info) {
  REGION_OR_RETURN(0);
  int32_t advice;
  int64_t off, len;
  if (!ArgInt32(info, 1, &advice) || !ArgInt64(info, 2, &off) || !ArgInt64(info, 3, &len)) {
    return info.Env().Undefined();
  }
  if (off < 0 || len < 0 || static_cast<uint64_t>(off) + static_cast<uint64_t>(len) > r->len) {
    return Result(info.Env(), -EINVAL);
  }
  return Errno(info.Env(), madvise(static_cast<char*>(r->addr) + off, static_cast<size_t>(len), advice));
}

// msync(handle, flags) -> 0 | -errno
Napi::Value Msync(const Napi::CallbackInfo& info) {
  REGION_OR_RETURN(0);
  int32_t flags;
  if (!ArgInt32(info, 1, &flags)) return info.Env().Undefined();
  return Errno(info.Env(), msync(r->addr, r->len, flags));
}

// mlock/munlock go through syscall(2), not the C library's wrappers: a
// sanitizer runtime preloaded by `npm run test:asan` turns those into no-ops,
// and the tests would then check a lock that never happened.
Napi::Value Mlock(const Napi::CallbackInfo& info) {
  REGION_OR_RETURN(0);
  return Errno(info.Env(), static_cast<int>(syscall(SYS_mlock, r->addr, r->len)));
}

Napi::Value Munlock(const Napi::CallbackInfo& info) {
  REGION_OR_RETURN(0);
  return Errno(info.Env(), static_cast<int>(syscall(SYS_munlock, r->addr, r->len)));
}

long RawMseal(void* addr, size_t len, unsigned long flags) {
#ifdef SYS_mseal
  return syscall(SYS_mseal, addr, len, flags);
#else
  (void)addr; (void)len; (void)flags;
  errno = ENOSYS;
  return -1;
#endif
}

// mseal(handle) -> 0 | -errno. Seals the whole region for the life of the process.
Napi::Value Mseal(const Napi::CallbackInfo& info) {
  REGION_OR_RETURN(0);
  if (RawMseal(r->addr, r->len, 0) < 0) return Errno(info.Env());
  r->sealed = true;
  return Result(info.Env(), 0);
}

// msealProbe() -> -errno of mseal(NULL, 0, 1): EINVAL where the syscall exists
// (flags must be 0), ENOSYS where it does not. Touches no memory.
Napi::Value MsealProbe(const Napi::CallbackInfo& info) {
  long r = RawMseal(nullptr, 0, 1);
  return Errno(info.Env(), r);
}

// mremap(handle, newLength) -> 0 | -errno: mremap(2) in place (no
// MREMAP_MAYMOVE). Not part of the Mapping API: it exists so tests can show
// that the kernel refuses to resize a sealed region. Should a resize succeed,
// every view is detached first (a shrink would leave them dangling) and the
// region takes its new length.
Napi::Value Mremap(const Napi::CallbackInfo& info) {
  REGION_OR_RETURN(0);
  int64_t len;
  if (!ArgInt64(info, 1, &len)) return info.Env().Undefined();
  if (len <= 0) return Result(info.Env(), -EINVAL);
  if (mremap(r->addr, r->len, static_cast<size_t>(len), 0) == MAP_FAILED) return Errno(info.Env());
  DetachAll(info.Env(), r);
  int64_t ignored;
  napi_adjust_external_memory(info.Env(), len - static_cast<int64_t>(r->len), &ignored);
  std::lock_guard<std::mutex> lock(WipeMutex());
  r->len = static_cast<size_t>(len);
  return Result(info.Env(), 0);
}

// wipeOnRelease(handle) -> 0 | -errno: from now on the region is zeroed before
// it is unmapped (explicitly or by the garbage collector) and by wipeLive().
Napi::Value WipeOnRelease(const Napi::CallbackInfo& info) {
  REGION_OR_RETURN(0);
  if (r->sealed) return Result(info.Env(), -EPERM);  // a sealed region is never released
  std::lock_guard<std::mutex> lock(WipeMutex());
  r->wipe = true;
  WipeRegistry().insert(r);
  return Result(info.Env(), 0);
}

// wipe(handle) -> 0 | -errno: explicit_bzero(3) of the whole region; EACCES
// where it is not writable.
Napi::Value Wipe(const Napi::CallbackInfo& info) {
  REGION_OR_RETURN(0);
  std::lock_guard<std::mutex> lock(WipeMutex());
  if ((r->prot & PROT_WRITE) == 0) return Result(info.Env(), -EACCES);
  Zero(r);
  return Result(info.Env(), 0);
}

// wipeLive() -> number of regions zeroed: every wipe-on-release region of
// this env that is still mapped. Run from the process 'exit' hook; the pages
// stay mapped (later 'exit' listeners read zeros, not freed memory).
Napi::Value WipeLive(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  std::lock_guard<std::mutex> lock(WipeMutex());
  int n = 0;
  for (Region* r : WipeRegistry()) {
    if (r->owner != env) continue;
    Zero(r);
    n++;
  }
  return Result(info.Env(), n);
}

// view(handle, offset, length) -> ArrayBuffer over a window of the region.
Napi::Value View(const Napi::CallbackInfo& info) {
  REGION_OR_RETURN(0);
  int64_t off, len;
  if (!ArgInt64(info, 1, &off) || !ArgInt64(info, 2, &len)) return info.Env().Undefined();
  if (off < 0 || len < 0 || static_cast<uint64_t>(off) + static_cast<uint64_t>(len) > r->len) {
    return Result(info.Env(), -EINVAL);
  }
  napi_value ab = NewBuffer(info.Env(), r, static_cast<size_t>(off), static_cast<size_t>(len));
  if (ab == nullptr) return info.Env().Undefined();
  return Napi::Value(info.Env(), ab);
}

Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
}

}  // namespace

void InitMapping(Napi::Env env, Napi::Object exports) {
  exports.Set("mmap", Napi::Function::New(env, Mmap, "mmap"));
  exports.Set("munmap", Napi::Function::New(env, Munmap, "munmap"));
  exports.Set("mprotect", Napi::Function::New(env, Mprotect, "mprotect"));
  exports.Set("madvise", Napi::Function::New(env, Madvise, "madvise"));
  exports.Set("msync", Napi::Function::New(env, Msync, "msync"));
  exports.Set("mlock", Napi::Function::New(env, Mlock, "mlock"));
  exports.Set("munlock", Napi::Function::New(env, Munlock, "munlock"));
  exports.Set("mseal", Napi::Function::New(env, Mseal, "mseal"));
  exports.Set("msealProbe", Napi::Function::New(env, MsealProbe, "msealProbe"));
  exports.Set("mremap", Napi::Function::New(env, Mremap, "mremap"));
  exports.Set("wipeOnRelease", Napi::Function::New(env, WipeOnRelease, "wipeOnRelease"));
  exports.Set("wipe", Napi::Function::New(env, Wipe, "wipe"));
  exports.Set("wipeLive", Napi::Function::New(env, WipeLive, "wipeLive"));
  exports.Set("view", Napi::Function::New(env, View, "view"));
  exports.Set("pageSize", Napi::Function::New(env, PageSize, "pageSize"));
}

}  // namespace memseal
