// EventLoop::set_busy_poll: an idle loop spins for at most the set time and then sleeps;
// events, cross-thread posts and due timers arriving while it spins are served at once, and
// the spin never makes a timer late.
#include <gtest/gtest.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "loop_fixture.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/io_watcher.hpp"

namespace tether {
namespace {

using testing::LoopFixture;
using testing::put;
using testing::SocketPair;
using testing::take;
using namespace std::chrono_literals;

class BusyPollTest : public LoopFixture {};

/// CPU time this thread has used.
Duration thread_cpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

TEST_F(BusyPollTest, OffByDefaultSetAndRead) {
  EXPECT_EQ(loop_.busy_poll(), Duration::zero());
  loop_.set_busy_poll(150us);
  EXPECT_EQ(loop_.busy_poll(), std::chrono::duration_cast<Duration>(150us));
  EXPECT_THROW(loop_.set_busy_poll(-1us), UsageError);
  EXPECT_EQ(loop_.busy_poll(), std::chrono::duration_cast<Duration>(150us)) << "a refused value changes nothing";
  loop_.set_busy_poll(Duration::zero());
  EXPECT_EQ(loop_.busy_poll(), Duration::zero());
}

// Nothing to do for 400 ms with a 60 ms spin: the thread burns CPU while it spins (so the spin
// happened) and far less than the whole wait (so it slept after it). Without busy polling the
// same wait costs next to no CPU.
TEST_F(BusyPollTest, IdleLoopSpinsThenSleeps) {
  Duration before = thread_cpu();
  loop_.run_once(400ms);
  const Duration idle_cpu = thread_cpu() - before;

  loop_.set_busy_poll(60ms);
  before = thread_cpu();
  const TimePoint start = Clock::now();
  loop_.run_once(400ms);
  const Duration wall = Clock::now() - start;
  const Duration spin_cpu = thread_cpu() - before;

  EXPECT_GE(wall, 350ms) << "nothing arrived: the iteration waits out its max_wait";
  EXPECT_GE(spin_cpu, 5ms) << "the loop did not spin";
  EXPECT_LE(spin_cpu, 200ms) << "the loop spun past its busy_poll time instead of sleeping";
  EXPECT_LT(idle_cpu, spin_cpu);
}

// A 10 s spin: a byte written by another thread and a post from another thread are each
// served while the loop spins, not after it (the run is bounded at 5 s).
TEST_F(BusyPollTest, IoAndPostsArrivingDuringTheSpinAreServedAtOnce) {
  loop_.set_busy_poll(10s);
  SocketPair sp;
  std::string got;
  IoWatcher w(loop_, sp.a.get());
  w.set_handler([&](std::uint32_t) { got += take(sp.a); });
  w.enable_reading();
  std::thread writer([&] { put(sp.b, "ping"); });
  ASSERT_TRUE(turn_until([&] { return got == "ping"; }, 5s));
  writer.join();
  w.disable_reading();

  std::atomic<bool> posted{false};
  std::thread poster([&] { loop_.post([&] { posted = true; }); });
  const TimePoint start = Clock::now();
  ASSERT_TRUE(turn_until([&] { return posted.load(); }, 5s));
  EXPECT_LT(Clock::now() - start, 5s);
  poster.join();
}

// The spin is capped at the iteration's wait: a timer due in 30 ms fires then, although the
// loop may spin for 10 s.
TEST_F(BusyPollTest, SpinNeverMakesADueTimerLate) {
  loop_.set_busy_poll(10s);
  bool fired = false;
  const TimePoint start = Clock::now();
  TimePoint fired_at{};
  loop_.call_later(30ms, [&] {
    fired = true;
    fired_at = Clock::now();
  });
  ASSERT_TRUE(turn_until([&] { return fired; }, 5s));
  EXPECT_GE(fired_at - start, 30ms);
  EXPECT_LT(fired_at - start, 5s) << "the spin ignored the timer";
}

}  // namespace
}  // namespace tether
