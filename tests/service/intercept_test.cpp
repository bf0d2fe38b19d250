// Interceptors (tether/rpc/interceptor.hpp) over loopback TCP: what `before` and `after` see on
// the server and on the client, denying a call, the order of a chain, the capped argument
// repr, trace ids, and interceptors that throw.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "eventually.hpp"
#include "service/observe_util.hpp"
#include "tether/brine/utf8.hpp"
#include "tether/loop/time.hpp"
#include "tether/rpc/interceptor.hpp"
#include "tether/rpc/py_error.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/sync.hpp"

namespace tether::testing {
namespace {

using rpc::CallInfo;
using rpc::CallOutcome;
using rpc::Decision;

struct Seen {
  CallInfo info;
  CallOutcome outcome;
};

/// Keeps what it is shown (any thread); denies the names in `deny`; logs its calls to `order`.
class Recorder final : public rpc::CallInterceptor {
 public:
  explicit Recorder(std::string tag = "r", std::shared_ptr<std::vector<std::string>> order = nullptr)
      : tag_(std::move(tag)), order_(std::move(order)) {}
  std::vector<std::string> deny;
  std::string throw_in_before;  ///< a name whose `before` throws
  bool throw_in_after = false;

  Decision before(CallInfo& info) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (order_) order_->push_back(tag_ + ".before");
    info.trace_id = tag_ + "-" + std::to_string(++n_);
    if (!throw_in_before.empty() && info.name == throw_in_before)
      throw std::runtime_error("interceptor broke");
    for (const auto& d : deny) {
      if (info.name == d) return Decision::deny("'" + d + "' is not allowed from " + info.peer);
    }
    return Decision::proceed();
  }
  void after(const CallInfo& info, const CallOutcome& outcome) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (order_) order_->push_back(tag_ + ".after");
    seen_.push_back(Seen{info, outcome});
    if (throw_in_after) throw std::runtime_error("after broke");
  }
  std::vector<Seen> seen() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  /// The last call of `name` seen (waits for the server thread's `after`).
  Seen last(const std::string& name) const {
    Seen out;
    EXPECT_TRUE(eventually([&] {
      for (const Seen& s : seen()) {
        if (s.info.name == name) out = s;
      }
      return !out.info.name.empty();
    }));
    return out;
  }

 private:
  std::string tag_;
  std::shared_ptr<std::vector<std::string>> order_;
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
  int n_ = 0;
};

Service test_service() {
  Service svc = calc_service();
  svc.expose("echo", [](std::string s) { return s; });
  return svc;
}

ServeOptions with(std::vector<std::shared_ptr<rpc::CallInterceptor>> chain, std::size_t limit = 256) {
  ServeOptions o = observe_options(false);
  o.connection.interceptors = std::move(chain);
  o.connection.interceptor_repr_limit = limit;
  return o;
}

TEST(Intercept, ServerSeesNameArgumentsPeerAndOutcome) {
  auto rec = std::make_shared<Recorder>();
  ServerThread server(test_service(), with({rec}));
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 2, 3), 5);
  EXPECT_THROW(conn.callattr<std::int64_t>("fail"), RemoteError);

  const Seen add = rec->last("add");
  EXPECT_EQ(add.info.side, rpc::CallSide::kServed);
  EXPECT_EQ(add.info.handler, rpc::Handler::kCallAttr);
  EXPECT_EQ(add.info.args, "(2, 3)");
  EXPECT_TRUE(add.info.peer.starts_with("127.0.0.1:")) << add.info.peer;
  EXPECT_TRUE(add.info.trace_id.starts_with("r-"));
  EXPECT_TRUE(add.outcome.ok);
  EXPECT_FALSE(add.outcome.denied);
  EXPECT_GE(add.outcome.nanos, 0);

  const Seen fail = rec->last("fail");
  EXPECT_EQ(fail.info.args, "()");
  EXPECT_FALSE(fail.outcome.ok);
  EXPECT_FALSE(fail.outcome.denied);
  EXPECT_EQ(fail.outcome.error_type, "ValueError");
  EXPECT_EQ(fail.outcome.error_message, "no good");
}

