// EventLoop: timers, call_soon, post from other threads, stop, signals, IoWatcher, nesting.
#include "tether/loop/event_loop.hpp"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "loop_fixture.hpp"
#include "tether/base/fd.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/io_watcher.hpp"
#include "tether/loop/stop_signals.hpp"
#include "tether/loop/task.hpp"
#include "tether/loop/time.hpp"
#include "tether/loop/worker_pool.hpp"

namespace tether {
namespace {

using testing::LoopFixture;
using testing::put;
using testing::SocketPair;
using testing::take;
using namespace std::chrono_literals;

class EventLoopTest : public LoopFixture {};

// ------------------------------------------------------------------------------------ timers

TEST_F(EventLoopTest, TimersFireInDeadlineOrder) {
  std::vector<int> fired;
  const TimePoint base = loop_.now();
  loop_.call_at(base + 3ms, [&] { fired.push_back(3); });
  loop_.call_at(base + 1ms, [&] { fired.push_back(1); });
  loop_.call_at(base + 2ms, [&] { fired.push_back(2); });
  loop_.call_at(base - 5ms, [&] { fired.push_back(0); });  // already due
  EXPECT_EQ(loop_.stats().timers, 4u);
  ASSERT_TRUE(turn_until([&] { return fired.size() == 4; }));
  EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(loop_.stats().timers, 0u);
}

TEST_F(EventLoopTest, EqualDeadlinesFireInCreationOrder) {
  std::vector<int> fired;
  const TimePoint when = loop_.now() + 1ms;
  for (int i = 0; i < 50; ++i) loop_.call_at(when, [&fired, i] { fired.push_back(i); });
  ASSERT_TRUE(turn_until([&] { return fired.size() == 50; }));
  for (int i = 0; i < 50; ++i) EXPECT_EQ(fired[static_cast<std::size_t>(i)], i);
}

TEST_F(EventLoopTest, TimerFiresNoEarlierThanItsDeadline) {
  const TimePoint due = loop_.now() + 15ms;
  TimePoint ran{};
  loop_.call_at(due, [&] { ran = Clock::now(); });
  ASSERT_TRUE(turn_until([&] { return ran != TimePoint{}; }));
  EXPECT_GE(ran, due);
}

TEST_F(EventLoopTest, CancelledTimerNeverFires) {
  int a = 0, b = 0;
  TimerHandle ha = loop_.call_later(1ms, [&] { ++a; });
  TimerHandle hb = loop_.call_later(2ms, [&] { ++b; });
  ha.cancel();
  EXPECT_EQ(loop_.stats().timers, 1u);
  EXPECT_FALSE(loop_.cancel_timer(ha.id())) << "the handle forgets its id once cancelled";
  ASSERT_TRUE(turn_until([&] { return b == 1; }));
  EXPECT_EQ(a, 0);
  // Cancelling after it fired is a no-op.
  EXPECT_FALSE(loop_.cancel_timer(hb.id()));
  hb.cancel();
  EXPECT_EQ(b, 1);
}

TEST_F(EventLoopTest, TimerCancelledByAnEarlierTimerInTheSameTurn) {
  int late = 0;
  const TimePoint when = loop_.now() + 1ms;
  TimerHandle second;
  loop_.call_at(when, [&] { second.cancel(); });
  second = loop_.call_at(when, [&] { ++late; });
  bool done = false;
  loop_.call_at(when + 1ms, [&] { done = true; });
  ASSERT_TRUE(turn_until([&] { return done; }));
  EXPECT_EQ(late, 0);
}

TEST_F(EventLoopTest, HundredThousandTimersFireInOrder) {
  constexpr int kCount = 100000;
  std::mt19937_64 rng(7);
  const TimePoint base = loop_.now() + 1ms;
  std::vector<TimePoint> deadline(kCount);
  std::vector<int> fired;
  fired.reserve(kCount);
  for (int i = 0; i < kCount; ++i) {
    deadline[static_cast<std::size_t>(i)] = base + std::chrono::microseconds(rng() % 5000);
    loop_.call_at(deadline[static_cast<std::size_t>(i)], [&fired, i] { fired.push_back(i); });
  }
  // Cancel every tenth one.
  EXPECT_EQ(loop_.stats().timers, static_cast<std::size_t>(kCount));
  ASSERT_TRUE(turn_until([&] { return fired.size() == kCount; }, 30s));
  for (std::size_t k = 1; k < fired.size(); ++k) {
    auto prev = static_cast<std::size_t>(fired[k - 1]), cur = static_cast<std::size_t>(fired[k]);
    ASSERT_TRUE(deadline[prev] < deadline[cur] || (deadline[prev] == deadline[cur] && prev < cur))
        << "timer " << cur << " fired out of order at position " << k;
  }
  EXPECT_EQ(loop_.stats().timers, 0u);
}

TEST_F(EventLoopTest, ManyTimersWithCancellations) {
  std::mt19937_64 rng(11);
  std::vector<TimerHandle> handles;
  std::vector<char> cancelled(20000, 0), ran(20000, 0);
  for (std::size_t i = 0; i < cancelled.size(); ++i) {
    handles.push_back(loop_.call_later(std::chrono::microseconds(rng() % 3000), [&ran, i] { ran[i] = 1; }));
  }
  std::size_t live = cancelled.size();
  for (std::size_t i = 0; i < cancelled.size(); ++i) {
    if (rng() % 3 == 0) {
      handles[i].cancel();
      cancelled[i] = 1;
      --live;
    }
  }
  EXPECT_EQ(loop_.stats().timers, live);
  ASSERT_TRUE(turn_until([&] { return loop_.stats().timers == 0; }));
  for (std::size_t i = 0; i < cancelled.size(); ++i) ASSERT_NE(cancelled[i], ran[i]) << i;
}

TEST_F(EventLoopTest, ThrowingCallbackIsLoggedAndTheLoopGoesOn) {
  std::vector<std::string> logged;
  set_log_sink([&](LogLevel, std::string_view m) { logged.emplace_back(m); });
  int after = 0;
  loop_.call_later(0ms, [] { throw std::runtime_error("timer boom"); });
  loop_.call_soon([] { throw Disconnected("soon boom"); });
  loop_.post([] { throw std::runtime_error("post boom"); });
  loop_.call_later(1ms, [&] { ++after; });
  ASSERT_TRUE(turn_until([&] { return after == 1; }));
  set_log_sink({});
  ASSERT_EQ(logged.size(), 3u);
  std::string all = logged[0] + logged[1] + logged[2];
  EXPECT_NE(all.find("timer boom"), std::string::npos);
  EXPECT_NE(all.find("Disconnected: soon boom"), std::string::npos);
  EXPECT_NE(all.find("post boom"), std::string::npos);
}

// -------------------------------------------------------------------------- call_soon / post

TEST_F(EventLoopTest, CallSoonRunsInOrderAndNestedCallsWaitForTheNextTurn) {
  std::vector<int> order;
  loop_.call_soon([&] {
    order.push_back(1);
    loop_.call_soon([&] { order.push_back(3); });
  });
  loop_.call_soon([&] { order.push_back(2); });
  EXPECT_EQ(loop_.stats().ready, 2u);
  turn();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  turn();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

/// Suspends once, scheduling itself; counts its resumptions.
struct Reschedule {
  EventLoop& loop;
  std::coroutine_handle<>* out;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    *out = h;
    loop.schedule(h);
  }
  void await_resume() const noexcept {}
};

Task<void> suspend_once(EventLoop& loop, std::coroutine_handle<>* h, int* resumed) {
  co_await Reschedule{loop, h};
  ++*resumed;
}

TEST_F(EventLoopTest, TakeSoleReadyTakesOnlyALoneCoroutine) {
  EXPECT_FALSE(loop_.take_sole_ready()) << "empty queue";
  std::coroutine_handle<> h;
  int resumed = 0;
  Task<void> t = suspend_once(loop_, &h, &resumed);
  detail::resume(t.handle());  // runs to its suspension, which queues it
  ASSERT_TRUE(h);
  EXPECT_EQ(loop_.stats().ready, 1u);
  std::coroutine_handle<> got = loop_.take_sole_ready();
  EXPECT_EQ(got, h);
  EXPECT_EQ(loop_.stats().ready, 0u) << "taken off the queue";
  turn();
  EXPECT_EQ(resumed, 0) << "the loop no longer resumes it: the taker does";
  got.resume();
  EXPECT_EQ(resumed, 1);
  EXPECT_TRUE(t.done());

  // Not alone, or not a coroutine: left where it is.
  int n = 0;
  loop_.call_soon([&] { ++n; });
  EXPECT_FALSE(loop_.take_sole_ready()) << "a callback is not taken";
  std::coroutine_handle<> h2;
  Task<void> t2 = suspend_once(loop_, &h2, &resumed);
  detail::resume(t2.handle());
  EXPECT_FALSE(loop_.take_sole_ready()) << "two items";
  turn();
  EXPECT_EQ(n, 1);
  EXPECT_EQ(resumed, 2);
}

TEST_F(EventLoopTest, TakeSoleReadyIsBoundedPerIteration) {
  // Coroutines handing the thread to each other must not keep the loop from its I/O and
  // timers: after kMaxSoleHandoffs in one iteration, the queue keeps its item.
  std::vector<Task<void>> tasks;
  std::vector<std::coroutine_handle<>> hs(EventLoop::kMaxSoleHandoffs + 1);
  int resumed = 0;
  loop_.call_soon([&] {
    for (std::size_t i = 0; i < hs.size(); ++i) {
      tasks.push_back(suspend_once(loop_, &hs[i], &resumed));
      detail::resume(tasks.back().handle());
      std::coroutine_handle<> got = loop_.take_sole_ready();
      if (i < static_cast<std::size_t>(EventLoop::kMaxSoleHandoffs)) {
        EXPECT_EQ(got, hs[i]) << i;
        if (got) got.resume();
      } else {
        EXPECT_FALSE(got) << "the bound is reached";
      }
    }
  });
  turn();  // runs the callback
  EXPECT_EQ(resumed, EventLoop::kMaxSoleHandoffs);
  turn();  // the last one, from the queue
  EXPECT_EQ(resumed, EventLoop::kMaxSoleHandoffs + 1);
  std::coroutine_handle<> h;
  tasks.push_back(suspend_once(loop_, &h, &resumed));
  detail::resume(tasks.back().handle());
  EXPECT_EQ(loop_.take_sole_ready(), h) << "a new iteration, a new allowance";
  h.resume();
}

TEST_F(EventLoopTest, PostFromTheLoopThreadRunsNextTurn) {
  int n = 0;
  loop_.post([&] { ++n; });
  EXPECT_EQ(loop_.stats().ready, 1u);
  turn();
  EXPECT_EQ(n, 1);
}

TEST_F(EventLoopTest, PostsFromFourThreadsAllArriveInPerThreadOrder) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::vector<int>> seen(kThreads);
  std::size_t total = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &seen, &total] {
      for (int i = 0; i < kPerThread; ++i) {
        loop_.post([t, i, &seen, &total] {
          seen[static_cast<std::size_t>(t)].push_back(i);
          ++total;
        });
      }
    });
  }
  const bool all = turn_until([&] { return total == kThreads * kPerThread; }, 60s);
  for (auto& th : threads) th.join();
  ASSERT_TRUE(all) << "only " << total << " posts arrived";
  for (int t = 0; t < kThreads; ++t) {
    auto& v = seen[static_cast<std::size_t>(t)];
    ASSERT_EQ(v.size(), static_cast<std::size_t>(kPerThread));
    for (int i = 0; i < kPerThread; ++i) ASSERT_EQ(v[static_cast<std::size_t>(i)], i);
  }
}

