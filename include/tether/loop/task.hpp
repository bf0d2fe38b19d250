#pragma once
/// \file Task<T>: tether's one coroutine type.
///
/// A Task is lazy (it starts when awaited or handed to a loop), move-only and owns its
/// coroutine frame. Destroying an unfinished Task destroys its frame: that cancels it, runs
/// the destructors of its locals, and recursively cancels whatever it was awaiting (awaiters
/// deregister timers and watchers in their destructors). Exceptions propagate to the awaiter.
/// Completion hands control straight to the awaiting coroutine (symmetric transfer). Whenever
/// the loop resumes a coroutine it does so through a trampoline (detail::resume), and the
/// transfers between Tasks it drives go back to that trampoline instead of nesting calls, so
/// long chains of synchronous completions never grow the stack, whatever the optimisation
/// level or sanitizer (g++ only turns symmetric transfer into a tail call at -O2 without
/// ASan/TSan).
///
/// GCC 12 rules (see docs/coroutines.md): one co_await per statement with a
/// named result, no capturing coroutine lambdas, no lambda built inside a co_await expression,
/// no structured binding directly on a co_await result.

#include <atomic>
#include <cassert>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

#include "tether/base/export.hpp"

namespace tether {

template <class T = void>
class Task;

namespace detail {

/// Number of live Task frames in the process (all threads); tests use it to prove that
/// cancellation freed everything.
TETHER_API extern std::atomic<long> g_live_tasks;

/// Memory for coroutine frames (every Task and Runner frame). Sizes up to
/// frame_pool_max_size() come from a per-thread cache of free blocks, one list per 64-byte size
/// class, each holding at most frame_pool_class_cap_bytes(); larger sizes, and every size when
/// the pool is compiled out (ASan, TSan, -DTETHER_FRAME_POOL=OFF), use ::operator new/delete.
/// frame_alloc throws std::bad_alloc like ::operator new. frame_free takes the size given to
/// frame_alloc and may run on any thread (the block joins that thread's cache); after the
/// thread's cache was released at thread exit it frees straight to ::operator delete.
TETHER_API void* frame_alloc(std::size_t size);
TETHER_API void frame_free(void* p, std::size_t size) noexcept;
/// False when the pool is compiled out.
TETHER_API bool frame_pool_enabled() noexcept;
/// Bytes of free blocks this thread's cache holds now (0 when compiled out).
TETHER_API std::size_t frame_pool_cached_bytes() noexcept;
/// The largest size served from the cache.
TETHER_API std::size_t frame_pool_max_size() noexcept;
/// The most bytes one size class of one thread's cache holds; further frees go to the system.
TETHER_API std::size_t frame_pool_class_cap_bytes() noexcept;
/// Bytes returned to the system by thread-exit clean-up of caches, all threads so far.
TETHER_API std::size_t frame_pool_released_at_thread_exit() noexcept;

/// One active resume() on this thread: the coroutine it is running and the next one to run.
struct Trampoline {
  std::coroutine_handle<> running;
  std::coroutine_handle<> next;
  Trampoline* outer = nullptr;
};

/// The innermost active trampoline of this thread (null outside resume()).
TETHER_API extern thread_local Trampoline* t_trampoline __attribute__((tls_model("initial-exec")));

/// Resumes h and every coroutine it transfers to, iteratively. Re-entrant (a nested loop
/// iteration inside a coroutine gets its own trampoline). Loop-layer code resumes coroutines
/// only through this (or through EventLoop::schedule, which uses it).
TETHER_API void resume(std::coroutine_handle<> h) noexcept;

/// Symmetric transfer from `from` (suspending) to `to`. If `from` is what the innermost
/// trampoline is running, `to` is handed to that trampoline (the stack unwinds back to it);
/// otherwise (a coroutine resumed directly by foreign code) it is an ordinary transfer.
inline std::coroutine_handle<> transfer(std::coroutine_handle<> from, std::coroutine_handle<> to) noexcept {
  Trampoline* t = t_trampoline;
  if (t && t->running == from) {
    t->next = to;
    return std::noop_coroutine();
  }
  return to;
}

/// What a Task owned by nobody's co_await (a TaskGroup member) calls when its body ends: the
/// owner's completion hook, with the task's exception (or null). It may destroy the frame.
struct DetachHook {
  void (*fn)(void* ctx, std::coroutine_handle<> self, std::exception_ptr error) noexcept = nullptr;
  void* ctx = nullptr;
};

struct TaskFinalAwaiter {
  bool await_ready() const noexcept { return false; }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
    auto c = h.promise().continuation_;
    if (c) return transfer(h, c);
    const DetachHook hook = h.promise().detach_;
    if (hook.fn) hook.fn(hook.ctx, h, h.promise().exception());  // may destroy h
    return std::noop_coroutine();
  }
  void await_resume() const noexcept {}
};

class TaskPromiseBase {
 public:
  TaskPromiseBase() noexcept { g_live_tasks.fetch_add(1, std::memory_order_relaxed); }
  ~TaskPromiseBase() { g_live_tasks.fetch_sub(1, std::memory_order_relaxed); }
  TaskPromiseBase(const TaskPromiseBase&) = delete;
  TaskPromiseBase& operator=(const TaskPromiseBase&) = delete;

