#pragma once
// Private: exponential backoff with jitter for retries (etcd errors, registrations, connects).

#include <algorithm>
#include <random>

#include "tether/loop/event_loop.hpp"

namespace tether::registry::detail {

/// Delays initial, 2*initial, 4*initial ... capped at `max`, each shortened by a random share
/// of up to `jitter` (0.5: between half and all of it), so that many clients that failed
/// together do not retry together. Not thread-safe; no loop affinity.
class Backoff {
 public:
  Backoff(Duration initial, Duration max, double jitter = 0.5)
      : initial_(std::max(initial, Duration(1))),
        max_(std::max(max, initial_)),
        jitter_(jitter),
        rng_(std::random_device{}()) {}

  Duration next() {
    Duration d = initial_;
    for (int i = 0; i < attempts_ && d < max_; ++i) d *= 2;
    d = std::min(d, max_);
    ++attempts_;
    std::uniform_real_distribution<double> share(0.0, jitter_);
    return std::chrono::duration_cast<Duration>(d * (1.0 - share(rng_)));
  }
  void reset() noexcept { attempts_ = 0; }
  [[nodiscard]] int attempts() const noexcept { return attempts_; }

 private:
  Duration initial_;
  Duration max_;
  double jitter_;
  int attempts_ = 0;
  std::mt19937 rng_;
};

}  // namespace tether::registry::detail
