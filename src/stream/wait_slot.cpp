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

// ------------------------------------------------------------------------------ WaitQueue

WaitQueue::~WaitQueue() {
  for (Awaiter* a = head_; a;) {
    Awaiter* next = a->next_;
    a->linked_ = false;
    a->prev_ = a->next_ = nullptr;
    a->queue_ = nullptr;
    a = next;
  }
}

void WaitQueue::Awaiter::await_suspend(std::coroutine_handle<> h) noexcept {
  handle_ = h;
  prev_ = queue_->tail_;
  next_ = nullptr;
  if (queue_->tail_) {
    queue_->tail_->next_ = this;
  } else {
    queue_->head_ = this;
  }
  queue_->tail_ = this;
  linked_ = true;
}

void WaitQueue::Awaiter::unlink() noexcept {
  if (!linked_) return;
  if (prev_) {
    prev_->next_ = next_;
  } else {
    queue_->head_ = next_;
  }
  if (next_) {
    next_->prev_ = prev_;
  } else {
    queue_->tail_ = prev_;
  }
  prev_ = next_ = nullptr;
  linked_ = false;
}

WaitQueue::Awaiter::~Awaiter() {
  if (queue_) unlink();
  if (scheduled_ && !resumed_) loop_->unschedule(handle_);
}

std::size_t WaitQueue::notify_all() {
  std::size_t n = 0;
  while (Awaiter* a = head_) {
    a->unlink();
    a->queue_ = nullptr;
    a->scheduled_ = true;
    loop_->schedule(a->handle_);
    ++n;
  }
  return n;
}

}  // namespace tether::detail
