#pragma once
/// \file EventLoop: one per thread; epoll-based reactor with timers, cross-thread post,
/// signals and a ready queue from which coroutines are resumed.
///
/// Loop iteration (the order is part of the contract):
///  1. wait for I/O (no wait if callbacks are ready, else until the next timer);
///  2. dispatch I/O events to their watchers;
///  3. run expired timers in deadline order (equal deadlines: creation order);
///  4. run callbacks posted from other threads;
///  5. run the ready queue (coroutines, call_soon callbacks) as it stood at the start of this
///     step; what they schedule runs in the next iteration.
///
/// Thread rules: post() and stop() are safe from any thread; everything else must be
/// called on the loop's thread (checked in debug builds, UsageError).

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "tether/base/error.hpp"
#include "tether/base/export.hpp"
#include "tether/base/function.hpp"
#include "tether/loop/fiber.hpp"
#include "tether/loop/runner.hpp"
#include "tether/loop/task.hpp"

namespace tether {

class IoWatcher;
class WorkerPool;
namespace detail {
class Poller;
struct PollEvent;
class TimerQueue;
class SignalSet;
class FiberStacks;
}  // namespace detail

using Clock = std::chrono::steady_clock;
using Duration = Clock::duration;
using TimePoint = Clock::time_point;
using Callback = UniqueFunction<void()>;

/// Identifies a scheduled timer. Plain value; cancelling a fired or cancelled timer is a no-op.
struct TimerId {
  std::uint64_t value = 0;
  explicit operator bool() const noexcept { return value != 0; }
};

class EventLoop;

/// A cancellable reference to a timer (asyncio's TimerHandle). Does not cancel on destruction.
class TETHER_API TimerHandle {
 public:
  TimerHandle() noexcept = default;
  TimerHandle(EventLoop* loop, TimerId id) noexcept : loop_(loop), id_(id) {}
  /// Loop thread only.
  void cancel() noexcept;
  [[nodiscard]] TimerId id() const noexcept { return id_; }

 private:
  EventLoop* loop_ = nullptr;
  TimerId id_{};
};

/// Counts of what a loop holds; tests assert all are zero at the end.
struct LoopStats {
  std::size_t watchers = 0;  ///< registered IoWatchers (the loop's own wake-up fd excluded)
  std::size_t timers = 0;    ///< pending timers
  std::size_t ready = 0;     ///< queued callbacks and coroutines, and end-of-iteration work
  std::size_t signals = 0;   ///< signal handlers
  // Busy polling (set_busy_poll), since the loop was created:
  std::uint64_t busy_poll_caught = 0;  ///< waits that I/O ended while the loop was spinning
  std::uint64_t busy_poll_missed = 0;  ///< spins that caught nothing (the loop then slept)
  Duration busy_poll_time{};           ///< time spent spinning
};

/// What a loop measures of itself for monitoring (EventLoop::figures()): written by the
/// loop's thread (and its worker pool's), readable from any thread at any time, and kept alive
/// by whoever holds it after the loop is gone. Relaxed atomics: a reader sees each figure
/// whole, not all of them at one instant.
struct LoopFigures {
  /// Busy polling (as LoopStats): waits ended by I/O while spinning, spins that caught
  /// nothing, time spent spinning.
  std::atomic<std::uint64_t> busy_poll_caught{0};
  std::atomic<std::uint64_t> busy_poll_missed{0};
  std::atomic<std::uint64_t> busy_poll_nanos{0};
  /// Loop lag, sampled in one of every kLagSampleEvery iterations that epoll woke with ready
  /// events: the time from epoll_wait returning to the end of that iteration (the handlers of
  /// those events, the timers and ready work run; the longest a ready event waited for its
  /// handler in that iteration). Count, sum and largest sample.
  std::atomic<std::uint64_t> lag_samples{0};
  std::atomic<std::uint64_t> lag_sum_nanos{0};
  std::atomic<std::uint64_t> lag_max_nanos{0};
  /// The loop's worker pool (run_in_worker): jobs waiting for a thread, and jobs running.
  std::atomic<std::uint64_t> worker_queued{0};
  std::atomic<std::uint64_t> worker_running{0};

