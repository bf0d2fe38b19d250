#include "tether/loop/event_loop.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <map>

#include "loop/fiber_stacks.hpp"
#include "loop/poller.hpp"
#include "loop/timer_queue.hpp"
#include "tether/base/fd.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/io_watcher.hpp"
#include "tether/loop/worker_pool.hpp"

namespace tether {

namespace {

/// Adds to a figure only this thread writes (no locked read-modify-write).
void bump(std::atomic<std::uint64_t>& figure, std::uint64_t n) noexcept {
  figure.store(figure.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

std::uint64_t nanos_of(Duration d) noexcept {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  return ns > 0 ? static_cast<std::uint64_t>(ns) : 0;
}
thread_local EventLoop* t_current_loop = nullptr;

void run_guarded(Callback& fn, const char* what) noexcept {
  try {
    fn();
  } catch (...) {
    // Nothing throws through loop dispatch: a failing callback is reported and dropped.
    TETHER_LOG_ERROR("uncaught exception in {}: {}", what, describe_current_exception());
  }
}
}  // namespace

namespace detail {

/// signalfd-based signal dispatch for one loop.
class SignalSet {
 public:
  explicit SignalSet(EventLoop& loop) : loop_(loop) {}
  ~SignalSet() {
    watcher_.reset();
    for (auto& [signo, h] : handlers_) restore(signo, h);
  }

  void add(int signo, std::function<void(int)> fn) {
    auto it = handlers_.find(signo);
    if (it != handlers_.end()) {
      it->second.fn = std::move(fn);
      return;
    }
    Handler h;
    h.fn = std::move(fn);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &one, &old);
    h.was_blocked = sigismember(&old, signo) == 1;
    handlers_.emplace(signo, std::move(h));
    rebuild();
  }

  bool remove(int signo) {
    auto it = handlers_.find(signo);
    if (it == handlers_.end()) return false;
    restore(signo, it->second);
    handlers_.erase(it);
    rebuild();
    return true;
  }

  [[nodiscard]] std::size_t size() const noexcept { return handlers_.size(); }

 private:
  struct Handler {
    std::function<void(int)> fn;
    bool was_blocked = false;
  };

  static void restore(int signo, const Handler& h) {
    if (h.was_blocked) return;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  }

  void rebuild() {
    if (handlers_.empty()) {
      watcher_.reset();
      fd_.reset();
      return;
    }
    sigset_t mask;
    sigemptyset(&mask);
    for (auto& [signo, h] : handlers_) sigaddset(&mask, signo);
    int fd = ::signalfd(fd_.valid() ? fd_.get() : -1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) throw IoError(errno, "signalfd");
    if (!fd_.valid()) {
      fd_.reset(fd);
      watcher_ = std::make_unique<IoWatcher>(loop_, fd_.get());
      watcher_->set_handler([this](std::uint32_t) { drain(); });
      watcher_->enable_reading();
    }
  }

  void drain() {
    signalfd_siginfo info;
    while (::read(fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      int signo = static_cast<int>(info.ssi_signo);
      auto it = handlers_.find(signo);
      if (it == handlers_.end()) continue;
      auto fn = it->second.fn;  // the handler may remove itself
      try {
        fn(signo);
      } catch (...) {
        TETHER_LOG_ERROR("uncaught exception in signal handler: {}", describe_current_exception());
      }
    }
  }

  EventLoop& loop_;
  std::map<int, Handler> handlers_;
  Fd fd_;
  std::unique_ptr<IoWatcher> watcher_;
};

}  // namespace detail

void TimerHandle::cancel() noexcept {
  if (loop_ && id_) loop_->cancel_timer(id_);
  id_ = {};
}

EventLoop::EventLoop()
    : thread_(std::this_thread::get_id()),
      poller_(detail::make_epoll_poller()),
      timers_(std::make_unique<detail::TimerQueue>()),
      figures_(std::make_shared<LoopFigures>()) {
  if (t_current_loop) throw UsageError("this thread already has an EventLoop");
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw IoError(errno, "eventfd");
  wake_watcher_ = std::make_unique<IoWatcher>(*this, wake_fd_);
  wake_watcher_->set_handler([this](std::uint32_t) {
    std::uint64_t v;
    while (::read(wake_fd_, &v, sizeof v) > 0) {
    }
  });
  wake_watcher_->enable_reading();
  --watchers_;  // the wake-up watcher is the loop's own; stats() does not count it
  t_current_loop = this;
}

EventLoop::~EventLoop() {
  // Let queued work of the pool finish (its completions post back here and are dropped).
  workers_.reset();
  // Destroy what never ran while the loop is still whole: a callback may own a Task whose
  // destruction cancels timers or watchers on this loop. (A queued coroutine handle is only a
  // reference: destroying the frame is its owner's job.)
  for (int round = 0; round < 4; ++round) {
    std::vector<Callback> posted;
    {
      std::lock_guard lock(post_mu_);
      posted.swap(posted_);
      posted_pending_.store(false, std::memory_order_relaxed);
    }
    std::vector<ReadyItem> ready;
    ready.swap(ready_);
    const bool had_timers = timers_->size() > 0;
    timers_->clear();
    if (posted.empty() && ready.empty() && !had_timers) break;
  }
  signals_.reset();
  ++watchers_;
  wake_watcher_.reset();
  ::close(wake_fd_);
  if (t_current_loop == this) t_current_loop = nullptr;
}

EventLoop* EventLoop::current() noexcept { return t_current_loop; }

EventLoop& EventLoop::current_or_throw() {
  if (!t_current_loop) throw UsageError("no EventLoop on this thread");
  return *t_current_loop;
}

void EventLoop::throw_wrong_thread() const {
  throw UsageError("EventLoop used from a thread that does not own it");
}

void EventLoop::watcher_removed(IoWatcher* w) noexcept {
  --watchers_;
  for (int d = 0; d < depth_ && static_cast<std::size_t>(d) < batches_.size(); ++d) {
    for (auto& ev : batches_[static_cast<std::size_t>(d)]) {
      if (ev.watcher == w) ev.watcher = nullptr;
    }
  }
}

void EventLoop::run() {
  assert_in_loop_thread();
  do {
    run_once();
  } while (!stop_requested_.exchange(false, std::memory_order_acq_rel));
}

void EventLoop::stop() noexcept {
  stop_requested_.store(true, std::memory_order_release);
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

namespace {
constexpr int kMaxSkippedPolls = 3;
}  // namespace

int EventLoop::compute_timeout_ms(std::optional<Duration> max_wait) {
  if (!ready_.empty() || !end_hooks_.empty() || posted_pending_.load(std::memory_order_acquire)) return 0;
  std::optional<Duration> wait = max_wait;
  if (auto next = timers_->next_deadline()) {
    Duration until = *next - Clock::now();
    if (!wait || until < *wait) wait = until;
  }
  if (!wait) return -1;
  if (*wait <= Duration::zero()) return 0;
  // Round up so a timer is never polled for before it is due.
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(*wait).count();
  return static_cast<int>(std::min<long long>(ms, INT_MAX));
}

void EventLoop::record_lag(Duration lag) noexcept {
  const std::uint64_t ns = nanos_of(lag);
  bump(figures_->lag_samples, 1);
  bump(figures_->lag_sum_nanos, ns);
  if (ns > figures_->lag_max_nanos.load(std::memory_order_relaxed)) {
    figures_->lag_max_nanos.store(ns, std::memory_order_relaxed);
  }
}

void EventLoop::set_busy_poll(BusyPoll mode) {
  assert_in_loop_thread();
  if (mode.spin < Duration::zero()) throw UsageError("EventLoop::set_busy_poll: negative duration");
  busy_poll_ = mode;
  learned_spin_ = Duration::zero();
}

void EventLoop::poll_busily(int timeout_ms, std::vector<detail::PollEvent>& batch) {
  // Spin on non-blocking polls for at most the spin (fixed, or what the adaptive mode learned),
  // and never past the wait the iteration was going to do (a due timer must not run late);
  // then block for what is left of it.
  const TimePoint start = Clock::now();
  Duration spin = busy_poll_.adaptive ? learned_spin_ : busy_poll_.spin;
  if (timeout_ms > 0) spin = std::min<Duration>(spin, std::chrono::milliseconds(timeout_ms));
  TimePoint now = start;
  if (spin > Duration::zero()) {
    const TimePoint until = start + spin;
    do {
      poller_->poll(0, batch);
      if (!batch.empty()) {  // caught while spinning: the learned spin stands
        bump(figures_->busy_poll_caught, 1);
        bump(figures_->busy_poll_nanos, nanos_of(Clock::now() - start));
        return;
      }
      // Give the core away if another thread wants it: on a machine with fewer cores than busy
      // threads (the peer's process, say) a spin that held the core would delay the very
      // request it waits for. With nothing else runnable this returns at once.
      ::sched_yield();
      now = Clock::now();
    } while (now < until);
    bump(figures_->busy_poll_missed, 1);
    bump(figures_->busy_poll_nanos, nanos_of(now - start));
    // Nothing came: an adaptive spin halves, and below a sixteenth of the cap stops.
    if (busy_poll_.adaptive) {
      learned_spin_ /= 2;
      if (learned_spin_ < busy_poll_.spin / 16) learned_spin_ = Duration::zero();
    }
  }
  int rest = timeout_ms;  // -1 (no limit) stays -1
  if (timeout_ms > 0) {
    const auto spent = std::chrono::ceil<std::chrono::milliseconds>(now - start).count();
    rest = static_cast<int>(std::max<long long>(0, timeout_ms - spent));
  }
  poller_->poll(rest, batch);
  if (busy_poll_.adaptive && !batch.empty()) {
    // Woken by I/O: had the gap been spun through, the wake-up would have been saved. A gap
    // within the cap makes the next waits spin twice as long as it (capped); a longer one
    // (an idle peer, one call a second) teaches nothing.
    const Duration gap = Clock::now() - start;
    if (gap <= busy_poll_.spin)
      learned_spin_ = std::min<Duration>(busy_poll_.spin, std::max(learned_spin_, 2 * gap));
  }
}

void EventLoop::run_once(std::optional<Duration> max_wait) {
  assert_in_loop_thread();
  ++depth_;
  sole_taken_ = 0;
  // 1. wait for I/O. Each nesting depth has its own batch, so a nested run_once() (blocking
  // facade inside a callback) cannot disturb the batch an outer iteration is dispatching.
  if (batches_.size() < static_cast<std::size_t>(depth_)) batches_.emplace_back();
  auto& batch = batches_[static_cast<std::size_t>(depth_) - 1];
  batch.clear();
  const int timeout = compute_timeout_ms(max_wait);
  if (timeout == 0 && !ready_.empty() && polls_skipped_ < kMaxSkippedPolls) {
    // Work is ready now: run it without a zero-timeout epoll_wait first (a system call that
    // a request/reply exchange would otherwise pay twice per message on each side). I/O is
    // still polled at least every kMaxSkippedPolls + 1 iterations.
    ++polls_skipped_;
  } else {
    polls_skipped_ = 0;
    if (timeout != 0 && busy_poll_.enabled()) {
      poll_busily(timeout, batch);
    } else {
      poller_->poll(timeout, batch);
    }
  }
  // Loop lag, sampled: from here (events ready) to the end of the iteration that handles them.
  TimePoint woke{};
  if (!batch.empty() && ++lag_tick_ % LoopFigures::kLagSampleEvery == 0) woke = Clock::now();
  // 2. dispatch; a watcher destroyed meanwhile has its entries nulled by watcher_removed().
  for (std::size_t i = 0; i < batch.size(); ++i) {
    detail::PollEvent ev = batch[i];
    if (ev.watcher) ev.watcher->dispatch(ev.events);
  }
  batch.clear();
  // 3. timers due now (the clock is read only when there is a timer: a loop without any, like
  // a server's, saves a clock read between the poll and the work it woke for)
  if (timers_->size() != 0) {
    const TimePoint now = Clock::now();
    Callback fn;
    while (timers_->pop_due(now, fn)) run_guarded(fn, "timer callback");
  }
  // 4. posted from other threads
  drain_posted();
  // 5. the ready queue as it stood
  run_ready();
  // 6. end-of-iteration work (writes queued by this iteration go out together)
  run_end_hooks();
  if (woke != TimePoint{}) record_lag(Clock::now() - woke);
  --depth_;
}

void EventLoop::at_end_of_iteration(void (*fn)(void*) noexcept, void* ctx) {
  assert_in_loop_thread();
  for (const EndHook& h : end_hooks_) {
    if (h.fn == fn && h.ctx == ctx) return;
  }
  end_hooks_.push_back(EndHook{fn, ctx});
}

void EventLoop::cancel_end_of_iteration(void (*fn)(void*) noexcept, void* ctx) noexcept {
  std::erase_if(end_hooks_, [&](const EndHook& h) { return h.fn == fn && h.ctx == ctx; });
  for (auto* batch : end_active_) {  // not yet run in a pass under way
    for (EndHook& h : *batch) {
      if (h.fn == fn && h.ctx == ctx) h.fn = nullptr;
    }
  }
}

void EventLoop::run_end_hooks() noexcept {
  if (end_hooks_.empty()) return;
  // The hooks as they stand: one requested meanwhile (by a hook) runs at the end of the next
  // iteration. A hook that runs a nested loop gets a pass of its own there.
  std::vector<EndHook> batch;
  batch.swap(end_spare_);
  batch.clear();
  batch.swap(end_hooks_);
  end_active_.push_back(&batch);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const EndHook h = batch[i];
    if (h.fn) {
      batch[i].fn = nullptr;
      h.fn(h.ctx);
    }
  }
  end_active_.pop_back();
  batch.clear();
  if (end_spare_.capacity() < batch.capacity()) end_spare_.swap(batch);  // no allocation next time
}

void EventLoop::drain_posted() {
  if (!posted_pending_.load(std::memory_order_acquire)) return;
  std::vector<Callback> batch;
  {
    std::lock_guard lock(post_mu_);
    batch.swap(posted_);
    posted_pending_.store(false, std::memory_order_release);
  }
  for (auto& fn : batch) run_guarded(fn, "posted callback");
}

void EventLoop::run_ready() {
  if (ready_.empty()) return;
  std::vector<ReadyItem> batch;
  batch.swap(running_);
  batch.clear();
  batch.swap(ready_);
  // unschedule() must also see the batch being run: an item may cancel a later one.
  active_batches_.push_back(&batch);
  struct Pop {
    std::vector<std::vector<ReadyItem>*>& v;
    ~Pop() { v.pop_back(); }
  } pop{active_batches_};
  // The batch does not grow while it runs (new items go to ready_), so indexes stay valid.
  for (std::size_t i = 0; i < batch.size(); ++i) {
    ReadyItem& item = batch[i];
    if (item.coro) {
      detail::resume(std::exchange(item.coro, {}));
    } else if (item.fn) {
      run_guarded(item.fn, "call_soon callback");
    }
  }
  batch.clear();
  if (running_.empty()) running_.swap(batch);  // keep the capacity for the next turn
}

void EventLoop::unschedule(std::coroutine_handle<> h) noexcept {
  if (!h) return;
  std::erase_if(ready_, [h](const ReadyItem& it) { return it.coro == h; });
  for (auto* batch : active_batches_) {
    for (auto& it : *batch) {
      if (it.coro == h) it.coro = {};
    }
  }
}

void EventLoop::unschedule(std::span<const std::coroutine_handle<>> hs) noexcept {
  if (hs.empty()) return;
  if (hs.size() == 1) return unschedule(hs.front());
  std::vector<void*> sorted;
  try {
    sorted.reserve(hs.size());
  } catch (...) {
    for (auto h : hs) unschedule(h);  // no memory for the fast path: one pass each
    return;
  }
  for (auto h : hs) sorted.push_back(h.address());
  std::sort(sorted.begin(), sorted.end());
  auto doomed = [&sorted](const ReadyItem& it) {
    return it.coro && std::binary_search(sorted.begin(), sorted.end(), it.coro.address());
  };
  std::erase_if(ready_, doomed);
  for (auto* batch : active_batches_) {
    for (auto& it : *batch) {
      if (doomed(it)) it.coro = {};
    }
  }
}

void EventLoop::post(Callback fn) {
  bool was_pending;
  {
    std::lock_guard lock(post_mu_);
    posted_.push_back(std::move(fn));
    was_pending = posted_pending_.exchange(true, std::memory_order_acq_rel);
  }
  if (!was_pending && !in_loop_thread()) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }
}

void EventLoop::call_soon(Callback fn) {
  assert_in_loop_thread();
  ready_.push_back({{}, std::move(fn)});
}

void EventLoop::schedule(std::coroutine_handle<> h) {
  assert_in_loop_thread();
  ready_.push_back({h, {}});
}

std::coroutine_handle<> EventLoop::take_sole_ready() noexcept {
  if (ready_.size() != 1 || !ready_.front().coro || sole_taken_ >= kMaxSoleHandoffs) return {};
  ++sole_taken_;
  std::coroutine_handle<> h = ready_.front().coro;
  ready_.clear();
  return h;
}

TimerHandle EventLoop::call_later(Duration delay, Callback fn) {
  return call_at(Clock::now() + delay, std::move(fn));
}

TimerHandle EventLoop::call_at(TimePoint when, Callback fn) {
  assert_in_loop_thread();
  return TimerHandle(this, timers_->add(when, std::move(fn)));
}

bool EventLoop::cancel_timer(TimerId id) noexcept { return timers_->cancel(id); }

void EventLoop::add_signal_handler(int signo, std::function<void(int)> fn) {
  assert_in_loop_thread();
  if (!signals_) signals_ = std::make_unique<detail::SignalSet>(*this);
  signals_->add(signo, std::move(fn));
}

bool EventLoop::remove_signal_handler(int signo) {
  assert_in_loop_thread();
  return signals_ && signals_->remove(signo);
}

WorkerPool& EventLoop::workers() {
  if (!workers_) {
    std::size_t n = worker_threads_;
    if (n == 0) n = std::max<std::size_t>(4, std::thread::hardware_concurrency());
    workers_ = std::make_unique<WorkerPool>(n);
    workers_->report_to(&figures_->worker_queued, &figures_->worker_running);
  }
  return *workers_;
}

detail::FiberStacks& EventLoop::fiber_stacks() {
  assert_in_loop_thread();
  if (!fiber_stacks_) fiber_stacks_ = std::make_unique<detail::FiberStacks>();
  return *fiber_stacks_;
}

void EventLoop::set_fiber_stack_size(std::size_t bytes) { fiber_stacks().set_size(bytes); }

std::size_t EventLoop::fiber_stack_size() const {
  return fiber_stacks_ ? fiber_stacks_->size() : detail::FiberStacks::kDefaultSize;
}

void EventLoop::set_worker_threads(std::size_t n) {
  if (workers_) throw UsageError("set_worker_threads after the pool started");
  worker_threads_ = n;
}

LoopStats EventLoop::stats() const {
  LoopStats s;
  s.watchers = watchers_ - (signals_ && signals_->size() ? 1 : 0);
  s.timers = timers_->size();
  s.ready = ready_.size() + end_hooks_.size();
  {
    std::lock_guard lock(const_cast<std::mutex&>(post_mu_));
    s.ready += posted_.size();
  }
  s.signals = signals_ ? signals_->size() : 0;
  s.busy_poll_caught = figures_->busy_poll_caught.load(std::memory_order_relaxed);
  s.busy_poll_missed = figures_->busy_poll_missed.load(std::memory_order_relaxed);
  s.busy_poll_time = std::chrono::nanoseconds(
      static_cast<std::int64_t>(figures_->busy_poll_nanos.load(std::memory_order_relaxed)));
  return s;
}

// ---------------------------------------------------------------------------------- IoWatcher

IoWatcher::IoWatcher(EventLoop& loop, int fd, Mode mode) : loop_(loop), fd_(fd), mode_(mode) {
  loop_.assert_in_loop_thread();
}

IoWatcher::~IoWatcher() {
  if (registered_) {
    loop_.poller().remove(fd_);
    loop_.watcher_removed(this);
  }
}

void IoWatcher::set_interest(std::uint32_t interest) {
  if (interest == interest_ && registered_) return;
  interest_ = interest;
  if (!registered_) {
    if (interest == 0) return;
    loop_.poller().update(fd_, this, interest, mode_ == Mode::kEdge, true);
    registered_ = true;
    loop_.watcher_added();
    return;
  }
  if (interest == 0) {
    loop_.poller().remove(fd_);
    registered_ = false;
    loop_.watcher_removed(this);
    return;
  }
  loop_.poller().update(fd_, this, interest, mode_ == Mode::kEdge, false);
}

void IoWatcher::dispatch(std::uint32_t events) {
  if (handler_) handler_(events);
}

}  // namespace tether