TEST_F(EventLoopTest, StopFromAnotherThread) {
  std::promise<void> running;
  std::thread stopper([&] {
    running.get_future().wait();
    loop_.stop();
  });
  // Guard: if stop() were lost, fail instead of hanging.
  bool guard_fired = false;
  TimerHandle guard = loop_.call_later(20s, [&] {
    guard_fired = true;
    loop_.stop();
  });
  loop_.call_soon([&] { running.set_value(); });
  loop_.run();
  stopper.join();
  guard.cancel();
  EXPECT_FALSE(guard_fired);
}

TEST_F(EventLoopTest, PostWakesALoopBlockedInRun) {
  std::promise<void> running;
  std::atomic<bool> ran{false};
  std::thread poster([&] {
    running.get_future().wait();
    loop_.post([&] {
      ran = true;
      loop_.stop();
    });
  });
  TimerHandle guard = loop_.call_later(20s, [&] { loop_.stop(); });
  loop_.call_soon([&] { running.set_value(); });
  loop_.run();
  poster.join();
  guard.cancel();
  EXPECT_TRUE(ran);
}

TEST_F(EventLoopTest, StopBeforeRunReturnsAfterOneIteration) {
  bool ran = false;
  loop_.call_soon([&] { ran = true; });
  loop_.stop();
  loop_.run();
  EXPECT_TRUE(ran);
}

