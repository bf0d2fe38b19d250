#pragma once
// Helpers for stream tests: loop-turn yields, bounded waits for a condition, error capture.

#include <gtest/gtest.h>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tether/base/bytes.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/stream/detail/wait_slot.hpp"

namespace tether::testing {

/// Suspends the calling task until the next ready-queue step (one loop turn). Cancellation-safe.
class YieldAwaiter {
 public:
  YieldAwaiter() : slot_(EventLoop::current_or_throw()), inner_(slot_) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    inner_.await_suspend(h);
    slot_.notify();
  }
  void await_resume() noexcept { inner_.await_resume(); }

 private:
  detail::WaitSlot slot_;
  detail::WaitSlot::Awaiter inner_;
};

inline Task<void> yield_now() { co_await YieldAwaiter(); }

inline Task<void> yield_turns(int n) {
  for (int i = 0; i < n; ++i) co_await YieldAwaiter();
}

/// Yields until pred() holds; fails (returns false) after max_turns turns. A turn here may
/// include an epoll wait, so I/O in flight progresses.
inline Task<bool> turns_until(std::function<bool()> pred, int max_turns = 10000) {
  for (int i = 0; i < max_turns; ++i) {
    if (pred()) co_return true;
    co_await YieldAwaiter();
  }
  co_return pred();
}

/// Tasks running beside the test body (a writer while the body reads). A task that throws fails
/// the test; tasks still running when it is destroyed are cancelled.
class Background {
 public:
  explicit Background(EventLoop& loop)
      : group_(loop, [](std::exception_ptr e) { ADD_FAILURE() << "background task failed: " << describe(e); }) {}
  void spawn(Task<void> t) { group_.spawn(std::move(t)); }
  Task<void> wait() { return group_.wait(); }

 private:
  static std::string describe(std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (...) {
      return describe_current_exception();
    }
  }
  TaskGroup group_;
};

/// Runs `t`; returns the E it threw, or nullopt if it completed (other exceptions propagate).
template <class E, class T>
Task<std::optional<E>> capture(Task<T> t) {
  std::optional<E> caught;
  try {
    co_await t;
  } catch (const E& e) {
    caught.emplace(e);
  }
  co_return caught;
}

/// Deterministic stream contents: byte at stream offset i is pattern()[i % 251].
inline const std::string& pattern_bytes() {
  static const std::string p = [] {
    std::string s((1u << 20) + 256, '\0');
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>((i % 251) * 7 + 3);
    return s;
  }();
  return p;
}

/// n bytes of the pattern starting at stream offset `offset` (n <= 1 MiB).
inline Bytes pattern_at(std::size_t offset, std::size_t n) {
  return Bytes(std::string_view(pattern_bytes()).substr(offset % 251, n));
}

inline bool matches_pattern(std::size_t offset, std::string_view data) {
  const std::string& p = pattern_bytes();
  std::size_t done = 0;
  while (done < data.size()) {
    const std::size_t take = std::min<std::size_t>(data.size() - done, 1u << 20);
    if (std::string_view(p).substr((offset + done) % 251, take) != data.substr(done, take)) return false;
    done += take;
  }
  return true;
}

#define TETHER_CO_ASSERT(cond)                        \
  do {                                                \
    if (!(cond)) {                                    \
      ADD_FAILURE() << "assertion failed: " #cond;    \
      co_return;                                      \
    }                                                 \
  } while (0)

}  // namespace tether::testing
