// release.cc — close(2) and munmap(2) on the libuv thread pool, and descriptors
// owned by native code.
//
// Freeing a large shmem file is expensive: the last munmap(2) tears down the
// page tables and the last close(2) frees every page (about 12 ms for 64 MiB
// on the development machine). Defer() hands such work to the thread pool.
//
// fdOpen() adopts a descriptor into a type-tagged External: fdClose() closes
// it (now, or on the thread pool), and if neither the program nor the garbage
// collector did, the environment cleanup hook closes it when the worker or
// process environment is torn down — FinalizationRegistry callbacks never run
// then, so an unclosed SealedBuffer in a terminated worker would leak its
// memfd and all its pages.
#include "release.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <set>

#include "args.h"
#include "native.h"

namespace memseal {

namespace {

struct Job {
  void (*execute)(void*);
  void (*complete)(napi_env, void*);
  void* data;
  napi_async_work work;
  bool ran;
};

void JobExecute(napi_env, void* arg) {
  Job* j = static_cast<Job*>(arg);
  j->execute(j->data);
  j->ran = true;
}

void JobComplete(napi_env env, napi_status, void* arg) {
  Job* j = static_cast<Job*>(arg);
  if (!j->ran) j->execute(j->data);  // cancelled before it ran
  napi_delete_async_work(env, j->work);
  j->complete(env, j->data);
  delete j;
}

}  // namespace

bool Defer(napi_env env, void (*execute)(void*), void (*complete)(napi_env, void*), void* data) {
  Job* j = new Job{execute, complete, data, nullptr, false};
  napi_value name;
  if (napi_create_string_utf8(env, "memseal.release", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, nullptr, name, JobExecute, JobComplete, j, &j->work) != napi_ok) {
    delete j;
    return false;
  }
  if (napi_queue_async_work(env, j->work) != napi_ok) {
    napi_delete_async_work(env, j->work);
    delete j;
    return false;
  }
  return true;
}

namespace {

// Per environment: its tracked descriptors. The entry and its cleanup hook stay from the first
// descriptor tracked until the environment goes (CloseUnadopted erases it): adding and removing
// a hook per message cost two updates of Node's hook table and four allocations per message.
struct Tracked {
  std::set<int> fds;
};
struct Unadopted {
  std::mutex mu;
  std::map<napi_env, Tracked> fds;
};

Unadopted& Pending() {
  static Unadopted* u = new Unadopted;  // never destroyed: hooks may run during static destruction
  return *u;
}

void CloseUnadopted(void* arg) {
  napi_env env = static_cast<napi_env>(arg);
  std::set<int> fds;
  {
    std::lock_guard<std::mutex> lock(Pending().mu);
    auto it = Pending().fds.find(env);
    if (it == Pending().fds.end()) return;
    fds.swap(it->second.fds);
    Pending().fds.erase(it);
  }
  for (int fd : fds) CloseFd(fd);
}

}  // namespace

int CloseFd(int fd) {
  if (close(fd) == 0 || errno == EINTR) return 0;
  return -errno;
}

void TrackUnadopted(napi_env env, int fd) {
  bool first;
  {
    std::lock_guard<std::mutex> lock(Pending().mu);
    auto ins = Pending().fds.try_emplace(env);
    first = ins.second;
    ins.first->second.fds.insert(fd);
  }
  // One hook per environment, from its first tracked descriptor until it is torn down.
  if (first) napi_add_env_cleanup_hook(env, CloseUnadopted, env);
}

void Untrack(napi_env env, int fd) {
  std::lock_guard<std::mutex> lock(Pending().mu);
  auto it = Pending().fds.find(env);
  if (it != Pending().fds.end()) it->second.fds.erase(fd);
}

namespace {

const napi_type_tag kFdTag = {0x6d656d7365616c00ULL, 0x6664000000000003ULL};

struct OwnedFd {
  napi_env env;
  int fd;        // -1 once closed (or handed to a close job)
  bool hooked;   // the env cleanup hook is registered
};

void CleanupHook(void* arg) {
  OwnedFd* o = static_cast<OwnedFd*>(arg);
  o->hooked = false;  // Node removes a hook as it runs it
  if (o->fd >= 0) CloseFd(o->fd);
  o->fd = -1;
}

void Unhook(OwnedFd* o) {
  if (o->hooked) napi_remove_env_cleanup_hook(o->env, CleanupHook, o);
  o->hooked = false;
}

void OnCollected(napi_env, void* data, void*) {
  OwnedFd* o = static_cast<OwnedFd*>(data);
  Unhook(o);
  if (o->fd >= 0) CloseFd(o->fd);
  delete o;
}

struct CloseJob {
  int fd;
};

void CloseExecute(void* data) { CloseFd(static_cast<CloseJob*>(data)->fd); }
void CloseComplete(napi_env, void* data) { delete static_cast<CloseJob*>(data); }

// A handle that owns fd: fdClose, the garbage collector or the environment's
// teardown closes it, whichever comes first. nullptr if the environment is
// going (fd is then closed, now or by the finalizer: it was handed over).
napi_value Adopt(napi_env env, int fd) {
  OwnedFd* o = new OwnedFd{env, fd, false};
  if (napi_add_env_cleanup_hook(env, CleanupHook, o) == napi_ok) o->hooked = true;
  bool armed;
  napi_value h = TaggedExternal(env, o, OnCollected, &kFdTag, &armed);
  if (h == nullptr && !armed) OnCollected(env, o, nullptr);
  return h;
}

// fdOpen(fd) -> handle. Adopts fd (see Adopt).
Napi::Value FdOpen(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  Untrack(env, fd);  // received or duplicated by a channel: owned from here on
  napi_value h = Adopt(env, fd);
  return Napi::Value(env, h != nullptr ? h : Undefined(env));
}

}  // namespace

napi_value Owned(napi_env env, int fd) {
  napi_value items[2] = {Double(env, fd), Adopt(env, fd)};
  return items[1] != nullptr ? ArrayOf(env, items, 2) : Undefined(env);
}

namespace {

// fdClose(handle, deferred) -> 0 | -errno. Idempotent. With `deferred` the
// close(2) runs on the thread pool (the descriptor number stays taken until
// then, so it cannot be reused under anyone).
Napi::Value FdClose(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  OwnedFd* o = static_cast<OwnedFd*>(UnwrapTagged(env, info.Length() > 0 ? static_cast<napi_value>(info[0]) : nullptr,
                                                  &kFdTag, "expected a descriptor handle"));
  if (o == nullptr) return info.Env().Undefined();
  bool deferred = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  int fd = o->fd;
  if (fd < 0) return Result(info.Env(), 0);
  o->fd = -1;
  Unhook(o);
  if (deferred) {
    CloseJob* j = new CloseJob{fd};
    if (Defer(env, CloseExecute, CloseComplete, j)) return Result(info.Env(), 0);
    delete j;
  }
  return Result(info.Env(), CloseFd(fd));
}

}  // namespace

void InitRelease(Napi::Env env, Napi::Object exports) {
  exports.Set("fdOpen", Napi::Function::New(env, FdOpen, "fdOpen"));
  exports.Set("fdClose", Napi::Function::New(env, FdClose, "fdClose"));
}

}  // namespace memseal