TEST_F(EventLoopTest, StopInsideCallbackEndsRun) {
  int ticks = 0;
  std::function<void()> tick = [&] {
    if (++ticks == 5) {
      loop_.stop();
    } else {
      loop_.call_soon([&] { tick(); });
    }
  };
  loop_.call_soon([&] { tick(); });
  loop_.run();
  EXPECT_EQ(ticks, 5);
}

// ----------------------------------------------------------------------------------- signals

bool signal_blocked(int signo) {
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, nullptr, &cur);
  return sigismember(&cur, signo) == 1;
}

class SignalTest : public EventLoopTest {
 protected:
  void SetUp() override {
    EventLoopTest::SetUp();
    pthread_sigmask(SIG_BLOCK, nullptr, &saved_);
  }
  void TearDown() override {
    EventLoopTest::TearDown();
    pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
  }
  sigset_t saved_;
};

TEST_F(SignalTest, DeliversRaisedSignals) {
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &one, nullptr);
  std::vector<int> got;
  loop_.add_signal_handler(SIGUSR1, [&](int s) { got.push_back(s); });
  EXPECT_EQ(loop_.stats().signals, 1u);
  EXPECT_EQ(loop_.stats().watchers, 0u) << "the signalfd watcher is the loop's own";
  ASSERT_EQ(::raise(SIGUSR1), 0);
  ASSERT_TRUE(turn_until([&] { return got.size() == 1; }));
  EXPECT_EQ(got[0], SIGUSR1);
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  ASSERT_TRUE(turn_until([&] { return got.size() == 2; }));
  EXPECT_TRUE(loop_.remove_signal_handler(SIGUSR1));
  EXPECT_FALSE(loop_.remove_signal_handler(SIGUSR1));
  EXPECT_TRUE(signal_blocked(SIGUSR1)) << "it was blocked before; removal keeps it blocked";
}

