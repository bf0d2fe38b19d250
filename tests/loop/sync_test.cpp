// Event, Semaphore, Queue: wake-ups, FIFO order, close, cancellation of waiters.
#include "tether/loop/sync.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "loop_fixture.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/loop/time.hpp"

namespace tether {
namespace {

using testing::LoopFixture;
using testing::Probe;
using namespace std::chrono_literals;

class SyncTest : public LoopFixture {};

// ------------------------------------------------------------------------------------ Event

Task<void> wait_and_log(Event* e, std::vector<int>* log, int id) {
  co_await e->wait();
  log->push_back(id);
}

TEST_F(SyncTest, EventSetWakesEveryWaiter) {
  Event ev;
  std::vector<int> log;
  TaskGroup group(loop_);
  for (int i = 0; i < 5; ++i) group.spawn(wait_and_log(&ev, &log, i));
  turn(2);
  EXPECT_EQ(ev.waiters(), 5u);
  EXPECT_TRUE(log.empty());
  ev.set();
  EXPECT_TRUE(ev.is_set());
  turn();
  EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3, 4})) << "FIFO wake-up order";
  EXPECT_TRUE(group.empty());
}

TEST_F(SyncTest, EventWaitCompletesAtOnceWhenSetAndClearRearms) {
  Event ev;
  std::vector<int> log;
  ev.set();
  run(wait_and_log(&ev, &log, 1));
  EXPECT_EQ(log.size(), 1u);
  ev.clear();
  EXPECT_FALSE(ev.is_set());
  TaskGroup group(loop_);
  group.spawn(wait_and_log(&ev, &log, 2));
  turn(3);
  EXPECT_EQ(log.size(), 1u) << "a cleared event blocks again";
  ev.set();
  turn();
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
}

TEST_F(SyncTest, EventSetThenClearStillWakesTheWaitersOfThatSet) {
  // asyncio semantics: set() releases everyone waiting at that moment, even if clear()
  // follows before they run.
  Event ev;
  std::vector<int> log;
  TaskGroup group(loop_);
  group.spawn(wait_and_log(&ev, &log, 1));
  group.spawn(wait_and_log(&ev, &log, 2));
  turn();
  ev.set();
  ev.clear();
  turn();
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
  EXPECT_TRUE(group.empty());
}

Task<void> probe_wait(Event* e, int* destroyed) {
  Probe p(destroyed);
  co_await e->wait();
}

TEST_F(SyncTest, CancelledEventWaiterLeavesTheList) {
  Event ev;
  int destroyed = 0;
  std::vector<int> log;
  TaskGroup group(loop_);
  group.spawn(wait_and_log(&ev, &log, 1));
  {
    Task<void> t = probe_wait(&ev, &destroyed);
    start(t);
    turn();
    EXPECT_EQ(ev.waiters(), 2u);
  }
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(ev.waiters(), 1u);
  ev.set();
  turn();
  EXPECT_EQ(log, (std::vector<int>{1}));
}

TEST_F(SyncTest, EventWaiterCancelledAfterBeingWokenIsSafe) {
  Event ev;
  int destroyed = 0;
  std::vector<int> log;
  TaskGroup group(loop_);
  {
    Task<void> t = probe_wait(&ev, &destroyed);
    start(t);
    turn();
    group.spawn(wait_and_log(&ev, &log, 2));
    turn();
    ev.set();  // both are queued to resume; t dies before it runs
    EXPECT_EQ(loop_.stats().ready, 2u);
  }
  EXPECT_EQ(loop_.stats().ready, 1u) << "the dead waiter's resumption was dropped";
  turn();
  EXPECT_EQ(log, (std::vector<int>{2}));
  EXPECT_EQ(destroyed, 1);
}

// -------------------------------------------------------------------------------- Semaphore

Task<void> acquire_and_log(Semaphore* s, std::vector<int>* log, int id) {
  co_await s->acquire();
  log->push_back(id);
}

TEST_F(SyncTest, SemaphoreIsFifo) {
  Semaphore sem(0);
  std::vector<int> log;
  TaskGroup group(loop_);
  for (int i = 0; i < 5; ++i) group.spawn(acquire_and_log(&sem, &log, i));
  turn();
  EXPECT_TRUE(log.empty());
  for (int i = 0; i < 5; ++i) {
    sem.release();
    turn();
    ASSERT_EQ(log.size(), static_cast<std::size_t>(i + 1)) << "release wakes exactly one";
    EXPECT_EQ(log.back(), i);
  }
  EXPECT_EQ(sem.available(), 0u);
}

TEST_F(SyncTest, SemaphoreTryAcquireAndPermits) {
  Semaphore sem(2);
  EXPECT_TRUE(sem.try_acquire());
  EXPECT_TRUE(sem.try_acquire());
  EXPECT_FALSE(sem.try_acquire());
  EXPECT_EQ(sem.available(), 0u);
  sem.release();
  EXPECT_EQ(sem.available(), 1u);
  std::vector<int> log;
  run(acquire_and_log(&sem, &log, 1));  // a free permit: no wait
  EXPECT_EQ(log.size(), 1u);
  EXPECT_EQ(sem.available(), 0u);
}

