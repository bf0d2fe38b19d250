// Sequence numbers: a request's seq is reused once its reply came, and never while a reply to
// it may still arrive (timed out, expired, or never awaited). Against a raw 5.x server that
// records every request and answers it with its own name, except the ones it is told to hold.
#include <gtest/gtest.h>

#include "rpc_fixture.hpp"
#include "tether/brine/codec.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/loop/time.hpp"

namespace tether::testing {
namespace {

using brine::Value;
using namespace std::chrono_literals;

Value T(std::vector<Value> items) { return Value::tuple(std::move(items)); }

/// The attribute name of a CALLATTR request message ("" for other handlers).
std::string callattr_name(const Value& msg) {
  const Value& body = msg.as_tuple().at(2);
  if (body.as_tuple().at(0) != Value(static_cast<std::int64_t>(rpc::Handler::kCallAttr))) return "";
  return body.as_tuple().at(1).as_tuple().at(1).as_tuple().at(1).as_tuple().at(1).as_str();
}

/// The raw server's answer: a CALLATTR(name) gets (VALUE, name), except names that start with
/// "hold", which are only recorded; other requests are not answered.
std::optional<Value> answer_with_name(const Value& msg) {
  const std::string name = callattr_name(msg);
  if (name.empty() || name.starts_with("hold")) return std::nullopt;
  return T({Value(static_cast<std::int64_t>(rpc::Label::kValue)), Value(name)});
}

std::vector<std::int64_t> seqs_of(const std::vector<Value>& log) {
  std::vector<std::int64_t> out;
  for (const Value& msg : log) out.push_back(msg.as_tuple().at(1).as_int64());
  return out;
}

class SeqTest : public LoopTest {};

Task<void> reuse_after_reply(Connection& c, Channel& raw, const std::vector<Value>& log) {
  Netref root = co_await c.root();                             // seq 0, answered: free again
  EXPECT_EQ(co_await root.callattr<std::string>("a"), "a");        // 0 again
  AsyncResult one = root.callattr_async("hold1");              // 0, held
  AsyncResult two = root.callattr_async("hold2");              // 1 (0 is taken), held
  EXPECT_EQ(seqs_of(log), (std::vector<std::int64_t>{0, 0}));  // the held ones not read yet
  send_raw_reply(raw, 1, T({Value(1), Value("late two")}));
  Any v = co_await two;
  EXPECT_EQ(v.value().as_str(), "late two");
  EXPECT_EQ(co_await root.callattr<std::string>("b"), "b");  // 1, freed by hold2's reply
  // hold1's request expires: its seq (0) must not come back, and its late reply must not
  // complete anything else.
  one.set_expiry(1ms);
  EXPECT_THROW((void)co_await one, Timeout);
  send_raw_reply(raw, 0, T({Value(1), Value("late one")}));
  EXPECT_EQ(co_await root.callattr<std::string>("c"), "c");
  EXPECT_EQ(co_await root.callattr<std::string>("d"), "d");
}

TEST_F(SeqTest, ReusedOnlyAfterTheirReply) {
  auto p = make_raw_server_peer(loop_);
  std::vector<Value> log;
  TaskGroup server(loop_);
  server.spawn(serve_raw(*p.raw, log, answer_with_name));
  run(reuse_after_reply(*p.client, *p.raw, log));
  std::vector<std::int64_t> seqs = seqs_of(log);
  ASSERT_EQ(seqs.size(), 7u);
  EXPECT_EQ(seqs[0], 0);  // GETROOT
  EXPECT_EQ(seqs[1], 0);  // a
  EXPECT_EQ(seqs[2], 0);  // hold1
  EXPECT_EQ(seqs[3], 1);  // hold2
  EXPECT_EQ(seqs[4], 1);  // b
  EXPECT_NE(seqs[5], 0);  // c: never the expired request's seq
  EXPECT_NE(seqs[6], 0);  // d
  p.client->abort();
  run(server.wait());
}

Task<void> deadline_of_reused_seq(Connection& c, EventLoop& loop) {
  Netref root = co_await c.root();
  Task<std::string> x = root.callattr<std::string>("holdX");  // sent now, deadline now + 100 ms
  EXPECT_EQ(co_await root.callattr<std::string>("a"), "a");   // answered: its seq is free again...
  co_await sleep(50ms);
  const TimePoint sent = loop.now();
  Task<std::string> b = root.callattr<std::string>("holdB");  // ...and serves this one
  EXPECT_THROW((void)co_await std::move(x), Timeout);
  // b times out on its own deadline, not on the one left behind by "a" (50 ms earlier).
  EXPECT_THROW((void)co_await std::move(b), Timeout);
  EXPECT_GE(loop.now() - sent, 100ms);
}

TEST_F(SeqTest, AReusedSeqKeepsItsOwnDeadline) {
  ConnectionOptions opts;
  opts.sync_request_timeout = 100ms;
  auto p = make_raw_server_peer(loop_, opts);
  std::vector<Value> log;
  TaskGroup server(loop_);
  server.spawn(serve_raw(*p.raw, log, answer_with_name));
  run(deadline_of_reused_seq(*p.client, loop_));
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(callattr_name(log[3]), "holdB");
  EXPECT_EQ(seqs_of(log)[3], seqs_of(log)[2]);  // holdB reused a's seq
  p.client->abort();
  run(server.wait());
}

}  // namespace
}  // namespace tether::testing