TEST(Intercept, GetattrAndCallOfTheResult) {
  auto rec = std::make_shared<Recorder>();
  ServerThread server(test_service(), with({rec}));
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  SyncNetref add = conn.root().attr("add");
  EXPECT_EQ(add.call<std::int64_t>(4, 5), 9);
  const Seen get = rec->last("add");
  EXPECT_EQ(get.info.handler, rpc::Handler::kGetAttr);
  Seen call;
  ASSERT_TRUE(eventually([&] {
    for (const Seen& s : rec->seen()) {
      if (s.info.handler == rpc::Handler::kCall) call = s;
    }
    return call.info.handler == rpc::Handler::kCall;
  }));
  EXPECT_EQ(call.info.args, "(4, 5)");
  EXPECT_TRUE(call.outcome.ok);
}

TEST(Intercept, ServerDeniesAMethodAndTheConnectionStaysOpen) {
  auto rec = std::make_shared<Recorder>();
  rec->deny = {"mul"};
  ServerThread server(test_service(), with({rec}));
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  try {
    conn.callattr<std::int64_t>("mul", 3, 4);
    ADD_FAILURE() << "mul was not denied";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "PermissionError");
    EXPECT_NE(std::string(e.what()).find("'mul' is not allowed from 127.0.0.1"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 3, 4), 7);  // same connection, still served
  const Seen mul = rec->last("mul");
  EXPECT_FALSE(mul.outcome.ok);
  EXPECT_TRUE(mul.outcome.denied);
  EXPECT_EQ(mul.outcome.error_type, "PermissionError");
  // The handler never ran: no mul in the server's figures other than the refused call.
  EXPECT_EQ(server.metrics()->snapshot().errors_by_type.at("PermissionError"), 1u);
}

TEST(Intercept, ChainRunsInOrderAndStopsAtADeny) {
  auto order = std::make_shared<std::vector<std::string>>();
  auto a = std::make_shared<Recorder>("a", order);
  auto b = std::make_shared<Recorder>("b", order);
  a->deny = {"mul"};
  ServerThread server(test_service(), with({a, b}));
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  (void)conn.root();
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 1, 1), 2);
  (void)a->last("add");  // a.after is the last to run
  // Interceptors run on the server's thread; the order vector is read once it is quiet.
  const std::vector<std::string> allowed(order->end() - 4, order->end());
  EXPECT_EQ(allowed, (std::vector<std::string>{"a.before", "b.before", "b.after", "a.after"}));
  const std::size_t before = order->size();
  EXPECT_THROW(conn.callattr<std::int64_t>("mul", 1, 1), RemoteError);
  (void)a->last("mul");
  const std::vector<std::string> denied(order->begin() + static_cast<std::ptrdiff_t>(before), order->end());
  EXPECT_EQ(denied, (std::vector<std::string>{"a.before", "a.after"}));
  for (const Seen& s : b->seen()) EXPECT_NE(s.info.name, "mul");
}

TEST(Intercept, ArgumentsReprIsCappedOnACharacterBoundary) {
  auto rec = std::make_shared<Recorder>();
  ServerThread server(test_service(), with({rec}, 32));
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  std::string big;
  for (int i = 0; i < 200; ++i) big += "\xc3\xa9";  // é, two bytes each
  EXPECT_EQ(conn.callattr<std::string>("echo", big), big);
  const Seen echo = rec->last("echo");
  EXPECT_LE(echo.info.args.size(), 32u);
  EXPECT_TRUE(echo.info.args.ends_with("...")) << echo.info.args;
  EXPECT_TRUE(echo.info.args.starts_with("('\xc3\xa9")) << echo.info.args;
  EXPECT_FALSE(brine::find_invalid_utf8(echo.info.args).has_value());
  EXPECT_EQ(conn.callattr<std::string>("echo", "hi"), "hi");
  EXPECT_EQ(rec->last("echo").info.args, "('hi')");  // call syntax
}

