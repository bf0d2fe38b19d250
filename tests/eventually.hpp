#pragma once
// A bounded wait for a condition that another thread or process makes true (polling, not
// sleeping for a guessed time).

#include <chrono>
#include <functional>
#include <thread>

namespace tether::testing {

/// Checks `pred` every millisecond until it holds (true) or `limit` passes (false).
inline bool eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace tether::testing
