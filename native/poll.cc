// poll.cc — a libuv poll watcher (uv_poll_t, epoll(7) underneath) that calls
// back into JavaScript when a descriptor becomes readable, writable or hung up.
// Channel and ChannelServer drive their sockets with it.
//
// Poll handle ownership: pollOpen() adopts the descriptor. The Watch struct is
// held by the JavaScript External (until its finalizer) and by libuv (until
// the uv_close callback); it is freed when both have let go. pollClose(), the
// finalizer and the environment cleanup hook each close the handle and the
// descriptor if that has not happened yet, so whichever runs first does it
// and the others do nothing.
//
// The environment cleanup hook is an asynchronous one (napi_add_async_cleanup_hook),
// removed only from the uv_close callback: Node keeps the worker's loop
// running until it is removed. With a plain hook, a handle closed at
// teardown got its close callback after Node had unloaded the addon (an
// addon loaded only in a worker is dlclose()d when the worker ends): SIGSEGV
// in the parent process, at uv__finish_close, on every such worker's exit.
#include <errno.h>
#include <unistd.h>
#include <uv.h>

#include "args.h"
#include "native.h"
#include "release.h"

namespace memseal {
namespace {

const napi_type_tag kWatchTag = {0x6d656d7365616c00ULL, 0x77617463680a0002ULL};

struct Watch {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;          // strong while open: an open watcher keeps its JS side alive (null once forgotten)
  napi_async_context async;
  int fd;
  int refs;                   // the External and the libuv handle
  bool closed;                // uv_close called and fd closed
  napi_async_cleanup_hook_handle hook;  // until the uv_close callback (null if none)
};

void Release(Watch* w) {
  if (--w->refs == 0) delete w;
}

void OnUvClosed(uv_handle_t* h) {
  Watch* w = static_cast<Watch*>(h->data);
  // Done with libuv: teardown may go on (and unload this code) from here.
  if (w->hook != nullptr) napi_remove_async_cleanup_hook(w->hook);
  w->hook = nullptr;
  Release(w);
}

// Stops the watcher and closes the descriptor. With `teardown` the napi
// objects are left to the environment, which frees them itself.
int Shut(Watch* w, bool teardown) {
  if (w->closed) return 0;
  w->closed = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnUvClosed);  // stops polling now; frees later
  int r = CloseFd(w->fd);
  w->fd = -1;
  if (!teardown) {
    if (w->callback != nullptr) napi_delete_reference(w->env, w->callback);
    if (w->async != nullptr) napi_async_destroy(w->env, w->async);
  }
  w->callback = nullptr;
  w->async = nullptr;
  return r;
}

// Environment teardown: close the handle (if not yet); OnUvClosed removes the
// hook, which tells Node this cleanup is finished.
void CleanupHook(napi_async_cleanup_hook_handle, void* arg) { Shut(static_cast<Watch*>(arg), true); }

void OnPoll(uv_poll_t* handle, int status, int events) {
  Watch* w = static_cast<Watch*>(handle->data);
  if (w->closed || w->callback == nullptr) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, argv[2], result;
  if (napi_get_reference_value(env, w->callback, &fn) == napi_ok && fn != nullptr &&
      napi_get_global(env, &recv) == napi_ok && napi_create_int32(env, status, &argv[0]) == napi_ok &&
      napi_create_int32(env, events, &argv[1]) == napi_ok) {
    // make_callback, not call_function: runs the microtask queue afterwards
    // (promises resolved in the callback settle now) and keeps async context.
    napi_status st = napi_make_callback(env, w->async, recv, fn, 2, argv, &result);
    bool pending = false;
    // A terminating environment answers napi_pending_exception with nothing pending: nothing to report.
    if (st == napi_pending_exception && napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

void OnCollected(napi_env, void* data, void*) {
  Watch* w = static_cast<Watch*>(data);
  Shut(w, false);
  Release(w);
}

Watch* GetWatch(const Napi::CallbackInfo& info, size_t i) {
  napi_value v = info.Length() > i ? static_cast<napi_value>(info[i]) : nullptr;
  return static_cast<Watch*>(UnwrapTagged(info.Env(), v, &kWatchTag, "expected a poll handle"));
}

// pollOpen(fd, callback(status, events)) -> handle | -errno. Adopts fd: from
// now on pollClose (or the finalizer, or environment teardown) closes it.
Napi::Value PollOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsFunction()) return (ArgError(info, "expected a function"), env.Undefined());
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return Result(env, -EINVAL);

  Untrack(env, fd);  // the caller's now; adopted below unless uv_poll_init refuses
  Watch* w = new Watch{};
  w->env = env;
  w->fd = fd;
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    delete w;
    return Result(env, r);  // libuv errors are -errno on Unix
  }
  w->poll.data = w;
  w->refs = 2;
  napi_value resource_name;
  napi_create_string_utf8(env, "memseal.Channel", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, nullptr, resource_name, &w->async);
  napi_create_reference(env, info[1], 1, &w->callback);
  if (napi_add_async_cleanup_hook(env, CleanupHook, w, &w->hook) != napi_ok) w->hook = nullptr;

  bool armed;
  napi_value handle = TaggedExternal(env, w, OnCollected, &kWatchTag, &armed);
  if (handle == nullptr) {  // the environment is going: close now, or leave it to the finalizer
    if (!armed) OnCollected(env, w, nullptr);
    return env.Undefined();
  }
  return Napi::Value(env, handle);
}

// pollStart(handle, events) -> 0 | -errno. events: UV_READABLE | UV_WRITABLE |
// UV_DISCONNECT; 0 stops polling (the descriptor stays open).
Napi::Value PollStart(const Napi::CallbackInfo& info) {
  Watch* w = GetWatch(info, 0);
  int32_t events;
  if (w == nullptr || !ArgInt32(info, 1, &events)) return info.Env().Undefined();
  if (w->closed) return Result(info.Env(), -EBADF);
  if (events != 0 && w->callback == nullptr) return Result(info.Env(), -EINVAL);  // forgotten: never again
  int r = events == 0 ? uv_poll_stop(&w->poll) : uv_poll_start(&w->poll, events, OnPoll);
  return Result(info.Env(), r);
}

// pollForget(handle) -> 0: stops polling for good and lets go of the
// callback. Nothing native then keeps the JavaScript side alive: once it is
// unreachable, the handle's finalizer closes the descriptor. For a channel the
// peer hung up on whose unread messages are read on demand, if ever.
Napi::Value PollForget(const Napi::CallbackInfo& info) {
  Watch* w = GetWatch(info, 0);
  if (w == nullptr) return info.Env().Undefined();
  if (w->closed) return Result(info.Env(), -EBADF);
  uv_poll_stop(&w->poll);
  if (w->callback != nullptr) napi_delete_reference(w->env, w->callback);
  w->callback = nullptr;
  return Result(info.Env(), 0);
}

// pollRef(handle, ref: boolean) -> 0: whether the watcher keeps the loop alive.
Napi::Value PollRef(const Napi::CallbackInfo& info) {
  Watch* w = GetWatch(info, 0);
  if (w == nullptr) return info.Env().Undefined();
  if (info.Length() < 2 || !info[1].IsBoolean()) return (ArgError(info, "expected a boolean"), info.Env().Undefined());
  if (w->closed) return Result(info.Env(), -EBADF);
  if (info[1].As<Napi::Boolean>().Value()) {
    uv_ref(reinterpret_cast<uv_handle_t*>(&w->poll));
  } else {
    uv_unref(reinterpret_cast<uv_handle_t*>(&w->poll));
  }
  return Result(info.Env(), 0);
}

// pollClose(handle) -> 0 | -errno of close(2). Idempotent.
Napi::Value PollClose(const Napi::CallbackInfo& info) {
  Watch* w = GetWatch(info, 0);
  if (w == nullptr) return info.Env().Undefined();
  return Result(info.Env(), Shut(w, false));
}

}  // namespace

void InitPoll(Napi::Env env, Napi::Object exports) {
  exports.Set("pollOpen", Napi::Function::New(env, PollOpen, "pollOpen"));
  exports.Set("pollStart", Napi::Function::New(env, PollStart, "pollStart"));
  exports.Set("pollForget", Napi::Function::New(env, PollForget, "pollForget"));
  exports.Set("pollRef", Napi::Function::New(env, PollRef, "pollRef"));
  exports.Set("pollClose", Napi::Function::New(env, PollClose, "pollClose"));

  exports.Set("pollConstants",
      ConstTable(env, {MEMSEAL_NAMED(UV_READABLE), MEMSEAL_NAMED(UV_WRITABLE), MEMSEAL_NAMED(UV_DISCONNECT)}));
}

}  // namespace memseal
