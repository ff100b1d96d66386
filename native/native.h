// native.h — the per-concept init functions that addon.cc calls.
#pragma once

#include <napi.h>

namespace memseal {

void InitConstants(Napi::Env env, Napi::Object exports);
void InitFd(Napi::Env env, Napi::Object exports);
void InitMemfd(Napi::Env env, Napi::Object exports);
void InitMapping(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitPoll(Napi::Env env, Napi::Object exports);

}  // namespace memseal
