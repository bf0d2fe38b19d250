#include "tether/loop/sync.hpp"

#include <cassert>

namespace tether {

namespace detail {

WaitList::~WaitList() {
  // Waiters still linked belong to frames being torn down after us; detach them.
  for (Node* n = head_; n;) {
    Node* next = n->next;
    n->owner = nullptr;
    n->prev = n->next = nullptr;
    n = next;
  }
}

EventLoop& WaitList::loop() {
  if (!loop_) loop_ = &EventLoop::current_or_throw();
  return *loop_;
}

void WaitList::push(Node* n, std::coroutine_handle<> h) {
  n->loop = &loop();  // binds the list to the loop of the first waiter
  n->owner = this;
  n->handle = h;
  n->prev = tail_;
  n->next = nullptr;
  if (tail_) {
    tail_->next = n;
  } else {
    head_ = n;
  }
  tail_ = n;
  ++size_;
}

void WaitList::unlink(Node* n) noexcept {
  if (n->prev) {
    n->prev->next = n->next;
  } else {
    head_ = n->next;
  }
  if (n->next) {
    n->next->prev = n->prev;
  } else {
    tail_ = n->prev;
  }
  n->prev = n->next = nullptr;
  n->owner = nullptr;
  --size_;
}

bool WaitList::wake_one() {
  Node* n = head_;
  if (!n) return false;
  unlink(n);
  n->woken = true;
  loop().schedule(n->handle);
  return true;
}

std::size_t WaitList::wake_all() {
  std::size_t n = 0;
  while (wake_one()) ++n;
  return n;
}

void WaitList::unschedule(std::coroutine_handle<> h) noexcept {
  if (loop_) loop_->unschedule(h);
}

}  // namespace detail

void Event::set() {
  set_ = true;
  list_.wake_all();
}

namespace {
void drop_wakeup(void*) {}  // every waiter of an Event is woken at once: nothing to hand on
}  // namespace

Task<void> Event::wait() {
  if (set_) co_return;
  // Only set() wakes the list, so being woken means "released", whatever set_ says now.
  co_await detail::WaitAwaiter{list_, &drop_wakeup, nullptr};
}

Task<void> Semaphore::acquire() {
  // FIFO: a newcomer queues behind earlier waiters.
  if (permits_ > 0 && list_.empty()) {
    --permits_;
    co_return;
  }
  // release() hands the permit over with the wake-up: when we resume, it is ours.
  co_await detail::WaitAwaiter{list_, &Semaphore::give_back, this};
}

void Semaphore::give_back(void* self) { static_cast<Semaphore*>(self)->release(); }

bool Semaphore::try_acquire() noexcept {
  if (permits_ == 0 || !list_.empty()) return false;
  --permits_;
  return true;
}

void Semaphore::release() {
  if (!list_.wake_one()) ++permits_;
}

}  // namespace tether
