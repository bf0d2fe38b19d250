#include <gtest/gtest.h>

#include <fmt/format.h>

#include "rpc_fixture.hpp"
#include "tether/loop/gather.hpp"
#include "tether/loop/time.hpp"
#include "tether/rpc/remote_exception.hpp"

namespace tether::testing {

using brine::Value;
using namespace std::chrono_literals;

Task<Any> TestRoot::call_attr(CallContext& ctx, std::string_view name, std::vector<Any> args, Kwargs kwargs) {
  ++calls;
  if (name == "exposed_add") {
    std::int64_t a = args.at(0).value().as_int64();
    std::int64_t b = args.size() > 1 ? args[1].value().as_int64() : 0;
    for (auto& [k, v] : kwargs) {
      if (k == "b") b = v.value().as_int64();
    }
    co_return Any(Value(a + b));
  }
  if (name == "exposed_echo") co_return args.at(0);
  if (name == "exposed_fail") throw PyError("ValueError", args.at(0).value().as_str());
  if (name == "exposed_call") {
    Netref fn = args.at(0).netref();
    Any r = co_await fn.call(make_args(args.at(1)));
    co_return r;
  }
  if (name == "exposed_bounce") {
    // bounce(fn, n): n > 0 -> fn(n - 1) (the peer's fn calls bounce again)
    Netref fn = args.at(0).netref();
    std::int64_t n = args.at(1).value().as_int64();
    if (n == 0) co_return Any(Value(0));
    Any r = co_await fn.call(make_args(fn, Value(n - 1)));
    co_return Any(Value(r.value().as_int64() + 1));
  }
  if (name == "exposed_slow") {
    std::shared_ptr<Event> ev = release;
    co_await ev->wait();
    co_return Any(Value("done"));
  }
  if (name == "exposed_make") {
    co_return Any(std::static_pointer_cast<Object>(std::make_shared<TestRoot>()));
  }
  (void)ctx;
  throw attribute_error(name);
}

class RpcTest : public LoopTest, public ::testing::WithParamInterface<rpc::Generation> {
 protected:
  ConnectionOptions client_opts() {
    ConnectionOptions o;
    o.generation = GetParam();
    return o;
  }
};

Task<std::int64_t> call_add(Connection& c) {
  Netref root = co_await c.root();
  std::int64_t r = co_await root.callattr<std::int64_t>("add", 1, 2);
  co_return r;
}

TEST_P(RpcTest, CallAttrAdd) {
  auto p = make_rpc_pair(loop_, client_opts());
  EXPECT_EQ(run(call_add(*p.client)), 3);
  EXPECT_EQ(p.server->generation(), GetParam());
}

Task<Any> getattr_then_call(Connection& c) {
  Netref root = co_await c.root();
  Netref add = co_await root.attr("add");
  Kwargs kw;
  kw.emplace_back("b", Any(Value(40)));
  Any r = co_await add.call(make_args(Value(2)), std::move(kw));
  co_return r;
}

TEST_P(RpcTest, GetAttrThenCallWithKwargs) {
  auto p = make_rpc_pair(loop_, client_opts());
  Any r = run(getattr_then_call(*p.client));
  EXPECT_EQ(r.value().as_int64(), 42);
}

Task<std::string> call_fail(Connection& c) {
  Netref root = co_await c.root();
  try {
    co_await root.callattr<Any>("fail", "bad value");
  } catch (const RemoteError& e) {
    co_return e.type_name() + "|" + e.args().at(0);
  }
  co_return "no exception";
}

TEST_P(RpcTest, RemoteExceptionCarriesTypeAndArgs) {
  auto p = make_rpc_pair(loop_, client_opts());
  EXPECT_EQ(run(call_fail(*p.client)), "ValueError|bad value");
}

Task<std::string> missing_attr(Connection& c) {
  Netref root = co_await c.root();
  try {
    co_await root.getattr("secret");
  } catch (const RemoteError& e) {
    co_return e.type_name() + "|" + e.args().at(0);
  }
  co_return "no exception";
}

TEST_P(RpcTest, MissingAttributeIsAttributeError) {
  auto p = make_rpc_pair(loop_, client_opts());
  EXPECT_EQ(run(missing_attr(*p.client)), "AttributeError|cannot access 'secret'");
}

Task<std::int64_t> data_attr(Connection& c) {
  Netref root = co_await c.root();
  Any a = co_await root.getattr("answer");
  Any b = co_await root.getattr("exposed_answer");
  co_return a.value().as_int64() + b.value().as_int64();
}

TEST_P(RpcTest, ExposedPrefixResolvesBothSpellings) {
  auto p = make_rpc_pair(loop_, client_opts());
  EXPECT_EQ(run(data_attr(*p.client)), 84);
}

/// bounce(fn, n) on the server calls fn on the client, which calls bounce again: 2n deep.
Task<std::int64_t> nested(Connection& c, int depth) {
  Netref root = co_await c.root();
  Netref bounce = co_await root.attr("bounce");
  auto fn = std::make_shared<FunctionObject>(
      "client_bounce", [bounce](CallContext&, std::vector<Any> args, Kwargs) -> Task<Any> {
        return bounce.call(std::move(args));
      });
  Any r = co_await bounce.call(make_args(ObjectPtr(fn), Value(depth)));
  co_return r.value().as_int64();
}

TEST_P(RpcTest, CallbacksNestTwentyDeep) {
  auto p = make_rpc_pair(loop_, client_opts());
  EXPECT_EQ(run(nested(*p.client, 20)), 20);
}

Task<std::int64_t> pipelined(Connection& c, int n) {
  Netref root = co_await c.root();
  std::vector<AsyncResult> results;
  for (int i = 0; i < n; ++i) results.push_back(root.callattr_async("add", make_args(Value(i), Value(1))));
  std::int64_t sum = 0;
  for (auto& r : results) {
    Any v = co_await r;
    sum += v.value().as_int64();
  }
  co_return sum;
}

TEST_P(RpcTest, ThousandPipelinedAsyncCalls) {
  auto p = make_rpc_pair(loop_, client_opts());
  EXPECT_EQ(run(pipelined(*p.client, 1000)), 1000 * 999 / 2 + 1000);
}

Task<void> ref_lifetime(Connection& client, Connection& server) {
  Netref root = co_await client.root();
  std::size_t before = server.stats().exported;
  {
    Any made = co_await root.callattr("make");
    Netref obj = made.netref();
    EXPECT_EQ(server.stats().exported, before + 1);
    Any again = co_await obj.callattr("add", make_args(Value(1), Value(1)));
    EXPECT_EQ(again.value().as_int64(), 2);
  }
  // The proxy is gone: its DEL is queued; a round trip later the server has released it.
  co_await client.ping();
  EXPECT_EQ(server.stats().exported, before);
}

TEST_P(RpcTest, DroppedNetrefSendsDel) {
  auto p = make_rpc_pair(loop_, client_opts());
  run(ref_lifetime(*p.client, *p.server));
}

Task<std::string> pickle(Connection& c) {
  Netref root = co_await c.root();
  try {
    co_await c.request(rpc::Handler::kPickle, make_args(root, Value(4)));
  } catch (const RemoteError& e) {
    co_return e.type_name() + "|" + e.args().at(0);
  }
  co_return "no exception";
}

TEST_P(RpcTest, PickleRefused) {
  auto p = make_rpc_pair(loop_, client_opts());
  EXPECT_EQ(run(pickle(*p.client)), "ValueError|pickling is disabled");
}

Task<std::string> peer_vanishes(Connection& client, std::unique_ptr<Connection>& server) {
  Netref root = co_await client.root();
  std::vector<AsyncResult> slow;
  for (int i = 0; i < 3; ++i) slow.push_back(root.callattr_async("slow"));
  co_await client.ping();  // the slow calls are now being served
  const std::size_t before = client.stats().pending;
  server.reset();  // the peer vanishes mid-call
  int disconnected = 0;
  for (AsyncResult& r : slow) {
    try {
      co_await r;
    } catch (const Disconnected&) {
      ++disconnected;
    }
  }
  // The netref outlives the connection: using it reports the closed connection.
  std::string later = "no error";
  try {
    (void)co_await root.callattr<std::int64_t>("add", 1, 2);
  } catch (const std::exception& e) {
    later = e.what();
  }
  co_return fmt::format("{} pending, {} disconnected, {} pending after; then: {}", before, disconnected,
                        client.stats().pending, later.find("closed") != std::string::npos ? "closed" : later);
}

TEST_P(RpcTest, PeerVanishingFailsPendingCallsPromptly) {
  auto p = make_rpc_pair(loop_, client_opts());
  EXPECT_EQ(run(peer_vanishes(*p.client, p.server), 5s), "3 pending, 3 disconnected, 0 pending after; then: closed");
  EXPECT_TRUE(p.client->closed());
  EXPECT_EQ(p.client->stats().exported, 0u);
}

Task<std::string> times_out(Connection& c) {
  Netref root = co_await c.root();
  try {
    co_await root.callattr("slow");
  } catch (const Timeout&) {
    co_return "timeout";
  }
  co_return "no timeout";
}

TEST_P(RpcTest, SyncRequestTimeout) {
  auto o = client_opts();
  o.sync_request_timeout = 50ms;
  auto p = make_rpc_pair(loop_, o);
  EXPECT_EQ(run(times_out(*p.client)), "timeout");
  p.server_root->release->set();
  // The late reply is dropped and the connection stays usable.
  EXPECT_EQ(run(call_add(*p.client)), 3);
}

Task<void> close_client(Connection& c) { co_await c.close(); }

TEST_P(RpcTest, CloseReleasesServerObjects) {
  auto p = make_rpc_pair(loop_, client_opts());
  EXPECT_EQ(run(call_add(*p.client)), 3);
  EXPECT_GT(p.server->stats().exported, 0u);
  run(close_client(*p.client));
  run(p.server->wait_closed());
  EXPECT_EQ(p.server->stats().exported, 0u);
}

/// The `_remote_version` attribute of the exception fail() raises on the server.
Task<std::string> remote_version_of_failure(Connection& c) {
  Netref root = co_await c.root();
  try {
    (void)co_await root.callattr("fail", make_args(Value("x")));
  } catch (const RemoteException& e) {
    brine::Value v = e.attr("_remote_version");
    co_return v.is_str() ? v.as_str() : v.repr();
  }
  co_return "nothing raised";
}

TEST_P(RpcTest, IncludeLocalVersionOffDeniesTheVersionInExceptions) {
  // RPyC's include_local_version: on (the default) tells the peer our version in each
  // exception reply; off sends "<version denied>" (upstream TestExclusionsRemoteException).
  {
    auto p = make_rpc_pair(loop_, client_opts());
    const std::string told = run(remote_version_of_failure(*p.client));
    EXPECT_NE(told, "<version denied>");
    EXPECT_EQ(told, std::string(GetParam() == rpc::Generation::k6 ? rpc::kVersion6 : rpc::kVersion5)) << "as stock RPyC of the generation";
  }
  ConnectionOptions server;
  server.include_local_version = false;
  auto p = make_rpc_pair(loop_, client_opts(), server);
  EXPECT_EQ(run(remote_version_of_failure(*p.client)), "<version denied>");
}

INSTANTIATE_TEST_SUITE_P(Generations, RpcTest, ::testing::Values(rpc::Generation::k5, rpc::Generation::k6),
                         [](const auto& info) { return info.param == rpc::Generation::k5 ? "v5" : "v6"; });

}  // namespace tether::testing
