#pragma once
// Private: an allocator over the loop layer's per-thread block cache (detail::frame_alloc), for
// the small objects every call creates and drops (pending calls, their table nodes, proxy
// states): a free-list pop instead of malloc when they come and go in bursts.

#include <cstddef>

#include "tether/loop/task.hpp"

namespace tether::rpc::detail {

template <class T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() noexcept = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  static_assert(alignof(T) <= alignof(std::max_align_t), "frame_alloc gives operator new's alignment");
  T* allocate(std::size_t n) { return static_cast<T*>(tether::detail::frame_alloc(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { tether::detail::frame_free(p, n * sizeof(T)); }
  friend bool operator==(const PoolAllocator&, const PoolAllocator&) noexcept { return true; }
};

}  // namespace tether::rpc::detail
