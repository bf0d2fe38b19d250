#include "alloc_probe.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {

std::atomic<bool> g_on{false};
std::atomic<std::size_t> g_largest{0};
std::atomic<std::size_t> g_total{0};

void* counted_alloc(std::size_t n) {
  if (g_on.load(std::memory_order_relaxed)) {
    g_total.fetch_add(n, std::memory_order_relaxed);
    std::size_t prev = g_largest.load(std::memory_order_relaxed);
    while (n > prev && !g_largest.compare_exchange_weak(prev, n, std::memory_order_relaxed)) {
    }
  }
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace tether::testing {

AllocProbe::AllocProbe() {
  g_largest = 0;
  g_total = 0;
  g_on = true;
}
AllocProbe::~AllocProbe() { g_on = false; }
std::size_t AllocProbe::largest() const noexcept { return g_largest.load(); }
std::size_t AllocProbe::total() const noexcept { return g_total.load(); }

}  // namespace tether::testing