TEST_F(SignalTest, HandlerForTwoSignalsAndReplacement) {
  sigset_t two;
  sigemptyset(&two);
  sigaddset(&two, SIGUSR1);
  sigaddset(&two, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &two, nullptr);
  std::vector<std::string> got;
  loop_.add_signal_handler(SIGUSR1, [&](int) { got.push_back("old1"); });
  loop_.add_signal_handler(SIGUSR2, [&](int) { got.push_back("2"); });
  loop_.add_signal_handler(SIGUSR1, [&](int) { got.push_back("new1"); });
  EXPECT_EQ(loop_.stats().signals, 2u);
  ::raise(SIGUSR2);
  ASSERT_TRUE(turn_until([&] { return got.size() == 1; }));
  ::raise(SIGUSR1);
  ASSERT_TRUE(turn_until([&] { return got.size() == 2; }));
  EXPECT_EQ(got, (std::vector<std::string>{"2", "new1"}));
  // A handler may remove itself.
  loop_.add_signal_handler(SIGUSR2, [&](int s) {
    got.push_back("last");
    loop_.remove_signal_handler(s);
  });
  ::raise(SIGUSR2);
  ASSERT_TRUE(turn_until([&] { return got.size() == 3; }));
  EXPECT_EQ(loop_.stats().signals, 1u);
  EXPECT_TRUE(loop_.remove_signal_handler(SIGUSR1));
}

TEST_F(SignalTest, RemovingTheHandlerRestoresTheMask) {
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, SIGUSR2);
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  ASSERT_FALSE(signal_blocked(SIGUSR2));
  loop_.add_signal_handler(SIGUSR2, [](int) {});
  EXPECT_TRUE(signal_blocked(SIGUSR2));
  EXPECT_TRUE(loop_.remove_signal_handler(SIGUSR2));
  EXPECT_FALSE(signal_blocked(SIGUSR2));
}

TEST_F(SignalTest, StopSignalsTurnSigtermIntoAStopRequestAndRestoreTheMask) {
  sigset_t both;
  sigemptyset(&both);
  sigaddset(&both, SIGINT);
  sigaddset(&both, SIGTERM);
  pthread_sigmask(SIG_UNBLOCK, &both, nullptr);
  {
    StopSignals signals(loop_);
    EXPECT_EQ(loop_.stats().signals, 2u);
    EXPECT_TRUE(signal_blocked(SIGINT));
    EXPECT_TRUE(signal_blocked(SIGTERM));
    EXPECT_FALSE(signals.received());
    ASSERT_EQ(::raise(SIGTERM), 0);
    loop_.run_until_complete(signals.wait());
    EXPECT_TRUE(signals.received());
    loop_.run_until_complete(signals.wait());  // at once, once received
  }
  EXPECT_EQ(loop_.stats().signals, 0u);
  EXPECT_FALSE(signal_blocked(SIGINT));
  EXPECT_FALSE(signal_blocked(SIGTERM));
}

// --------------------------------------------------------------------------------- IoWatcher

