// safe.h — N-API calls that survive an environment that is shutting down.
//
// The one N-API style of native/: node-addon-api reads arguments
// (Napi::CallbackInfo, Is*(), As<>(), Value(): nothing there allocates or
// throws) and registers functions at Init; every value handed to JavaScript,
// every tag and every throw goes through the raw N-API helpers below, which
// check each status. NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS (binding.gyp)
// is a net under the Init-time registrations only: it makes node-addon-api's
// failed-status path give up quietly in a terminating environment instead of
// aborting, but its Error construction still allocates, so hot paths never
// rely on it.
//
// A worker thread can be terminated at any instruction, including inside one
// of our functions or during module Init. From then on every N-API call that
// could run JavaScript answers napi_pending_exception (with no exception
// actually pending), and node-addon-api's wrappers turn a failed status into
// an Error object whose construction is itself fatal in that state. So the
// paths that build objects, tag them, or throw go through these helpers:
// they check every status and give up quietly (the result is then never seen
// by JavaScript, which has stopped). Resources are released by the caller on
// failure, or by the finalizers and cleanup hooks the environment still runs.
#pragma once

#include <node_api.h>
#include <stdint.h>

namespace memseal {

// A TypeError, or nothing if the environment can no longer throw.
inline void ThrowTypeError(napi_env env, const char* what) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || pending) return;
  napi_throw_type_error(env, nullptr, what);
}

inline napi_value Undefined(napi_env env) {
  napi_value v = nullptr;
  napi_get_undefined(env, &v);
  return v;
}

inline napi_value String(napi_env env, const char* utf8) {
  napi_value v = nullptr;
  if (napi_create_string_utf8(env, utf8, NAPI_AUTO_LENGTH, &v) != napi_ok) return Undefined(env);
  return v;
}

inline napi_value Double(napi_env env, double d) {
  napi_value v = nullptr;
  if (napi_create_double(env, d, &v) != napi_ok) return Undefined(env);
  return v;
}

// [a, b, ...] of numbers (or given values); undefined if the env is going.
inline napi_value ArrayOf(napi_env env, const napi_value* items, uint32_t n) {
  napi_value arr;
  if (napi_create_array_with_length(env, n, &arr) != napi_ok) return Undefined(env);
  for (uint32_t i = 0; i < n; i++) {
    if (items[i] == nullptr || napi_set_element(env, arr, i, items[i]) != napi_ok) return Undefined(env);
  }
  return arr;
}

// An External tagged with `tag`, whose finalizer is `fin`. nullptr if it could
// not be made; then *finalizer_armed says whether `fin` will still run (an
// External that exists but could not be tagged is left to the collector).
inline napi_value TaggedExternal(napi_env env, void* data, napi_finalize fin, const napi_type_tag* tag,
                                 bool* finalizer_armed) {
  napi_value ext;
  *finalizer_armed = false;
  if (napi_create_external(env, data, fin, nullptr, &ext) != napi_ok || ext == nullptr) return nullptr;
  *finalizer_armed = true;
  if (napi_type_tag_object(env, ext, tag) != napi_ok) return nullptr;
  return ext;
}

// The data of a tagged External at argv[i], or nullptr with a TypeError.
inline void* UnwrapTagged(napi_env env, napi_value v, const napi_type_tag* tag, const char* what) {
  napi_valuetype t;
  bool ok = false;
  void* data = nullptr;
  if (v != nullptr && napi_typeof(env, v, &t) == napi_ok && t == napi_external &&
      napi_check_object_type_tag(env, v, tag, &ok) == napi_ok && ok &&
      napi_get_value_external(env, v, &data) == napi_ok && data != nullptr) {
    return data;
  }
  ThrowTypeError(env, what);
  return nullptr;
}

}  // namespace memseal
