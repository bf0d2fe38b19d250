#include "stream/buffer_cache.hpp"

namespace tether::detail {
namespace {

struct BufferPool {
  Buffer slots[kCachedBuffers];  // [0, count) hold storage, the rest are empty
  std::size_t count = 0;
  std::size_t bytes = 0;  // capacity pooled
};

// The pool is reached through a trivially destructible pointer, so that streams destroyed
// during thread or static destruction (after the pool itself is gone) find "no pool" and free
// their buffers normally instead of touching a destroyed object. initial-exec: one
// %fs-relative load instead of a __tls_get_addr call per access (-fPIC code); these few bytes
// fit the static TLS surplus even if the library is loaded with dlopen.
#define TETHER_TLS_FAST __attribute__((tls_model("initial-exec")))
thread_local BufferPool* t_pool TETHER_TLS_FAST = nullptr;
thread_local bool t_pool_gone TETHER_TLS_FAST = false;
#undef TETHER_TLS_FAST

/// The pool itself, constructed on the thread's first release; at thread exit it first marks
/// itself gone, then its slots free their storage.
struct PoolHolder {
  BufferPool pool;
  ~PoolHolder() {
    t_pool = nullptr;
    t_pool_gone = true;
  }
};

BufferPool* pool() noexcept {
  if (t_pool) return t_pool;
  if (t_pool_gone) return nullptr;
  thread_local PoolHolder holder;
  t_pool = &holder.pool;
  return t_pool;
}

}  // namespace

bool take_cached_buffer(Buffer& b, std::size_t writable) noexcept {
  BufferPool* p = t_pool;  // a thread that never released a buffer has nothing to take
  if (!p || p->count == 0) return false;
  Buffer& top = p->slots[p->count - 1];
  if (top.writable_bytes() < writable) return false;
  p->bytes -= top.capacity();
  --p->count;
  b.swap(top);
  return true;
}

void release_buffer(Buffer& b) noexcept {
  const std::size_t cap = b.capacity();
  if (cap == 0) return;
  if (cap >= kCachedBufferMin && cap <= kCachedBufferMax) {
    BufferPool* p = pool();
    if (p && p->count < kCachedBuffers && p->bytes + cap <= kCachedBytes) {
      b.retrieve_all();
      p->slots[p->count].swap(b);
      ++p->count;
      p->bytes += cap;
      return;
    }
  }
  Buffer gone;
  gone.swap(b);  // freed here
}

}  // namespace tether::detail