TEST_F(EventLoopTest, LevelTriggeredReadableRepeatsUntilDrained) {
  SocketPair sp;
  IoWatcher w(loop_, sp.a.get(), IoWatcher::Mode::kLevel);
  std::vector<std::uint32_t> events;
  w.set_handler([&](std::uint32_t e) { events.push_back(e); });
  w.enable_reading();
  EXPECT_TRUE(w.is_reading());
  EXPECT_EQ(loop_.stats().watchers, 1u);
  turn();
  EXPECT_TRUE(events.empty()) << "nothing to read yet";
  put(sp.b, "x");
  ASSERT_TRUE(turn_until([&] { return !events.empty(); }));
  EXPECT_TRUE(events[0] & kIoReadable);
  turn();
  EXPECT_EQ(events.size(), 2u) << "level mode reports again while data is pending";
  EXPECT_EQ(take(sp.a), "x");
  turn();
  EXPECT_EQ(events.size(), 2u);
  w.disable_reading();
  EXPECT_EQ(loop_.stats().watchers, 0u);
}

TEST_F(EventLoopTest, BusyReadyQueueStillPollsIoEveryFewIterations) {
  // Ready work skips the zero-timeout poll, but at most 3 iterations in a row: a callback that
  // re-queues itself forever must not starve I/O.
  SocketPair sp;
  IoWatcher w(loop_, sp.a.get(), IoWatcher::Mode::kLevel);
  int readable_at = -1;
  int iteration = 0;
  w.set_handler([&](std::uint32_t) {
    if (readable_at < 0) readable_at = iteration;
  });
  w.enable_reading();
  bool spinning = true;
  std::function<void()> spin = [&] {
    if (spinning) loop_.call_soon(spin);
  };
  loop_.call_soon(spin);
  loop_.run_once(std::chrono::milliseconds(0));  // spin is now re-queueing itself
  put(sp.b, "x");
  for (iteration = 0; iteration < 10 && readable_at < 0; ++iteration)
    loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_GE(readable_at, 0) << "I/O was not polled while the ready queue stayed busy";
  EXPECT_LE(readable_at, 3);
  spinning = false;
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(take(sp.a), "x");
  w.disable_reading();
}

TEST_F(EventLoopTest, EdgeTriggeredReadableReportsOncePerArrival) {
  SocketPair sp;
  IoWatcher w(loop_, sp.a.get(), IoWatcher::Mode::kEdge);
  int calls = 0;
  w.set_handler([&](std::uint32_t e) {
    EXPECT_TRUE(e & kIoReadable);
    ++calls;
  });
  w.enable_reading();
  put(sp.b, "x");
  ASSERT_TRUE(turn_until([&] { return calls == 1; }));
  turn(3);
  EXPECT_EQ(calls, 1) << "edge mode: no repeat without new data";
  put(sp.b, "y");
  ASSERT_TRUE(turn_until([&] { return calls == 2; }));
  EXPECT_EQ(take(sp.a), "xy");
}

TEST_F(EventLoopTest, WritableInBothModesAndHangup) {
  SocketPair sp;
  IoWatcher level(loop_, sp.a.get(), IoWatcher::Mode::kLevel);
  IoWatcher edge(loop_, sp.b.get(), IoWatcher::Mode::kEdge);
  int level_writable = 0, edge_writable = 0, hangups = 0;
  level.set_handler([&](std::uint32_t e) {
    if (e & kIoWritable) ++level_writable;
    if (e & kIoHangup) ++hangups;
  });
  edge.set_handler([&](std::uint32_t e) {
    if (e & kIoWritable) ++edge_writable;
  });
  level.enable_writing();
  edge.enable_all();
  EXPECT_EQ(loop_.stats().watchers, 2u);
  ASSERT_TRUE(turn_until([&] { return level_writable >= 1 && edge_writable >= 1; }));
  turn(2);
  EXPECT_GE(level_writable, 3);
  EXPECT_EQ(edge_writable, 1);
  level.disable_writing();
  level.enable_reading();
  edge.disable_all();
  sp.b.reset();  // peer closes: readable + hangup on a
  ASSERT_TRUE(turn_until([&] { return hangups >= 1; }));
  EXPECT_EQ(take(sp.a), "");
  level.disable_all();
}

TEST_F(EventLoopTest, WatcherDestroyedByAnotherHandlerInTheSameBatchIsNotCalled) {
  SocketPair one, two;
  auto w1 = std::make_unique<IoWatcher>(loop_, one.a.get());
  auto w2 = std::make_unique<IoWatcher>(loop_, two.a.get());
  int calls1 = 0, calls2 = 0;
  // Whichever runs first destroys the other; both are ready in the same poll.
  w1->set_handler([&](std::uint32_t) {
    ++calls1;
    take(one.a);
    w2.reset();
  });
  w2->set_handler([&](std::uint32_t) {
    ++calls2;
    take(two.a);
    w1.reset();
  });
  w1->enable_reading();
  w2->enable_reading();
  put(one.b, "1");
  put(two.b, "2");
  ASSERT_TRUE(turn_until([&] { return calls1 + calls2 > 0; }));
  turn(2);
  EXPECT_EQ(calls1 + calls2, 1);
  EXPECT_TRUE(!w1 || !w2);
  w1.reset();
  w2.reset();
  EXPECT_EQ(loop_.stats().watchers, 0u);
}

