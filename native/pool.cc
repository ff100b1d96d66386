// pool.cc — the memory-ordering half of Publisher/Subscriber (src/pubsub/):
// the per-slot sequence words in a pool's header, stored by the publisher and
// checked by subscribers around a copy. JavaScript has no fences for plain
// memory, so every access to a word that orders data goes through here, with
// GCC/Clang __atomic builtins (gcc.gnu.org "__atomic Builtins"; the pattern is
// the kernel's seqcount: include/linux/seqlock.h).
//
// A word is 8 bytes, 8-byte aligned, inside a Uint8Array over the header of a
// shared mapping. Word value 2*s (even) means "the slot holds sample s,
// complete"; an odd value means "the publisher is writing the slot". The
// values are doubles on the JS side: sequences stay below 2^52, so 2*s is exact.
//
// The shared pages may be changed by another process at any moment: nothing
// here trusts what it reads, it only compares.
#include <stdint.h>
#include <string.h>

#include "args.h"
#include "native.h"

namespace memseal {
namespace {

// The word at byte offset `off` of the header view, or nullptr (TypeError pending).
uint64_t* ArgWord(const Napi::CallbackInfo& info, size_t viewArg, size_t offArg) {
  uint8_t* base;
  size_t len;
  int64_t off;
  if (!ArgBytes(info, viewArg, &base, &len) || !ArgInt64(info, offArg, &off)) return nullptr;
  if (base == nullptr || off < 0 || static_cast<uint64_t>(off) + 8 > len ||
      ((reinterpret_cast<uintptr_t>(base) + static_cast<uintptr_t>(off)) & 7) != 0) {
    ArgError(info, "expected the offset of an aligned 8-byte word inside the view");
    return nullptr;
  }
  return reinterpret_cast<uint64_t*>(base + off);
}

bool ArgWordValue(const Napi::CallbackInfo& info, size_t i, uint64_t* out) {
  int64_t v;
  if (!ArgInt64(info, i, &v)) return false;
  if (v < 0) return ArgError(info, "expected a non-negative word value");
  *out = static_cast<uint64_t>(v);
  return true;
}

// poolBegin(header, offset, oddWord): the publisher is about to write the slot.
// The odd word must be visible before any byte of the new contents, so a
// full fence follows the store (the kernel's smp_wmb() in write_seqcount_begin;
// a full fence because the data stores that follow come from JavaScript).
Napi::Value PoolBegin(const Napi::CallbackInfo& info) {
  uint64_t* word = ArgWord(info, 0, 1);
  uint64_t value;
  if (word == nullptr || !ArgWordValue(info, 2, &value)) return info.Env().Undefined();
  __atomic_store_n(word, value, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return info.Env().Undefined();
}

// poolEnd(header, offset, evenWord): the slot's contents are complete. A
// release store: every byte written before it is visible to a reader that
// sees this word with an acquire load.
Napi::Value PoolEnd(const Napi::CallbackInfo& info) {
  uint64_t* word = ArgWord(info, 0, 1);
  uint64_t value;
  if (word == nullptr || !ArgWordValue(info, 2, &value)) return info.Env().Undefined();
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  __atomic_store_n(word, value, __ATOMIC_RELEASE);
  return info.Env().Undefined();
}

// poolLoad(header, offset) -> the word (acquire load), as a double.
Napi::Value PoolLoad(const Napi::CallbackInfo& info) {
  uint64_t* word = ArgWord(info, 0, 1);
  if (word == nullptr) return info.Env().Undefined();
  return Napi::Value(info.Env(), Double(info.Env(), static_cast<double>(__atomic_load_n(word, __ATOMIC_ACQUIRE))));
}

// poolCopy(header, offset, expectedWord, src, dst) -> 0 (copied, the word
// equalled expectedWord before and after), 1 (changed before the copy: dst
// untouched), 2 (changed during the copy: dst holds a mixture).
// Reader side of a seqcount: acquire load, copy, acquire fence, load again.
// The fence keeps the copy's loads from moving after the second load, so a
// reuse of the slot that bumped the word before finishing (the publisher's
// poolBegin) is seen by one of the two loads.
Napi::Value PoolCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t* word = ArgWord(info, 0, 1);
  uint64_t expected;
  uint8_t *src, *dst;
  size_t srcLen, dstLen;
  if (word == nullptr || !ArgWordValue(info, 2, &expected) || !ArgBytes(info, 3, &src, &srcLen) ||
      !ArgBytes(info, 4, &dst, &dstLen)) {
    return env.Undefined();
  }
  if (dstLen < srcLen) {
    ArgError(info, "the target is smaller than the source");
    return env.Undefined();
  }
  if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != expected) return Result(env, 1);
  if (srcLen > 0) memcpy(dst, src, srcLen);
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  if (__atomic_load_n(word, __ATOMIC_RELAXED) != expected) return Result(env, 2);
  return Result(env, 0);
}

}  // namespace

void InitPool(Napi::Env env, Napi::Object exports) {
  exports.Set("poolBegin", Napi::Function::New(env, PoolBegin, "poolBegin"));
  exports.Set("poolEnd", Napi::Function::New(env, PoolEnd, "poolEnd"));
  exports.Set("poolLoad", Napi::Function::New(env, PoolLoad, "poolLoad"));
  exports.Set("poolCopy", Napi::Function::New(env, PoolCopy, "poolCopy"));
}

}  // namespace memseal
