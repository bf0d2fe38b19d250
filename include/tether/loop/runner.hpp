#pragma once
/// \file detail::Runner: the root of a chain of Tasks that nobody awaits (TaskGroup entries,
/// gather branches, run_until_complete). When its body finishes it calls a completion hook,
/// which may destroy the runner's frame right there (it is suspended at its final point).

#include <coroutine>
#include <cstddef>
#include <exception>

#include "tether/loop/task.hpp"

namespace tether::detail {

class Runner;

/// Called at the runner's final suspension with the exception its task ended with (or null).
struct RunnerHook {
  void (*fn)(void* ctx, std::coroutine_handle<> self, std::exception_ptr error) = nullptr;
  void* ctx = nullptr;
};

class RunnerPromise {
 public:
  static void* operator new(std::size_t size) { return frame_alloc(size); }
  static void operator delete(void* p, std::size_t size) noexcept { frame_free(p, size); }

  Runner get_return_object() noexcept;
  /// Suspends at creation; marks the runner started when first resumed.
  struct Initial {
    RunnerPromise* promise;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    void await_resume() const noexcept { promise->started_ = true; }
  };
  Initial initial_suspend() noexcept { return {this}; }
  struct Final {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<RunnerPromise> h) noexcept {
      RunnerHook hook = h.promise().hook_;
      std::exception_ptr err = h.promise().error_;
      if (hook.fn) hook.fn(hook.ctx, h, err);  // may destroy h: nothing of the frame is used after
    }
    void await_resume() const noexcept {}
  };
  Final final_suspend() const noexcept { return {}; }
  void return_void() noexcept {}
  void unhandled_exception() noexcept { error_ = std::current_exception(); }

  RunnerHook hook_;
  std::exception_ptr error_;
  /// False while the runner still waits in the ready queue for its first resumption: whoever
  /// destroys it then must EventLoop::unschedule() it first.
  bool started_ = false;
  /// Free for the owner (gather keeps the branch index here).
  std::size_t tag_ = 0;
  /// Free for the owner: TaskGroup links its runners into a list through these.
  RunnerPromise* prev_ = nullptr;
  RunnerPromise* next_ = nullptr;
};

class Runner {
 public:
  using promise_type = RunnerPromise;
  explicit Runner(std::coroutine_handle<RunnerPromise> h) noexcept : h_(h) {}
  [[nodiscard]] std::coroutine_handle<RunnerPromise> release() noexcept { return h_; }

 private:
  std::coroutine_handle<RunnerPromise> h_;
};

inline Runner RunnerPromise::get_return_object() noexcept {
  return Runner(std::coroutine_handle<RunnerPromise>::from_promise(*this));
}

/// Wraps a task into a runner; the task's exception reaches the hook.
template <class T>
Runner make_runner(Task<T> task) {
  co_await task;
}

/// Creates a suspended runner for `task` whose completion calls hook. The caller owns the
/// returned handle: it schedules it to start, and destroys it (from the hook or later; an
/// unstarted one must be unscheduled first).
template <class T>
std::coroutine_handle<RunnerPromise> start_runner(Task<T> task, RunnerHook hook) {
  auto h = make_runner(std::move(task)).release();
  h.promise().hook_ = hook;
  return h;
}

}  // namespace tether::detail
