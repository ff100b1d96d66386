// addon.cc — module init only. Each concept registers its own functions.
#include <napi.h>

#include "native.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  memseal::InitConstants(env, exports);
  memseal::InitFd(env, exports);
  memseal::InitMemfd(env, exports);
  memseal::InitMapping(env, exports);
  memseal::InitSocket(env, exports);
  memseal::InitRecv(env, exports);
  memseal::InitPoll(env, exports);
  memseal::InitPool(env, exports);
  memseal::InitRelease(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(memseal, Init)
