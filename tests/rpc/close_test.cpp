// How a client's close() ends on 6.x (spec §11.4): it sends CLOSE and waits for the peer's
// reply or EOF, bounded by close_grace; 5.x sends CLOSE and hangs up at once. The peer here is
// a raw channel, so each case is the peer's choice, not tether's server behaviour.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

#include "rpc_fixture.hpp"
#include "tether/loop/task_group.hpp"

namespace tether::testing {
namespace {

using brine::Value;
using namespace std::chrono_literals;

class CloseTest : public LoopTest {};

Value boxed_none() {
  return Value::make_tuple(Value(static_cast<std::int64_t>(rpc::Label::kValue)), Value());
}

/// A 6.x frame: the message type byte, then (seq, body).
std::string frame6(std::int64_t msg, std::int64_t seq, Value body) {
  std::string out(1, static_cast<char>(msg));
  brine::dump_into(Value::make_tuple(Value(seq), std::move(body)), out);
  return out;
}

/// What the raw 6.x peer received: (msg, seq, handler) of the first frame.
struct Received {
  std::int64_t msg = 0;
  std::int64_t seq = 0;
  std::int64_t handler = 0;
};

Received parse6(const Bytes& b) {
  Received r;
  r.msg = b[0];
  Value v = brine::load(b.span().subspan(1));
  r.seq = v.as_tuple().at(0).as_int64();
  r.handler = v.as_tuple().at(1).as_tuple().at(0).as_int64();
  return r;
}

/// The client's close(), with `peer` (the raw side's part) running beside it; returns when both
/// have finished.
Task<void> close_beside(Connection& client, Task<void> peer) {
  TaskGroup group(EventLoop::current_or_throw());
  group.spawn(std::move(peer));
  co_await client.close();
  co_await group.wait();
}

Task<Received> close_and_answer(Connection& client, Channel& raw, bool reply) {
  Received got;
  auto peer = [&]() -> Task<void> {
    Bytes frame = co_await raw.recv();
    got = parse6(frame);
    if (reply) {
      // (REPLY, seq, (VALUE, None)) in the 6.x layout: message type byte, then (seq, body).
      raw.send(OutFrame::copied(frame6(2, got.seq, boxed_none())));
    }
  };
  co_await close_beside(client, peer());
  co_return got;
}

ConnectionOptions six(Duration grace) {
  ConnectionOptions o;
  o.generation = rpc::Generation::k6;
  o.close_grace = grace;
  return o;
}

// A peer that answers CLOSE but keeps the connection open: the reply ends the wait, long
// before the (here 60 s) grace. The run's 10 s bound fails the test if it does not.
TEST_F(CloseTest, ReplyToCloseEndsTheWait) {
  auto p = make_raw_server_peer(loop_, six(60s));
  const auto start = std::chrono::steady_clock::now();
  Received got = run(close_and_answer(*p.client, *p.raw, true), 10s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(got.msg, 1);  // a request
  EXPECT_EQ(got.handler, static_cast<std::int64_t>(rpc::Handler::kClose));
  EXPECT_TRUE(p.client->closed());
}

// A peer that neither replies nor hangs up: close() gives up after close_grace and closes.
TEST_F(CloseTest, SilentPeerIsLeftAfterTheGrace) {
  auto p = make_raw_server_peer(loop_, six(150ms));
  const auto start = std::chrono::steady_clock::now();
  Received got = run(close_and_answer(*p.client, *p.raw, false), 10s);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  EXPECT_EQ(got.handler, static_cast<std::int64_t>(rpc::Handler::kClose));
  EXPECT_TRUE(p.client->closed());
}

// A reply to some other seq does not end the wait (only the CLOSE's own seq does). The peer
// then sends a PING: the client, still open and waiting, answers it; then the real reply ends
// the close.
Task<std::string> reply_to_other_seq(Connection& client, Channel& raw) {
  std::string seen;
  auto peer = [&]() -> Task<void> {
    Bytes frame = co_await raw.recv();
    Received got = parse6(frame);
    raw.send(OutFrame::copied(frame6(2, got.seq + 7, boxed_none())));
    const Value ping_args = Value::make_tuple(Value(static_cast<std::int64_t>(rpc::Label::kValue)),
                                              Value::make_tuple(Value("still there?")));
    raw.send(OutFrame::copied(
        frame6(1, 900, Value::make_tuple(Value(static_cast<std::int64_t>(rpc::Handler::kPing)), ping_args))));
    Bytes answer = co_await raw.recv();
    Value v = brine::load(answer.span().subspan(1));
    seen = fmt::format("msg {} seq {} {} closed={}", static_cast<int>(answer[0]),
                       v.as_tuple().at(0).as_int64(), v.as_tuple().at(1).repr(100), client.closed());
    raw.send(OutFrame::copied(frame6(2, got.seq, boxed_none())));
  };
  co_await close_beside(client, peer());
  co_return seen;
}

TEST_F(CloseTest, ReplyToAnotherSeqDoesNotEndTheWait) {
  auto p = make_raw_server_peer(loop_, six(60s));
  EXPECT_EQ(run(reply_to_other_seq(*p.client, *p.raw), 10s),
            "msg 2 seq 900 (1, 'still there?') closed=false");
  EXPECT_TRUE(p.client->closed());
}

}  // namespace
}  // namespace tether::testing
