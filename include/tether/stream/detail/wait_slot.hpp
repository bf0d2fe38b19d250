#pragma once
/// \file Cancellation-safe wake-ups for the stream layer's awaiters.
///
/// notify() queues the waiting coroutine on the loop's ready queue (EventLoop::schedule: no
/// allocation, resumed through the loop's trampoline). If the waiting task is destroyed
/// (cancelled) after it was queued but before it ran, its awaiter unschedules it, so the
/// queue never resumes a freed frame (with_timeout expiring in the same loop turn as a
/// readiness event is enough to get there). A wake-up may be spurious, so every wait sits in
/// a re-check loop (`while (!ready) co_await slot.wait();`).
///
/// Loop thread only. Used by FdTransport, the in-memory pipe and BufferedStream; transports
/// and servers in other layers may use them too. Awaiters must not outlive their slot/queue's
/// loop; a slot or queue destroyed while a coroutine waits on it simply forgets the waiter.

#include <coroutine>
#include <cstddef>
#include <cstdint>

#include "tether/base/export.hpp"

namespace tether {

class EventLoop;

namespace detail {

/// A wait point for at most one coroutine at a time (a second concurrent waiter is a bug,
/// caught by an assertion).
class TETHER_API WaitSlot {
 public:
  explicit WaitSlot(EventLoop& loop) noexcept : loop_(&loop) {}
  WaitSlot(const WaitSlot&) = delete;
  WaitSlot& operator=(const WaitSlot&) = delete;
  ~WaitSlot();

  class [[nodiscard]] Awaiter {
   public:
    explicit Awaiter(WaitSlot& slot) noexcept : slot_(&slot), loop_(slot.loop_) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter();
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept;
    void await_resume() noexcept { resumed_ = true; }

   private:
    friend class WaitSlot;
    WaitSlot* slot_;  // null once notified (or when the slot is gone)
    EventLoop* loop_;
    std::coroutine_handle<> handle_{};
    bool scheduled_ = false;
    bool resumed_ = false;
  };

  /// Suspends until notify() (or a spurious wake-up). Destroying the waiting task cancels it.
  Awaiter wait() noexcept { return Awaiter(*this); }
  /// Queues the waiter, if any, on the ready queue. Returns whether one was waiting.
  bool notify();
  [[nodiscard]] bool waiting() const noexcept { return waiter_ != nullptr; }
  [[nodiscard]] EventLoop& loop() const noexcept { return *loop_; }

 private:
  EventLoop* loop_;
  Awaiter* waiter_ = nullptr;
};

/// A wait point for any number of coroutines; notify_all() wakes all current waiters.
class TETHER_API WaitQueue {
 public:
  explicit WaitQueue(EventLoop& loop) noexcept : loop_(&loop) {}
  WaitQueue(const WaitQueue&) = delete;
  WaitQueue& operator=(const WaitQueue&) = delete;
  ~WaitQueue();

  class [[nodiscard]] Awaiter {
   public:
    explicit Awaiter(WaitQueue& q) noexcept : queue_(&q), loop_(q.loop_) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter();
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept;
    void await_resume() noexcept { resumed_ = true; }

   private:
    friend class WaitQueue;
    void unlink() noexcept;
    WaitQueue* queue_;  // null once woken (or when the queue is gone)
    EventLoop* loop_;
    Awaiter* prev_ = nullptr;
    Awaiter* next_ = nullptr;
    std::coroutine_handle<> handle_{};
    bool linked_ = false;
    bool scheduled_ = false;
    bool resumed_ = false;
  };

  Awaiter wait() noexcept { return Awaiter(*this); }
  /// Queues every current waiter on the ready queue. Returns how many were waiting.
  std::size_t notify_all();
  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }

 private:
  EventLoop* loop_;
  Awaiter* head_ = nullptr;
  Awaiter* tail_ = nullptr;
};

}  // namespace detail
}  // namespace tether