TEST_F(SyncTest, SemaphoreNewcomersDoNotOvertakeWokenWaiters) {
  Semaphore sem(0);
  std::vector<int> log;
  TaskGroup group(loop_);
  group.spawn(acquire_and_log(&sem, &log, 1));
  turn();
  sem.release();  // handed to waiter 1, which has not run yet
  EXPECT_FALSE(sem.try_acquire()) << "the released permit belongs to the woken waiter";
  group.spawn(acquire_and_log(&sem, &log, 2));
  turn(2);
  EXPECT_EQ(log, (std::vector<int>{1}));
  sem.release();
  turn();
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
}

Task<void> probe_acquire(Semaphore* s, int* destroyed) {
  Probe p(destroyed);
  co_await s->acquire();
}

TEST_F(SyncTest, SemaphoreWokenThenCancelledWaiterPassesThePermitOn) {
  Semaphore sem(0);
  int destroyed = 0;
  std::vector<int> log;
  TaskGroup group(loop_);
  {
    Task<void> first = probe_acquire(&sem, &destroyed);
    start(first);
    turn();
    group.spawn(acquire_and_log(&sem, &log, 2));
    turn();
    sem.release();  // wakes `first`, which is destroyed before it runs
  }
  EXPECT_EQ(destroyed, 1);
  turn(2);
  EXPECT_EQ(log, (std::vector<int>{2})) << "the permit went to the next waiter";
  EXPECT_EQ(sem.available(), 0u);
}

TEST_F(SyncTest, SemaphoreWokenThenCancelledWaiterReturnsThePermit) {
  Semaphore sem(0);
  int destroyed = 0;
  {
    Task<void> only = probe_acquire(&sem, &destroyed);
    start(only);
    turn();
    sem.release();
  }
  turn();
  EXPECT_EQ(sem.available(), 1u);
  EXPECT_TRUE(sem.try_acquire());
}

TEST_F(SyncTest, SemaphoreCancelledWaiterBeforeWakeUpDoesNotTakeAPermit) {
  Semaphore sem(0);
  int destroyed = 0;
  std::vector<int> log;
  TaskGroup group(loop_);
  {
    Task<void> t = probe_acquire(&sem, &destroyed);
    start(t);
    turn();
  }
  group.spawn(acquire_and_log(&sem, &log, 7));
  turn();
  sem.release();
  turn();
  EXPECT_EQ(log, (std::vector<int>{7}));
}

Task<void> limited_worker(Semaphore* s, int* active, int* peak, int* done) {
  co_await s->acquire();
  ++*active;
  if (*active > *peak) *peak = *active;
  co_await sleep(std::chrono::microseconds(200));
  --*active;
  ++*done;
  s->release();
}

TEST_F(SyncTest, SemaphoreBoundsConcurrency) {
  Semaphore sem(3);
  int active = 0, peak = 0, done = 0;
  TaskGroup group(loop_);
  for (int i = 0; i < 30; ++i) group.spawn(limited_worker(&sem, &active, &peak, &done));
  ASSERT_TRUE(turn_until([&] { return done == 30; }));
  EXPECT_EQ(peak, 3);
  EXPECT_EQ(sem.available(), 3u);
}

// ------------------------------------------------------------------------------------ Queue

Task<void> producer(Queue<int>* q, int from, int n, std::vector<int>* pushed) {
  for (int i = from; i < from + n; ++i) {
    co_await q->push(i);
    pushed->push_back(i);
  }
}

Task<void> consumer(Queue<int>* q, int n, std::vector<int>* popped) {
  for (int i = 0; i < n; ++i) {
    int v = co_await q->pop();
    popped->push_back(v);
  }
}

TEST_F(SyncTest, BoundedQueuePushWaitsWhenFull) {
  Queue<int> q(2);
  std::vector<int> pushed, popped;
  TaskGroup group(loop_);
  group.spawn(producer(&q, 0, 5, &pushed));
  turn(3);
  EXPECT_EQ(pushed, (std::vector<int>{0, 1})) << "the third push waits";
  EXPECT_TRUE(q.full());
  EXPECT_FALSE(q.try_push(99));
  auto first = q.try_pop();
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, 0);
  turn(2);
  EXPECT_EQ(pushed.size(), 3u);
  group.spawn(consumer(&q, 4, &popped));
  ASSERT_TRUE(turn_until([&] { return group.empty(); }));
  EXPECT_EQ(popped, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_TRUE(q.empty());
}

TEST_F(SyncTest, QueuePopWaitsWhenEmpty) {
  Queue<int> q;  // unbounded
  std::vector<int> popped;
  TaskGroup group(loop_);
  group.spawn(consumer(&q, 3, &popped));
  turn(2);
  EXPECT_TRUE(popped.empty());
  EXPECT_TRUE(q.try_push(10));
  turn();
  EXPECT_EQ(popped, (std::vector<int>{10}));
  EXPECT_TRUE(q.try_push(11));
  EXPECT_TRUE(q.try_push(12));
  ASSERT_TRUE(turn_until([&] { return group.empty(); }));
  EXPECT_EQ(popped, (std::vector<int>{10, 11, 12}));
  EXPECT_FALSE(q.try_pop());
}