  static constexpr std::uint32_t kLagSampleEvery = 64;
};

/// How a loop busy-polls before it sleeps (EventLoop::set_busy_poll, ServerOptions::busy_poll).
/// A plain Duration converts to a fixed spin, and zero to off.
struct BusyPoll {
  Duration spin = Duration::zero();  // the fixed spin, or the adaptive cap
  bool adaptive = false;

  BusyPoll() = default;
  template <class Rep, class Period>
  BusyPoll(std::chrono::duration<Rep, Period> fixed_spin)  // NOLINT(google-explicit-constructor)
      : spin(std::chrono::duration_cast<Duration>(fixed_spin)) {}

  [[nodiscard]] static BusyPoll off() { return {}; }
  [[nodiscard]] static BusyPoll fixed(Duration d) { return BusyPoll(d); }
  [[nodiscard]] static BusyPoll adaptive_up_to(Duration cap) {
    BusyPoll b(cap);
    b.adaptive = true;
    return b;
  }
  /// The servers' default: adaptive, up to 200 microseconds.
  [[nodiscard]] static BusyPoll adaptive_default() { return adaptive_up_to(std::chrono::microseconds(200)); }
  [[nodiscard]] bool enabled() const noexcept { return spin > Duration::zero(); }
  friend bool operator==(const BusyPoll&, const BusyPoll&) = default;
};

/// A loop owned through std::shared_ptr (std::make_shared<EventLoop>()) hands out further
/// shares with weak_from_this(): the blocking client facade (tether::SyncConnection) makes the
/// private loop of a thread that has none that way, and every later facade of the thread
/// shares it.
class TETHER_API EventLoop : public std::enable_shared_from_this<EventLoop> {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// The loop created on (and bound to) this thread, or null.
  static EventLoop* current() noexcept;
  /// current(), or throws UsageError if this thread has no loop.
  static EventLoop& current_or_throw();

  /// Runs until stop(). Re-entrant: a nested run()/run_until_complete() inside a callback
  /// keeps dispatching (this is how blocking facades serve callbacks while they wait).
  void run();
  /// Makes run() return after the current iteration (a stop() before run() makes the next
  /// run() return after one iteration, as asyncio does). Safe from any thread.
  void stop() noexcept;
  /// One iteration; waits at most `max_wait` (nullopt: until something happens).
  void run_once(std::optional<Duration> max_wait = std::nullopt);

  /// Runs the loop until `task` finishes; returns its value or rethrows its exception.
  /// Called on a fiber of this loop (fiber.hpp), it does not nest the loop: the fiber is
  /// suspended until the task has finished, and the loop goes on serving everything else.
  template <class T>
  T run_until_complete(Task<T> task);

  /// Queues fn to run on the loop thread. Safe from any thread; wakes the loop.
  void post(Callback fn);
  /// Queues fn for the next ready-queue step. Loop thread only; no wake-up needed.
  void call_soon(Callback fn);
  /// Queues a suspended coroutine to resume in the ready-queue step. Loop thread only.
  /// Whoever destroys a frame that is still queued must unschedule() it first.
  void schedule(std::coroutine_handle<> h);
  /// Drops every queued resumption of h (including in the ready batch now running). For
  /// awaiters whose frame is destroyed (cancelled) after they scheduled it. Loop thread only.
  void unschedule(std::coroutine_handle<> h) noexcept;
  /// unschedule() for several frames in one pass over the queue.
  void unschedule(std::span<const std::coroutine_handle<>> hs) noexcept;
  /// When the ready queue holds exactly one item and it is a coroutine's resumption, takes it
  /// off the queue and returns it (else null): for a coroutine that is about to suspend and
  /// hands the thread to it at once, as a symmetric transfer, instead of leaving it for the
  /// next ready step. The order of the queue is kept (nothing else was in it). At most
  /// kMaxSoleHandoffs per iteration, so that coroutines handing the thread to each other (two
  /// connections over an in-memory pipe) still let I/O and timers run. Loop thread only.
  [[nodiscard]] std::coroutine_handle<> take_sole_ready() noexcept;
  static constexpr int kMaxSoleHandoffs = 16;

