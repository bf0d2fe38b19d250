#pragma once
/// \file WorkerPool and run_in_worker: blocking work off the loop thread.

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

#include "tether/base/error.hpp"
#include "tether/base/export.hpp"
#include "tether/base/function.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"

namespace tether {

/// A fixed set of threads running jobs in FIFO order. submit() is safe from any thread.
/// The destructor finishes queued jobs and joins the threads.
class TETHER_API WorkerPool {
 public:
  explicit WorkerPool(std::size_t threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void submit(Callback job);
  [[nodiscard]] std::size_t threads() const noexcept { return threads_.size(); }
  /// Jobs queued or running.
  [[nodiscard]] std::size_t pending() const;
  /// From now on the pool keeps `queued` (jobs waiting for a thread) and `running` up to date
  /// (EventLoop::figures()). Both must outlive the pool.
  void report_to(std::atomic<std::uint64_t>* queued, std::atomic<std::uint64_t>* running);

 private:
  void worker_main();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Callback> jobs_;
  std::size_t running_ = 0;
  bool stopping_ = false;
  std::atomic<std::uint64_t>* queued_gauge_ = nullptr;
  std::atomic<std::uint64_t>* running_gauge_ = nullptr;
  void publish() noexcept;  // under mu_
  std::vector<std::thread> threads_;
};

namespace detail {

template <class R>
struct WorkerState {
  std::optional<std::conditional_t<std::is_void_v<R>, char, R>> value;
  std::exception_ptr error;
  std::coroutine_handle<> waiter;
  bool cancelled = false;  // touched on the loop thread only
};

template <class R, class F>
struct WorkerAwaiter {
  F fn;
  std::shared_ptr<WorkerState<R>> state = std::make_shared<WorkerState<R>>();

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    EventLoop& loop = EventLoop::current_or_throw();
    state->waiter = h;
    loop.workers().submit([st = state, f = std::move(fn), lp = &loop]() mutable {
      try {
        if constexpr (std::is_void_v<R>) {
          f();
          st->value.emplace('\0');
        } else {
          st->value.emplace(f());
        }
      } catch (...) {
        st->error = std::current_exception();
      }
      lp->post([st]() {
        if (!st->cancelled) detail::resume(st->waiter);
      });
    });
  }
  R await_resume() {
    if (state->error) std::rethrow_exception(state->error);
    if constexpr (!std::is_void_v<R>) return std::move(*state->value);
  }
  ~WorkerAwaiter() {
    if (state) state->cancelled = true;  // a still-running job must not resume a dead frame
  }
};

}  // namespace detail

/// Runs fn() on the current loop's worker pool and resumes on the loop thread with its result
/// (or its exception). Cancelling the awaiting task does not stop fn; its result is dropped.
template <class F>
auto run_in_worker(F fn) -> Task<std::invoke_result_t<F&>> {
  using R = std::invoke_result_t<F&>;
  // A named awaiter, not a temporary in the co_await operand: GCC 12 destroys such an aggregate
  // temporary at a wrong address (a never-constructed F), which crashes for F holding a string.
  detail::WorkerAwaiter<R, F> awaiter{std::move(fn)};
  if constexpr (std::is_void_v<R>) {
    co_await awaiter;
  } else {
    R r = co_await awaiter;
    co_return r;
  }
}

}  // namespace tether