TEST_F(SyncTest, QueueManyProducersAndConsumers) {
  Queue<int> q(4);
  std::vector<int> pushed, popped;
  TaskGroup group(loop_);
  for (int p = 0; p < 4; ++p) group.spawn(producer(&q, p * 1000, 250, &pushed));
  for (int c = 0; c < 5; ++c) group.spawn(consumer(&q, 200, &popped));
  ASSERT_TRUE(turn_until([&] { return group.empty(); }));
  ASSERT_EQ(popped.size(), 1000u);
  std::sort(popped.begin(), popped.end());
  std::sort(pushed.begin(), pushed.end());
  EXPECT_EQ(popped, pushed);
}

Task<std::string> pop_until_closed(Queue<int>* q) {
  std::string out;
  try {
    for (;;) {
      int v = co_await q->pop();
      out += std::to_string(v) + ",";
    }
  } catch (const QueueClosed&) {
    out += "closed";
  }
  co_return out;
}

Task<std::string> push_after_close(Queue<int>* q) {
  try {
    co_await q->push(1);
  } catch (const QueueClosed& e) {
    co_return std::string(e.what());
  }
  co_return "pushed";
}

TEST_F(SyncTest, QueueCloseDrainsThenFails) {
  Queue<int> q(3);
  ASSERT_TRUE(q.try_push(1));
  ASSERT_TRUE(q.try_push(2));
  q.close();
  EXPECT_TRUE(q.closed());
  EXPECT_FALSE(q.try_push(3));
  EXPECT_EQ(run(pop_until_closed(&q)), "1,2,closed");
  EXPECT_EQ(run(push_after_close(&q)), "queue is closed");
}

Task<void> push_catching(Queue<int>* q, int v, std::vector<std::string>* log) {
  try {
    co_await q->push(v);
    log->push_back("pushed " + std::to_string(v));
  } catch (const QueueClosed&) {
    log->push_back("push failed " + std::to_string(v));
  }
}

Task<void> pop_catching(Queue<int>* q, std::vector<std::string>* log) {
  std::string r = co_await pop_until_closed(q);
  log->push_back(r);
}

TEST_F(SyncTest, QueueCloseWakesWaitingPushersAndPoppers) {
  Queue<int> full(1), empty(1);
  ASSERT_TRUE(full.try_push(0));
  std::vector<std::string> log;
  TaskGroup group(loop_);
  group.spawn(push_catching(&full, 5, &log));
  group.spawn(pop_catching(&empty, &log));
  turn(2);
  EXPECT_TRUE(log.empty());
  full.close();
  empty.close();
  ASSERT_TRUE(turn_until([&] { return group.empty(); }));
  std::sort(log.begin(), log.end());
  EXPECT_EQ(log, (std::vector<std::string>{"closed", "push failed 5"}));
  EXPECT_EQ(full.size(), 1u) << "close keeps what was queued";
}

Task<void> probe_pop(Queue<std::unique_ptr<int>>* q, int* destroyed) {
  Probe p(destroyed);
  std::unique_ptr<int> v = co_await q->pop();
  ADD_FAILURE() << "cancelled popper resumed with " << *v;
}

Task<void> pop_into(Queue<std::unique_ptr<int>>* q, std::vector<int>* got) {
  std::unique_ptr<int> v = co_await q->pop();
  got->push_back(*v);
}

TEST_F(SyncTest, QueueCancelledPoppersLoseNothing) {
  Queue<std::unique_ptr<int>> q(1);
  int destroyed = 0;
  std::vector<int> got;
  TaskGroup group(loop_);
  {
    Task<void> waiting = probe_pop(&q, &destroyed);  // cancelled while waiting
    Task<void> woken = probe_pop(&q, &destroyed);    // cancelled after being woken
    start(waiting);
    start(woken);
    turn();
    waiting.reset();
    group.spawn(pop_into(&q, &got));
    turn();
    ASSERT_TRUE(q.try_push(std::make_unique<int>(7)));  // wakes `woken` first (FIFO)
  }
  EXPECT_EQ(destroyed, 2);
  ASSERT_TRUE(turn_until([&] { return group.empty(); }));
  EXPECT_EQ(got, (std::vector<int>{7})) << "the item went to the next popper";
}

Task<void> probe_push(Queue<int>* q, int v, int* destroyed) {
  Probe p(destroyed);
  co_await q->push(v);
}

TEST_F(SyncTest, QueueCancelledPusherPushesNothing) {
  Queue<int> q(1);
  ASSERT_TRUE(q.try_push(1));
  int destroyed = 0;
  {
    Task<void> t = probe_push(&q, 2, &destroyed);
    start(t);
    turn();
  }
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(*q.try_pop(), 1);
  turn();
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace tether
