#pragma once
/// \file Fibers: synchronous code on a stack of its own, on the loop thread.
///
/// A synchronous function that must wait for something the loop delivers (a reply from the
/// peer, to a callback it calls) cannot return to the loop while it waits: its caller's stack
/// is under it. Running the loop nested inside it (what EventLoop::run_until_complete does on
/// a plain stack) serves the loop, but an inner wait then holds up every outer one, and the
/// frames below the nested loop may be destroyed while it runs. A fiber avoids both: the
/// function runs on a stack of its own, and a wait inside it (EventLoop::run_until_complete
/// called on the fiber) switches back to the loop, which resumes the fiber once the awaited
/// task has finished. The loop is never nested; waits on different fibers end in any order.
///
///   // in a coroutine on the loop thread
///   co_await tether::run_on_fiber(loop, [state] { state->result = blocking_work(*state); });
///
/// Rules:
///  * Loop thread only. A fiber never moves to another thread; it is resumed from the loop's
///    ready queue.
///  * The function must own what it uses (capture by value / shared_ptr): if the awaiting
///    coroutine is destroyed (cancelled) while the fiber waits, the fiber is detached and runs
///    on until its function returns, then frees itself. What the function waits for must
///    therefore end by itself (a reply, a timeout, a closed connection).
///  * Exceptions thrown inside the function must be caught inside it (run_on_fiber's caller
///    captures them itself); one that escapes is logged and dropped.
///  * The stack is EventLoop::fiber_stack_size() bytes (256 KiB by default, 1 MiB under
///    AddressSanitizer) with a guard page below it: deep recursion on a fiber crashes at the
///    guard page rather than corrupting memory.

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "tether/base/export.hpp"
#include "tether/base/function.hpp"
#include "tether/loop/runner.hpp"
#include "tether/loop/task.hpp"

namespace tether {

class EventLoop;

namespace detail {

class Fiber;
class FiberCall;

/// The fiber running on this thread, or null (on the thread's own stack).
TETHER_API Fiber* current_fiber() noexcept;
/// The loop a fiber belongs to.
TETHER_API EventLoop& fiber_loop(Fiber& f) noexcept;
/// From inside `f`: switches back to the loop until fiber_wake(f).
TETHER_API void fiber_suspend(Fiber& f);
/// Schedules `f` to resume in the loop's next ready step. Loop thread only.
TETHER_API void fiber_wake(Fiber& f);

/// What fiber_wait uses to learn that its task ended.
struct FiberWaitState {
  Fiber* fiber;
  std::exception_ptr error;
  bool done = false;
};
TETHER_API void fiber_task_done(void* ctx, std::coroutine_handle<> self, std::exception_ptr error) noexcept;
/// Queues a runner's first resumption on `loop`.
TETHER_API void schedule_runner(EventLoop& loop, std::coroutine_handle<> h);

template <class T>
Task<void> fiber_fill(Task<T> task, std::optional<T>* out) {
  T v = co_await task;
  out->emplace(std::move(v));
}
inline Task<void> fiber_fill(Task<void> task) { co_await task; }

/// From inside `f`: runs `task` on the loop and suspends the fiber until it finished; returns
/// its value or rethrows its exception. (EventLoop::run_until_complete on a fiber.)
template <class T>
T fiber_wait(Fiber& f, Task<T> task) {
  FiberWaitState st{&f, nullptr, false};
  std::optional<std::conditional_t<std::is_void_v<T>, int, T>> value;
  std::coroutine_handle<RunnerPromise> h;
  if constexpr (std::is_void_v<T>) {
    h = start_runner(fiber_fill(std::move(task)), RunnerHook{&fiber_task_done, &st});
  } else {
    h = start_runner(fiber_fill<T>(std::move(task), &value), RunnerHook{&fiber_task_done, &st});
  }
  schedule_runner(fiber_loop(f), h);
  while (!st.done) fiber_suspend(f);
  if (st.error) std::rethrow_exception(st.error);
  if constexpr (!std::is_void_v<T>) return std::move(*value);
}

/// The awaiter returned by run_on_fiber.
class TETHER_API FiberCall {
 public:
  FiberCall(EventLoop& loop, UniqueFunction<void()> fn) noexcept : loop_(&loop), fn_(std::move(fn)) {}
  FiberCall(FiberCall&& other) noexcept;
  FiberCall& operator=(FiberCall&&) = delete;
  /// Destroyed while its fiber waits (the awaiting coroutine was cancelled): detaches it.
  ~FiberCall();

  [[nodiscard]] bool await_ready() const noexcept { return false; }
  /// Starts the fiber at once; returns false (no suspension) when it finished without waiting.
  bool await_suspend(std::coroutine_handle<> h);
  void await_resume() noexcept { woken_ = false; }

 private:
  friend class Fiber;
  EventLoop* loop_;
  UniqueFunction<void()> fn_;
  Fiber* fiber_ = nullptr;
  std::coroutine_handle<> waiter_{};
  bool woken_ = false;  // the fiber finished and queued waiter_'s resumption
};

}  // namespace detail

/// Runs `fn` on a fiber of `loop` (see the file comment); the awaiting coroutine goes on once
/// `fn` returned. `fn` runs at once, before the await suspends; when it returns without
/// waiting, the awaiting coroutine does not suspend at all. Loop thread only.
[[nodiscard]] inline detail::FiberCall run_on_fiber(EventLoop& loop, UniqueFunction<void()> fn) {
  return detail::FiberCall(loop, std::move(fn));
}

/// True when the calling code runs on a fiber of `loop`.
TETHER_API bool on_fiber_of(const EventLoop& loop) noexcept;

}  // namespace tether
