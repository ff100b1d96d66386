// mapping.cc — mmap(2), munmap(2), mprotect(2), madvise(2), msync(2), mlock(2),
// munlock(2) and mseal(2) over one owned region.
//
// Ownership: a region is reachable from JavaScript through a type-tagged
// External handle and through the external ArrayBuffers created over it (the
// whole region, or windows of it). Each of those holds references: the
// handle one, every ArrayBuffer two — one for its backing store (released by
// the runtime's finalizer) and one for the JavaScript object itself (released
// by a finalizer attached to it). The address range is given back only when
// all of them are gone, so a forgotten mapping does not leak and a view that
// outlives its Mapping object never points at freed memory.
//
// An explicit munmap() detaches every ArrayBuffer first, so a stale view reads as length 0. Work
// already handed to the thread pool (crypto.randomFill, fs.read, zlib) holds a raw pointer and is not
// stopped by detaching; Node keeps the ArrayBuffer object alive until such work completes. So while
// any view object is alive, munmap() does not free the address range: it replaces the pages with
// fresh anonymous memory (mmap MAP_FIXED over the range), which lets the file's pages go at once
// while late writers land in harmless private pages; the range itself is unmapped when the last view
// is collected. A region that never handed out a view is simply unmapped.
//
// Large regions are released on the libuv thread pool (munmap(handle, true)): the views are
// detached at once and the page-table teardown happens off the event loop. Finalizers and
// environment teardown release synchronously (Node waits for queued work before it tears an
// environment down).
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
#include "release.h"

