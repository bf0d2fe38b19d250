// TaskGroup's membership list: many members, members finishing in any order, tasks spawned while
// others finish or are destroyed, and a group destroyed from its own error handler. (The basics
// are in task_test.cpp.)
#include "tether/loop/task_group.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <exception>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

#include "loop_fixture.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task.hpp"
#include "tether/loop/time.hpp"

namespace tether {
namespace {

using testing::LoopFixture;
using testing::Probe;
using namespace std::chrono_literals;

class TaskGroupTest : public LoopFixture {};

Task<void> group_wait(TaskGroup* g) { co_await g->wait(); }

Task<void> wait_for(Event* e, int* done) {
  co_await e->wait();
  ++*done;
}

TEST_F(TaskGroupTest, CancelAllFreesTenThousandWaitingTasks) {
  constexpr int kTasks = 10000;
  const long before = live_task_count();
  Event never;
  int done = 0;
  TaskGroup group(loop_);
  for (int i = 0; i < kTasks; ++i) group.spawn(wait_for(&never, &done));
  EXPECT_EQ(group.size(), static_cast<std::size_t>(kTasks));
  ASSERT_TRUE(turn_until([&] { return never.waiters() == kTasks; }));
  EXPECT_EQ(group.size(), static_cast<std::size_t>(kTasks));
  EXPECT_EQ(live_task_count(), before + 2 * kTasks);  // each task and its Event::wait()
  group.cancel_all();
  EXPECT_TRUE(group.empty());
  EXPECT_EQ(group.size(), 0u);
  EXPECT_EQ(never.waiters(), 0u);
  EXPECT_EQ(live_task_count(), before);
  EXPECT_EQ(done, 0);
}

TEST_F(TaskGroupTest, TenThousandTasksReleasedByOneEventAllFinish) {
  constexpr int kTasks = 10000;
  const long before = live_task_count();
  Event go;
  int done = 0;
  TaskGroup group(loop_);
  for (int i = 0; i < kTasks; ++i) group.spawn(wait_for(&go, &done));
  ASSERT_TRUE(turn_until([&] { return go.waiters() == kTasks; }));
  go.set();
  run(group_wait(&group));
  EXPECT_EQ(done, kTasks);
  EXPECT_TRUE(group.empty());
  EXPECT_EQ(live_task_count(), before);
}

TEST_F(TaskGroupTest, MembersFinishingInAnyOrderKeepTheCount) {
  constexpr int kTasks = 64;
  std::vector<std::unique_ptr<Event>> events;
  int done = 0;
  TaskGroup group(loop_);
  for (int i = 0; i < kTasks; ++i) {
    events.push_back(std::make_unique<Event>());
    group.spawn(wait_for(events.back().get(), &done));
  }
  turn();
  // Finish the last, the first, then the rest in a seeded random order: the list loses its
  // tail, its head and middle members.
  std::vector<int> order;
  for (int i = 1; i < kTasks - 1; ++i) order.push_back(i);
  std::mt19937 rng(20240611);
  std::shuffle(order.begin(), order.end(), rng);
  order.insert(order.begin(), {kTasks - 1, 0});
  std::size_t left = kTasks;
  for (int i : order) {
    events[static_cast<std::size_t>(i)]->set();
    --left;
    ASSERT_TRUE(turn_until([&] { return group.size() == left; })) << "after finishing task " << i;
  }
  EXPECT_EQ(done, kTasks);
  EXPECT_TRUE(group.empty());
  run(group_wait(&group));
}

Task<void> relay(TaskGroup* g, int left, int* ran) {
  ++*ran;
  if (left > 0) g->spawn(relay(g, left - 1, ran));  // spawned while this one is still a member
  co_return;
}

TEST_F(TaskGroupTest, TasksSpawnedByFinishingTasksAreWaitedFor) {
  int ran = 0;
  TaskGroup group(loop_);
  group.spawn(relay(&group, 99, &ran));
  group.spawn(relay(&group, 49, &ran));
  EXPECT_EQ(group.size(), 2u);
  run(group_wait(&group));
  EXPECT_EQ(ran, 150);
  EXPECT_TRUE(group.empty());
}

struct Failed : std::runtime_error {
  Failed() : std::runtime_error("failed") {}
};

Task<void> fail_now() {
  throw Failed();
  co_return;
}

TEST_F(TaskGroupTest, TheErrorHandlerMaySpawnMoreTasks) {
  int errors = 0;
  TaskGroup* self = nullptr;
  TaskGroup group(loop_, [&](std::exception_ptr) {
    if (++errors < 20) self->spawn(fail_now());  // spawned after the failed one left the group
  });
  self = &group;
  group.spawn(fail_now());
  run(group_wait(&group));
  EXPECT_EQ(errors, 20);
  EXPECT_TRUE(group.empty());
}

Task<void> hold(int* destroyed, Duration d) {
  Probe p(destroyed);
  co_await sleep(d);
}

Task<void> fail_when(Event* go) {
  co_await go->wait();
  throw Failed();
}

TEST_F(TaskGroupTest, TheErrorHandlerMayDestroyTheGroup) {
  const long before = live_task_count();
  int destroyed = 0, errors = 0;
  Event go;
  std::unique_ptr<TaskGroup> group;
  group = std::make_unique<TaskGroup>(loop_, [&](std::exception_ptr) {
    ++errors;
    group.reset();  // last: this handler belongs to the group
  });
  for (int i = 0; i < 5; ++i) group->spawn(hold(&destroyed, 1h));
  group->spawn(fail_when(&go));
  group->spawn(fail_when(&go));  // woken together with the first: queued to resume when destroyed
  turn();
  go.set();
  group->spawn(hold(&destroyed, 1h));  // queued behind the failures: not started when the group goes
  ASSERT_TRUE(turn_until([&] { return group == nullptr; }));
  turn(2);
  EXPECT_EQ(errors, 1) << "the second failure was cancelled with the group";
  EXPECT_EQ(destroyed, 5);
  EXPECT_EQ(loop_.stats().timers, 0u);
  EXPECT_EQ(live_task_count(), before);
}

// Spawns another task into the group when destroyed (while cancel_all destroys its batch).
struct SpawnsWhenDestroyed {
  SpawnsWhenDestroyed(TaskGroup* g, int* respawns, int* destroyed)
      : g_(g), respawns_(respawns), destroyed_(destroyed) {}
  SpawnsWhenDestroyed(const SpawnsWhenDestroyed&) = delete;
  SpawnsWhenDestroyed& operator=(const SpawnsWhenDestroyed&) = delete;
  ~SpawnsWhenDestroyed() {
    if (*respawns_ > 0) {
      --*respawns_;
      g_->spawn(hold(destroyed_, 1h));
    }
  }
  TaskGroup* g_;
  int* respawns_;
  int* destroyed_;
};

Task<void> respawner(TaskGroup* g, int* respawns, int* destroyed) {
  SpawnsWhenDestroyed s(g, respawns, destroyed);
  co_await sleep(1h);
}

TEST_F(TaskGroupTest, CancelAllAlsoDestroysTasksSpawnedWhileItDestroys) {
  const long before = live_task_count();
  int respawns = 2, destroyed = 0;
  TaskGroup group(loop_);
  for (int i = 0; i < 3; ++i) group.spawn(respawner(&group, &respawns, &destroyed));
  group.spawn(hold(&destroyed, 1h));
  turn();
  EXPECT_EQ(loop_.stats().timers, 4u);
  group.cancel_all();
  EXPECT_EQ(respawns, 0);
  EXPECT_TRUE(group.empty());
  EXPECT_EQ(destroyed, 1) << "the respawned ones never started";
  EXPECT_EQ(loop_.stats().ready, 0u) << "their queued starts were dropped";
  EXPECT_EQ(loop_.stats().timers, 0u);
  EXPECT_EQ(live_task_count(), before);
}

TEST_F(TaskGroupTest, SpawnAfterCancelAllStartsAFreshList) {
  int destroyed = 0, done = 0;
  Event go;
  TaskGroup group(loop_);
  for (int i = 0; i < 3; ++i) group.spawn(hold(&destroyed, 1h));
  turn();
  group.cancel_all();
  EXPECT_EQ(destroyed, 3);
  for (int i = 0; i < 3; ++i) group.spawn(wait_for(&go, &done));
  EXPECT_EQ(group.size(), 3u);
  turn();
  go.set();
  run(group_wait(&group));
  EXPECT_EQ(done, 3);
}

Task<void> count_up(int* n) {
  ++*n;
  co_return;
}

// adopt(): a member that the caller starts itself (here by resuming the handle; serve loops do
// it as a symmetric transfer), finishing like a spawned one; never started, cancel_all frees it.
TEST_F(TaskGroupTest, AnAdoptedTaskRunsWhenResumedAndIsCancelledLikeTheOthers) {
  const long before = live_task_count();
  TaskGroup group(loop_);
  int n = 0;
  std::coroutine_handle<> h = group.adopt(count_up(&n));
  EXPECT_EQ(group.size(), 1u);
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(n, 0) << "adopt() queues nothing";
  h.resume();
  EXPECT_EQ(n, 1);
  EXPECT_TRUE(group.empty()) << "it finished and left the group";
  EXPECT_EQ(live_task_count(), before);

  (void)group.adopt(count_up(&n));
  group.spawn(count_up(&n));
  EXPECT_EQ(group.size(), 2u);
  group.cancel_all();
  EXPECT_TRUE(group.empty());
  EXPECT_EQ(live_task_count(), before);
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(n, 1) << "neither ran";
  EXPECT_THROW((void)group.adopt(Task<void>()), UsageError);
}

}  // namespace
}  // namespace tether