TEST_F(EventLoopTest, WatcherDisabledByAnotherHandlerInTheSameBatchIsNotCalled) {
  SocketPair one, two;
  IoWatcher w1(loop_, one.a.get());
  IoWatcher w2(loop_, two.a.get());
  int calls1 = 0, calls2 = 0;
  w1.set_handler([&](std::uint32_t) {
    ++calls1;
    w2.disable_all();
    w1.disable_all();
  });
  w2.set_handler([&](std::uint32_t) {
    ++calls2;
    w1.disable_all();
    w2.disable_all();
  });
  w1.enable_reading();
  w2.enable_reading();
  put(one.b, "1");
  put(two.b, "2");
  ASSERT_TRUE(turn_until([&] { return calls1 + calls2 > 0; }));
  turn(2);
  EXPECT_EQ(calls1 + calls2, 1);
}

TEST_F(EventLoopTest, WatcherMayDestroyItselfInItsHandler) {
  SocketPair sp;
  auto w = std::make_unique<IoWatcher>(loop_, sp.a.get());
  int calls = 0;
  w->set_handler([&](std::uint32_t) {
    ++calls;
    w.reset();
  });
  w->enable_reading();
  put(sp.b, "x");
  ASSERT_TRUE(turn_until([&] { return calls == 1; }));
  EXPECT_FALSE(w);
}

// ---------------------------------------------------------------------------------- nesting

TEST_F(EventLoopTest, NestedRunOnceInsideACallback) {
  std::vector<std::string> order;
  SocketPair sp;
  IoWatcher w(loop_, sp.a.get());
  w.set_handler([&](std::uint32_t) { order.push_back("io:" + take(sp.a)); });
  w.enable_reading();
  loop_.call_soon([&] {
    order.push_back("outer");
    loop_.call_soon([&] { order.push_back("inner-soon"); });
    put(sp.b, "n");
    bool timer = false;
    loop_.call_later(1ms, [&] {
      order.push_back("inner-timer");
      timer = true;
    });
    // A blocking facade turns the loop from inside a callback until its condition holds.
    const TimePoint deadline = Clock::now() + 10s;
    while (!timer && Clock::now() < deadline) loop_.run_once(10ms);
    order.push_back("outer-done");
  });
  turn();
  ASSERT_GE(order.size(), 4u);
  EXPECT_EQ(order.front(), "outer");
  EXPECT_EQ(order.back(), "outer-done");
  EXPECT_NE(std::find(order.begin(), order.end(), "inner-soon"), order.end());
  EXPECT_NE(std::find(order.begin(), order.end(), "io:n"), order.end());
  EXPECT_NE(std::find(order.begin(), order.end(), "inner-timer"), order.end());
  w.disable_all();
}

TEST_F(EventLoopTest, NestedIterationInsideAWatcherKeepsTheOuterBatchSafe) {
  SocketPair one, two;
  IoWatcher w1(loop_, one.a.get());
  auto w2 = std::make_unique<IoWatcher>(loop_, two.a.get());
  int calls1 = 0, calls2 = 0;
  w1.set_handler([&](std::uint32_t) {
    ++calls1;
    take(one.a);
    // Destroy w2 from a nested iteration while the outer batch may still hold its event.
    loop_.call_soon([&] { w2.reset(); });
    loop_.run_once(0ms);
  });
  w2->set_handler([&](std::uint32_t) {
    ++calls2;
    take(two.a);
  });
  w1.enable_reading();
  w2->enable_reading();
  put(one.b, "1");
  put(two.b, "2");
  ASSERT_TRUE(turn_until([&] { return calls1 == 1; }));
  turn(2);
  EXPECT_FALSE(w2);
  EXPECT_LE(calls2, 1) << "w2 ran at most once: in the nested batch or before w1";
  w1.disable_all();
}

TEST_F(EventLoopTest, RunUntilCompleteReturnsTheValueOrRethrows) {
  struct Local {
    static Task<int> answer() { co_return 42; }
    static Task<int> fail() {
      throw ProtocolError("bad frame");
      co_return 0;
    }
  };
  EXPECT_EQ(loop_.run_until_complete(Local::answer()), 42);
  EXPECT_THROW(loop_.run_until_complete(Local::fail()), ProtocolError);
}

