// The blocking facade against a ServerThread: call_sync, SyncNetref operations and iteration,
// remote exceptions, blocking callbacks nested in both directions, several client threads,
// shutdown with idle clients.

#include "tether/service/sync.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tether/loop/task.hpp"
#include "tether/rpc/class.hpp"
#include "tether/rpc/remote_exception.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"

namespace tether::testing {
namespace {

using brine::Value;

struct Box {
  std::map<std::string, std::string> items;
};

void bind_box() {
  Class<Box>("Box")
      .method("put", [](Box& b, std::string k, std::string v) { b.items[std::move(k)] = std::move(v); })
      .len([](const Box& b) { return b.items.size(); })
      .iter([](const Box& b) {
        std::vector<std::string> keys;
        for (auto& [k, v] : b.items) keys.push_back(k);
        return keys;
      })
      .getitem([](const Box& b, const std::string& k) -> std::optional<std::string> {
        auto it = b.items.find(k);
        if (it == b.items.end()) return std::nullopt;
        return it->second;
      });
}

Service sync_service() {
  Service svc("SyncService");
  svc.expose(
      "add", [](std::int64_t a, std::int64_t b) { return a + b; }, arg_names("a", "b"));
  svc.expose("fail", []() -> std::int64_t { throw std::invalid_argument("no good"); });
  svc.expose("make_box", []() { return std::make_shared<Box>(); });
  svc.expose("bounce", [](std::int64_t n, std::function<std::int64_t(std::int64_t)> cb) -> std::int64_t {
    if (n == 0) return 0;
    return cb(n - 1) + 1;
  });
  return svc;
}

ServeOptions loopback() {
  ServeOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  return o;
}

TEST(SyncFacade, CallsNetrefsAndErrors) {
  bind_box();
  ServerThread server(sync_service(), loopback());
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(conn.call_sync<std::int64_t>("add", 1, 2), 3);
  conn.ping();
  EXPECT_EQ(conn.root().type_name(), "tether.SyncService");
  EXPECT_EQ(conn.root().callattr_kw<std::int64_t>("add", make_args(1), Kwargs{{"b", Any(Value(5))}}), 6);

  SyncNetref box = conn.call_sync<SyncNetref>("make_box");
  EXPECT_EQ(box.type_name(), "tether.Box");
  box.callattr("put", "b", "2");
  box.callattr("put", "a", "1");
  EXPECT_EQ(box.len(), 2);
  EXPECT_TRUE(box.truth());
  std::vector<std::string> keys;
  for (const Any& k : box) keys.push_back(k.value().as_str());
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(box.to_list().size(), 2u);
  EXPECT_EQ(box.getitem(Value("b")).value().as_str(), "2");

  try {
    (void)box.getitem(Value("zz"));
    ADD_FAILURE() << "no KeyError";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "KeyError");
  }
  try {
    (void)conn.call_sync<std::int64_t>("fail");
    ADD_FAILURE() << "no ValueError";
  } catch (const RemoteException& e) {
    EXPECT_EQ(e.type_name(), "ValueError");
    ASSERT_FALSE(e.args().empty());
    EXPECT_EQ(e.args()[0], "no good");
  }
  EXPECT_EQ(conn.call_sync<std::int64_t>("add", 4, 4), 8);  // still usable
  conn.close();
  EXPECT_TRUE(conn.closed());
  EXPECT_THROW(conn.ping(), Error);
}

TEST(SyncFacade, BlockingCallbacksNestTwelveDeepBothWays) {
  ServerThread server(sync_service(), loopback());
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  int deepest = 0;
  int depth = 0;
  std::function<std::int64_t(std::int64_t)> cb;
  // Client callback -> blocking call -> server callback -> ... each level nests both loops.
  cb = [&](std::int64_t m) -> std::int64_t {
    ++depth;
    deepest = std::max(deepest, depth);
    std::int64_t r = conn.call_sync<std::int64_t>("bounce", m, cb) + 1;
    --depth;
    return r;
  };
  EXPECT_EQ(conn.call_sync<std::int64_t>("bounce", 12, cb), 24);
  EXPECT_EQ(deepest, 12);
  EXPECT_EQ(depth, 0);
}

TEST(SyncFacade, ConnectionsOfOneThreadShareAPrivateLoop) {
  ServerThread server(sync_service(), loopback());
  std::optional<SyncConnection> first = connect_sync("127.0.0.1", server.port());
  SyncConnection second = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(&first->loop(), &second.loop());
  EXPECT_EQ(first->call_sync<std::int64_t>("add", 1, 1), 2);
  first.reset();  // the loop stays: the second connection still uses it
  EXPECT_EQ(second.call_sync<std::int64_t>("add", 2, 2), 4);
  SyncConnection moved = std::move(second);
  EXPECT_EQ(moved.call_sync<std::int64_t>("add", 3, 3), 6);
}

TEST(SyncFacade, ManyClientThreadsAgainstSeveralServerThreads) {
  ServeOptions opts = loopback();
  opts.server.threads = 2;
  ServerThread server(sync_service(), opts);
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&ok, &server, t]() {
      SyncConnection conn = connect_sync("127.0.0.1", server.port());
      for (int i = 0; i < 50; ++i) {
        if (conn.call_sync<std::int64_t>("add", t, i) == t + i) ok.fetch_add(1);
      }
      conn.close();
    });
  }
  for (auto& th : clients) th.join();
  EXPECT_EQ(ok.load(), 200);
}

TEST(SyncFacade, StopClosesIdleClientsWithoutWaitingForTheGracePeriod) {
  ServeOptions opts = loopback();
  opts.shutdown_grace = std::chrono::seconds(30);
  ServerThread server(sync_service(), opts);
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(conn.call_sync<std::int64_t>("add", 1, 2), 3);
  EXPECT_EQ(server.connections(), 1u);
  const auto t0 = std::chrono::steady_clock::now();
  server.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  // The server sent CLOSE: the next request finds the connection closed.
  EXPECT_THROW(conn.ping(), Error);
  EXPECT_TRUE(conn.closed());
}

}  // namespace
}  // namespace tether::testing
