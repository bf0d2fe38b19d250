// A server connection starts a request that arrived alone itself, in the loop iteration that
// read it (the hand-off of serve_loop), and the others through the ready queue. Whatever the
// mix, requests start in the order they arrived, replies leave, and a request decoded just
// before the connection breaks goes with it.
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
    EXPECT_EQ(co_await root.call<std::int64_t>("note", n), n * 10);
  }
}

TEST_F(ServeOrderTest, RequestsStartInTheOrderTheyArrived) {
  auto root = std::make_shared<OrderRoot>();
  auto pipe = make_mem_pipe(loop_, 1 << 20);
  Connection client(std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.first))),
                    nullptr);
  Connection server(std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.second))),
                    root);
  client.start();
  server.start();
  run(mixed_batches(client));
  std::vector<std::int64_t> want(23);
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = static_cast<std::int64_t>(i);
  EXPECT_EQ(root->started, want);
}

TEST_F(ServeOrderTest, WithOneRequestSlotTheHeldRequestStillRuns) {
  // max_concurrent_requests = 1: serve_loop waits for the slot after every request, with the
  // request it just decoded queued first (else the two would wait for each other).
  auto root = std::make_shared<OrderRoot>();
  auto pipe = make_mem_pipe(loop_, 1 << 20);
  ConnectionOptions one;
  one.max_concurrent_requests = 1;
  Connection client(std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.first))),
                    nullptr);
  Connection server(std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.second))), root,
                    one);
  client.start();
  server.start();
  run(mixed_batches(client));
  EXPECT_EQ(root->started.size(), 23u);
  EXPECT_TRUE(std::is_sorted(root->started.begin(), root->started.end()));
}

/// (REQUEST, seq, (CALLATTR, (TUPLE, ((LOCAL_REF, root id_pack), (VALUE, "note"), (TUPLE, ((VALUE, 7),)),
/// (TUPLE, ()))))) for the server root's id_pack.
std::string note_request(const Value& root_id_pack, std::int64_t seq) {
  auto label = [](rpc::Label l) { return Value(static_cast<std::int64_t>(l)); };
  Value args = Value::make_tuple(
      label(rpc::Label::kTuple),
      Value::make_tuple(
          Value::make_tuple(label(rpc::Label::kLocalRef), root_id_pack),
          Value::make_tuple(label(rpc::Label::kValue), Value("note")),
          Value::make_tuple(label(rpc::Label::kTuple),
                            Value::make_tuple(Value::make_tuple(label(rpc::Label::kValue), Value(7)))),
          Value::make_tuple(label(rpc::Label::kTuple), Value::make_tuple())));
  std::string out;
  brine::dump_into(
      Value::make_tuple(
          Value(1), Value(seq),
          Value::make_tuple(Value(static_cast<std::int64_t>(rpc::Handler::kCallAttr)), std::move(args))),
      out);
  return out;
}

Task<Value> get_root_id_pack(Channel& raw) {
  std::string out;
  brine::dump_into(
      Value::make_tuple(
          Value(1), Value(0),
          Value::make_tuple(
              Value(static_cast<std::int64_t>(rpc::Handler::kGetRoot)),
              Value::make_tuple(Value(static_cast<std::int64_t>(rpc::Label::kValue)), Value::make_tuple()))),
      out);
  raw.send(out);
  Bytes b = co_await raw.recv();
  Value reply = brine::load(b.span());
  co_return reply.as_tuple().at(2).as_tuple().at(1);  // (REMOTE_REF, id_pack) -> id_pack
}

Task<void> request_then_garbage(Channel& raw, const OrderRoot& root) {
  const Value id_pack = co_await get_root_id_pack(raw);
  // A good request and a bad frame body in one write: the server decodes the first (and holds
  // it to start at the end of the pass), then meets the second and closes.
  raw.send(note_request(id_pack, 1));
  raw.send(std::string_view("\x7f not brine"));
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
  auto pipe = make_mem_pipe(loop_, 1 << 20);
  Channel raw(std::make_unique<BufferedStream>(std::move(pipe.first)));
  Connection server(std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.second))),
                    root);
  server.start();
  run(request_then_garbage(raw, *root));
  run(server.wait_closed());
  EXPECT_TRUE(server.closed());
  EXPECT_TRUE(server.error() != nullptr) << "closed for the bad frame";
  loop_.run_once(std::chrono::milliseconds(0));  // the deferred cancel of the connection's tasks
  EXPECT_TRUE(root->started.empty());
}

}  // namespace
}  // namespace tether::testing
