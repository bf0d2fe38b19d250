#include "tether/loop/task.hpp"

#include "tether/loop/gather.hpp"

namespace tether {

namespace detail {

std::atomic<long> g_live_tasks{0};

WhenAll::WhenAll(std::vector<Task<void>> tasks) : tasks_(std::move(tasks)) {}

WhenAll::~WhenAll() { destroy_runners(); }

void WhenAll::destroy_runners() noexcept {
  for (auto& h : runners_) {
    if (h) std::exchange(h, {}).destroy();
  }
}

void WhenAll::await_suspend(std::coroutine_handle<> h) {
  waiter_ = h;
  loop_ = &EventLoop::current_or_throw();
  remaining_ = tasks_.size();
  runners_.reserve(tasks_.size());
  for (auto& t : tasks_) runners_.push_back(start_runner(std::move(t), RunnerHook{&WhenAll::on_done, this}));
  tasks_.clear();
  // Start every branch through the ready queue so none runs inside another's stack.
  for (auto& r : runners_) loop_->schedule(r);
}

void WhenAll::on_done(void* ctx, std::coroutine_handle<> h, std::exception_ptr e) noexcept {
  auto* self = static_cast<WhenAll*>(ctx);
  for (auto& r : self->runners_) {
    if (r == h) {
      r = {};
      h.destroy();
      break;
    }
  }
  --self->remaining_;
  if (e && !self->error_) {
    self->error_ = e;
    // Cancel the other branches: they are suspended (only one frame runs at a time).
    self->destroy_runners();
    self->remaining_ = 0;
  }
  if (self->remaining_ == 0 && self->waiter_) {
    self->loop_->schedule(std::exchange(self->waiter_, {}));
  }
}

void WhenAll::await_resume() {
  if (error_) std::rethrow_exception(error_);
}

}  // namespace detail

Task<void> gather(std::vector<Task<void>> tasks) { co_await detail::WhenAll(std::move(tasks)); }

}  // namespace tether
