// Task, cancellation, sleep/with_timeout, gather, TaskGroup, run_in_worker.
#include "tether/loop/task.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include "loop_fixture.hpp"
#include "tether/loop/io_watcher.hpp"
#include "tether/loop/gather.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/loop/time.hpp"
#include "tether/loop/worker_pool.hpp"

namespace tether {
namespace {

using testing::LoopFixture;
using testing::Probe;
using testing::put;
using testing::SocketPair;
using testing::take;
using namespace std::chrono_literals;

class TaskTest : public LoopFixture {};

struct Oops : std::runtime_error {
  explicit Oops(int v) : std::runtime_error("oops " + std::to_string(v)), value(v) {}
  int value;
};

// ------------------------------------------------------------------------------- basics

Task<int> forty_two() { co_return 42; }
Task<void> nothing(int* calls) {
  ++*calls;
  co_return;
}
Task<int> throws_oops(int v) {
  throw Oops(v);
  co_return 0;
}
Task<std::unique_ptr<std::string>> boxed(std::string s) { co_return std::make_unique<std::string>(std::move(s)); }

Task<int> add_results() {
  int a = co_await forty_two();
  int b = co_await forty_two();
  co_return a + b;
}

Task<int> catch_and_report() {
  try {
    int v = co_await throws_oops(7);
    co_return v;
  } catch (const Oops& e) {
    co_return e.value * 10;
  }
}

static_assert(!std::is_copy_constructible_v<Task<int>>);
static_assert(!std::is_copy_assignable_v<Task<int>>);
static_assert(std::is_nothrow_move_constructible_v<Task<int>>);

TEST_F(TaskTest, ReturnsValues) { EXPECT_EQ(run(add_results()), 84); }

TEST_F(TaskTest, VoidTask) {
  int calls = 0;
  run(nothing(&calls));
  EXPECT_EQ(calls, 1);
}

TEST_F(TaskTest, TasksAreLazy) {
  int calls = 0;
  {
    Task<void> t = nothing(&calls);
    EXPECT_TRUE(t.valid());
    EXPECT_FALSE(t.done());
    turn(2);
    EXPECT_EQ(calls, 0) << "a task runs only when awaited or started";
  }
  EXPECT_EQ(calls, 0);
}

TEST_F(TaskTest, ExceptionsPropagateToTheAwaiter) {
  EXPECT_EQ(run(catch_and_report()), 70);
  try {
    run(throws_oops(3));
    FAIL() << "expected Oops";
  } catch (const Oops& e) {
    EXPECT_EQ(e.value, 3);
  }
}

TEST_F(TaskTest, MoveOnlyResultsAndMoveAssignment) {
  auto p = run(boxed("moved"));
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, "moved");
  const long before = live_task_count();
  Task<int> a = forty_two();
  Task<int> b = forty_two();
  EXPECT_EQ(live_task_count(), before + 2);
  a = std::move(b);  // destroys a's frame
  EXPECT_EQ(live_task_count(), before + 1);
  EXPECT_FALSE(b.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(run(std::move(a)), 42);
}

// --------------------------------------------------------------------- symmetric transfer

Task<long> nested_chain(int depth) {
  if (depth == 0) co_return 0;
  long below = co_await nested_chain(depth - 1);
  co_return below + 1;
}

Task<long> loop_of_trivial_awaits(int n) {
  long sum = 0;
  for (int i = 0; i < n; ++i) {
    int v = co_await forty_two();
    sum += v;
  }
  co_return sum;
}

TEST_F(TaskTest, DeepSynchronousChainDoesNotGrowTheStack) {
  EXPECT_EQ(run(nested_chain(100000)), 100000);
}

TEST_F(TaskTest, ManySequentialSynchronousAwaitsDoNotGrowTheStack) {
  EXPECT_EQ(run(loop_of_trivial_awaits(300000)), 42L * 300000);
}

// --------------------------------------------------------------------------- cancellation

Task<void> innermost(int* destroyed, int* reached, Event* never) {
  Probe p(destroyed);
  ++*reached;
  co_await never->wait();
  ADD_FAILURE() << "a cancelled task must not resume";
}
Task<void> sleeper(int* destroyed, int* reached, Duration d) {
  Probe p(destroyed);
  ++*reached;
  co_await sleep(d);
  ++*reached;
}
Task<void> middle(int* destroyed, int* reached, Event* never) {
  Probe p(destroyed);
  ++*reached;
  co_await innermost(destroyed, reached, never);
}
Task<int> outer(int* destroyed, int* reached, Event* never) {
  Probe p(destroyed);
  auto holder = std::make_unique<Probe>(destroyed);
  ++*reached;
  co_await middle(destroyed, reached, never);
  co_await sleeper(destroyed, reached, 1h);
  co_return 1;
}

TEST_F(TaskTest, DestroyingAnUnfinishedTaskRunsAllNestedDestructors) {
  int destroyed = 0, reached = 0;
  Event never;
  const long before = live_task_count();
  {
    Task<int> t = outer(&destroyed, &reached, &never);
    start(t);
    ASSERT_TRUE(turn_until([&] { return reached == 3; }));
    EXPECT_EQ(live_task_count(), before + 4);  // outer, middle, innermost, never.wait()
    EXPECT_EQ(never.waiters(), 1u);
    EXPECT_EQ(destroyed, 0);
  }
  EXPECT_EQ(destroyed, 4);  // outer's two probes, middle's, innermost's
  EXPECT_EQ(never.waiters(), 0u);
  EXPECT_EQ(live_task_count(), before);
}

TEST_F(TaskTest, CancellingATaskInSleepRemovesItsTimer) {
  int destroyed = 0, reached = 0;
  {
    Task<void> t = sleeper(&destroyed, &reached, 1h);
    start(t);
    ASSERT_TRUE(turn_until([&] { return reached == 1; }));
    EXPECT_EQ(loop_.stats().timers, 1u);
  }
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(loop_.stats().timers, 0u);
}

TEST_F(TaskTest, SleepWaitsAtLeastItsDuration) {
  int destroyed = 0, reached = 0;
  const TimePoint t0 = Clock::now();
  run(sleeper(&destroyed, &reached, 20ms));
  EXPECT_GE(Clock::now() - t0, 20ms);
  EXPECT_EQ(reached, 2);
}

// ---------------------------------------------------------------------------- with_timeout

Task<int> value_after(Duration d, int v, int* destroyed) {
  Probe p(destroyed);
  co_await sleep(d);
  co_return v;
}

Task<int> timeout_in_time(EventLoop* loop) {
  int destroyed = 0;
  const std::size_t timers_before = loop->stats().timers;
  int v = co_await with_timeout(10s, value_after(1ms, 5, &destroyed));
  EXPECT_EQ(loop->stats().timers, timers_before) << "the timeout timer must be removed";
  EXPECT_EQ(destroyed, 1);
  co_return v;
}

Task<int> timeout_expires(EventLoop* loop, int* destroyed) {
  const std::size_t timers_before = loop->stats().timers;
  try {
    int v = co_await with_timeout(5ms, value_after(1h, 5, destroyed));
    co_return v;
  } catch (const Timeout&) {
    EXPECT_EQ(*destroyed, 1) << "the inner task was cancelled when the timeout fired";
    EXPECT_EQ(loop->stats().timers, timers_before) << "the inner sleep's timer was removed";
  }
  co_return -1;
}

Task<int> timeout_passes_exceptions() {
  try {
    int v = co_await with_timeout(10s, throws_oops(9));
    co_return v;
  } catch (const Oops& e) {
    co_return e.value;
  }
}

Task<void> timeout_void(Duration inner) {
  int destroyed = 0;
  co_await with_timeout(1s, sleeper(&destroyed, &destroyed, inner));
}

TEST_F(TaskTest, WithTimeoutCompletesInTime) {
  EXPECT_EQ(run(timeout_in_time(&loop_)), 5);
  run(timeout_void(1ms));
}

TEST_F(TaskTest, WithTimeoutExpiresAndCancelsTheInnerTask) {
  int destroyed = 0;
  EXPECT_EQ(run(timeout_expires(&loop_, &destroyed)), -1);
  EXPECT_EQ(destroyed, 1);
}

TEST_F(TaskTest, WithTimeoutPassesExceptionsThrough) { EXPECT_EQ(run(timeout_passes_exceptions()), 9); }

Task<int> woken_then_timed_out(const Fd* writer, Event* ev, int* destroyed, int* reached) {
  // Makes the watcher's fd readable, then waits with an already-expired timeout. In the next
  // iteration the watcher (step 2) wakes the inner task, queueing its resumption, and the
  // timeout (step 3) cancels it before the ready queue runs: the queued resumption must go.
  put(*writer, "x");
  try {
    co_await with_timeout(0ms, innermost(destroyed, reached, ev));
  } catch (const Timeout&) {
    co_return 1;
  }
  co_return 0;
}

TEST_F(TaskTest, TimeoutFiringAfterTheInnerTaskWasWokenIsSafe) {
  SocketPair sp;
  Event ev;
  IoWatcher w(loop_, sp.a.get());
  w.set_handler([&](std::uint32_t) {
    take(sp.a);
    ev.set();
  });
  w.enable_reading();
  int destroyed = 0, reached = 0;
  EXPECT_EQ(run(woken_then_timed_out(&sp.b, &ev, &destroyed, &reached)), 1);
  EXPECT_EQ(reached, 1);
  EXPECT_EQ(destroyed, 1);
  EXPECT_TRUE(ev.is_set());
  w.disable_all();
}

// -------------------------------------------------------------------------------- gather

Task<std::vector<int>> gather_values() {
  int d = 0;
  std::vector<Task<int>> tasks;
  tasks.push_back(value_after(3ms, 1, &d));
  tasks.push_back(value_after(1ms, 2, &d));
  tasks.push_back(value_after(2ms, 3, &d));
  tasks.push_back(forty_two());
  std::vector<int> out = co_await gather(std::move(tasks));
  co_return out;
}

TEST_F(TaskTest, GatherVectorKeepsOrder) { EXPECT_EQ(run(gather_values()), (std::vector<int>{1, 2, 3, 42})); }

Task<std::tuple<int, std::unique_ptr<std::string>>> gather_mixed() {
  int d = 0;
  auto both = co_await gather(value_after(1ms, 8, &d), boxed("b"));
  co_return both;
}

TEST_F(TaskTest, GatherVariadic) {
  auto r = run(gather_mixed());
  EXPECT_EQ(std::get<0>(r), 8);
  EXPECT_EQ(*std::get<1>(r), "b");
}

Task<int> gather_empty() {
  std::vector<int> none = co_await gather(std::vector<Task<int>>{});
  co_await gather(std::vector<Task<void>>{});
  co_return static_cast<int>(none.size());
}

TEST_F(TaskTest, GatherOfNothing) { EXPECT_EQ(run(gather_empty()), 0); }

Task<void> count_after(Duration d, int* done) {
  co_await sleep(d);
  ++*done;
}

Task<int> gather_void(int* done) {
  std::vector<Task<void>> tasks;
  for (int i = 0; i < 100; ++i) tasks.push_back(count_after(std::chrono::microseconds(i * 10), done));
  co_await gather(std::move(tasks));
  co_return *done;
}

TEST_F(TaskTest, GatherVoid) {
  int done = 0;
  EXPECT_EQ(run(gather_void(&done)), 100);
}

Task<int> fail_after(Duration d, int v) {
  co_await sleep(d);
  throw Oops(v);
}

Task<int> gather_with_failure(EventLoop* loop, int* destroyed, bool fail_first) {
  std::vector<Task<int>> tasks;
  if (fail_first) tasks.push_back(throws_oops(1));  // fails before the others even start
  tasks.push_back(value_after(1h, 0, destroyed));
  tasks.push_back(fail_after(2ms, 2));
  tasks.push_back(value_after(1h, 0, destroyed));
  try {
    std::vector<int> v = co_await gather(std::move(tasks));
    co_return -100;
  } catch (const Oops& e) {
    EXPECT_EQ(loop->stats().timers, 1u) << "only LoopTest's own limit timer is left";
    co_return e.value;
  }
}

TEST_F(TaskTest, GatherFailureCancelsTheOthersAndRethrows) {
  int destroyed = 0;
  EXPECT_EQ(run(gather_with_failure(&loop_, &destroyed, false)), 2);
  EXPECT_EQ(destroyed, 2);
}

TEST_F(TaskTest, GatherFailingBeforeTheOthersStartCancelsThem) {
  int destroyed = 0;
  EXPECT_EQ(run(gather_with_failure(&loop_, &destroyed, true)), 1);
  EXPECT_EQ(destroyed, 0) << "the other branches never started";
}

TEST_F(TaskTest, CancellingAGatherCancelsEveryBranch) {
  int destroyed = 0;
  {
    std::vector<Task<int>> tasks;
    for (int i = 0; i < 5; ++i) tasks.push_back(value_after(1h, i, &destroyed));
    Task<std::vector<int>> g = gather(std::move(tasks));
    start(g);
    ASSERT_TRUE(turn_until([&] { return loop_.stats().timers == 5; }));
  }
  EXPECT_EQ(destroyed, 5);
  EXPECT_EQ(loop_.stats().timers, 0u);
}

TEST_F(TaskTest, CancellingAGatherBeforeItsBranchesStartIsSafe) {
  int destroyed = 0;
  {
    std::vector<Task<int>> tasks;
    for (int i = 0; i < 5; ++i) tasks.push_back(value_after(1h, i, &destroyed));
    Task<std::vector<int>> g = gather(std::move(tasks));
    start(g);
    turn();  // g runs and queues its branches; they have not started yet
    EXPECT_EQ(loop_.stats().ready, 5u);
  }
  EXPECT_EQ(destroyed, 0) << "the branches never started";
  EXPECT_EQ(loop_.stats().ready, 0u) << "their queued starts were dropped";
}

// ------------------------------------------------------------------------------ TaskGroup

Task<void> bump(int* n, Duration d) {
  co_await sleep(d);
  ++*n;
}

Task<void> group_wait(TaskGroup* g) { co_await g->wait(); }

TEST_F(TaskTest, TaskGroupRunsEverythingAndWaits) {
  int n = 0;
  TaskGroup group(loop_);
  for (int i = 0; i < 1000; ++i) group.spawn(bump(&n, std::chrono::microseconds(i % 50)));
  EXPECT_EQ(group.size(), 1000u);
  run(group_wait(&group));
  EXPECT_EQ(n, 1000);
  EXPECT_TRUE(group.empty());
  run(group_wait(&group));  // an empty group completes at once
}

Task<void> spawn_more(TaskGroup* g, int* n) {
  co_await sleep(1ms);
  for (int i = 0; i < 3; ++i) g->spawn(bump(n, 1ms));
}

TEST_F(TaskTest, TaskGroupWaitIncludesTasksSpawnedMeanwhile) {
  int n = 0;
  TaskGroup group(loop_);
  group.spawn(spawn_more(&group, &n));
  run(group_wait(&group));
  EXPECT_EQ(n, 3);
}

Task<void> hold(int* destroyed, Duration d) {
  Probe p(destroyed);
  co_await sleep(d);
}

TEST_F(TaskTest, TaskGroupCancelAll) {
  int destroyed = 0;
  TaskGroup group(loop_);
  for (int i = 0; i < 10; ++i) group.spawn(hold(&destroyed, 1h));
  turn();
  EXPECT_EQ(loop_.stats().timers, 10u);
  Task<void> waiter = group_wait(&group);
  start(waiter);
  turn();
  EXPECT_FALSE(waiter.done());
  group.cancel_all();
  EXPECT_EQ(destroyed, 10);
  EXPECT_TRUE(group.empty());
  EXPECT_EQ(loop_.stats().timers, 0u);
  ASSERT_TRUE(turn_until([&] { return waiter.done(); }));
}

TEST_F(TaskTest, TaskGroupCancelAllBeforeTheTasksStarted) {
  int destroyed = 0;
  const long before = live_task_count();
  TaskGroup group(loop_);
  for (int i = 0; i < 10; ++i) group.spawn(hold(&destroyed, 1h));
  EXPECT_EQ(loop_.stats().ready, 10u);
  EXPECT_EQ(live_task_count(), before + 10);
  group.cancel_all();
  EXPECT_EQ(destroyed, 0) << "they never started";
  EXPECT_EQ(live_task_count(), before);
  EXPECT_EQ(loop_.stats().ready, 0u);
  turn();
}

Task<void> cancel_my_group(TaskGroup* g) {
  g->cancel_all_soon();
  co_return;
}

TEST_F(TaskTest, TaskGroupCancelAllSoonFromInsideATask) {
  int destroyed = 0;
  TaskGroup group(loop_);
  for (int i = 0; i < 3; ++i) group.spawn(hold(&destroyed, 1h));
  group.spawn(cancel_my_group(&group));
  ASSERT_TRUE(turn_until([&] { return group.empty(); }));
  EXPECT_EQ(destroyed, 3);
}

Task<void> throw_in_group(int v) {
  co_await sleep(1ms);
  throw Oops(v);
}

TEST_F(TaskTest, TaskGroupErrorHandlerGetsExceptions) {
  std::vector<int> errors;
  int n = 0;
  TaskGroup group(loop_, [&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const Oops& o) {
      errors.push_back(o.value);
    }
  });
  group.spawn(throw_in_group(1));
  group.spawn(bump(&n, 2ms));
  group.spawn(throw_in_group(2));
  run(group_wait(&group));
  std::sort(errors.begin(), errors.end());
  EXPECT_EQ(errors, (std::vector<int>{1, 2}));
  EXPECT_EQ(n, 1);
}

TEST_F(TaskTest, DestroyingTheGroupCancelsItsTasks) {
  int destroyed = 0;
  {
    TaskGroup group(loop_);
    for (int i = 0; i < 5; ++i) group.spawn(hold(&destroyed, 1h));
    group.spawn(hold(&destroyed, 1h));
    turn();
    group.spawn(hold(&destroyed, 1h));  // one not started yet (its probe does not exist yet)
  }
  EXPECT_EQ(destroyed, 6);
  EXPECT_EQ(loop_.stats().timers, 0u);
}

// --------------------------------------------------------------------------- run_in_worker

Task<int> worker_value() {
  auto job = [] { return 6 * 7; };  // GCC 12: no lambda built inside a co_await expression
  int v = co_await run_in_worker(job);
  co_return v;
}

Task<int> worker_throws() {
  try {
    auto job = []() -> int { throw Oops(11); };
    int v = co_await run_in_worker(job);
    co_return v;
  } catch (const Oops& e) {
    co_return e.value;
  }
}

Task<void> worker_void(std::atomic<int>* hits) {
  auto job = [hits] { hits->fetch_add(1); };
  co_await run_in_worker(job);
}

Task<bool> worker_ran_elsewhere() {
  const auto here = std::this_thread::get_id();
  auto job = [] { return std::this_thread::get_id(); };
  std::thread::id there = co_await run_in_worker(job);
  co_return there != here && std::this_thread::get_id() == here;
}

TEST_F(TaskTest, RunInWorkerValueExceptionVoid) {
  EXPECT_EQ(run(worker_value()), 42);
  EXPECT_EQ(run(worker_throws()), 11);
  std::atomic<int> hits{0};
  run(worker_void(&hits));
  EXPECT_EQ(hits.load(), 1);
  EXPECT_TRUE(run(worker_ran_elsewhere()));
}

Task<long> worker_square(long i) {
  auto job = [i] { return i * i; };
  long v = co_await run_in_worker(job);
  co_return v;
}

Task<long> many_workers(int n) {
  std::vector<Task<long>> jobs;
  for (int i = 0; i < n; ++i) jobs.push_back(worker_square(i));
  std::vector<long> out = co_await gather(std::move(jobs));
  long sum = 0;
  for (long v : out) sum += v;
  co_return sum;
}

TEST_F(TaskTest, ManyConcurrentWorkerJobs) {
  constexpr long kN = 500;
  EXPECT_EQ(run(many_workers(static_cast<int>(kN))), (kN - 1) * kN * (2 * kN - 1) / 6);
}

Task<int> blocked_job(std::shared_future<void> release, int* destroyed) {
  Probe p(destroyed);
  auto job = [release] {
    release.wait();
    return 1;
  };
  int v = co_await run_in_worker(job);
  ADD_FAILURE() << "the cancelled task must not resume";
  co_return v;
}

Task<int> after_job() {
  auto job = [] { return 2; };
  int v = co_await run_in_worker(job);
  co_return v;
}

TEST_F(TaskTest, CancellingTheAwaiterWhileTheJobRunsDropsTheResult) {
  loop_.set_worker_threads(1);  // FIFO: the next job runs (and posts back) after the first
  std::promise<void> gate;
  std::shared_future<void> release = gate.get_future().share();
  struct Opener {  // never leave the worker blocked, even when an assertion fails
    std::promise<void>* gate;
    bool opened = false;
    void open() {
      if (!std::exchange(opened, true)) gate->set_value();
    }
    ~Opener() { open(); }
  } opener{&gate};
  int destroyed = 0;
  {
    Task<int> t = blocked_job(release, &destroyed);
    start(t);
    ASSERT_TRUE(turn_until([&] { return loop_.workers().pending() == 1; }));
  }
  EXPECT_EQ(destroyed, 1);
  opener.open();
  // The dropped completion is posted before this job's, so once this one is back the first
  // one has been handled (and ignored).
  EXPECT_EQ(run(after_job()), 2);
}

}  // namespace
}  // namespace tether
