// release.h — giving kernel resources back off the event loop.
#pragma once

#include <node_api.h>

namespace memseal {

// Runs execute(data) on the libuv thread pool, then complete(env, data) on
// the event loop (also when the work was cancelled: complete must then do what
// execute would have). Node waits for such work before it tears an
// environment down. false if the work could not be queued (the caller then
// does the job itself, synchronously).
bool Defer(napi_env env, void (*execute)(void*), void (*complete)(napi_env, void*), void* data);

// Descriptors a native call created and returned as plain numbers that are
// about to be adopted (by pollOpen or fdOpen), closed (by close()) or handed to
// the program (untrack()): sockets, descriptors recvmsg() installed, a queued
// send's duplicates. Until then they are remembered per environment and closed
// if it is torn down first: a worker terminated between socketpair() and the
// Channel constructor, or with a received message not yet delivered, leaks nothing.
void TrackUnadopted(napi_env env, int fd);
void Untrack(napi_env env, int fd);

// close(2), the one way this code closes a descriptor: 0 or -errno. EINTR
// counts as done: on Linux the descriptor is released before close(2) can be
// interrupted, so retrying could close a number another thread just reused
// (libuv's uv__close does the same).
int CloseFd(int fd);

// [fd, handle] for a descriptor just created, owned from the start (see
// fdOpen in release.cc); undefined if the environment is going (fd is then
// closed or left to the finalizer).
napi_value Owned(napi_env env, int fd);

}  // namespace memseal
