// native.h — the per-concept init functions that addon.cc calls.
#pragma once

#include <napi.h>

namespace memseal {

void InitConstants(Napi::Env env, Napi::Object exports);
void InitMemfd(Napi::Env env, Napi::Object exports);
void InitMapping(Napi::Env env, Napi::Object exports);
void InitChannel(Napi::Env env, Napi::Object exports);
void InitRelease(Napi::Env env, Napi::Object exports);

}  // namespace memseal
