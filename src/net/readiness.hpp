#pragma once
// Private: edge-triggered readiness tracking for one fd, with at most one coroutine waiting
// for "readable" and one for "writable". Used by the TLS transport, the child-process pipe
// transport and connect().
//
// Waiters are resumed from the loop's ready step (call_soon), never inline from the epoll
// dispatch. A waiter cancelled between its wake-up and its resumption is simply skipped: the
// callback finds its slot empty (and the Readiness itself may be gone: an alive token guards).

#include <coroutine>
#include <cstdint>
#include <memory>

#include "tether/loop/event_loop.hpp"
#include "tether/loop/io_watcher.hpp"

namespace tether::detail {

class Readiness {
 public:
  /// Registers fd (not owned) for both directions, edge-triggered. Starts optimistic
  /// (readable and writable), so callers try their syscall before waiting.
  Readiness(EventLoop& loop, int fd);
  ~Readiness();
  Readiness(const Readiness&) = delete;
  Readiness& operator=(const Readiness&) = delete;

  enum Dir { kRead = 0, kWrite = 1 };

  /// Record that a syscall in direction d returned EAGAIN: the next wait really waits.
  void clear(Dir d) noexcept { ready_[d] = false; }
  [[nodiscard]] bool ready(Dir d) const noexcept { return ready_[d]; }
  /// True once the fd reported an error or hang-up (the next syscall tells which).
  [[nodiscard]] bool hangup() const noexcept { return hangup_; }

  /// Optional hook run (in the dispatch) on every event, before waiters are scheduled.
  void set_on_event(UniqueFunction<void(std::uint32_t)> fn) { on_event_ = std::move(fn); }

  /// Deregisters the fd (call before closing it). Waiters stay; later waits complete at once.
  void detach() noexcept;
  [[nodiscard]] bool detached() const noexcept { return !watcher_; }

  class Awaiter {
   public:
    Awaiter(Readiness& r, Dir d) noexcept : r_(r), d_(d) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter() {
      if (suspended_ && r_.slot_[d_].h == h_) r_.slot_[d_].h = {};
    }
    bool await_ready() const noexcept { return r_.ready_[d_] || !r_.watcher_; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
      h_ = h;
      suspended_ = true;
      r_.slot_[d_].h = h;
    }
    void await_resume() noexcept { suspended_ = false; }

   private:
    Readiness& r_;
    Dir d_;
    std::coroutine_handle<> h_{};
    bool suspended_ = false;
  };

  /// Suspends until direction d is ready (completes at once if it already is).
  /// At most one waiter per direction.
  Awaiter wait(Dir d) noexcept { return Awaiter(*this, d); }

  /// Wakes the waiter of d even though nothing changed (used to deliver errors and close).
  void poke(Dir d);

  [[nodiscard]] EventLoop& loop() const noexcept { return loop_; }

 private:
  struct Slot {
    std::coroutine_handle<> h{};
    bool scheduled = false;
  };
  void on_events(std::uint32_t ev);
  void schedule(Dir d);

  EventLoop& loop_;
  std::unique_ptr<IoWatcher> watcher_;
  bool ready_[2] = {true, true};
  bool hangup_ = false;
  Slot slot_[2];
  UniqueFunction<void(std::uint32_t)> on_event_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tether::detail
