#pragma once
// Bytes of heap in use in this process (the allocator's own count: malloc'd and mmap'd chunks,
// or the sanitizer allocator's under ASan/TSan), and a sampler that records the peak while a
// test runs. For bounds on what a server costs, measured in-process around a ServerThread.

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <thread>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// GCC ships no <sanitizer/allocator_interface.h>; the runtime (libasan, libtsan) exports it.
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace tether::testing {

inline std::size_t heap_in_use() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return __sanitizer_get_current_allocated_bytes();
#else
  const struct mallinfo2 mi = ::mallinfo2();
  return mi.uordblks + mi.hblkhd;
#endif
}

/// Samples heap_in_use() every millisecond on a thread of its own until destroyed or stopped.
class HeapPeak {
 public:
  HeapPeak() : base_(heap_in_use()), peak_(base_) {
    thread_ = std::thread([this] {
      while (!stop_.load(std::memory_order_relaxed)) {
        const std::size_t now = heap_in_use();
        std::size_t seen = peak_.load(std::memory_order_relaxed);
        while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  ~HeapPeak() { stop(); }
  HeapPeak(const HeapPeak&) = delete;
  HeapPeak& operator=(const HeapPeak&) = delete;
  void stop() {
    if (thread_.joinable()) {
      stop_ = true;
      thread_.join();
    }
  }
  /// Growth of the peak over the heap in use when sampling began.
  [[nodiscard]] std::size_t peak_growth() const {
    const std::size_t p = std::max(peak_.load(), heap_in_use());
    return p > base_ ? p - base_ : 0;
  }
  [[nodiscard]] std::size_t base() const { return base_; }

 private:
  std::size_t base_;
  std::atomic<std::size_t> peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace tether::testing
