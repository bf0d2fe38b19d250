#pragma once
/// \file Cancellation-safe wake-ups for the stream layer's awaiters.
///
/// A plain `loop.schedule(handle)` is unsafe when the waiting task can be destroyed (cancelled)
/// between the wake-up and the ready-queue step that resumes it: the queue would then resume a
/// freed frame (with_timeout expiring in the same loop turn as the readiness event is enough).
/// The primitives here wake through `call_soon` with a small reference-counted cell instead;
/// an awaiter that is destroyed first clears its entry in the cell, so the queued callback
/// finds nothing to resume. Every wait must therefore sit in a re-check loop
/// (`while (!ready) co_await slot.wait();`): a wake-up may be spurious.
///
/// Loop thread only. Used by FdTransport, the in-memory pipe and BufferedStream; transports
/// written in other layers (TLS) may use them too.

#include <coroutine>
#include <cstddef>
#include <cstdint>

#include "tether/base/export.hpp"

namespace tether {

class EventLoop;

namespace detail {

/// Shared between a wait point and the callbacks queued to wake it.
struct WakeCell {
  std::coroutine_handle<> waiter{};
  std::uint32_t refs = 1;
  bool queued = false;

  void retain() noexcept { ++refs; }
  void release() noexcept {
    if (--refs == 0) delete this;
  }
};

/// Queues a resume of cell->waiter for the ready step (at most one queued wake per cell).
TETHER_API void wake_cell(EventLoop& loop, WakeCell* cell);

/// A wait point for at most one coroutine at a time (a second concurrent waiter is a bug and
/// is caught by an assertion). The cell is allocated on the first wait.
class TETHER_API WaitSlot {
 public:
  explicit WaitSlot(EventLoop& loop) noexcept : loop_(&loop) {}
  WaitSlot(const WaitSlot&) = delete;
  WaitSlot& operator=(const WaitSlot&) = delete;
  ~WaitSlot();

  class [[nodiscard]] Awaiter {
   public:
    explicit Awaiter(WaitSlot& slot) noexcept : slot_(slot) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter();
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h);
    void await_resume() const noexcept {}

   private:
    WaitSlot& slot_;
    WakeCell* cell_ = nullptr;
    std::coroutine_handle<> handle_{};
  };

  /// Suspends until notify() (or a spurious wake-up). Destroying the waiting task cancels it.
  Awaiter wait() noexcept { return Awaiter(*this); }
  /// Resumes the waiter, if any, from the loop's ready queue. Returns whether one was waiting.
  bool notify();
  [[nodiscard]] bool waiting() const noexcept { return cell_ && cell_->waiter; }
  [[nodiscard]] EventLoop& loop() const noexcept { return *loop_; }

 private:
  EventLoop* loop_;
  WakeCell* cell_ = nullptr;
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
    explicit Awaiter(WaitQueue& q) noexcept : queue_(&q) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter();
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h);
    void await_resume() const noexcept {}

   private:
    friend class WaitQueue;
    void unlink() noexcept;
    WaitQueue* queue_;
    Awaiter* prev_ = nullptr;
    Awaiter* next_ = nullptr;
    bool linked_ = false;
    WakeCell* cell_ = nullptr;
    std::coroutine_handle<> handle_{};
  };

  Awaiter wait() noexcept { return Awaiter(*this); }
  /// Wakes every current waiter (through the ready queue). Returns how many were waiting.
  std::size_t notify_all();
  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }

 private:
  EventLoop* loop_;
  Awaiter* head_ = nullptr;
  Awaiter* tail_ = nullptr;
};

}  // namespace detail
}  // namespace tether
