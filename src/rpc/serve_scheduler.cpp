#include "rpc/serve_scheduler.hpp"

#include <utility>

namespace tether::rpc::detail {

ServeScheduler::HandOff::~HandOff() {
  // Destroyed while queued (the connection's tasks were cancelled): off the queue.
  if (self_ && !resumed_) loop_.unschedule(self_);
}

std::coroutine_handle<> ServeScheduler::HandOff::await_suspend(std::coroutine_handle<> self) {
  loop_.schedule(self);  // the read loop goes on after what is queued already
  self_ = self;
  return to_;
}

void ServeScheduler::spawn(Task<void> request) {
  ++serving_;
  channel_.hold_flush();
  try {
    if (!held_ && !pass_scheduled_) {
      // Perhaps the only request of this pass: the read loop starts it itself once the pass
      // ends, in this loop iteration rather than the next (HandOff).
      held_ = tasks_.adopt(std::move(request));
      return;
    }
    // Another one: both go through the ready queue, in the order they came.
    release_held();
    tasks_.spawn(std::move(request));
    pass_scheduled_ = true;
  } catch (...) {
    --serving_;
    channel_.release_flush();
    throw;
  }
}

void ServeScheduler::release_held() {
  if (!held_) return;
  loop_.schedule(held_);
  held_ = {};
  pass_scheduled_ = true;
}

std::coroutine_handle<> ServeScheduler::take_held() noexcept { return std::exchange(held_, {}); }

}  // namespace tether::rpc::detail