namespace memseal {
namespace {

const napi_type_tag kRegionTag = {0x6d656d7365616c00ULL, 0x726567696f6e0001ULL};

struct View;

struct Region {
  void* addr;
  size_t len;
  int refs;        // holders of the range: the handle until munmap(), each view's backing store
                   // and JS object, each pending release job
  bool handle;     // the JavaScript handle is alive (the struct outlives the range for it)
  int prot;        // as last set by mmap/mprotect: wiping needs PROT_WRITE
  bool unmapped;   // munmap() was called (or the pages were dropped): the views are detached
  bool reserved;   // the address range [addr, addr + len) is still ours and must be unmapped at the end
  bool sealed;     // mseal'd: the kernel refuses munmap until exit
  bool wipe;       // zero the pages before they are unmapped (and at exit)
  napi_env owner;  // the env whose 'exit' hook wipes it
  View* views;     // live view objects (a list), for detaching
  int64_t reported;  // what napi_adjust_external_memory was told (ReportedSize)
  int flags;         // MAP_* as mapped
};

// One ArrayBuffer over (part of) a region. Freed when both its finalizers ran.
struct View {
  Region* region;
  napi_ref ref;    // weak, from napi_add_finalizer
  int parts;       // finalizers still to run: backing store, object
  View* prev;
  View* next;
};

// What a region counts toward V8's external memory. An anonymous region is this process's own
// memory: all of it. A file mapping's pages belong to the file and stay allocated while any
// descriptor or mapping of it is open, so unmapping frees page tables, not pages. Counted in full,
// a 64 MiB receiver went through ~1.5 collections per handoff for memory it released explicitly;
// capped, ~1 (node bench/gc.js: 73-75 -> 51 in 50 opens; the rest is V8's own count of the external
// ArrayBuffer over the pages, see docs/bench.md). A forgotten file mapping still adds pressure: a
// handful bring on the collection that unmaps them.
constexpr int64_t kFileMappingReportCap = 8 << 20;
int64_t ReportedSize(size_t len, int flags) {
  int64_t n = static_cast<int64_t>(len);
  return (flags & MAP_ANONYMOUS) != 0 || n < kFileMappingReportCap ? n : kFileMappingReportCap;
}

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

// Wipes (if asked) and forgets a region whose pages are about to go.
void Unregister(Region* r) {
  if (!r->wipe) return;
  std::lock_guard<std::mutex> lock(WipeMutex());
  Zero(r);
  WipeRegistry().erase(r);
}

void Account(napi_env env, int64_t delta) {
  int64_t ignored;
  napi_adjust_external_memory(env, delta, &ignored);
}

// Drops one hold on the range. At the last one nothing can reach the pages
// any more: they go, and the struct too unless the handle still needs it.
void Release(napi_env env, Region* r) {
  if (--r->refs > 0) return;
  if (!r->unmapped) {
    Unregister(r);
    Account(env, -r->reported);
    r->unmapped = true;
  }
  if (r->reserved && !r->sealed) munmap(r->addr, r->len);
  r->reserved = false;
  if (r->wipe) {  // a sealed region skipped Unregister: it must not outlive its entry
    std::lock_guard<std::mutex> lock(WipeMutex());
    WipeRegistry().erase(r);
    r->wipe = false;
  }
  if (!r->handle) delete r;
}

void ViewDone(View* v) {
  if (--v->parts == 0) delete v;
}

// The runtime let go of a view's backing store.
void OnStoreFreed(napi_env env, void*, void* hint) {
  View* v = static_cast<View*>(hint);
  Region* r = v->region;
  ViewDone(v);
  Release(env, r);
}

// A view's ArrayBuffer object was collected (or the environment is going).
void OnViewCollected(napi_env env, void* data, void*) {
  View* v = static_cast<View*>(data);
  Region* r = v->region;
  if (v->ref != nullptr) napi_delete_reference(env, v->ref);
  v->ref = nullptr;
  if (v->prev != nullptr) v->prev->next = v->next; else if (r->views == v) r->views = v->next;
  if (v->next != nullptr) v->next->prev = v->prev;
  v->prev = v->next = nullptr;
  ViewDone(v);
  Release(env, r);
}

// An external ArrayBuffer over [offset, offset + length) of the region, or
// nullptr with a pending exception (or none, when the env is shutting down).
// The references are taken before the runtime is asked, so a runtime that
// refuses the buffer and runs its finalizer at once (Node 20 does, above
// buffer.constants.MAX_LENGTH) gives back only what this call took.
napi_value NewBuffer(napi_env env, Region* r, size_t offset, size_t length) {
  View* v = new View{r, nullptr, 2, nullptr, nullptr};
  r->refs += 2;
  napi_value ab = nullptr;
  napi_status st = napi_create_external_arraybuffer(env, static_cast<char*>(r->addr) + offset, length,
                                                    OnStoreFreed, v, &ab);
  if (st != napi_ok || ab == nullptr) {
    r->refs--;  // the object part never happened
    if (st == napi_pending_exception || st == napi_invalid_arg) {
      // Refused before any buffer existed (e.g. the env is shutting down): no finalizer will run.
      r->refs--;
      delete v;
    } else {
      ViewDone(v);  // the store finalizer ran already or will run: it releases the rest
    }
    return nullptr;
  }
  if (napi_add_finalizer(env, ab, v, OnViewCollected, nullptr, &v->ref) != napi_ok) {
    // Untracked, it could not be detached by munmap: never hand it out.
    napi_detach_arraybuffer(env, ab);
    v->parts--;  // the store finalizer remains
    Release(env, r);
    return nullptr;
  }
  v->next = r->views;
  if (r->views != nullptr) r->views->prev = v;
  r->views = v;
  return ab;
}

Region* GetRegion(const Napi::CallbackInfo& info, size_t i) {
  napi_value v = info.Length() > i ? static_cast<napi_value>(info[i]) : nullptr;
  return static_cast<Region*>(UnwrapTagged(info.Env(), v, &kRegionTag, "expected a mapping handle"));
}

void OnHandleCollected(napi_env env, void* data, void*) {
  Region* r = static_cast<Region*>(data);
  r->handle = false;
  if (!r->unmapped) Release(env, r);  // its hold on the range (munmap() dropped it already)
  else if (r->refs == 0) delete r;
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

  Region* r = new Region{addr, static_cast<size_t>(len), 1, true, prot, false, true, false, false, env, nullptr,
                         ReportedSize(static_cast<size_t>(len), flags), flags};
  Account(env, r->reported);
  bool armed;
  napi_value handle = TaggedExternal(env, r, OnHandleCollected, &kRegionTag, &armed);
  if (handle == nullptr) {  // the environment is going: nobody will ever see this mapping
    if (!armed) OnHandleCollected(env, r, nullptr);  // else the finalizer will
    return env.Undefined();
  }
  napi_value items[2] = {handle, nullptr};
  if (napi_create_bigint_uint64(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(addr)), &items[1]) != napi_ok) {
    return env.Undefined();
  }
  return Napi::Value(env, ArrayOf(env, items, 2));
}

void DetachAll(napi_env env, Region* r) {
  for (View* v = r->views; v != nullptr; v = v->next) {
    napi_value ab;
    if (v->ref != nullptr && napi_get_reference_value(env, v->ref, &ab) == napi_ok && ab != nullptr) {
      napi_detach_arraybuffer(env, ab);
    }
  }
}

// Gives the pages back; the region's state is updated by the caller. With
// `keep` the address range stays reserved (fresh anonymous pages replace the
// old ones); else it is unmapped. Runs on the event loop or the thread pool.
int DropPages(void* addr, size_t len, bool keep) {
  if (!keep) return munmap(addr, len) < 0 ? -errno : 0;
  void* p = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  return p == MAP_FAILED ? -errno : 0;
}

struct DropJob {
  Region* region;
  bool keep;
  int result;
};

void DropExecute(void* data) {
  DropJob* j = static_cast<DropJob*>(data);
  j->result = DropPages(j->region->addr, j->region->len, j->keep);
}

void DropComplete(napi_env env, void* data) {
  DropJob* j = static_cast<DropJob*>(data);
  // Replacing failed (e.g. ENOMEM at vm.max_map_count): the old pages stay
  // reserved, and are unmapped with the range when the last view goes.
  if (!j->keep && j->result == 0) j->region->reserved = false;
  Release(env, j->region);
  delete j;
}

// munmap(handle, deferred) -> 0 | -errno. Detaches every ArrayBuffer, then
// lets the pages go — on the thread pool when `deferred`. A sealed region is
// put to the kernel as it is (it answers EPERM and every view stays valid);
// should it ever agree, the views are detached before any JavaScript runs.
Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Region* r = GetRegion(info, 0);
  if (r == nullptr) return env.Undefined();
  bool deferred = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  if (r->unmapped) return Result(env, 0);
  if (r->sealed) {
    if (munmap(r->addr, r->len) < 0) return Errno(env);
    DetachAll(env, r);
    r->reserved = false;
    r->unmapped = true;
  } else {
    DetachAll(env, r);
    Unregister(r);
    // Only the handle holds it: no view, no backing store, no job can reach the pages.
    bool keep = r->refs > 1;
    DropJob* job = deferred ? new DropJob{r, keep, 0} : nullptr;
    if (job != nullptr && Defer(env, DropExecute, DropComplete, job)) {
      r->refs++;  // the job's, released in DropComplete
    } else {
      delete job;
      int e = DropPages(r->addr, r->len, keep);
      if (e < 0 && !keep) return Result(env, e);
      if (!keep) r->reserved = false;
    }
    r->unmapped = true;
  }
  Account(env, -r->reported);
  Release(env, r);  // the handle's hold: the range goes when the views and jobs have let go
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
  int64_t reported = ReportedSize(static_cast<size_t>(len), r->flags);
  Account(info.Env(), reported - r->reported);
  r->reported = reported;
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

// regionState(handle) -> [holds, reserved]: how many holders keep the address
// range (views' stores and objects, jobs, the handle until munmap) and whether
// it is still mapped by this region. For tests: /proc/self/maps cannot tell a
// range still ours from the same addresses mapped anew by another allocator.
Napi::Value RegionState(const Napi::CallbackInfo& info) {
  Region* r = GetRegion(info, 0);
  if (r == nullptr) return info.Env().Undefined();
  napi_value items[2] = {Double(info.Env(), r->refs), Double(info.Env(), r->reserved ? 1 : 0)};
  return Napi::Value(info.Env(), ArrayOf(info.Env(), items, 2));
}

Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Result(info.Env(), sysconf(_SC_PAGESIZE));
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
  exports.Set("regionState", Napi::Function::New(env, RegionState, "regionState"));
}

}  // namespace memseal