  /// Runs fn(ctx) once at the end of the current iteration, after its ready step (called
  /// outside an iteration: at the end of the next one, which then does not block in its
  /// poll). For work that should see everything an iteration did — a stream writes out all
  /// the iteration queued in one system call — without waiting for another iteration. A
  /// second request for the same (fn, ctx) before it ran is a no-op. No allocation after the
  /// first few. Loop thread only; fn must not throw.
  void at_end_of_iteration(void (*fn)(void*) noexcept, void* ctx);
  /// Withdraws a pending at_end_of_iteration(fn, ctx) (whoever owns ctx calls it before ctx
  /// dies). A no-op if none is pending. Loop thread only.
  void cancel_end_of_iteration(void (*fn)(void*) noexcept, void* ctx) noexcept;

  /// Runs fn after `delay` (asyncio's call_later). Loop thread only.
  TimerHandle call_later(Duration delay, Callback fn);
  /// Runs fn at `when`. Loop thread only.
  TimerHandle call_at(TimePoint when, Callback fn);
  /// Cancels a pending timer; returns false if it already ran or was cancelled.
  bool cancel_timer(TimerId id) noexcept;

  /// Calls fn(signo) on the loop thread whenever signo arrives. Blocks the signal in the
  /// calling thread (block it in every thread, e.g. before starting others, for reliable
  /// delivery) and reads it through a signalfd. Replaces an earlier handler for signo.
  void add_signal_handler(int signo, std::function<void(int)> fn);
  /// Removes the handler and restores the signal's previous mask. Returns false if none.
  bool remove_signal_handler(int signo);

  /// The loop's worker pool for blocking work (created on first use; see run_in_worker).
  WorkerPool& workers();
  /// Sets the worker pool size before its first use (default: max(4, cores)).
  void set_worker_threads(std::size_t n);

  /// Busy polling: when an iteration would block waiting for I/O, it first polls without
  /// blocking, again and again, and blocks only if nothing arrived meanwhile. This trades CPU
  /// for latency: a request that arrives while the loop spins is served without the wake-up of
  /// a sleeping thread, which costs tens of microseconds on virtual machines (and lets a peer
  /// that waits for the reply get it before its own poll() sleeps). The spin is never longer
  /// than the wait the iteration was going to do, so a due timer is never made late.
  ///
  ///  * BusyPoll::fixed(d) (or a plain Duration): spin for up to d after every burst of work.
  ///  * BusyPoll::adaptive_up_to(cap): spin only while I/O has been arriving in quick succession.
  ///    The loop learns the spin from the gaps it sees: a wait that ended within `cap` sets
  ///    the spin to twice that gap (capped); a spin that catches nothing halves it, down to
  ///    none. An idle loop, or one woken once a second, therefore does not spin at all (one
  ///    short, halving spin after each burst at most), while a peer sending requests every few
  ///    tens of microseconds finds the loop awake. Servers use adaptive_default() (200 us) by default
  ///    (ServerOptions::busy_poll).
  ///  * Zero / BusyPoll::off(): never spin (the loop's default).
  /// Loop thread only. A negative duration is a UsageError.
  void set_busy_poll(BusyPoll mode);
  /// The fixed spin, or the adaptive mode's cap (zero: off).
  [[nodiscard]] Duration busy_poll() const noexcept { return busy_poll_.spin; }
  [[nodiscard]] bool busy_poll_adaptive() const noexcept { return busy_poll_.adaptive; }
  /// What the adaptive mode has learned: the spin the next wait will do (zero: none).
  [[nodiscard]] Duration busy_poll_learned() const noexcept { return learned_spin_; }

  /// Stack size of fibers started from now on (fiber.hpp; default 256 KiB, 1 MiB under
  /// AddressSanitizer). At least 16 KiB. Loop thread only.
  void set_fiber_stack_size(std::size_t bytes);
  [[nodiscard]] std::size_t fiber_stack_size() const;
  /// Internal (fiber.cpp): the loop's fiber stacks.
  detail::FiberStacks& fiber_stacks();

