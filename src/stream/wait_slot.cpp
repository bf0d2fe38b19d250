#include "tether/stream/detail/wait_slot.hpp"

#include <cassert>
#include <utility>

#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"

namespace tether::detail {

namespace {

/// The queued wake-up: holds a reference on the cell so it can run (or be dropped unrun when
/// the loop is destroyed) after everything else let go of the cell.
class CellWake {
 public:
  explicit CellWake(WakeCell* cell) noexcept : cell_(cell) {}
  CellWake(CellWake&& o) noexcept : cell_(std::exchange(o.cell_, nullptr)) {}
  CellWake(const CellWake&) = delete;
  CellWake& operator=(const CellWake&) = delete;
  CellWake& operator=(CellWake&&) = delete;
  ~CellWake() {
    if (cell_) cell_->release();
  }
  void operator()() {
    WakeCell* c = std::exchange(cell_, nullptr);
    c->queued = false;
    std::coroutine_handle<> h = std::exchange(c->waiter, {});
    c->release();  // the waiter's awaiter holds its own reference while suspended
    if (h) resume(h);  // through the loop layer's trampoline
  }

 private:
  WakeCell* cell_;
};

}  // namespace

void wake_cell(EventLoop& loop, WakeCell* cell) {
  if (!cell->waiter || cell->queued) return;
  cell->queued = true;
  cell->retain();
  loop.call_soon(CellWake(cell));
}

// ------------------------------------------------------------------------------- WaitSlot

WaitSlot::~WaitSlot() {
  if (cell_) cell_->release();
}

bool WaitSlot::notify() {
  if (!cell_ || !cell_->waiter) return false;
  wake_cell(*loop_, cell_);
  return true;
}

void WaitSlot::Awaiter::await_suspend(std::coroutine_handle<> h) {
  if (!slot_.cell_) slot_.cell_ = new WakeCell();
  cell_ = slot_.cell_;
  assert(!cell_->waiter && "WaitSlot supports one waiter at a time");
  cell_->retain();
  cell_->waiter = h;
  handle_ = h;
}

WaitSlot::Awaiter::~Awaiter() {
  if (!cell_) return;
  // Destroyed while still waiting (the task was cancelled): forget the handle so a queued
  // wake-up finds nothing. After a normal resume the waiter was already taken.
  if (cell_->waiter == handle_) cell_->waiter = {};
  cell_->release();
}

// ------------------------------------------------------------------------------ WaitQueue

WaitQueue::~WaitQueue() {
  // Waiters still linked belong to frames that will be destroyed later; detach them.
  for (Awaiter* a = head_; a;) {
    Awaiter* next = a->next_;
    a->linked_ = false;
    a->prev_ = a->next_ = nullptr;
    a->queue_ = nullptr;
    a = next;
  }
}

void WaitQueue::Awaiter::await_suspend(std::coroutine_handle<> h) {
  cell_ = new WakeCell();  // ref held by this awaiter
  cell_->waiter = h;
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
  if (cell_) {
    if (cell_->waiter == handle_) cell_->waiter = {};
    cell_->release();
  }
}

std::size_t WaitQueue::notify_all() {
  std::size_t n = 0;
  while (Awaiter* a = head_) {
    a->unlink();
    wake_cell(*loop_, a->cell_);
    ++n;
  }
  return n;
}

}  // namespace tether::detail
