// ServeScheduler on its own: which decoded request is held for the read loop's hand-off and
// which go through the ready queue (in arrival order), the count of requests being served,
// the flush holds that decide when a reply is written at once ("the last reply out
// flushes", the channel's rule), the fairness counter, and HandOff's symmetric transfer. The
// "requests" here are small coroutines that do what serve_request does at its end: queue a
// reply, then finished() (which lets go of the request's hold) and see whether that wrote.
#include "rpc/serve_scheduler.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "tether/base/error.hpp"
#include "tether/channel/channel.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/stream/mem_pipe.hpp"

namespace tether::testing {
namespace {

using rpc::detail::ServeScheduler;
using Log = std::vector<std::string>;

/// What a request does once it has its result: queues the reply and lets go of its hold;
/// records whether that wrote to the transport at once ("last") or left the reply queued.
void reply(ServeScheduler* s, Channel* ch, Log* log, const std::string& name) {
  ch->send(OutFrame::copied(name));
  const std::uint64_t writes = ch->stream().stats().write_calls;
  s->finished();
  log->push_back(name + (ch->stream().stats().write_calls > writes ? " last" : " more"));
}

/// A request: replies at once.
Task<void> request_task(ServeScheduler* s, Channel* ch, Log* log, std::string name) {
  reply(s, ch, log, name);
  co_return;
}

/// A request that waits for `ev` before it replies.
Task<void> waiting_task(ServeScheduler* s, Channel* ch, Log* log, Event* ev, std::string name) {
  log->push_back(name + " waits");
  co_await ev->wait();
  reply(s, ch, log, name);
}

Task<void> note(Log* log, std::string what) {
  log->push_back(std::move(what));
  co_return;
}

/// A channel on one end of an in-memory pipe (the replies go there), the other end kept open.
struct PipeChannel {
  explicit PipeChannel(EventLoop& loop) : pipe(make_mem_pipe(loop, 1 << 20)) {
    channel = std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.first)));
    peer = std::make_unique<BufferedStream>(std::move(pipe.second));
  }
  MemPipePair pipe;
  std::unique_ptr<Channel> channel;
  std::unique_ptr<BufferedStream> peer;
};

class ServeSchedulerTest : public LoopTest {
 protected:
  void TearDown() override {
    tasks_.cancel_all();
    sched_.end_pass();
    pipe_.channel.reset();  // before LoopTest checks that the loop is empty
    pipe_.peer.reset();
    LoopTest::TearDown();
  }
  void finish_all() { run(tasks_.wait()); }
  Task<void> request(std::string name) { return request_task(&sched_, ch_, &log_, std::move(name)); }
  Task<void> waiting_request(Event* ev, std::string name) {
    return waiting_task(&sched_, ch_, &log_, ev, std::move(name));
  }

  PipeChannel pipe_{loop_};
  Channel* ch_ = pipe_.channel.get();
  TaskGroup tasks_{loop_};
  ServeScheduler sched_{loop_, tasks_, *ch_};
  Log log_;
};

TEST_F(ServeSchedulerTest, ALoneRequestIsHeldNotQueued) {
  sched_.spawn(request("a"));
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
  sched_.spawn(request("a"));
  EXPECT_TRUE(sched_.holding());
  sched_.spawn(request("b"));
  EXPECT_FALSE(sched_.holding()) << "the held one must go to the queue ahead of the second";
  sched_.spawn(request("c"));
  EXPECT_FALSE(sched_.holding());
  EXPECT_EQ(sched_.serving(), 3u);
  EXPECT_EQ(loop_.stats().ready, 3u);
  finish_all();
  // All three counted before the first replied: only the last reply is written at once.
  EXPECT_EQ(log_, (Log{"a more", "b more", "c last"}));
  EXPECT_EQ(sched_.serving(), 0u);
}

TEST_F(ServeSchedulerTest, OnlyTheFirstRequestOfAPassIsHeld) {
  sched_.spawn(request("a"));
  sched_.spawn(request("b"));
  finish_all();
  // The pass that queued requests is not over: another one is queued too.
  sched_.spawn(request("c"));
  EXPECT_FALSE(sched_.holding());
  finish_all();
  // A new pass: its first request is held again.
  sched_.begin_pass();
  sched_.spawn(request("d"));
  EXPECT_TRUE(sched_.holding());
  sched_.release_held();
  sched_.end_pass();  // as the read loop does before it suspends
  finish_all();
  EXPECT_EQ(log_, (Log{"a more", "b last", "c last", "d last"}));
}

TEST_F(ServeSchedulerTest, ReleasingTheHeldRequestQueuesItFirst) {
  sched_.spawn(request("a"));
  sched_.release_held();
  EXPECT_FALSE(sched_.holding());
  EXPECT_FALSE(sched_.take_held());
  EXPECT_EQ(loop_.stats().ready, 1u);
  // The pass has queued a request: the next one is queued behind it, not held.
  sched_.spawn(request("b"));
  EXPECT_FALSE(sched_.holding());
  finish_all();
  EXPECT_EQ(log_, (Log{"a more", "b last"}));
}