// ------------------------------------------------------------------------------ destruction

Task<void> sleep_with_probe(int* destroyed) {
  testing::Probe p(destroyed);
  co_await sleep(1h);
}

TEST(EventLoopDestruction, PendingCallbacksThatOwnTasksAreDestroyedWhileTheLoopIsWhole) {
  int destroyed = 0;
  std::thread([&destroyed] {
    EventLoop loop;
    Task<void> a = sleep_with_probe(&destroyed);
    Task<void> b = sleep_with_probe(&destroyed);
    loop.schedule(a.handle());
    loop.schedule(b.handle());
    loop.run_once(Duration::zero());  // both sleep now: two timers
    ASSERT_EQ(loop.stats().timers, 2u);
    // Callbacks that never run own the tasks; destroying them cancels the sleeps, which
    // touches the loop's timer queue while the loop is being destroyed.
    loop.call_later(1h, [t = std::move(a)] {});
    loop.call_soon([t = std::move(b)] {});
  }).join();
  EXPECT_EQ(destroyed, 2);
}

// ------------------------------------------------------------------------------ thread rules

TEST_F(EventLoopTest, CurrentLoopAndOneLoopPerThread) {
  EXPECT_EQ(EventLoop::current(), &loop_);
  EXPECT_EQ(&EventLoop::current_or_throw(), &loop_);
  EXPECT_TRUE(loop_.in_loop_thread());
  EXPECT_THROW(EventLoop second, UsageError);
  std::thread([] {
    EXPECT_EQ(EventLoop::current(), nullptr);
    EXPECT_THROW(EventLoop::current_or_throw(), UsageError);
    EventLoop own;  // another thread may have its own
    EXPECT_EQ(EventLoop::current(), &own);
  }).join();
}

#ifndef NDEBUG
TEST_F(EventLoopTest, LoopThreadOnlyCallsThrowFromOtherThreadsInDebugBuilds) {
  std::thread([this] {
    EXPECT_FALSE(loop_.in_loop_thread());
    EXPECT_THROW(loop_.call_soon([] {}), UsageError);
    EXPECT_THROW(loop_.call_later(1ms, [] {}), UsageError);
    EXPECT_THROW(loop_.run_once(0ms), UsageError);
  }).join();
}
#endif

// ------------------------------------------------------------------ end-of-iteration hooks

struct HookLog {
  EventLoop* loop = nullptr;
  std::vector<std::string> events;
  int runs = 0;
  bool requeue = false;
  bool nested = false;
  HookLog* before_nested = nullptr;  // queued for `other_hook` right before the nested iteration
};

void other_hook(void* ctx) noexcept { static_cast<HookLog*>(ctx)->events.push_back("other"); }

void log_hook(void* ctx) noexcept {
  auto* log = static_cast<HookLog*>(ctx);
  ++log->runs;
  log->events.push_back("hook");
  if (log->requeue) {
    log->requeue = false;
    log->loop->at_end_of_iteration(&log_hook, log);
  }
  if (log->nested) {
    log->nested = false;
    if (log->before_nested) log->loop->at_end_of_iteration(&other_hook, log->before_nested);
    log->loop->run_once(std::chrono::milliseconds(0));  // a nested iteration inside a hook
    log->events.push_back(log->before_nested && !log->before_nested->events.empty() ? "nested ran other"
                                                                                    : "nested ran nothing");
  }
}

TEST_F(EventLoopTest, EndOfIterationHookRunsOnceAfterTheReadyStep) {
  HookLog log{&loop_};
  loop_.call_soon([&] {
    log.events.push_back("ready");
    loop_.at_end_of_iteration(&log_hook, &log);
    loop_.at_end_of_iteration(&log_hook, &log);  // the same request again: still once
    loop_.call_soon([&] { log.events.push_back("next ready"); });
  });
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(log.events, (std::vector<std::string>{"ready", "hook"}));
  EXPECT_EQ(loop_.stats().ready, 1u);  // "next ready" waits for the next iteration
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(log.events, (std::vector<std::string>{"ready", "hook", "next ready"}));
  EXPECT_EQ(log.runs, 1);
}

TEST_F(EventLoopTest, EndOfIterationHookFromOutsideDoesNotLetTheNextPollBlock) {
  HookLog log{&loop_};
  loop_.at_end_of_iteration(&log_hook, &log);
  EXPECT_EQ(loop_.stats().ready, 1u);
  // No timeout given: with a hook pending the poll must not wait (this would hang otherwise;
  // the fixture's time limit would fail the test).
  loop_.run_once();
  EXPECT_EQ(log.runs, 1);
  EXPECT_EQ(loop_.stats().ready, 0u);
}

