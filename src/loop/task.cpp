#include "tether/loop/task.hpp"

#include "tether/loop/gather.hpp"

namespace tether {

namespace detail {

std::atomic<long> g_live_tasks{0};

thread_local Trampoline* t_trampoline = nullptr;

void resume(std::coroutine_handle<> h) noexcept {
  Trampoline t;
  t.outer = t_trampoline;
  t.next = h;
  t_trampoline = &t;
  while (t.next) {
    t.running = std::exchange(t.next, {});
    t.running.resume();
  }
  t_trampoline = t.outer;
}

WhenAll::WhenAll(std::vector<Task<void>> tasks) : tasks_(std::move(tasks)) {}

WhenAll::~WhenAll() {
  // Cancelled after the last branch finished but before the awaiter resumed.
  if (scheduled_ && loop_) loop_->unschedule(scheduled_);
  destroy_runners();
}

void WhenAll::destroy_runners() noexcept {
  // Branches that never started are still queued: drop their queued start first.
  if (loop_) {
    try {
      std::vector<std::coroutine_handle<>> unstarted;
      for (auto& h : runners_) {
        if (h && !h.promise().started_) unstarted.push_back(h);
      }
      loop_->unschedule(unstarted);
    } catch (...) {  // out of memory: one pass per runner instead
      for (auto& h : runners_) {
        if (h && !h.promise().started_) loop_->unschedule(h);
      }
    }
  }
  for (auto& h : runners_) {
    if (h) std::exchange(h, {}).destroy();
  }
}

void WhenAll::await_suspend(std::coroutine_handle<> h) {
  waiter_ = h;
  loop_ = &EventLoop::current_or_throw();
  remaining_ = tasks_.size();
  runners_.reserve(tasks_.size());
  for (auto& t : tasks_) {
    runners_.push_back(start_runner(std::move(t), RunnerHook{&WhenAll::on_done, this}));
    runners_.back().promise().tag_ = runners_.size() - 1;
  }
  tasks_.clear();
  // Start every branch through the ready queue so none runs inside another's stack.
  for (auto& r : runners_) loop_->schedule(r);
}

void WhenAll::on_done(void* ctx, std::coroutine_handle<> h, std::exception_ptr e) noexcept {
  auto* self = static_cast<WhenAll*>(ctx);
  const std::size_t index = std::coroutine_handle<RunnerPromise>::from_address(h.address()).promise().tag_;
  self->runners_[index] = {};
  h.destroy();
  --self->remaining_;
  if (e && !self->error_) {
    self->error_ = e;
    // Cancel the other branches: they are suspended (only one frame runs at a time).
    self->destroy_runners();
    self->remaining_ = 0;
  }
  if (self->remaining_ == 0 && self->waiter_) {
    self->scheduled_ = std::exchange(self->waiter_, {});
    self->loop_->schedule(self->scheduled_);
  }
}

void WhenAll::await_resume() {
  scheduled_ = {};
  if (error_) std::rethrow_exception(error_);
}

}  // namespace detail

Task<void> gather(std::vector<Task<void>> tasks) { co_await detail::WhenAll(std::move(tasks)); }

}  // namespace tether