TEST_F(ServeSchedulerTest, ReleasingWithNothingHeldChangesNothing) {
  sched_.release_held();
  EXPECT_EQ(loop_.stats().ready, 0u);
  sched_.spawn(request("a"));
  EXPECT_TRUE(sched_.holding()) << "an empty release marked the pass as having queued";
  sched_.release_held();
  finish_all();
  EXPECT_EQ(log_, (Log{"a last"}));
}

TEST_F(ServeSchedulerTest, ADroppedRequestGoesWithTheGroup) {
  sched_.spawn(request("a"));
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
  EXPECT_EQ(ch_->flush_holds(), 0u);
  EXPECT_FALSE(sched_.holding());

  // Refused while another is held: the held one is queued first, and still counted.
  sched_.spawn(request("a"));
  EXPECT_THROW(sched_.spawn(Task<void>()), UsageError);
  EXPECT_EQ(sched_.serving(), 1u);
  finish_all();
  EXPECT_EQ(log_, (Log{"a last"}));
}

TEST_F(ServeSchedulerTest, TheLastReplyIsTheOneWrittenAtOnce) {
  EXPECT_EQ(ch_->flush_holds(), 0u);  // nothing served
  Event ev;
  sched_.spawn(waiting_request(&ev, "slow"));
  sched_.spawn(request("fast"));
  EXPECT_EQ(sched_.serving(), 2u);
  EXPECT_EQ(ch_->flush_holds(), 2u);  // a hold per request, from its decoding
  const std::uint64_t writes = ch_->stream().stats().write_calls;
  loop_.run_once(std::chrono::milliseconds(0));
  // fast replied while slow was running: its reply waited, and left at the end of the loop
  // iteration (a hold never delays a frame past its turn); slow's, the last, goes at once.
  EXPECT_EQ(log_, (Log{"slow waits", "fast more"}));
  EXPECT_EQ(ch_->stream().stats().write_calls, writes + 1);
  EXPECT_EQ(sched_.serving(), 1u);
  EXPECT_EQ(ch_->flush_holds(), 1u);
  ev.set();
  finish_all();
  EXPECT_EQ(log_, (Log{"slow waits", "fast more", "slow last"}));
  EXPECT_EQ(sched_.serving(), 0u);
  EXPECT_EQ(ch_->flush_holds(), 0u);
}

TEST_F(ServeSchedulerTest, APassHoldsTheFlushUntilItEnds) {
  // Replies queued while the read loop's pass runs wait for it; the pass's end writes them at
  // once when no request is running, and leaves them to the last request when one is.
  sched_.begin_pass();
  EXPECT_EQ(ch_->flush_holds(), 1u);
  sched_.begin_pass();  // a pass already held: still one hold
  EXPECT_EQ(ch_->flush_holds(), 1u);
  ch_->send(OutFrame::copied("DEL reply"));
  std::uint64_t writes = ch_->stream().stats().write_calls;
  sched_.end_pass();
  EXPECT_EQ(ch_->stream().stats().write_calls, writes + 1) << "nothing running: the pass's end writes";
  EXPECT_EQ(ch_->flush_holds(), 0u);

  sched_.begin_pass();
  ch_->send(OutFrame::copied("another DEL reply"));
  sched_.spawn(request("a"));
  writes = ch_->stream().stats().write_calls;
  sched_.end_pass();
  EXPECT_EQ(ch_->stream().stats().write_calls, writes) << "a request runs: the pass's replies wait for it";
  sched_.release_held();
  finish_all();
  EXPECT_EQ(log_, (Log{"a last"}));
  EXPECT_EQ(ch_->stream().stats().write_calls, writes + 1) << "one write for both";
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
Task<void> reader_pass(EventLoop* loop, TaskGroup* tasks, ServeScheduler* s, Channel* ch, Log* log,
                       Event* ev) {
  s->begin_pass();
  log->push_back("reader");
  tasks->spawn(note(log, "queued before"));
  if (ev) {
    s->spawn(waiting_task(s, ch, log, ev, "held"));
  } else {
    s->spawn(request_task(s, ch, log, "held"));
  }
  s->end_pass();
  std::coroutine_handle<> h = s->take_held();
  co_await ServeScheduler::HandOff{*loop, h};
  log->push_back("reader back");
}

TEST_F(ServeSchedulerTest, HandOffRunsTheRequestAtOnceAndTheReaderAfterQueuedWork) {
  run(reader_pass(&loop_, &tasks_, &sched_, ch_, &log_, nullptr));
  finish_all();
  EXPECT_EQ(log_, (Log{"reader", "held last", "queued before", "reader back"}));
}

TEST_F(ServeSchedulerTest, ARequestThatWaitsDoesNotWaitOnTopOfTheReader) {
  Event ev;
  run(reader_pass(&loop_, &tasks_, &sched_, ch_, &log_, &ev));
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
