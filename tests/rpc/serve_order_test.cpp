// A server connection starts a request that arrived alone itself, in the loop iteration that
// read it (the hand-off of serve_loop), and the others through the ready queue. Whatever the
// mix, requests start in the order they arrived, replies leave, and a request decoded just
// before the connection breaks goes with it. When replies leave (the channel's flush rule,
// held by each request until its reply is queued): a lone reply at once, not at the end of
// the loop iteration; the replies of a pipelined batch together, in one write.
#include <gtest/gtest.h>

#include <algorithm>

#include "rpc_fixture.hpp"
#include "tether/brine/codec.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/loop/time.hpp"

namespace tether::testing {
namespace {

using brine::Value;
using namespace std::chrono_literals;

/// note(n) records n when the call starts; odd n then suspends once (a timer) before replying,
/// so suspending and non-suspending handlers mix.
class OrderRoot : public Object {
 public:
  [[nodiscard]] std::string type_name() const override { return "tests.OrderRoot"; }
  [[nodiscard]] bool has_attr(std::string_view n) const override { return n == "exposed_note"; }
  Task<Any> call_attr(CallContext&, std::string_view, std::vector<Any> args, Kwargs) override {
    const std::int64_t n = args.at(0).value().as_int64();
    started.push_back(n);
    if (n % 2 == 1) co_await sleep(0ms);
    co_return Any(Value(n * 10));
  }
  std::vector<std::int64_t> started;
};

class ServeOrderTest : public LoopTest {};

Task<void> mixed_batches(Connection& c) {
  Netref root = co_await c.root();
  std::int64_t next = 0;
  // Batches of 1, 10, 1, 2, 1, 3: each batch is queued in one turn and so leaves in one write,
  // which the server reads and decodes in one pass.
  for (int size : {1, 10, 1, 2, 1, 3}) {
    std::vector<AsyncResult> batch;
    std::vector<std::int64_t> sent;
    for (int i = 0; i < size; ++i) {
      sent.push_back(next);
      batch.push_back(root.callattr_async("note", make_args(Value(next++))));
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Any v = co_await batch[i];
      EXPECT_EQ(v.value().as_int64(), sent[i] * 10);
    }
  }
  // And plain sync calls, one at a time (the hand-off every time).
  for (int i = 0; i < 5; ++i) {
    const std::int64_t n = next++;
    EXPECT_EQ(co_await root.callattr<std::int64_t>("note", n), n * 10);
  }
}

/// A tether client and a server serving an OrderRoot, over an in-memory pipe.
struct OrderPair : ConnectionPair {
  std::shared_ptr<OrderRoot> root = std::make_shared<OrderRoot>();
};

OrderPair make_order_pair(EventLoop& loop, ConnectionOptions server_opts = {}) {
  OrderPair p;
  static_cast<ConnectionPair&>(p) = connect_pair(loop, p.root, {}, server_opts);
  return p;
}

TEST_F(ServeOrderTest, RequestsStartInTheOrderTheyArrived) {
  OrderPair p = make_order_pair(loop_);
  run(mixed_batches(*p.client));
  std::vector<std::int64_t> want(23);
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = static_cast<std::int64_t>(i);
  EXPECT_EQ(p.root->started, want);
}

TEST_F(ServeOrderTest, WithOneRequestSlotTheHeldRequestStillRuns) {
  // max_concurrent_requests = 1: serve_loop waits for the slot after every request, with the
  // request it just decoded queued first (else the two would wait for each other).
  ConnectionOptions one;
  one.max_concurrent_requests = 1;
  OrderPair p = make_order_pair(loop_, one);
  run(mixed_batches(*p.client));
  EXPECT_EQ(p.root->started.size(), 23u);
  EXPECT_TRUE(std::is_sorted(p.root->started.begin(), p.root->started.end()));
}

/// add(a, b). The first call of a loop iteration registers an end-of-iteration hook that notes
/// how many writes the server's stream had made by then (before the stream's own end-of-
/// iteration flush, which is registered later, by the reply).
class FlushProbeRoot : public Object {
 public:
  [[nodiscard]] std::string type_name() const override { return "tests.FlushProbeRoot"; }
  [[nodiscard]] bool has_attr(std::string_view n) const override { return n == "exposed_add"; }
  Task<Any> call_attr(CallContext&, std::string_view, std::vector<Any> args, Kwargs) override {
    if (!hooked_) {
      hooked_ = true;
      writes_before = server->stream().stats().write_calls;
      EventLoop::current_or_throw().at_end_of_iteration(&FlushProbeRoot::at_end, this);
    }
    ++calls;
    co_return Any(Value(args.at(0).value().as_int64() + args.at(1).value().as_int64()));
  }
  static void at_end(void* self) noexcept {
    auto* r = static_cast<FlushProbeRoot*>(self);
    r->hooked_ = false;
    r->writes_at_end = r->server->stream().stats().write_calls;
  }

  Channel* server = nullptr;  // the server connection's channel
  std::uint64_t writes_before = 0;
  std::uint64_t writes_at_end = 0;
  int calls = 0;

