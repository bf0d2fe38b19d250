// Fibers: synchronous code on its own stack that waits for the loop without nesting it.
#include "tether/loop/fiber.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "loop_fixture.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/loop/time.hpp"

namespace tether {
namespace {

using testing::LoopFixture;
using testing::Probe;
using namespace std::chrono_literals;

class FiberTest : public LoopFixture {};

struct Log {
  std::vector<std::string> lines;
  void add(std::string s) { lines.push_back(std::move(s)); }
};

Task<int> wait_event(Event* e, int value) {
  co_await e->wait();
  co_return value;
}

Task<int> sleep_then(int value) {
  co_await sleep(1ms);
  co_return value;
}

Task<void> run_fn_on_fiber(EventLoop* loop, UniqueFunction<void()> fn, bool* done) {
  co_await run_on_fiber(*loop, std::move(fn));
  *done = true;
}

TEST_F(FiberTest, FunctionThatDoesNotWaitRunsAtOnceWithoutSuspending) {
  int calls = 0;
  bool done = false;
  bool was_on_fiber = false;
  Task<void> t = run_fn_on_fiber(
      &loop_,
      [&]() {
        ++calls;
        was_on_fiber = on_fiber_of(loop_);
      },
      &done);
  start(t);
  turn();  // one ready step: the fiber ran inside it and the coroutine went on
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(was_on_fiber);
  EXPECT_TRUE(done);
  EXPECT_FALSE(on_fiber_of(loop_));
}

TEST_F(FiberTest, RunUntilCompleteOnAFiberSuspendsItInsteadOfNestingTheLoop) {
  Event ev;
  bool done = false;
  int got = 0;
  bool nested = true;
  Task<void> t = run_fn_on_fiber(
      &loop_,
      [&]() {
        got = loop_.run_until_complete(wait_event(&ev, 7));
        nested = false;
      },
      &done);
  start(t);
  turn(3);
  EXPECT_FALSE(done) << "the fiber waits for the event";
  EXPECT_EQ(got, 0);
  // The loop turns freely (not from inside the fiber): a plain call_soon runs at depth 1.
  int depth_seen = 0;
  loop_.call_soon([&]() { depth_seen = loop_.running() ? 1 : 0; });
  turn();
  EXPECT_EQ(depth_seen, 1);
  ev.set();
  ASSERT_TRUE(turn_until([&] { return done; }, 5s));
  EXPECT_EQ(got, 7);
  EXPECT_FALSE(nested);
}

TEST_F(FiberTest, WaitsOnTwoFibersEndInTheOrderTheirEventsComeNotTheOrderTheyStarted) {
  // With a nested loop, the second wait (inner) would have to end before the first (outer).
  Event first, second;
  Log log;
  bool done_a = false, done_b = false;
  Task<void> a = run_fn_on_fiber(
      &loop_,
      [&]() {
        loop_.run_until_complete(wait_event(&first, 1));
        log.add("a");
      },
      &done_a);
  Task<void> b = run_fn_on_fiber(
      &loop_,
      [&]() {
        loop_.run_until_complete(wait_event(&second, 2));
        log.add("b");
      },
      &done_b);
  start(a);
  turn(2);
  start(b);
  turn(2);
  second.set();
  ASSERT_TRUE(turn_until([&] { return done_b; }, 5s));
  EXPECT_FALSE(done_a);
  first.set();
  ASSERT_TRUE(turn_until([&] { return done_a; }, 5s));
  EXPECT_EQ(log.lines, (std::vector<std::string>{"b", "a"}));
}

Task<int> fails_later(Event* e) {
  co_await e->wait();
  throw std::runtime_error("task failed");
}

TEST_F(FiberTest, ATaskExceptionIsRethrownOnTheFiber) {
  Event ev;
  std::string caught;
  bool done = false;
  Task<void> t = run_fn_on_fiber(
      &loop_,
      [&]() {
        try {
          loop_.run_until_complete(fails_later(&ev));
        } catch (const std::runtime_error& e) {
          caught = e.what();
        }
      },
      &done);
  start(t);
  turn(2);
  ev.set();
  ASSERT_TRUE(turn_until([&] { return done; }, 5s));
  EXPECT_EQ(caught, "task failed");
}

TEST_F(FiberTest, AFiberWaitingInsideACatchBlockKeepsItsExceptionAcrossTheLoopsOwn) {
  Event ev;
  std::string rethrown;
  bool done = false;
  Task<void> t = run_fn_on_fiber(
      &loop_,
      [&]() {
        try {
          try {
            throw std::runtime_error("the fiber's");
          } catch (...) {
            loop_.run_until_complete(wait_event(&ev, 1));  // switches to the loop inside the catch
            throw;                                          // must rethrow the fiber's exception
          }
        } catch (const std::runtime_error& e) {
          rethrown = e.what();
        }
      },
      &done);
  start(t);
  turn(2);
  // Meanwhile the loop's side throws and catches exceptions of its own.
  std::string loop_side;
  loop_.call_soon([&]() {
    try {
      throw std::logic_error("the loop's");
    } catch (const std::logic_error& e) {
      loop_side = e.what();
      ev.set();
    }
  });
  ASSERT_TRUE(turn_until([&] { return done; }, 5s));
  EXPECT_EQ(loop_side, "the loop's");
  EXPECT_EQ(rethrown, "the fiber's");
  EXPECT_EQ(std::uncaught_exceptions(), 0);
}

TEST_F(FiberTest, TwoFibersWaitingInsideCatchBlocksEachRethrowTheirOwnException) {
  // A waits inside its catch block, then B does: A ends first. Without per-fiber exception
  // state, A's `throw;` would rethrow B's exception (the thread's most recent one).
  Event ev_a, ev_b;
  std::string a_got, b_got;
  bool done_a = false, done_b = false;
  auto body = [this](Event* ev, const char* what, std::string* got) {
    return [this, ev, what, got]() {
      try {
        try {
          throw std::runtime_error(what);
        } catch (...) {
          loop_.run_until_complete(wait_event(ev, 1));
          throw;
        }
      } catch (const std::runtime_error& e) {
        *got = e.what();
      }
    };
  };
  Task<void> a = run_fn_on_fiber(&loop_, body(&ev_a, "A", &a_got), &done_a);
  Task<void> b = run_fn_on_fiber(&loop_, body(&ev_b, "B", &b_got), &done_b);
  start(a);
  turn(2);
  start(b);
  turn(2);
  ev_a.set();
  ASSERT_TRUE(turn_until([&] { return done_a; }, 5s));
  ev_b.set();
  ASSERT_TRUE(turn_until([&] { return done_b; }, 5s));
  EXPECT_EQ(a_got, "A");
  EXPECT_EQ(b_got, "B");
  EXPECT_EQ(std::uncaught_exceptions(), 0);
}

TEST_F(FiberTest, CancellingTheAwaitingCoroutineDetachesTheFiberWhichFinishesAndFreesWhatItOwns) {
  Event ev;
  int destroyed = 0;
  bool finished = false;
  auto probe = std::make_shared<Probe>(&destroyed);
  {
    bool done = false;
    Task<void> t = run_fn_on_fiber(
        &loop_,
        [this, &ev, &finished, probe]() {
          loop_.run_until_complete(wait_event(&ev, 1));
          finished = true;
        },
        &done);
    probe.reset();
    start(t);
    turn(2);
    EXPECT_FALSE(done);
    EXPECT_EQ(destroyed, 0);
  }  // the task (and the coroutine awaiting the fiber) is destroyed here
  EXPECT_FALSE(finished);
  EXPECT_EQ(destroyed, 0) << "the fiber still owns its function";
  ev.set();
  ASSERT_TRUE(turn_until([&] { return finished && destroyed == 1; }, 5s));
}

TEST_F(FiberTest, AwaitingCoroutineDestroyedAfterTheFiberFinishedButBeforeItResumed) {
  // The fiber ends and queues the awaiting coroutine's resumption; that coroutine is destroyed
  // before the queue reaches it: the queued resumption must go with it.
  Event ev;
  bool done = false;
  bool fiber_finished = false;
  auto t = std::make_unique<Task<void>>(run_fn_on_fiber(
      &loop_,
      [this, &ev, &fiber_finished]() {
        loop_.run_until_complete(wait_event(&ev, 1));
        fiber_finished = true;
      },
      &done));
  start(*t);
  turn(2);
  ev.set();
  while (!fiber_finished) turn();  // bounded: two steps
  EXPECT_FALSE(done);
  EXPECT_EQ(loop_.stats().ready, 1u) << "the awaiting coroutine's resumption is queued";
  t.reset();
  EXPECT_EQ(loop_.stats().ready, 0u) << "and went with its frame";
  turn(3);
  EXPECT_FALSE(done);
}

TEST_F(FiberTest, NestedWaitsOnOneFiberAndManyFibersAtOnce) {
  constexpr int kFibers = 200;
  Event go;
  int finished = 0;
  std::vector<Task<void>> tasks;
  auto done = std::make_unique<bool[]>(kFibers);
  for (int i = 0; i < kFibers; ++i) {
    tasks.push_back(run_fn_on_fiber(
        &loop_,
        [this, &go, &finished, i]() {
          int a = loop_.run_until_complete(wait_event(&go, i));
          int b = loop_.run_until_complete(sleep_then(a));
          if (a == i && b == i) ++finished;
        },
        &done[static_cast<std::size_t>(i)]));
    start(tasks.back());
  }
  turn(3);
  EXPECT_EQ(finished, 0);
  go.set();
  ASSERT_TRUE(turn_until([&] { return finished == kFibers; }, 10s));
  ASSERT_TRUE(turn_until([&] { return std::all_of(&done[0], &done[0] + kFibers, [](bool d) { return d; }); }, 5s));
}

int recurse(int n) {
  volatile char pad[1024];
  pad[0] = static_cast<char>(n);
  if (n == 0) return pad[0];
  return recurse(n - 1) + 1;
}

TEST_F(FiberTest, StackSizeIsSettableAndUsable) {
  EXPECT_THROW(loop_.set_fiber_stack_size(1024), UsageError);
  loop_.set_fiber_stack_size(512 * 1024);
  EXPECT_EQ(loop_.fiber_stack_size(), 512u * 1024u);
  bool done = false;
  int depth = 0;
  Task<void> t = run_fn_on_fiber(&loop_, [&]() { depth = recurse(200); }, &done);  // ~200 KiB
  start(t);
  ASSERT_TRUE(turn_until([&] { return done; }, 5s));
  EXPECT_EQ(depth, 200);
}

TEST_F(FiberTest, RunUntilCompleteOffAFiberStillNestsTheLoop) {
  // The old behaviour, for top-level blocking code: nothing changes off fibers.
  Event ev;
  loop_.call_later(1ms, [&]() { ev.set(); });
  EXPECT_EQ(loop_.run_until_complete(wait_event(&ev, 3)), 3);
}

}  // namespace
}  // namespace tether
