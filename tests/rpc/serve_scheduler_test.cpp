// ServeScheduler on its own: which decoded request is held for the read loop's hand-off and
// which go through the ready queue (in arrival order), the count of requests being served
// that decides when a reply is written at once ("the last reply out flushes"), the fairness
// counter, and HandOff's symmetric transfer. The "requests" here are small coroutines that do
// what serve_request does at its end: look at last_reply(), then finished().
#include "rpc/serve_scheduler.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task_group.hpp"

namespace tether::testing {
namespace {

using rpc::detail::ServeScheduler;
using Log = std::vector<std::string>;

/// A request: records whether its reply would be written at once, then finishes.
Task<void> request(ServeScheduler* s, Log* log, std::string name) {
  log->push_back(name + (s->last_reply() ? " last" : " more"));
  s->finished();
  co_return;
}

/// A request that waits for `ev` before it replies.
Task<void> waiting_request(ServeScheduler* s, Log* log, Event* ev, std::string name) {
  log->push_back(name + " waits");
  co_await ev->wait();
  log->push_back(name + (s->last_reply() ? " last" : " more"));
  s->finished();
}

Task<void> note(Log* log, std::string what) {
  log->push_back(std::move(what));
  co_return;
}

class ServeSchedulerTest : public LoopTest {
 protected:
  void finish_all() { run(tasks_.wait()); }

