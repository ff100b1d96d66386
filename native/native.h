// native.h — the per-concept init functions that addon.cc calls.
#pragma once

#include <napi.h>

#include <initializer_list>
#include <utility>

namespace memseal {

// A table of kernel constants for TypeScript: ConstTable(env, { MEMSEAL_NAMED(F_ADD_SEALS), ... }).
inline Napi::Object ConstTable(Napi::Env env, std::initializer_list<std::pair<const char*, double>> items) {
  Napi::Object table = Napi::Object::New(env);
  for (const auto& item : items) table.Set(item.first, Napi::Number::New(env, item.second));
  return table;
}
#define MEMSEAL_NAMED(name) {#name, static_cast<double>(name)}

void InitConstants(Napi::Env env, Napi::Object exports);
void InitFd(Napi::Env env, Napi::Object exports);
void InitMemfd(Napi::Env env, Napi::Object exports);
void InitMapping(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitPoll(Napi::Env env, Napi::Object exports);

}  // namespace memseal
