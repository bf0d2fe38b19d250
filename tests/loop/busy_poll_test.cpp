// EventLoop::set_busy_poll: an idle loop spins for at most the set time and then sleeps;
// events, cross-thread posts and due timers arriving while it spins are served at once, and
// the spin never makes a timer late. The adaptive mode spins only after I/O arrived within its
// cap, halves a spin that caught nothing, and does not spin at all when idle.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

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

class BusyPollTest : public LoopFixture {
 protected:
  /// One iteration of the loop, woken by a byte another thread writes `gap` after the loop
  /// starts waiting (pacing the peer, not synchronising: the gap is what the loop learns from).
  void wake_by_a_byte_after(Duration gap) {
    SocketPair sp;
    std::string got;
    IoWatcher w(loop_, sp.a.get());
    w.set_handler([&](std::uint32_t) { got += take(sp.a); });
    w.enable_reading();
    std::atomic<bool> waiting{false};
    std::thread writer([&] {
      while (!waiting.load()) std::this_thread::yield();
      std::this_thread::sleep_for(gap);
      put(sp.b, "x");
    });
    waiting = true;
    loop_.run_once(5s);
    writer.join();
    w.disable_reading();
    ASSERT_EQ(got, "x");
  }
};

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

// Nothing to do for 400 ms with a 60 ms spin: the loop spins its 60 ms (its own count of the
// time spent spinning says so; thread CPU would not, as every spin iteration yields the core to
// whoever wants it) and then sleeps for the rest of the wait, having caught nothing.
TEST_F(BusyPollTest, IdleLoopSpinsThenSleeps) {
  loop_.run_once(400ms);
  EXPECT_EQ(loop_.stats().busy_poll_time, Duration::zero()) << "no spin while busy polling is off";

  loop_.set_busy_poll(60ms);
  const TimePoint start = Clock::now();
  loop_.run_once(400ms);
  const Duration wall = Clock::now() - start;
  const LoopStats st = loop_.stats();

  EXPECT_GE(wall, 350ms) << "nothing arrived: the iteration waits out its max_wait";
  EXPECT_GE(st.busy_poll_time, 60ms) << "the loop did not spin its whole busy_poll time";
  EXPECT_LE(st.busy_poll_time, 200ms) << "the loop spun past its busy_poll time instead of sleeping";
  EXPECT_EQ(st.busy_poll_missed, 1u);
  EXPECT_EQ(st.busy_poll_caught, 0u);
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


TEST_F(BusyPollTest, AdaptiveModeSetAndRead) {
  loop_.set_busy_poll(BusyPoll::adaptive_up_to(300us));
  EXPECT_TRUE(loop_.busy_poll_adaptive());
  EXPECT_EQ(loop_.busy_poll(), std::chrono::duration_cast<Duration>(300us));
  EXPECT_EQ(loop_.busy_poll_learned(), Duration::zero()) << "nothing learned before any I/O";
  EXPECT_THROW(loop_.set_busy_poll(BusyPoll::adaptive_up_to(-1us)), UsageError);
  loop_.set_busy_poll(150us);
  EXPECT_FALSE(loop_.busy_poll_adaptive()) << "a plain duration is a fixed spin";
  EXPECT_EQ(BusyPoll(Duration::zero()), BusyPoll::off());
  EXPECT_FALSE(BusyPoll::off().enabled());
  EXPECT_TRUE(BusyPoll::adaptive_default().adaptive);
  EXPECT_EQ(BusyPoll::adaptive_default().spin, std::chrono::duration_cast<Duration>(200us));
}

// An idle loop in adaptive mode does not spin at all, however large the cap: a 400 ms wait
// costs next to no CPU (a fixed 60 ms spin costs at least 5 ms of it: IdleLoopSpinsThenSleeps).
TEST_F(BusyPollTest, AdaptiveIdleLoopDoesNotSpin) {
  loop_.set_busy_poll(BusyPoll::adaptive_up_to(10s));
  const Duration before = thread_cpu();
  loop_.run_once(400ms);
  EXPECT_LT(thread_cpu() - before, 5ms) << "an idle adaptive loop spun";
  EXPECT_EQ(loop_.busy_poll_learned(), Duration::zero());
  EXPECT_EQ(loop_.stats().busy_poll_missed, 0u);
  EXPECT_EQ(loop_.stats().busy_poll_time, Duration::zero());
}

// A wake-up by I/O within the cap teaches a spin of twice the gap; the next wait, finding
// nothing, spins that long (the loop's spin time shows it), then halves it -- below cap / 16 the
// spin stops -- and the wait after that costs no CPU.
TEST_F(BusyPollTest, AdaptiveLearnsFromAQuickWakeUpThenForgetsWhenNothingComes) {
  loop_.set_busy_poll(BusyPoll::adaptive_up_to(1s));
  ASSERT_NO_FATAL_FAILURE(wake_by_a_byte_after(20ms));
  const Duration learned = loop_.busy_poll_learned();
  EXPECT_GE(learned, 20ms) << "twice a gap of about 20 ms";
  EXPECT_LE(learned, 1s) << "never past the cap";

  const Duration spun_before = loop_.stats().busy_poll_time;
  loop_.run_once(learned + 300ms);
  EXPECT_GE(loop_.stats().busy_poll_time - spun_before, learned) << "the wait after a quick wake-up spins";
  EXPECT_EQ(loop_.stats().busy_poll_missed, 1u);
  EXPECT_LE(loop_.busy_poll_learned(), learned / 2) << "a spin that caught nothing halves";
  // Each further miss halves again; below 1 s / 16 the spin stops (a ~40 ms spin at once).
  for (int i = 0; i < 6 && loop_.busy_poll_learned() > Duration::zero(); ++i) loop_.run_once(loop_.busy_poll_learned() + 50ms);
  ASSERT_EQ(loop_.busy_poll_learned(), Duration::zero());

  const std::uint64_t missed = loop_.stats().busy_poll_missed;
  const Duration spun_total = loop_.stats().busy_poll_time;
  const Duration before = thread_cpu();
  loop_.run_once(300ms);
  EXPECT_LT(thread_cpu() - before, 5ms) << "no spin after the spin was forgotten";
  EXPECT_EQ(loop_.stats().busy_poll_time, spun_total);
  EXPECT_EQ(loop_.stats().busy_poll_missed, missed);
}

// A wake-up later than the cap (a peer calling once in a while) teaches nothing.
TEST_F(BusyPollTest, AdaptiveIgnoresWakeUpsLaterThanTheCap) {
  loop_.set_busy_poll(BusyPoll::adaptive_up_to(5ms));
  ASSERT_NO_FATAL_FAILURE(wake_by_a_byte_after(60ms));
  EXPECT_EQ(loop_.busy_poll_learned(), Duration::zero());
}

// A peer answering at once (a thread echoing every byte): after the first exchange the loop
// is spinning when each answer comes, so most waits end while it spins.
TEST_F(BusyPollTest, AdaptiveLoopIsAwakeForAPromptPeer) {
  loop_.set_busy_poll(BusyPoll::adaptive_up_to(1s));
  SocketPair sp;
  constexpr int kRounds = 300;
  const int flags = ::fcntl(sp.b.get(), F_GETFL);
  ASSERT_EQ(::fcntl(sp.b.get(), F_SETFL, flags & ~O_NONBLOCK), 0);  // the echoing thread blocks
  std::thread echo([&] {
    char c = 0;
    for (int i = 0; i < kRounds; ++i) {
      if (::read(sp.b.get(), &c, 1) != 1) return;
      if (::write(sp.b.get(), &c, 1) != 1) return;
    }
  });
  int answers = 0;
  IoWatcher w(loop_, sp.a.get());
  w.set_handler([&](std::uint32_t) {
    answers += static_cast<int>(take(sp.a).size());
    if (answers < kRounds) put(sp.a, "p");
  });
  w.enable_reading();
  put(sp.a, "p");
  ASSERT_TRUE(turn_until([&] { return answers == kRounds; }, 20s));
  echo.join();
  w.disable_reading();
  const LoopStats st = loop_.stats();
  EXPECT_GT(st.busy_poll_caught, static_cast<std::uint64_t>(kRounds / 2))
      << "caught " << st.busy_poll_caught << ", missed " << st.busy_poll_missed;
  EXPECT_GT(st.busy_poll_time, Duration::zero());
}

}  // namespace
}  // namespace tether
