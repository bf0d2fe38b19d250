#pragma once
// Measures heap allocations made through operator new while an AllocProbe is alive (the test
// binary replaces the global operator new; see alloc_probe.cpp). One probe at a time.

#include <cstddef>

namespace tether::testing {

class AllocProbe {
 public:
  AllocProbe();
  ~AllocProbe();
  AllocProbe(const AllocProbe&) = delete;
  AllocProbe& operator=(const AllocProbe&) = delete;

  /// Largest single request seen, in bytes.
  [[nodiscard]] std::size_t largest() const noexcept;
  /// Sum of all requests seen, in bytes.
  [[nodiscard]] std::size_t total() const noexcept;
};

}  // namespace tether::testing