  // The frame's memory (no get_return_object_on_allocation_failure: failure throws bad_alloc).
  static void* operator new(std::size_t size) { return frame_alloc(size); }
  static void operator delete(void* p, std::size_t size) noexcept { frame_free(p, size); }

  /// Suspends at creation; notes the first resumption (a detached task not yet started still
  /// sits in the ready queue: whoever destroys it must unschedule it first).
  struct Initial {
    TaskPromiseBase* promise;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    void await_resume() const noexcept { promise->started_ = true; }
  };
  Initial initial_suspend() noexcept { return {this}; }
  TaskFinalAwaiter final_suspend() const noexcept { return {}; }
  void set_continuation(std::coroutine_handle<> c) noexcept { continuation_ = c; }

  std::coroutine_handle<> continuation_{};
  // Detached tasks (TaskGroup members; only Task<void> is ever detached).
  DetachHook detach_{};
  bool started_ = false;
  TaskPromiseBase* prev_ = nullptr;  // the owner's list
  TaskPromiseBase* next_ = nullptr;
};

template <class T>
class TaskPromise final : public TaskPromiseBase {
 public:
  Task<T> get_return_object() noexcept;
  void unhandled_exception() noexcept { result_.template emplace<2>(std::current_exception()); }
  template <class U>
    requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    result_.template emplace<1>(std::forward<U>(v));
  }
  T take() {
    if (result_.index() == 2) std::rethrow_exception(std::get<2>(result_));
    assert(result_.index() == 1);
    return std::move(std::get<1>(result_));
  }
  [[nodiscard]] std::exception_ptr exception() const noexcept {
    return result_.index() == 2 ? std::get<2>(result_) : nullptr;
  }

 private:
  std::variant<std::monostate, T, std::exception_ptr> result_;
};

template <>
class TaskPromise<void> final : public TaskPromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  void unhandled_exception() noexcept { exception_ = std::current_exception(); }
  void return_void() noexcept {}
  void take() {
    if (exception_) std::rethrow_exception(exception_);
  }
  [[nodiscard]] std::exception_ptr exception() const noexcept { return exception_; }

 private:
  std::exception_ptr exception_;
};

}  // namespace detail

/// Number of live Task frames in the process.
inline long live_task_count() noexcept { return detail::g_live_tasks.load(std::memory_order_relaxed); }

template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::TaskPromise<T>;
  using handle_type = std::coroutine_handle<promise_type>;
  using value_type = T;

  Task() noexcept = default;
  explicit Task(handle_type h) noexcept : h_(h) {}
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(h_); }
  /// True once the body has returned or thrown.
  [[nodiscard]] bool done() const noexcept { return h_ && h_.done(); }
  /// Destroys the frame now (cancelling the task if unfinished).
  void reset() noexcept {
    if (h_) std::exchange(h_, {}).destroy();
  }
  [[nodiscard]] handle_type handle() const noexcept { return h_; }
  /// Gives up ownership of the frame (the caller destroys it).
  [[nodiscard]] handle_type release() noexcept { return std::exchange(h_, {}); }
  /// The result of a finished task (rethrows its exception). Call once.
  T take_result() { return h_.promise().take(); }

  // Awaiting a Task starts it and suspends the awaiter until it finishes.
  bool await_ready() const noexcept {
    assert(h_ && "awaiting an empty Task");
    return h_.done();
  }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
    h_.promise().set_continuation(awaiting);
    return detail::transfer(awaiting, h_);
  }
  T await_resume() { return h_.promise().take(); }

 private:
  handle_type h_{};
};

namespace detail {
template <class T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}
inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace tether
