#pragma once
/// \file Async synchronisation for tasks on one loop: Event, Semaphore, bounded Queue<T>.
/// Loop thread only. Waiters resume through the ready queue in FIFO order; a waiter whose task
/// is cancelled removes itself (and hands back anything it was given).

#include <coroutine>
#include <cstddef>
#include <deque>
#include <optional>
#include <utility>

#include "tether/base/error.hpp"
#include "tether/base/export.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"

namespace tether {

namespace detail {

struct WaitAwaiter;

/// Intrusive FIFO of suspended waiters: the one wait list of the loop and stream layers
/// (Event, Semaphore, Queue, the stream's drain/flush/close waits, the server's idle wait). A
/// node unlinks itself when destroyed; a list destroyed while coroutines wait on it forgets
/// them. Loop thread only.
class TETHER_API WaitList {
 public:
  struct Node {
    Node* prev = nullptr;
    Node* next = nullptr;
    WaitList* owner = nullptr;
    EventLoop* loop = nullptr;  // the list's loop, set when the node is pushed
    std::coroutine_handle<> handle;
    bool woken = false;
    ~Node() {
      if (owner) owner->unlink(this);
    }
  };

  /// `loop` null: bound to the loop of the first waiter.
  explicit WaitList(EventLoop* loop = nullptr) : loop_(loop) {}
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;
  ~WaitList();

  void push(Node* n, std::coroutine_handle<> h);
  /// Schedules the oldest waiter; returns false if there is none.
  bool wake_one();
  /// Schedules every current waiter; returns how many there were.
  std::size_t wake_all();
  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// Drops the queued resumption of a woken waiter whose frame is being destroyed.
  void unschedule(std::coroutine_handle<> h) noexcept;

  /// A broadcast wait, for lists woken only by wake_all(): `while (!ready) co_await
  /// list.wait();`. Wake-ups may be spurious. A waiter cancelled after it was woken but before
  /// it ran only drops its queued resumption (the others were woken too) and never touches the
  /// list again, so the list may be gone by then.
  [[nodiscard]] WaitAwaiter wait() noexcept;

 private:
  void unlink(Node* n) noexcept;
  EventLoop& loop();

  EventLoop* loop_;
  Node* head_ = nullptr;
  Node* tail_ = nullptr;
  std::size_t size_ = 0;
};

/// Suspends until woken. If the waiting task is cancelled after it was woken but before it
/// ran, its queued resumption is dropped and the wake-up is handed on: by default to the next
/// waiter (re-check loops such as `while (!cond) co_await ...` never lose one), or through
/// `on_abandon(ctx)` when the owner needs something else (a semaphore returns the permit;
/// WaitList::wait() does nothing more).
struct WaitAwaiter {
  WaitList& list;
  void (*on_abandon)(void* ctx) = nullptr;
  void* ctx = nullptr;
  WaitList::Node node{};
  bool resumed = false;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) { list.push(&node, h); }
  void await_resume() noexcept { resumed = true; }
  ~WaitAwaiter() {
    if (node.woken && !resumed) {
      node.loop->unschedule(node.handle);
      if (on_abandon) {
        on_abandon(ctx);
      } else {
        list.wake_one();
      }
    }
  }
  /// on_abandon for broadcast waits: nothing to hand on.
  static void keep_nothing(void*) noexcept {}
};

inline WaitAwaiter WaitList::wait() noexcept { return WaitAwaiter{*this, &WaitAwaiter::keep_nothing, nullptr}; }

}  // namespace detail

/// asyncio.Event: wait() suspends until set(); set() releases every task waiting at that
/// moment, even if clear() follows before they run.
class TETHER_API Event {
 public:
  Event() = default;
  void set();
  void clear() noexcept { set_ = false; }
  [[nodiscard]] bool is_set() const noexcept { return set_; }
  /// Completes at once if set. Cancelling the waiting task just removes it.
  Task<void> wait();
  [[nodiscard]] std::size_t waiters() const noexcept { return list_.size(); }

 private:
  bool set_ = false;
  detail::WaitList list_;
};

/// asyncio.Semaphore with strict FIFO fairness: release() hands its permit straight to the
/// oldest waiter, so a newcomer (acquire() or try_acquire()) cannot overtake it. A waiter
/// cancelled after it was handed a permit passes it on (to the next waiter, or back).
class TETHER_API Semaphore {
 public:
  explicit Semaphore(std::size_t permits) : permits_(permits) {}
  /// Completes at once if a permit is free and nobody waits; else waits its turn.
  Task<void> acquire();
  /// Takes a free permit if nobody waits.
  bool try_acquire() noexcept;
  void release();
  /// Free permits (a permit handed to a woken waiter that has not run yet is not free).
  [[nodiscard]] std::size_t available() const noexcept { return permits_; }

 private:
  static void give_back(void* self);

  std::size_t permits_;
  detail::WaitList list_;
};

/// Thrown by Queue::push/pop after close().
class TETHER_API QueueClosed : public Error {
 public:
  QueueClosed() : Error(ErrorKind::kStreamClosed, "queue is closed") {}
};

/// Bounded FIFO queue between tasks (asyncio.Queue with maxsize). capacity 0 = unbounded.
template <class T>
class Queue {
 public:
  explicit Queue(std::size_t capacity = 0) : capacity_(capacity) {}

  /// Waits while full. Throws QueueClosed after close().
  Task<void> push(T value) {
    while (!closed_ && full()) {
      co_await detail::WaitAwaiter{not_full_};
    }
    if (closed_) throw QueueClosed();
    items_.push_back(std::move(value));
    not_empty_.wake_one();
  }
  bool try_push(T value) {
    if (closed_ || full()) return false;
    items_.push_back(std::move(value));
    not_empty_.wake_one();
    return true;
  }
  /// Waits while empty. After close(), drains what is left, then throws QueueClosed.
  Task<T> pop() {
    while (items_.empty() && !closed_) {
      co_await detail::WaitAwaiter{not_empty_};
    }
    if (items_.empty()) throw QueueClosed();
    T v = std::move(items_.front());
    items_.pop_front();
    not_full_.wake_one();
    co_return v;
  }
  std::optional<T> try_pop() {
    if (items_.empty()) return std::nullopt;
    T v = std::move(items_.front());
    items_.pop_front();
    not_full_.wake_one();
    return v;
  }
  /// Wakes every waiter; later pushes fail, pops drain then fail.
  void close() {
    closed_ = true;
    not_empty_.wake_all();
    not_full_.wake_all();
  }
  [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }
  [[nodiscard]] bool empty() const noexcept { return items_.empty(); }
  [[nodiscard]] bool full() const noexcept { return capacity_ && items_.size() >= capacity_; }
  [[nodiscard]] bool closed() const noexcept { return closed_; }

 private:
  std::size_t capacity_;
  bool closed_ = false;
  std::deque<T> items_;
  detail::WaitList not_empty_;
  detail::WaitList not_full_;
};

}  // namespace tether
