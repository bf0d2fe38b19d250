#include "tether/loop/task_group.hpp"

#include <vector>

#include "tether/base/log.hpp"

namespace tether {

TaskGroup::TaskGroup(EventLoop& loop, ErrorHandler on_error) : loop_(loop), on_error_(std::move(on_error)), waiters_(&loop) {}

TaskGroup::~TaskGroup() {
  *alive_ = false;
  cancel_all();
}

void TaskGroup::spawn(Task<void> task) {
  loop_.assert_in_loop_thread();
  auto h = detail::start_runner(std::move(task), detail::RunnerHook{&TaskGroup::on_task_done, this});
  tasks_.insert(h.address());
  loop_.schedule(h);
}

void TaskGroup::on_task_done(void* ctx, std::coroutine_handle<> h, std::exception_ptr error) noexcept {
  auto* self = static_cast<TaskGroup*>(ctx);
  self->tasks_.erase(h.address());
  h.destroy();
  if (self->tasks_.empty()) self->wake_waiters();
  // Last: the handler may spawn more tasks, or even destroy the group.
  if (error) {
    try {
      if (self->on_error_) {
        self->on_error_(error);
      } else {
        std::rethrow_exception(error);
      }
    } catch (...) {
      TETHER_LOG_ERROR("task in TaskGroup failed: {}", describe_current_exception());
    }
  }
}

void TaskGroup::wake_waiters() { waiters_.wake_all(); }

Task<void> TaskGroup::wait() {
  while (!tasks_.empty()) {
    co_await detail::WaitAwaiter{waiters_};
  }
}

void TaskGroup::cancel_all() noexcept {
  // Destroying a runner may destroy things that spawn or finish other tasks: take the set.
  while (!tasks_.empty()) {
    auto batch = std::move(tasks_);
    tasks_.clear();
    // Tasks spawned but not started yet are still queued: drop their queued start first.
    try {
      std::vector<std::coroutine_handle<>> unstarted;
      for (void* addr : batch) {
        auto h = std::coroutine_handle<detail::RunnerPromise>::from_address(addr);
        if (!h.promise().started_) unstarted.push_back(h);
      }
      loop_.unschedule(unstarted);
    } catch (...) {  // out of memory: one pass per task instead
      for (void* addr : batch) {
        auto h = std::coroutine_handle<detail::RunnerPromise>::from_address(addr);
        if (!h.promise().started_) loop_.unschedule(h);
      }
    }
    for (void* addr : batch) std::coroutine_handle<>::from_address(addr).destroy();
  }
  if (*alive_) wake_waiters();
}

void TaskGroup::cancel_all_soon() {
  std::weak_ptr<bool> alive = alive_;
  loop_.call_soon([this, alive]() {
    if (auto a = alive.lock(); a && *a) cancel_all();
  });
}

}  // namespace tether