 private:
  bool hooked_ = false;
};

struct FlushProbePair {
  std::shared_ptr<FlushProbeRoot> root = std::make_shared<FlushProbeRoot>();
  std::unique_ptr<Connection> client;
  std::unique_ptr<Connection> server;
};

FlushProbePair make_flush_probe_pair(EventLoop& loop) {
  FlushProbePair p;
  auto pipe = make_mem_pipe(loop, 1 << 20);
  auto server_channel = std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.second)));
  p.root->server = server_channel.get();
  p.client = std::make_unique<Connection>(
      std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.first))), nullptr);
  p.server = std::make_unique<Connection>(std::move(server_channel), p.root);
  p.client->start();
  p.server->start();
  return p;
}

Task<void> one_call(Connection& c) {
  Netref root = co_await c.root();
  EXPECT_EQ(co_await root.callattr<std::int64_t>("add", 1, 2), 3);
}

Task<void> pipelined_calls(Connection& c, int n) {
  Netref root = co_await c.root();
  std::vector<AsyncResult> batch;
  for (int i = 0; i < n; ++i) batch.push_back(root.callattr_async("add", make_args(Value(i), Value(1))));
  for (int i = 0; i < n; ++i) {
    Any v = co_await batch[static_cast<std::size_t>(i)];
    EXPECT_EQ(v.value().as_int64(), i + 1);
  }
}

TEST_F(ServeOrderTest, ALoneReplyIsWrittenAtOnceNotAtTheEndOfTheIteration) {
  FlushProbePair p = make_flush_probe_pair(loop_);
  run(one_call(*p.client));
  ASSERT_EQ(p.root->calls, 1);
  // Written by the time the end-of-iteration hooks ran, and by the first of them: at once.
  EXPECT_EQ(p.root->writes_at_end, p.root->writes_before + 1);
}

TEST_F(ServeOrderTest, ThePipelinedRepliesOfABatchLeaveInOneWrite) {
  FlushProbePair p = make_flush_probe_pair(loop_);
  run(one_call(*p.client));  // the root reference first
  const std::uint64_t before = p.root->server->stream().stats().write_calls;
  run(pipelined_calls(*p.client, 32));
  ASSERT_EQ(p.root->calls, 33);
  // The 32 requests arrived in one write and were served in one pass of the ready queue: the
  // last reply wrote all 32, at once.
  EXPECT_EQ(p.root->server->stream().stats().write_calls, before + 1);
  EXPECT_EQ(p.root->writes_at_end, p.root->writes_before + 1);
}

Value label(rpc::Label l) { return Value(static_cast<std::int64_t>(l)); }
Value handler(rpc::Handler h) { return Value(static_cast<std::int64_t>(h)); }

Task<void> request_then_garbage(Channel& raw, const OrderRoot& root) {
  // GETROOT, answered (REMOTE_REF, id_pack).
  raw.send(OutFrame::copied(
      payload5(1, 0,
               Value::tuple({handler(rpc::Handler::kGetRoot),
                             Value::tuple({label(rpc::Label::kValue), Value::tuple({})})}))));
  const Value id_pack = brine::load((co_await raw.recv()).span()).as_tuple().at(2).as_tuple().at(1);
  // A good request, CALLATTR note(7), and a bad frame body in one write: the server decodes the
  // first (and holds it to start at the end of the pass), then meets the second and closes.
  Value args = Value::tuple(
      {label(rpc::Label::kTuple),
       Value::tuple({Value::tuple({label(rpc::Label::kLocalRef), id_pack}),
                     Value::tuple({label(rpc::Label::kValue), Value("note")}),
                     Value::tuple({label(rpc::Label::kTuple),
                                   Value::tuple({Value::tuple({label(rpc::Label::kValue), Value(7)})})}),
                     Value::tuple({label(rpc::Label::kTuple), Value::tuple({})})})});
  raw.send(
      OutFrame::copied(payload5(1, 1, Value::tuple({handler(rpc::Handler::kCallAttr), std::move(args)}))));
  raw.send(OutFrame::copied("\x7f not brine"));
  bool eof = false;
  while (!eof) {
    try {
      (void)co_await raw.recv();  // the server's CLOSE request, then EOF
    } catch (const Disconnected&) {
      eof = true;
    }
  }
  EXPECT_TRUE(root.started.empty()) << "the held request went with the connection, unstarted";
}

TEST_F(ServeOrderTest, ARequestHeldWhenTheConnectionBreaksGoesWithIt) {
  auto root = std::make_shared<OrderRoot>();
  RawClientPeer p = make_raw_client_peer(loop_, root);
  run(request_then_garbage(*p.raw, *root));
  run(p.server->wait_closed());
  EXPECT_TRUE(p.server->closed());
  EXPECT_TRUE(p.server->error() != nullptr) << "closed for the bad frame";
  loop_.run_once(std::chrono::milliseconds(0));  // the deferred cancel of the connection's tasks
  EXPECT_TRUE(root->started.empty());
}

}  // namespace
}  // namespace tether::testing
