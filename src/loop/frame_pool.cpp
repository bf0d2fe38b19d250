// Coroutine frame memory for Task and Runner frames (declared in tether/loop/task.hpp).
//
// Each thread keeps a free list per 64-byte size class up to kMaxPooled bytes; every block of a
// class is a plain ::operator new block of the class's full size, so a block allocated on one
// thread may be cached by whichever thread frees it. A class caches at most kClassCapBytes;
// beyond that, and for sizes above kMaxPooled, blocks go straight back to ::operator delete.
// Thread exit releases the cache (a thread_local destructor); a free that comes later on that
// thread (a thread_local or static destroyed after it) goes straight to ::operator delete.
//
// Compiled out (plain ::operator new/delete) under AddressSanitizer and ThreadSanitizer, so that
// they keep seeing every frame's lifetime, and when TETHER_FRAME_POOL is 0 (CMake option
// TETHER_FRAME_POOL=OFF).
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "tether/loop/task.hpp"  // frame_alloc and the rest are declared there

#ifndef TETHER_FRAME_POOL
#define TETHER_FRAME_POOL 1
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TETHER_FRAME_POOL_ON 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TETHER_FRAME_POOL_ON 0
#endif
#endif
#ifndef TETHER_FRAME_POOL_ON
#define TETHER_FRAME_POOL_ON TETHER_FRAME_POOL
#endif

namespace tether::detail {

namespace {

/// ::operator delete(p, n), or the unsized form where the compiler does not provide sized
/// deallocation (clang before 19 needs -fsized-deallocation for it).
inline void delete_sized(void* p, [[maybe_unused]] std::size_t n) noexcept {
#if defined(__cpp_sized_deallocation)
  ::operator delete(p, n);
#else
  ::operator delete(p);
#endif
}

constexpr std::size_t kStep = 64;
constexpr std::size_t kMaxPooled = 2048;
[[maybe_unused]] constexpr std::size_t kClasses = kMaxPooled / kStep;  // unused without the pool
constexpr std::size_t kClassCapBytes = 64 * 1024;

std::atomic<std::size_t> g_released_at_exit{0};

#if TETHER_FRAME_POOL_ON

constexpr std::size_t class_of(std::size_t size) noexcept { return (size - 1) / kStep; }  // size >= 1
constexpr std::size_t class_size(std::size_t c) noexcept { return (c + 1) * kStep; }
// Blocks one class may cache: kClassCapBytes / class size (a table: no division on the free path).
constexpr auto kClassCap = [] {
  std::array<std::uint32_t, kClasses> caps{};
  for (std::size_t c = 0; c < kClasses; ++c) {
    caps[c] = static_cast<std::uint32_t>(kClassCapBytes / class_size(c));
  }
  return caps;
}();
static_assert(kClassCap[kClasses - 1] >= 1);

struct FreeBlock {
  FreeBlock* next;
};

/// One thread's cached blocks. Built on the thread's first cached free (that registers its
/// destructor); the destructor returns everything and marks the thread's pool dead.
struct Cache {
  constexpr Cache() noexcept = default;
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;
  ~Cache();

  FreeBlock* head[kClasses] = {};
  std::uint32_t count[kClasses] = {};
};

thread_local Cache t_cache;
// The fast paths read only these two (a pointer-sized TLS load each, no init guard): t_active
// is &t_cache while the cache lives, null before it is built and after it is destroyed.
thread_local Cache* t_active __attribute__((tls_model("initial-exec"))) = nullptr;
thread_local bool t_dead __attribute__((tls_model("initial-exec"))) = false;

Cache::~Cache() {
  t_active = nullptr;
  t_dead = true;
  std::size_t released = 0;
  for (std::size_t c = 0; c < kClasses; ++c) {
    const std::size_t bytes = class_size(c);
    while (FreeBlock* b = head[c]) {
      head[c] = b->next;
      delete_sized(static_cast<void*>(b), bytes);
      released += bytes;
    }
    count[c] = 0;
  }
  if (released) g_released_at_exit.fetch_add(released, std::memory_order_relaxed);
}

[[gnu::noinline]] void free_slow(void* p, std::size_t c) noexcept {
  if (t_dead) {
    delete_sized(p, class_size(c));
    return;
  }
  Cache* cache = &t_cache;  // first use on this thread: builds it and registers its destructor
  t_active = cache;
  cache->head[c] = ::new (p) FreeBlock{cache->head[c]};
  ++cache->count[c];
}

#endif  // TETHER_FRAME_POOL_ON

}  // namespace

#if TETHER_FRAME_POOL_ON

void* frame_alloc(std::size_t size) {
  if (size - 1 >= kMaxPooled) return ::operator new(size);  // above the classes (or 0)
  const std::size_t c = class_of(size);
  if (Cache* cache = t_active) {
    if (FreeBlock* b = cache->head[c]) {
      cache->head[c] = b->next;
      --cache->count[c];
      return b;
    }
  }
  return ::operator new(class_size(c));
}

void frame_free(void* p, std::size_t size) noexcept {
  if (size - 1 >= kMaxPooled) {
    delete_sized(p, size);
    return;
  }
  const std::size_t c = class_of(size);
  Cache* cache = t_active;
  if (!cache) {
    free_slow(p, c);
    return;
  }
  if (cache->count[c] >= kClassCap[c]) {
    delete_sized(p, class_size(c));
    return;
  }
  cache->head[c] = ::new (p) FreeBlock{cache->head[c]};
  ++cache->count[c];
}

bool frame_pool_enabled() noexcept { return true; }

std::size_t frame_pool_cached_bytes() noexcept {
  const Cache* cache = t_active;
  if (!cache) return 0;
  std::size_t bytes = 0;
  for (std::size_t c = 0; c < kClasses; ++c) bytes += cache->count[c] * class_size(c);
  return bytes;
}

#else  // !TETHER_FRAME_POOL_ON

void* frame_alloc(std::size_t size) { return ::operator new(size); }

void frame_free(void* p, std::size_t size) noexcept { delete_sized(p, size); }

bool frame_pool_enabled() noexcept { return false; }

std::size_t frame_pool_cached_bytes() noexcept { return 0; }

#endif  // TETHER_FRAME_POOL_ON

std::size_t frame_pool_max_size() noexcept { return kMaxPooled; }

std::size_t frame_pool_class_cap_bytes() noexcept { return kClassCapBytes; }

std::size_t frame_pool_released_at_thread_exit() noexcept {
  return g_released_at_exit.load(std::memory_order_relaxed);
}

}  // namespace tether::detail
