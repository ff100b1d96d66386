// channel.cc — AF_UNIX SOCK_SEQPACKET fd passing (sendmsg(2)/recvmsg(2) with
// SCM_RIGHTS, unix(7)). Filled in by the cross-process work.
#include "native.h"

namespace memseal {

void InitChannel(Napi::Env /*env*/, Napi::Object /*exports*/) {}

}  // namespace memseal
