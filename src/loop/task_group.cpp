#include "tether/loop/task_group.hpp"

#include <utility>
#include <vector>

#include "tether/base/error.hpp"
#include "tether/base/log.hpp"

namespace tether {

TaskGroup::TaskGroup(EventLoop& loop, ErrorHandler on_error)
    : loop_(loop), on_error_(std::move(on_error)), waiters_(&loop) {}

TaskGroup::~TaskGroup() {
  *alive_ = false;
  cancel_all();
}

namespace {

using TaskHandle = std::coroutine_handle<detail::TaskPromise<void>>;

TaskHandle handle_of(detail::TaskPromiseBase* t) noexcept {
  return TaskHandle::from_promise(*static_cast<detail::TaskPromise<void>*>(t));
}

}  // namespace

void TaskGroup::link(detail::TaskPromiseBase* r) noexcept {
  r->prev_ = tail_;
  r->next_ = nullptr;
  if (tail_) {
    tail_->next_ = r;
  } else {
    head_ = r;
  }
  tail_ = r;
  ++size_;
}

void TaskGroup::unlink(detail::TaskPromiseBase* r) noexcept {
  if (r->prev_) {
    r->prev_->next_ = r->next_;
  } else {
    head_ = r->next_;
  }
  if (r->next_) {
    r->next_->prev_ = r->prev_;
  } else {
    tail_ = r->prev_;
  }
  r->prev_ = r->next_ = nullptr;
  --size_;
}

void TaskGroup::spawn(Task<void> task) { loop_.schedule(adopt(std::move(task))); }

std::coroutine_handle<> TaskGroup::adopt(Task<void> task) {
  loop_.assert_in_loop_thread();
  if (!task.valid()) throw UsageError("TaskGroup::spawn: empty Task");
  TaskHandle h = task.release();
  h.promise().detach_ = detail::DetachHook{&TaskGroup::on_task_done, this};
  link(&h.promise());
  return h;
}

void TaskGroup::on_task_done(void* ctx, std::coroutine_handle<> h, std::exception_ptr error) noexcept {
  auto* self = static_cast<TaskGroup*>(ctx);
  self->unlink(&TaskHandle::from_address(h.address()).promise());
  h.destroy();
  if (self->empty()) self->wake_waiters();
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
  while (!empty()) {
    co_await detail::WaitAwaiter{waiters_};
  }
}

void TaskGroup::cancel_all() noexcept {
  // Destroying a runner may destroy things that spawn or finish other tasks: detach the whole
  // list first, then destroy it; repeat while tasks were spawned meanwhile.
  while (head_) {
    detail::TaskPromiseBase* batch = std::exchange(head_, nullptr);
    tail_ = nullptr;
    size_ = 0;
    // Tasks spawned but not started yet are still queued: drop their queued start first.
    try {
      std::vector<std::coroutine_handle<>> unstarted;
      for (auto* r = batch; r; r = r->next_) {
        if (!r->started_) unstarted.push_back(handle_of(r));
      }
      loop_.unschedule(unstarted);
    } catch (...) {  // out of memory: one pass per task instead
      for (auto* r = batch; r; r = r->next_) {
        if (!r->started_) loop_.unschedule(handle_of(r));
      }
    }
    while (batch) {
      detail::TaskPromiseBase* r = std::exchange(batch, batch->next_);
      handle_of(r).destroy();
    }
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
