#pragma once
/// \file gather(): run several tasks concurrently and collect their results.
///
/// All branches run on the current loop. If one fails, the others are cancelled and the first
/// exception is rethrown (structured concurrency: no branch outlives the gather).

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "tether/loop/event_loop.hpp"
#include "tether/loop/runner.hpp"
#include "tether/loop/task.hpp"

namespace tether {

namespace detail {

/// Runs void tasks concurrently; resumes the awaiter when all finish or one fails.
class TETHER_API WhenAll {
 public:
  explicit WhenAll(std::vector<Task<void>> tasks);
  WhenAll(const WhenAll&) = delete;
  WhenAll& operator=(const WhenAll&) = delete;
  ~WhenAll();
  bool await_ready() const noexcept { return tasks_.empty(); }
  void await_suspend(std::coroutine_handle<> h);
  void await_resume();  // rethrows the first branch failure

 private:
  static void on_done(void* ctx, std::coroutine_handle<> h, std::exception_ptr e) noexcept;
  void destroy_runners() noexcept;

  std::vector<Task<void>> tasks_;
  std::vector<std::coroutine_handle<RunnerPromise>> runners_;
  std::size_t remaining_ = 0;
  std::exception_ptr error_;
  std::coroutine_handle<> waiter_;     // suspended in co_await, not yet scheduled
  std::coroutine_handle<> scheduled_;  // scheduled to resume, not yet resumed
  EventLoop* loop_ = nullptr;
};

template <class T>
Task<void> store_into(Task<T> task, std::optional<T>* slot) {
  T value = co_await task;
  slot->emplace(std::move(value));
}

}  // namespace detail

/// Runs all tasks concurrently; returns their results in order.
template <class T>
Task<std::vector<T>> gather(std::vector<Task<T>> tasks) {
  std::vector<std::optional<T>> slots(tasks.size());
  std::vector<Task<void>> wrapped;
  wrapped.reserve(tasks.size());
  for (std::size_t i = 0; i < tasks.size(); ++i) wrapped.push_back(detail::store_into(std::move(tasks[i]), &slots[i]));
  co_await detail::WhenAll(std::move(wrapped));
  std::vector<T> out;
  out.reserve(slots.size());
  for (auto& s : slots) out.push_back(std::move(*s));
  co_return out;
}

/// Runs all void tasks concurrently.
TETHER_API Task<void> gather(std::vector<Task<void>> tasks);

/// Variadic form: gather(task_a, task_b, ...) -> tuple of results (non-void tasks).
template <class... T>
  requires(sizeof...(T) >= 2)
Task<std::tuple<T...>> gather(Task<T>... tasks) {
  std::tuple<std::optional<T>...> slots;
  std::vector<Task<void>> wrapped;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (wrapped.push_back(detail::store_into(std::move(tasks), &std::get<I>(slots))), ...);
  }(std::index_sequence_for<T...>{});
  co_await detail::WhenAll(std::move(wrapped));
  co_return std::apply([](auto&... s) { return std::tuple<T...>(std::move(*s)...); }, slots);
}

}  // namespace tether
