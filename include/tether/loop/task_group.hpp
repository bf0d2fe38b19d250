#pragma once
/// \file TaskGroup: owns background tasks (read loops, accept loops, handlers).
///
/// spawn() starts a task on the loop's next turn. A task that throws reports to the error
/// handler (default: logged). Destroying the group, or cancel_all(), destroys every unfinished
/// task, running its destructors. wait() completes when the group is empty.

#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>

#include "tether/base/export.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/runner.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task.hpp"

namespace tether {

/// Loop thread only.
class TETHER_API TaskGroup {
 public:
  using ErrorHandler = std::function<void(std::exception_ptr)>;

  explicit TaskGroup(EventLoop& loop, ErrorHandler on_error = {});
  ~TaskGroup();
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  /// Takes ownership of `task` and starts it on the next loop turn.
  void spawn(Task<void> task);
  /// Takes ownership of `task` without starting it: the caller starts it on this loop turn by
  /// resuming the returned handle once (from a coroutine, as a symmetric transfer: the task
  /// then does not run on top of the caller's frame) or by scheduling it on the loop. Until
  /// then it is an unstarted task of the group, which cancel_all() destroys like the others.
  std::coroutine_handle<> adopt(Task<void> task);
  /// Completes once no task is left (tasks spawned meanwhile included).
  Task<void> wait();
  /// Destroys every unfinished task now. Must not be called from inside one of this group's
  /// own tasks (that frame is running); use cancel_all_soon() there.
  void cancel_all() noexcept;
  /// cancel_all() on the next loop turn.
  void cancel_all_soon();

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] EventLoop& loop() const noexcept { return loop_; }

 private:
  static void on_task_done(void* ctx, std::coroutine_handle<> h, std::exception_ptr error) noexcept;
  void link(detail::TaskPromiseBase* t) noexcept;
  void unlink(detail::TaskPromiseBase* t) noexcept;
  void wake_waiters();

  EventLoop& loop_;
  ErrorHandler on_error_;
  // Unfinished tasks, in spawn order, linked through their promises' prev_/next_. Each is its
  // own root: its final suspension calls on_task_done (no wrapper frame per task).
  detail::TaskPromiseBase* head_ = nullptr;
  detail::TaskPromiseBase* tail_ = nullptr;
  std::size_t size_ = 0;
  detail::WaitList waiters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tether