  TaskGroup tasks_{loop_};
  ServeScheduler sched_{loop_, tasks_};
  Log log_;
};

TEST_F(ServeSchedulerTest, ALoneRequestIsHeldNotQueued) {
  sched_.spawn(request(&sched_, &log_, "a"));
  EXPECT_TRUE(sched_.holding());
  EXPECT_EQ(sched_.serving(), 1u);
  EXPECT_EQ(tasks_.size(), 1u);  // owned by the group already
  EXPECT_EQ(loop_.stats().ready, 0u);
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_TRUE(log_.empty()) << "the loop started a held request";

  std::coroutine_handle<> h = sched_.take_held();
  ASSERT_TRUE(h);
  EXPECT_FALSE(sched_.holding());
  EXPECT_FALSE(sched_.take_held());  // taken once
  h.resume();
  EXPECT_EQ(log_, (Log{"a last"}));  // alone: its reply goes out at once
  EXPECT_EQ(sched_.serving(), 0u);
  EXPECT_TRUE(tasks_.empty());
}

TEST_F(ServeSchedulerTest, RequestsDecodedTogetherRunInArrivalOrder) {
  sched_.spawn(request(&sched_, &log_, "a"));
  EXPECT_TRUE(sched_.holding());
  sched_.spawn(request(&sched_, &log_, "b"));
  EXPECT_FALSE(sched_.holding()) << "the held one must go to the queue ahead of the second";
  sched_.spawn(request(&sched_, &log_, "c"));
  EXPECT_FALSE(sched_.holding());
  EXPECT_EQ(sched_.serving(), 3u);
  EXPECT_EQ(loop_.stats().ready, 3u);
  finish_all();
  // All three counted before the first replied: only the last reply is written at once.
  EXPECT_EQ(log_, (Log{"a more", "b more", "c last"}));
  EXPECT_EQ(sched_.serving(), 0u);
}

TEST_F(ServeSchedulerTest, OnlyTheFirstRequestOfAPassIsHeld) {
  sched_.spawn(request(&sched_, &log_, "a"));
  sched_.spawn(request(&sched_, &log_, "b"));
  finish_all();
  // The pass that queued requests is not over: another one is queued too.
  sched_.spawn(request(&sched_, &log_, "c"));
  EXPECT_FALSE(sched_.holding());
  finish_all();
  // A new pass: its first request is held again.
  sched_.begin_pass();
  sched_.spawn(request(&sched_, &log_, "d"));
  EXPECT_TRUE(sched_.holding());
  sched_.release_held();
  finish_all();
  EXPECT_EQ(log_, (Log{"a more", "b last", "c last", "d last"}));
}

TEST_F(ServeSchedulerTest, ReleasingTheHeldRequestQueuesItFirst) {
  sched_.spawn(request(&sched_, &log_, "a"));
  sched_.release_held();
  EXPECT_FALSE(sched_.holding());
  EXPECT_FALSE(sched_.take_held());
  EXPECT_EQ(loop_.stats().ready, 1u);
  // The pass has queued a request: the next one is queued behind it, not held.
  sched_.spawn(request(&sched_, &log_, "b"));
  EXPECT_FALSE(sched_.holding());
  finish_all();
  EXPECT_EQ(log_, (Log{"a more", "b last"}));
}

TEST_F(ServeSchedulerTest, ReleasingWithNothingHeldChangesNothing) {
  sched_.release_held();
  EXPECT_EQ(loop_.stats().ready, 0u);
  sched_.spawn(request(&sched_, &log_, "a"));
  EXPECT_TRUE(sched_.holding()) << "an empty release marked the pass as having queued";
  sched_.release_held();
  finish_all();
  EXPECT_EQ(log_, (Log{"a last"}));
}

TEST_F(ServeSchedulerTest, ADroppedRequestGoesWithTheGroup) {
  sched_.spawn(request(&sched_, &log_, "a"));
  sched_.drop_held();
  EXPECT_FALSE(sched_.holding());
  EXPECT_FALSE(sched_.take_held());
  EXPECT_EQ(tasks_.size(), 1u);
  EXPECT_EQ(loop_.stats().ready, 0u);
  tasks_.cancel_all();  // never started: destroyed without running
  EXPECT_TRUE(tasks_.empty());
  EXPECT_TRUE(log_.empty());
}

TEST_F(ServeSchedulerTest, AnEmptyRequestIsRefusedAndNotCounted) {
  EXPECT_THROW(sched_.spawn(Task<void>()), UsageError);
  EXPECT_EQ(sched_.serving(), 0u);
  EXPECT_FALSE(sched_.holding());

  // Refused while another is held: the held one is queued first, and still counted.
  sched_.spawn(request(&sched_, &log_, "a"));
  EXPECT_THROW(sched_.spawn(Task<void>()), UsageError);
  EXPECT_EQ(sched_.serving(), 1u);
  finish_all();
  EXPECT_EQ(log_, (Log{"a last"}));
}

TEST_F(ServeSchedulerTest, TheLastReplyIsTheOneWrittenAtOnce) {
  EXPECT_FALSE(sched_.last_reply());  // nothing served
  Event ev;
  sched_.spawn(waiting_request(&sched_, &log_, &ev, "slow"));
  sched_.spawn(request(&sched_, &log_, "fast"));
  EXPECT_EQ(sched_.serving(), 2u);
  EXPECT_FALSE(sched_.last_reply());
  loop_.run_once(std::chrono::milliseconds(0));
  // fast replied while slow was running: its reply waits; slow's, the last, goes at once.
  EXPECT_EQ(log_, (Log{"slow waits", "fast more"}));
  EXPECT_EQ(sched_.serving(), 1u);
  EXPECT_TRUE(sched_.last_reply());
  ev.set();
  finish_all();
  EXPECT_EQ(log_, (Log{"slow waits", "fast more", "slow last"}));
  EXPECT_EQ(sched_.serving(), 0u);
  EXPECT_FALSE(sched_.last_reply());
}

TEST_F(ServeSchedulerTest, PassDecodedLastsOnePass) {
  EXPECT_FALSE(sched_.pass_decoded());
  sched_.note_decoded();
  EXPECT_TRUE(sched_.pass_decoded());
  sched_.note_decoded();
  EXPECT_TRUE(sched_.pass_decoded());
  sched_.begin_pass();
  EXPECT_FALSE(sched_.pass_decoded());
}

TEST_F(ServeSchedulerTest, TurnOverComesOncePerFramesPerTurn) {
  constexpr std::uint32_t k = ServeScheduler::kFramesPerTurn;
  std::vector<std::uint32_t> turns;
  for (std::uint32_t frame = 1; frame <= 3 * k + 5; ++frame) {
    if (sched_.turn_over()) turns.push_back(frame);
  }
  EXPECT_EQ(turns, (std::vector<std::uint32_t>{k, 2 * k, 3 * k}));
  // begin_pass does not reset it: fairness counts frames, not passes.
  for (std::uint32_t i = 0; i < k - 6; ++i) EXPECT_FALSE(sched_.turn_over());
  sched_.begin_pass();
  EXPECT_TRUE(sched_.turn_over());
}

// ------------------------------------------------------------------------------- HandOff

/// A read loop's pass: queues other work, decodes one request, hands off to it.
Task<void> reader_pass(EventLoop* loop, TaskGroup* tasks, ServeScheduler* s, Log* log, Event* ev) {
  log->push_back("reader");
  tasks->spawn(note(log, "queued before"));
  if (ev) {
    s->spawn(waiting_request(s, log, ev, "held"));
  } else {
    s->spawn(request(s, log, "held"));
  }
  std::coroutine_handle<> h = s->take_held();
  co_await ServeScheduler::HandOff{*loop, h};
  log->push_back("reader back");
}

TEST_F(ServeSchedulerTest, HandOffRunsTheRequestAtOnceAndTheReaderAfterQueuedWork) {
  run(reader_pass(&loop_, &tasks_, &sched_, &log_, nullptr));
  finish_all();
  EXPECT_EQ(log_, (Log{"reader", "held last", "queued before", "reader back"}));
}

TEST_F(ServeSchedulerTest, ARequestThatWaitsDoesNotWaitOnTopOfTheReader) {
  Event ev;
  run(reader_pass(&loop_, &tasks_, &sched_, &log_, &ev));
  EXPECT_EQ(log_, (Log{"reader", "held waits", "queued before", "reader back"}));
  EXPECT_EQ(sched_.serving(), 1u);
  ev.set();
  finish_all();
  EXPECT_EQ(log_.back(), "held last");
  EXPECT_EQ(sched_.serving(), 0u);
}

Task<void> yielding_reader(EventLoop* loop, Log* log) {
  co_await ServeScheduler::HandOff{*loop, std::noop_coroutine()};
  log->push_back("resumed");
}

TEST_F(ServeSchedulerTest, AHandOffDestroyedWhileQueuedIsTakenOffTheQueue) {
  tasks_.spawn(yielding_reader(&loop_, &log_));
  loop_.run_once(std::chrono::milliseconds(0));  // the reader ran, handed off, is queued
  EXPECT_EQ(loop_.stats().ready, 1u);
  EXPECT_EQ(tasks_.size(), 1u);
  tasks_.cancel_all();  // the connection's tasks go
  EXPECT_EQ(loop_.stats().ready, 0u) << "a destroyed frame is still queued";
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_TRUE(log_.empty());
}

TEST_F(ServeSchedulerTest, AHandOffResumedNormallyLeavesNothingQueued) {
  tasks_.spawn(yielding_reader(&loop_, &log_));
  finish_all();
  EXPECT_EQ(log_, (Log{"resumed"}));
  EXPECT_EQ(loop_.stats().ready, 0u);
}

}  // namespace
}  // namespace tether::testing