  [[nodiscard]] TimePoint now() const noexcept { return Clock::now(); }
  [[nodiscard]] bool in_loop_thread() const noexcept { return std::this_thread::get_id() == thread_; }
  /// Throws UsageError when called from another thread (debug builds only).
  void assert_in_loop_thread() const {
#ifndef NDEBUG
    if (!in_loop_thread()) throw_wrong_thread();
#endif
  }
  [[nodiscard]] LoopStats stats() const;
  /// The loop's self-measurement (busy polling, loop lag, worker pool), for any thread.
  [[nodiscard]] std::shared_ptr<const LoopFigures> figures() const noexcept { return figures_; }
  [[nodiscard]] bool running() const noexcept { return depth_ > 0; }

  // Internal: used by IoWatcher.
  detail::Poller& poller() noexcept { return *poller_; }
  void watcher_added() noexcept { ++watchers_; }
  /// Drops events already fetched for w in the batch being dispatched.
  void watcher_removed(IoWatcher* w) noexcept;

 private:
  [[noreturn]] void throw_wrong_thread() const;
  void drain_posted();
  void run_ready();
  int compute_timeout_ms(std::optional<Duration> max_wait);
  void poll_busily(int timeout_ms, std::vector<detail::PollEvent>& batch);
  void record_lag(Duration lag) noexcept;

  std::thread::id thread_;
  std::unique_ptr<detail::Poller> poller_;
  std::unique_ptr<detail::TimerQueue> timers_;
  std::unique_ptr<detail::SignalSet> signals_;
  std::unique_ptr<WorkerPool> workers_;
  std::size_t worker_threads_ = 0;
  std::unique_ptr<detail::FiberStacks> fiber_stacks_;

  struct ReadyItem {
    std::coroutine_handle<> coro;
    Callback fn;
  };
  struct EndHook {
    void (*fn)(void*) noexcept;
    void* ctx;
  };
  std::vector<EndHook> end_hooks_;                 // requested for the end of this iteration
  std::vector<EndHook> end_spare_;                 // a batch's storage, kept for reuse
  std::vector<std::vector<EndHook>*> end_active_;  // passes under way (nesting)
  void run_end_hooks() noexcept;
  std::vector<ReadyItem> ready_;
  std::vector<ReadyItem> running_;
  std::vector<std::vector<ReadyItem>*> active_batches_;  // ready batches being run (nesting)
  std::deque<std::vector<detail::PollEvent>> batches_;   // one per nesting depth

  std::mutex post_mu_;
  std::vector<Callback> posted_;
  std::atomic<bool> posted_pending_{false};
  std::unique_ptr<IoWatcher> wake_watcher_;
  int wake_fd_ = -1;

  std::size_t watchers_ = 0;
  int depth_ = 0;
  int polls_skipped_ = 0;  // consecutive iterations that ran ready work without polling I/O
  BusyPoll busy_poll_;
  Duration learned_spin_ = Duration::zero();  // adaptive busy polling's current spin
  std::shared_ptr<LoopFigures> figures_;
  std::uint32_t lag_tick_ = 0;  // iterations woken by I/O, for sampling the lag
  int sole_taken_ = 0;          // take_sole_ready() hand-offs in this iteration (bounded)
  std::atomic<bool> stop_requested_{false};
};

template <class T>
T EventLoop::run_until_complete(Task<T> task) {
  assert_in_loop_thread();
  if (!task.valid()) throw UsageError("run_until_complete: empty Task");
  if (detail::Fiber* f = detail::current_fiber(); f && &detail::fiber_loop(*f) == this) {
    return detail::fiber_wait(*f, std::move(task));
  }
  // The task completes into a noop continuation; we poll its done() flag between turns.
  auto h = task.handle();
  h.promise().set_continuation(std::noop_coroutine());
  schedule(h);
  try {
    while (!task.done()) run_once();
  } catch (...) {
    unschedule(h);  // the task is destroyed on the way out: drop a pending start
    throw;
  }
  return task.take_result();
}

}  // namespace tether
