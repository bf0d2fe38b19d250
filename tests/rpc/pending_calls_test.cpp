// PendingCalls on its own: sequence numbers (reuse after a reply, never after an expiry or for
// unanswered messages), completion, failing everything on close, and the shared deadline
// timer. The calls belong to no connection (an empty core). Deadlines under test are zero or
// a century long: nothing waits on the wall clock beyond one loop turn.
#include "rpc/pending_calls.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "tether/base/error.hpp"

namespace tether::testing {
namespace {

using brine::Value;
using rpc::Handler;
using rpc::detail::complete_pending;
using rpc::detail::PendingCall;
using rpc::detail::PendingCalls;
using namespace std::chrono_literals;

class PendingCallsTest : public LoopTest {};

/// How the wait for a result ended: "value N", "timeout", "disconnected" or "other".
Task<std::string> outcome(AsyncResult r) {
  try {
    Any v = co_await r;
    co_return "value " + std::to_string(v.value().as_int64());
  } catch (const Timeout&) {
    co_return "timeout";
  } catch (const Disconnected&) {
    co_return "disconnected";
  } catch (...) {
    co_return "other";
  }
}

std::shared_ptr<PendingCall> add_call(PendingCalls& calls) {
  return calls.add(calls.take_seq(), Handler::kCall, std::weak_ptr<rpc::detail::ConnectionCore>());
}

TEST_F(PendingCallsTest, SeqsCountUpFromZero) {
  PendingCalls calls(loop_);
  EXPECT_TRUE(calls.empty());
  EXPECT_EQ(calls.take_seq(), 0u);
  EXPECT_EQ(calls.take_seq(), 1u);
  EXPECT_EQ(calls.take_seq(), 2u);
}

TEST_F(PendingCallsTest, AddRegistersTheCall) {
  PendingCalls calls(loop_);
  auto a = calls.add(calls.take_seq(), Handler::kGetAttr, {});
  auto b = calls.add(calls.take_seq(), Handler::kCall, {});
  EXPECT_EQ(calls.size(), 2u);
  EXPECT_FALSE(calls.empty());
  EXPECT_TRUE(calls.contains(a->seq));
  EXPECT_TRUE(calls.contains(b->seq));
  EXPECT_FALSE(calls.contains(99));
  EXPECT_EQ(a->handler, Handler::kGetAttr);
  EXPECT_EQ(b->handler, Handler::kCall);
  EXPECT_EQ(a->loop, &loop_);
  EXPECT_FALSE(a->done);
  EXPECT_FALSE(a->expired);
  EXPECT_LT(a->serial, b->serial);
  EXPECT_EQ(loop_.stats().timers, 0u);  // no deadline unless asked
}

TEST_F(PendingCallsTest, AReplyTakesTheCallOutAndFreesItsSeq) {
  PendingCalls calls(loop_);
  auto a = add_call(calls);
  auto b = add_call(calls);
  auto c = add_call(calls);
  auto got = calls.take(b->seq);
  EXPECT_EQ(got, b);
  EXPECT_FALSE(calls.contains(b->seq));
  EXPECT_EQ(calls.size(), 2u);
  // The freed seq serves the next request before the counter moves on.
  EXPECT_EQ(calls.take_seq(), b->seq);
  EXPECT_EQ(calls.take_seq(), 3u);
}

TEST_F(PendingCallsTest, EveryFreedSeqIsReusedOnce) {
  PendingCalls calls(loop_);
  std::vector<std::shared_ptr<PendingCall>> ps;
  for (int i = 0; i < 6; ++i) ps.push_back(add_call(calls));
  calls.take(ps[1]->seq);
  calls.take(ps[4]->seq);
  std::set<std::uint64_t> reused{calls.take_seq(), calls.take_seq()};
  EXPECT_EQ(reused, (std::set<std::uint64_t>{1, 4}));
  EXPECT_EQ(calls.take_seq(), 6u);
}

TEST_F(PendingCallsTest, TakingAnUnknownOrAnsweredSeqGivesNullAndFreesNothing) {
  PendingCalls calls(loop_);
  auto a = add_call(calls);
  EXPECT_EQ(calls.take(42), nullptr);
  EXPECT_EQ(calls.take(a->seq), a);
  EXPECT_EQ(calls.take(a->seq), nullptr);  // a duplicate reply
  // a's seq is free once, not twice.
  EXPECT_EQ(calls.take_seq(), a->seq);
  EXPECT_EQ(calls.take_seq(), 1u);
  EXPECT_EQ(calls.take_seq(), 2u);
}

TEST_F(PendingCallsTest, UnreusedSeqsNeverComeBack) {
  PendingCalls calls(loop_);
  const std::uint64_t del = calls.take_unreused_seq();
  EXPECT_EQ(calls.take(del), nullptr);  // a reply to it is unknown
  const std::uint64_t next = calls.take_seq();
  EXPECT_NE(next, del);
  EXPECT_GT(next, del);
}

TEST_F(PendingCallsTest, AnErasedSeqIsNotReused) {
  // A request that could not be sent, or that expired on its own timer: a late reply to its
  // seq must not be taken for another request's.
  PendingCalls calls(loop_);
  auto a = add_call(calls);
  calls.erase(a->seq);
  EXPECT_FALSE(calls.contains(a->seq));
  EXPECT_EQ(calls.take(a->seq), nullptr);
  EXPECT_NE(calls.take_seq(), a->seq);
}

TEST_F(PendingCallsTest, SeqsInFlightAreDistinctAndStaySmall) {
  // Random traffic: no two calls in flight share a seq, and the counter only grows when every
  // smaller seq is in flight (so the largest seq is below the peak number in flight).
  PendingCalls calls(loop_);
  std::mt19937 rng(20);
  std::set<std::uint64_t> in_flight;
  std::size_t peak = 0;
  std::uint64_t largest = 0;
  for (int step = 0; step < 20000; ++step) {
    const bool send = in_flight.empty() || (rng() % 100) < (in_flight.size() < 150 ? 55u : 45u);
    if (send) {
      const std::uint64_t seq = calls.take_seq();
      ASSERT_EQ(in_flight.count(seq), 0u) << "seq " << seq << " handed out twice";
      calls.add(seq, Handler::kCall, {});
      in_flight.insert(seq);
      peak = std::max(peak, in_flight.size());
      largest = std::max(largest, seq);
    } else {
      auto it = in_flight.begin();
      std::advance(it, static_cast<long>(rng() % in_flight.size()));
      ASSERT_NE(calls.take(*it), nullptr);
      in_flight.erase(it);
    }
    ASSERT_EQ(calls.size(), in_flight.size());
  }
  EXPECT_GT(peak, 10u);
  EXPECT_EQ(largest + 1, peak);
}

TEST_F(PendingCallsTest, FreedSeqsKeptForReuseAreBounded) {
  // After a burst of thousands, not every seq is kept: some of the next ones are new.
  constexpr std::size_t kBurst = 3000;
  PendingCalls calls(loop_);
  std::vector<std::uint64_t> seqs;
  for (std::size_t i = 0; i < kBurst; ++i) seqs.push_back(add_call(calls)->seq);
  for (std::uint64_t s : seqs) ASSERT_NE(calls.take(s), nullptr);
  std::set<std::uint64_t> next;
  std::size_t reused = 0;
  for (std::size_t i = 0; i < kBurst; ++i) {
    const std::uint64_t s = calls.take_seq();
    EXPECT_TRUE(next.insert(s).second) << "seq " << s << " handed out twice";
    reused += s < kBurst ? 1 : 0;
  }
  EXPECT_GT(reused, 0u);
  EXPECT_LT(reused, kBurst);
}

TEST_F(PendingCallsTest, CompletingWakesTheWaiterAndRunsCallbacksOnce) {
  PendingCalls calls(loop_);
  auto p = add_call(calls);
  AsyncResult r(p);
  int called = 0;
  r.add_callback([&](const AsyncResult& res) {
    ++called;
    EXPECT_EQ(res.value().value().as_int64(), 7);
  });
  r.add_callback([](const AsyncResult&) { throw std::runtime_error("a callback that throws"); });
  r.add_callback([&](const AsyncResult&) { ++called; });  // still runs
  loop_.call_soon([&calls, p]() {
    auto taken = calls.take(p->seq);
    complete_pending(taken, Any(Value(7)), nullptr);
  });
  EXPECT_EQ(run(outcome(r)), "value 7");
  EXPECT_EQ(called, 2);
  EXPECT_TRUE(r.ready());
  EXPECT_FALSE(r.has_error());

  // Completed once: a second completion changes nothing and runs nothing.
  complete_pending(p, Any(Value(8)), std::make_exception_ptr(Disconnected("late")));
  EXPECT_EQ(called, 2);
  EXPECT_EQ(r.value().value().as_int64(), 7);
  // A callback added afterwards runs at once.
  r.add_callback([&](const AsyncResult&) { ++called; });
  EXPECT_EQ(called, 3);
}

TEST_F(PendingCallsTest, FailAllFailsEveryCallAndStopsTheTimer) {
  auto calls = std::make_unique<PendingCalls>(loop_);
  std::vector<std::shared_ptr<PendingCall>> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(add_call(*calls));
  calls->expire_after(*ps[0], 1h);
  calls->expire_after(*ps[2], 1h);
  EXPECT_EQ(loop_.stats().timers, 1u);  // one timer shared by all deadlines
  int failed = 0;
  for (auto& p : ps) {
    AsyncResult(p).add_callback([&](const AsyncResult& r) { failed += r.has_error() ? 1 : 0; });
  }
  PendingCalls* raw = calls.get();
  loop_.call_soon([raw]() { raw->fail_all(std::make_exception_ptr(Disconnected("connection closed"))); });
  EXPECT_EQ(run(outcome(AsyncResult(ps[1]))), "disconnected");
  EXPECT_EQ(failed, 3);
  EXPECT_TRUE(calls->empty());
  for (auto& p : ps) {
    EXPECT_TRUE(p->done);
    EXPECT_FALSE(p->expired);
    EXPECT_TRUE(p->error);
  }
  EXPECT_EQ(loop_.stats().timers, 0u);
  // Again, on nothing: harmless.
  calls->fail_all(std::make_exception_ptr(Disconnected("again")));
  EXPECT_TRUE(calls->empty());
  calls.reset();
}

TEST_F(PendingCallsTest, ADeadlinePassedFailsTheCallWithTimeout) {
  PendingCalls calls(loop_);
  auto p = add_call(calls);
  calls.expire_after(*p, Duration::zero());
  EXPECT_EQ(loop_.stats().timers, 1u);
  EXPECT_EQ(run(outcome(AsyncResult(p))), "timeout");
  EXPECT_TRUE(p->expired);
  EXPECT_FALSE(calls.contains(p->seq));
  // Its late reply is dropped, and its seq is not handed out again.
  EXPECT_EQ(calls.take(p->seq), nullptr);
  EXPECT_NE(calls.take_seq(), p->seq);
  EXPECT_EQ(loop_.stats().timers, 0u);  // nothing left to wait for
}

TEST_F(PendingCallsTest, AnAnsweredCallDoesNotExpire) {
  PendingCalls calls(loop_);
  auto a = add_call(calls);
  auto b = add_call(calls);
  calls.expire_after(*a, Duration::zero());
  calls.expire_after(*b, Duration::zero());
  complete_pending(calls.take(a->seq), Any(Value(1)), nullptr);
  EXPECT_EQ(run(outcome(AsyncResult(b))), "timeout");
  EXPECT_FALSE(a->expired);
  EXPECT_EQ(AsyncResult(a).value().value().as_int64(), 1);
  EXPECT_TRUE(b->expired);
}

TEST_F(PendingCallsTest, AnOldDeadlineDoesNotExpireTheNextUserOfItsSeq) {
  // x's deadline is first; a's comes after it. a is answered and its seq goes to b, while a's
  // deadline still waits behind x's: when it falls due it must not touch b.
  PendingCalls calls(loop_);
  auto x = add_call(calls);
  auto a = add_call(calls);
  calls.expire_after(*x, Duration::zero());
  calls.expire_after(*a, Duration::zero());
  complete_pending(calls.take(a->seq), Any(Value(1)), nullptr);
  auto b = add_call(calls);
  ASSERT_EQ(b->seq, a->seq);
  calls.expire_after(*b, 24h);

  EXPECT_EQ(run(outcome(AsyncResult(x))), "timeout");
  EXPECT_TRUE(calls.contains(b->seq));
  EXPECT_FALSE(b->done);
  EXPECT_FALSE(b->expired);
  EXPECT_EQ(loop_.stats().timers, 1u);  // re-armed for b
  EXPECT_EQ(calls.take(b->seq), b);
}

TEST_F(PendingCallsTest, ManyAnsweredCallsBehindUnansweredOnes) {
  // Enough answered calls behind the oldest to make the queue sweep itself; the unanswered
  // ones around them still expire, the answered ones and the later users of their seqs don't.
  PendingCalls calls(loop_);
  std::vector<std::shared_ptr<PendingCall>> ps;
  for (int i = 0; i < 201; ++i) {
    ps.push_back(add_call(calls));
    calls.expire_after(*ps.back(), Duration::zero());
  }
  for (int i = 1; i < 200; ++i) {
    if (i == 100) continue;
    complete_pending(calls.take(ps[static_cast<std::size_t>(i)]->seq), Any(Value(i)), nullptr);
  }
  std::vector<std::shared_ptr<PendingCall>> later;
  for (int i = 0; i < 20; ++i) later.push_back(add_call(calls));  // on freed seqs

  EXPECT_EQ(run(outcome(AsyncResult(ps[0]))), "timeout");
  // Due together: all handled by the same timer callback.
  EXPECT_TRUE(ps[100]->expired);
  EXPECT_TRUE(ps[200]->expired);
  for (int i = 1; i < 200; ++i) {
    if (i == 100) continue;
    const auto& p = ps[static_cast<std::size_t>(i)];
    EXPECT_FALSE(p->expired) << i;
    EXPECT_EQ(AsyncResult(p).value().value().as_int64(), i);
  }
  for (const auto& p : later) {
    EXPECT_LT(p->seq, 201u);
    EXPECT_FALSE(p->done);
    EXPECT_TRUE(calls.contains(p->seq));
  }
  EXPECT_EQ(calls.size(), later.size());
  EXPECT_EQ(loop_.stats().timers, 0u);
}

TEST_F(PendingCallsTest, ACenturyOrMoreMeansNoDeadline) {
  PendingCalls calls(loop_);
  auto p = add_call(calls);
  calls.expire_after(*p, std::chrono::hours(24 * 365 * 100));
  calls.expire_after(*p, Duration::max());
  EXPECT_EQ(loop_.stats().timers, 0u);
  calls.expire_after(*p, std::chrono::hours(24 * 365 * 100) - 1h);
  EXPECT_EQ(loop_.stats().timers, 1u);
}

TEST_F(PendingCallsTest, DestroyingTheTableCancelsItsTimer) {
  std::shared_ptr<PendingCall> p;
  {
    PendingCalls calls(loop_);
    p = add_call(calls);
    calls.expire_after(*p, 1h);
    EXPECT_EQ(loop_.stats().timers, 1u);
  }
  EXPECT_EQ(loop_.stats().timers, 0u);
  EXPECT_FALSE(p->done);
}

TEST_F(PendingCallsTest, APerCallExpiryGoesWithTheCall) {
  PendingCalls calls(loop_);
  auto a = add_call(calls);
  auto b = add_call(calls);
  AsyncResult(a).set_expiry(1h);
  AsyncResult(b).set_expiry(1h);
  EXPECT_EQ(loop_.stats().timers, 2u);
  // Completion cancels it...
  complete_pending(calls.take(a->seq), Any(Value(1)), nullptr);
  EXPECT_EQ(loop_.stats().timers, 1u);
  // ...and so does the call's end.
  calls.erase(b->seq);
  b.reset();
  EXPECT_EQ(loop_.stats().timers, 0u);
}

}  // namespace
}  // namespace tether::testing