TEST(Intercept, ThrowingInterceptorsFailTheCallNotTheServer) {
  auto broken = std::make_shared<Recorder>();
  broken->throw_in_before = "add";
  ServerThread server(test_service(), with({broken}));
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  try {
    conn.callattr<std::int64_t>("add", 1, 2);
    ADD_FAILURE() << "a throwing before() let the call through";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "RuntimeError");
    EXPECT_NE(std::string(e.what()).find("interceptor broke"), std::string::npos);
  }
  const Seen add = broken->last("add");
  EXPECT_TRUE(add.outcome.denied);
  EXPECT_EQ(add.outcome.error_type, "RuntimeError");
  EXPECT_EQ(conn.callattr<std::int64_t>("mul", 2, 3), 6);  // the connection goes on
  // An after() that throws is logged and ignored: the calls go on.
  auto noisy = std::make_shared<Recorder>();
  noisy->throw_in_after = true;
  ServerThread server2(test_service(), with({noisy}));
  SyncConnection conn2 = connect_sync("127.0.0.1", server2.port());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(conn2.callattr<std::int64_t>("add", i, i), 2 * i);
}

TEST(Intercept, ClientSideSeesSentCallsAndMayDenyThem) {
  ServerThread server(test_service(), observe_options(false));
  auto rec = std::make_shared<Recorder>("c");
  rec->deny = {"mul"};
  ClientOptions co;
  co.connection.interceptors = {rec};
  SyncConnection conn = connect_sync("127.0.0.1", server.port(), co);
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 1, 2), 3);
  EXPECT_THROW(conn.callattr<std::int64_t>("fail"), RemoteError);
  try {
    conn.callattr<std::int64_t>("mul", 2, 2);
    ADD_FAILURE() << "mul was sent";
  } catch (const PyError& e) {
    EXPECT_EQ(e.type_name(), "PermissionError");
  }
  const std::vector<Seen> seen = rec->seen();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front().info.handler, rpc::Handler::kGetRoot);  // connect()'s probe
  const Seen add = rec->last("add");
  EXPECT_EQ(add.info.side, rpc::CallSide::kSent);
  EXPECT_EQ(add.info.args, "(1, 2)");
  EXPECT_EQ(add.info.peer, "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_TRUE(add.outcome.ok);
  const Seen fail = rec->last("fail");
  EXPECT_EQ(fail.outcome.error_type, "ValueError");
  EXPECT_EQ(fail.outcome.error_message, "no good");
  EXPECT_TRUE(rec->last("mul").outcome.denied);
  // The denied call never reached the server.
  for (const auto& m : server.metrics()->snapshot().methods) EXPECT_NE(m.method, "mul");
}

Task<std::int64_t> hang_for(std::int64_t ms) {
  co_await sleep(std::chrono::milliseconds(ms));
  co_return ms;
}

// The peer never answers within the caller's deadline: `after` still runs, once, with the
// timeout as the outcome.
TEST(Intercept, ClientSideAfterRunsWhenThePeerNeverAnswers) {
  Service svc = test_service();
  svc.expose_async("hang", &hang_for);
  ServerThread server(std::move(svc), observe_options(false));
  auto rec = std::make_shared<Recorder>("c");
  ClientOptions co;
  co.connection.interceptors = {rec};
  co.connection.sync_request_timeout = std::chrono::milliseconds(200);
  SyncConnection conn = connect_sync("127.0.0.1", server.port(), co);
  EXPECT_THROW(conn.callattr<std::int64_t>("hang", 1500), Timeout);
  const Seen hang = rec->last("hang");
  EXPECT_FALSE(hang.outcome.ok);
  EXPECT_FALSE(hang.outcome.denied);
  EXPECT_FALSE(hang.outcome.error_type.empty());
  int calls = 0;
  for (const Seen& seen : rec->seen()) calls += seen.info.name == "hang" ? 1 : 0;
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace tether::testing
