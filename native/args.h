// args.h — cheap re-checks of argument types in native code. The TypeScript
// layer validates first and throws Node-style errors; these checks only stop a
// direct caller of the private binding from reaching a syscall with garbage.
// They throw a JavaScript TypeError (never a C++ exception, never abort).
#pragma once

#include <errno.h>
#include <napi.h>
#include <cstdint>

#include "safe.h"

namespace memseal {

inline bool ArgError(const Napi::CallbackInfo& info, const char* what) {
  ThrowTypeError(info.Env(), what);  // not Napi::TypeError: that aborts in a terminating worker
  return false;
}

// A JS number holding an integer in the int64 range.
inline bool ArgInt64(const Napi::CallbackInfo& info, size_t i, int64_t* out) {
  *out = 0;
  if (info.Length() <= i || !info[i].IsNumber()) return ArgError(info, "expected an integer argument");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= -9007199254740991.0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<int64_t>(d))) {
    return ArgError(info, "expected a safe integer argument");
  }
  *out = static_cast<int64_t>(d);
  return true;
}

inline bool ArgInt32(const Napi::CallbackInfo& info, size_t i, int32_t* out) {
  *out = 0;
  int64_t v = 0;
  if (!ArgInt64(info, i, &v)) return false;
  if (v < INT32_MIN || v > INT32_MAX) return ArgError(info, "expected a 32-bit integer argument");
  *out = static_cast<int32_t>(v);
  return true;
}

inline bool ArgUint32(const Napi::CallbackInfo& info, size_t i, uint32_t* out) {
  *out = 0;
  int64_t v = 0;
  if (!ArgInt64(info, i, &v)) return false;
  if (v < 0 || v > UINT32_MAX) return ArgError(info, "expected an unsigned 32-bit integer argument");
  *out = static_cast<uint32_t>(v);
  return true;
}

inline bool ArgFd(const Napi::CallbackInfo& info, size_t i, int* out) {
  *out = -1;
  int32_t v = 0;
  if (!ArgInt32(info, i, &v)) return false;
  if (v < 0) return ArgError(info, "expected a file descriptor");
  *out = v;
  return true;
}

// A typed array argument of `type`: its data and element count, from one
// napi_get_typedarray_info (which answers napi_invalid_arg, with no exception
// pending, for anything that is not a typed array). node-addon-api's
// IsTypedArray() + TypedArrayType() + As<Uint8Array>() make four calls into
// Node-API for the same answer, on paths that run once per message.
inline bool ArgTyped(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, void** data, size_t* len,
                     const char* what) {
  *data = nullptr;
  *len = 0;
  napi_typedarray_type t;
  size_t n = 0;
  void* p = nullptr;
  if (info.Length() <= i || napi_get_typedarray_info(info.Env(), info[i], &t, &n, &p, nullptr, nullptr) != napi_ok ||
      t != type) {
    return ArgError(info, what);
  }
  *data = p;
  *len = n;
  return true;
}

// The bytes of a Uint8Array (or Buffer) argument, or false with a TypeError.
inline bool ArgBytes(const Napi::CallbackInfo& info, size_t i, uint8_t** data, size_t* len) {
  void* p;
  bool ok = ArgTyped(info, i, napi_uint8_array, &p, len, "expected a Uint8Array");
  *data = static_cast<uint8_t*>(p);
  return ok;
}

// An Int32Array argument: its data and element count.
inline bool ArgInt32Array(const Napi::CallbackInfo& info, size_t i, int32_t** data, size_t* len) {
  void* p;
  bool ok = ArgTyped(info, i, napi_int32_array, &p, len, "expected an Int32Array");
  *data = static_cast<int32_t*>(p);
  return ok;
}

// Result of a syscall: the value, or -errno.
inline Napi::Value Result(Napi::Env env, int64_t r) {
  return Napi::Value(env, Double(env, static_cast<double>(r)));
}

// Result of a libc call that returns -1 and sets errno: the value, or -errno.
inline Napi::Value Errno(Napi::Env env, int64_t r) { return Result(env, r < 0 ? -errno : r); }

// -errno of the libc call that has just failed.
inline Napi::Value Errno(Napi::Env env) { return Result(env, -errno); }

}  // namespace memseal
