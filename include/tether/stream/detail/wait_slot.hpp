#pragma once
/// \file Cancellation-safe wake-up of one waiter, for the stream layer's readiness waits. (Waits
/// of any number of coroutines use the loop's detail::WaitList, tether/loop/sync.hpp.)
///
/// notify() queues the waiting coroutine on the loop's ready queue (EventLoop::schedule: no
/// allocation, resumed through the loop's trampoline). If the waiting task is destroyed
/// (cancelled) after it was queued but before it ran, its awaiter unschedules it, so the
/// queue never resumes a freed frame (with_timeout expiring in the same loop turn as a
/// readiness event is enough to get there). A wake-up may be spurious, so every wait sits in
/// a re-check loop (`while (!ready) co_await slot.wait();`).
///
/// Loop thread only. Used by FdTransport, the in-memory pipe and BufferedStream; transports
/// and servers in other layers may use it too. Awaiters must not outlive their slot's loop; a
/// slot destroyed while a coroutine waits on it simply forgets the waiter.

#include <coroutine>
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

}  // namespace detail
}  // namespace tether