TEST_F(EventLoopTest, EndOfIterationHookCancelledBeforeItRuns) {
  HookLog log{&loop_};
  HookLog other{&loop_};
  loop_.at_end_of_iteration(&log_hook, &log);
  loop_.at_end_of_iteration(&other_hook, &other);
  loop_.cancel_end_of_iteration(&log_hook, &log);
  loop_.cancel_end_of_iteration(&log_hook, &other);  // not pending with that ctx: no-op
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(log.runs, 0);
  EXPECT_EQ(other.events, (std::vector<std::string>{"other"}));
}

void cancelling_hook(void* ctx) noexcept {
  auto* pair = static_cast<std::pair<EventLoop*, HookLog*>*>(ctx);
  pair->first->cancel_end_of_iteration(&log_hook, pair->second);
}

TEST_F(EventLoopTest, EndOfIterationHookCancelledByAnEarlierHookOfThePass) {
  HookLog log{&loop_};
  std::pair<EventLoop*, HookLog*> ctx{&loop_, &log};
  loop_.at_end_of_iteration(&cancelling_hook, &ctx);
  loop_.at_end_of_iteration(&log_hook, &log);
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(log.runs, 0);
  EXPECT_EQ(loop_.stats().ready, 0u);
}

TEST_F(EventLoopTest, EndOfIterationHookRequeuedByItselfRunsNextIteration) {
  HookLog log{&loop_};
  log.requeue = true;
  loop_.at_end_of_iteration(&log_hook, &log);
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(log.runs, 1);
  EXPECT_EQ(loop_.stats().ready, 1u);
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(log.runs, 2);
  EXPECT_EQ(loop_.stats().ready, 0u);
}

TEST_F(EventLoopTest, EndOfIterationHookMayRunANestedIteration) {
  HookLog log{&loop_};
  HookLog other{&loop_};
  log.nested = true;
  log.before_nested = &other;
  loop_.at_end_of_iteration(&log_hook, &log);
  loop_.run_once(std::chrono::milliseconds(0));
  // The hook queued `other` and ran a nested iteration, whose own end-of-iteration pass ran it.
  EXPECT_EQ(log.events, (std::vector<std::string>{"hook", "nested ran other"}));
  EXPECT_EQ(other.events, (std::vector<std::string>{"other"}));
  EXPECT_EQ(loop_.stats().ready, 0u);
}

}  // namespace
}  // namespace tether

// ------------------------------------------------------------------------------ LoopFigures

namespace tether {
namespace {

TEST_F(EventLoopTest, FiguresSampleTheLagOfIterationsWokenByIo) {
  SocketPair sp;
  IoWatcher w(loop_, sp.a.get(), IoWatcher::Mode::kLevel);
  int woken = 0;
  w.set_handler([&](std::uint32_t) {
    ++woken;
    (void)take(sp.a);
  });
  w.enable_reading();
  std::shared_ptr<const LoopFigures> figures = loop_.figures();
  const std::uint64_t before = figures->lag_samples.load();
  // Each put wakes one iteration with a ready event; one in kLagSampleEvery is measured.
  const int rounds = 3 * static_cast<int>(LoopFigures::kLagSampleEvery);
  for (int i = 0; i < rounds; ++i) {
    put(sp.b, "x");
    const int was = woken;
    ASSERT_TRUE(turn_until([&] { return woken > was; }));
  }
  const std::uint64_t samples = figures->lag_samples.load() - before;
  EXPECT_GE(samples, 2u);
  EXPECT_LE(samples, 3u + 1u);
  EXPECT_GE(figures->lag_max_nanos.load() * figures->lag_samples.load(), figures->lag_sum_nanos.load());
  w.disable_reading();
}

TEST(LoopFiguresTest, WorkerPoolQueueDepthAndRunningJobs) {
  EventLoop loop;
  loop.set_worker_threads(1);
  std::shared_ptr<const LoopFigures> figures = loop.figures();
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  for (int i = 0; i < 3; ++i) loop.workers().submit([gate] { gate.wait(); });
  EXPECT_TRUE(testing::eventually(
      [&] { return figures->worker_running.load() == 1 && figures->worker_queued.load() == 2; }));
  release.set_value();
  EXPECT_TRUE(testing::eventually(
      [&] { return figures->worker_running.load() == 0 && figures->worker_queued.load() == 0; }));
}

}  // namespace
}  // namespace tether
