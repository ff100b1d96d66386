// native.h — the per-concept init functions that addon.cc calls.
#pragma once

#include <napi.h>

#include <initializer_list>
#include <utility>

#include "safe.h"

namespace memseal {

// A table of kernel constants for TypeScript: ConstTable(env, { MEMSEAL_NAMED(F_ADD_SEALS), ... }).
// Made through safe.h like every value JavaScript receives (Init runs in
// workers that may be terminating too).
inline Napi::Value ConstTable(Napi::Env env, std::initializer_list<std::pair<const char*, double>> items) {
  napi_value table;
  if (napi_create_object(env, &table) != napi_ok) return Napi::Value(env, Undefined(env));
  for (const auto& item : items) {
    if (napi_set_named_property(env, table, item.first, Double(env, item.second)) != napi_ok) break;
  }
  return Napi::Value(env, table);
}
#define MEMSEAL_NAMED(name) {#name, static_cast<double>(name)}

void InitConstants(Napi::Env env, Napi::Object exports);
void InitFd(Napi::Env env, Napi::Object exports);
void InitMemfd(Napi::Env env, Napi::Object exports);
void InitMapping(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitRecv(Napi::Env env, Napi::Object exports);
void InitPoll(Napi::Env env, Napi::Object exports);
void InitPool(Napi::Env env, Napi::Object exports);
void InitRelease(Napi::Env env, Napi::Object exports);

}  // namespace memseal
