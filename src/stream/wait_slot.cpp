#include "tether/stream/detail/wait_slot.hpp"

#include <cassert>

#include "tether/loop/event_loop.hpp"

namespace tether::detail {

// ------------------------------------------------------------------------------- WaitSlot

WaitSlot::~WaitSlot() {
  if (waiter_) waiter_->slot_ = nullptr;
}

bool WaitSlot::notify() {
  Awaiter* w = waiter_;
  if (!w) return false;
  waiter_ = nullptr;
  w->slot_ = nullptr;
  w->scheduled_ = true;
  loop_->schedule(w->handle_);
  return true;
}

void WaitSlot::Awaiter::await_suspend(std::coroutine_handle<> h) noexcept {
  assert(slot_ && !slot_->waiter_ && "WaitSlot supports one waiter at a time");
  handle_ = h;
  slot_->waiter_ = this;
}

WaitSlot::Awaiter::~Awaiter() {
  if (slot_ && slot_->waiter_ == this) slot_->waiter_ = nullptr;
  // Queued but destroyed before it ran (the task was cancelled): take it off the queue.
  if (scheduled_ && !resumed_) loop_->unschedule(handle_);
}

}  // namespace tether::detail
