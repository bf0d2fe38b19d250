// The blocking facade against a ServerThread: callattr, SyncNetref operations and iteration,
// remote exceptions, blocking callbacks nested in both directions, several client threads,
// shutdown with idle clients.

#include "tether/service/sync.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "net/test_certs.hpp"
#include "tether/loop/task.hpp"
#include "tether/net/tls.hpp"
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

/// A service's class for Box (each service that sends one defines it).
void define_box(Service& svc) {
  svc.define_class<Box>("Box")
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
  define_box(svc);
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
  ServerThread server(sync_service(), loopback());
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 1, 2), 3);
  conn.ping();
  EXPECT_EQ(conn.root().type_name(), "tether.SyncService");
  EXPECT_EQ(conn.root().callattr_kw<std::int64_t>("add", make_args(1), Kwargs{{"b", Any(Value(5))}}), 6);

  SyncNetref box = conn.callattr<SyncNetref>("make_box");
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
    (void)conn.callattr<std::int64_t>("fail");
    ADD_FAILURE() << "no ValueError";
  } catch (const RemoteException& e) {
    EXPECT_EQ(e.type_name(), "ValueError");
    ASSERT_FALSE(e.args().empty());
    EXPECT_EQ(e.args()[0], "no good");
  }
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 4, 4), 8);  // still usable
  conn.close();
  EXPECT_TRUE(conn.closed());
  EXPECT_THROW(conn.ping(), Error);
}

Service typed_service() {
  Service svc("Typed");
  define_box(svc);
  svc.expose_value("version", Any(Value("1.4")));
  svc.expose("make_box", []() { return std::make_shared<Box>(); });
  svc.expose("squares", [](std::int64_t n) {
    std::vector<std::int64_t> v;
    for (std::int64_t i = 1; i <= n; ++i) v.push_back(i * i);
    return v;
  });
  svc.expose("pair", []() { return std::make_tuple(std::int64_t{7}, std::string("seven")); });
  return svc;
}

TEST(SyncFacade, TypedAccessWithoutAnys) {
  ServerThread server(typed_service(), loopback());
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  SyncNetref root = conn.root();
  EXPECT_EQ(root.getattr<std::string>("version"), "1.4");
  EXPECT_TRUE(root.getattr("version").is_value());  // the untyped form is still Any

  SyncNetref box = root.callattr<SyncNetref>("make_box");
  box.callattr("put", "pear", "green");
  box.callattr("put", "apple", "red");
  EXPECT_EQ(box.getitem<std::string>("apple"), "red");  // the key converted like an argument
  EXPECT_EQ(box.getitem<std::optional<std::string>>(std::string("pear")), "green");
  EXPECT_THROW((void)box.getitem<std::string>("plum"), RemoteError);
  EXPECT_EQ(box.to_list<std::string>(), (std::vector<std::string>{"apple", "pear"}));
  std::vector<std::string> keys;
  for (const std::string& k : box.iterate<std::string>()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"apple", "pear"}));
  SyncNetref it = box.iter();
  EXPECT_EQ(it.next<std::string>(), "apple");
  EXPECT_EQ(it.next<std::string>(), "pear");
  EXPECT_EQ(it.next<std::string>(), std::nullopt);
  // A wrong type is a clear TypeError, not a crash or a silent default.
  EXPECT_THROW((void)box.getitem<std::int64_t>("apple"), PyError);

  // Any::as<T>: local values convert at once; a remote list needs requests and is refused.
  Any pair = root.callattr("pair");
  EXPECT_EQ((pair.as<std::tuple<std::int64_t, std::string>>()), std::make_tuple(std::int64_t{7}, std::string("seven")));
  EXPECT_EQ(pair.as<std::vector<Any>>().size(), 2u);
  Any squares = root.callattr("squares", 4);
  ASSERT_TRUE(squares.is_value());  // a C++ vector travels as a tuple: a plain value
  EXPECT_EQ(squares.as<std::vector<std::int64_t>>(), (std::vector<std::int64_t>{1, 4, 9, 16}));
  EXPECT_EQ(Any(Value(5)).as<std::int64_t>(), 5);
  EXPECT_EQ(Any().as<std::optional<std::string>>(), std::nullopt);
  EXPECT_THROW((void)Any(Value("x")).as<std::int64_t>(), PyError);
  Any remote = root.getattr("make_box");  // a reference to a remote function
  ASSERT_TRUE(remote.is_netref());
  try {
    (void)remote.as<std::vector<std::string>>();
    ADD_FAILURE() << "no UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("from_any"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(remote.as<Netref>().valid());
  conn.close();
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
    std::int64_t r = conn.callattr<std::int64_t>("bounce", m, cb) + 1;
    --depth;
    return r;
  };
  EXPECT_EQ(conn.callattr<std::int64_t>("bounce", 12, cb), 24);
  EXPECT_EQ(deepest, 12);
  EXPECT_EQ(depth, 0);
}

// connect_sync_unix: the same facade over a Unix socket in a private directory: calls, a
// remote exception, a blocking callback from the server during a call, close.
TEST(SyncFacade, OverAUnixSocket) {
  char dir_template[] = "/tmp/tether-sync-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string path = dir + "/rpc.sock";
  {
    ServeOptions o;
    o.unix_path = path;
    ServerThread server(sync_service(), o);
    EXPECT_EQ(server.port(), 0);
    SyncConnection conn = connect_sync_unix(path);
    EXPECT_EQ(conn.callattr<std::int64_t>("add", 20, 22), 42);
    int calls = 0;
    std::function<std::int64_t(std::int64_t)> cb = [&](std::int64_t m) -> std::int64_t {
      ++calls;
      return m * 10;
    };
    EXPECT_EQ(conn.callattr<std::int64_t>("bounce", 3, cb), 21);  // cb(2) + 1
    EXPECT_EQ(calls, 1);
    EXPECT_THROW((void)conn.callattr<std::int64_t>("fail"), RemoteException);
    conn.close();
    EXPECT_TRUE(conn.closed());
    EXPECT_THROW(conn.ping(), Error);
  }
  ::unlink(path.c_str());
  EXPECT_EQ(::rmdir(dir.c_str()), 0) << "only the socket was in the directory";
  // Nobody listens there any more: a clear error, not a hang.
  EXPECT_THROW((void)connect_sync_unix(path), Error);
}

// connect_sync over TLS: the server's certificate is verified against the test CA; a client
// that does not trust that CA fails in connect_sync with TlsError, and the server keeps serving.
TEST(SyncFacade, OverTls) {
  const TestCerts& certs = test_certs();
  ServeOptions o = loopback();
  TlsServerOptions server_tls;
  server_tls.cert_file = certs.server_cert;
  server_tls.key_file = certs.server_key;
  o.server.tls = TlsContext::server(server_tls);
  ServerThread server(sync_service(), o);

  ClientOptions untrusting;
  untrusting.net.tls = TlsContext::client(TlsClientOptions{});  // the system store: no test CA
  EXPECT_THROW((void)connect_sync("127.0.0.1", server.port(), untrusting), TlsError);

  ClientOptions trusting;
  TlsClientOptions client_tls;
  client_tls.ca_file = certs.ca_cert;
  trusting.net.tls = TlsContext::client(client_tls);
  SyncConnection conn = connect_sync("127.0.0.1", server.port(), trusting);
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 40, 2), 42);
  std::function<std::int64_t(std::int64_t)> cb = [](std::int64_t m) -> std::int64_t { return m + 100; };
  EXPECT_EQ(conn.callattr<std::int64_t>("bounce", 5, cb), 105);  // cb(4) + 1
  EXPECT_THROW((void)conn.callattr<std::int64_t>("fail"), RemoteException);
  conn.close();
  EXPECT_TRUE(conn.closed());
}

// connect_sync_process: the child (service_stdio_server) serves on its stdio; calls and a
// blocking callback work; close() closes its stdin, so it exits by itself and is reaped.
TEST(SyncFacade, ToAChildProcessOverItsStdio) {
  SyncConnection conn = connect_sync_process({TETHER_STDIO_SERVER});
  ASSERT_NE(conn.process(), nullptr);
  const pid_t pid = conn.process()->pid();
  EXPECT_GT(pid, 0);
  EXPECT_FALSE(conn.exit_status().has_value());
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 100, 23), 123);
  int calls = 0;
  std::function<std::int64_t(std::int64_t)> cb = [&](std::int64_t x) -> std::int64_t {
    ++calls;
    return x * x;
  };
  EXPECT_EQ(conn.callattr<std::int64_t>("apply", cb, 9), 81);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(conn.callattr<std::string>("get_service_name"), "CALC");
  conn.close();
  EXPECT_TRUE(conn.closed());
  EXPECT_EQ(conn.process(), nullptr);
  ASSERT_TRUE(conn.exit_status().has_value());
  EXPECT_TRUE(conn.exit_status()->success()) << conn.exit_status()->to_string();
  EXPECT_EQ(::kill(pid, 0), -1) << "the child was reaped";
  conn.close();  // idempotent
}

// A child that exits before answering: connect_sync_process throws Disconnected naming the
// program and how it ended, and leaves no zombie. A program that cannot be started, and an
// empty argv, are errors of their own.
TEST(SyncFacade, ChildThatExitsAtOnceIsAClearError) {
  try {
    (void)connect_sync_process({"/bin/sh", "-c", "exit 3"});
    ADD_FAILURE() << "connect_sync_process returned";
  } catch (const Disconnected& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("/bin/sh"), std::string::npos) << what;
    EXPECT_NE(what.find('3'), std::string::npos) << what;
  }
  EXPECT_THROW((void)connect_sync_process({"/nonexistent/tether-no-such-program"}), Error);
  EXPECT_THROW((void)connect_sync_process({}), UsageError);
}

// A child that keeps running after its stdin closes is killed once kChildExitGrace has passed,
// and close() reports the signal.
TEST(SyncFacade, ChildThatOutlivesItsStdioIsKilledAfterTheGrace) {
  const std::string script = std::string("'") + TETHER_STDIO_SERVER + "'; exec sleep 600";
  SyncConnection conn = connect_sync_process({"/bin/sh", "-c", script});
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 1, 2), 3);
  const auto start = std::chrono::steady_clock::now();
  conn.close();
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(conn.exit_status().has_value());
  EXPECT_EQ(conn.exit_status()->signal, SIGKILL) << conn.exit_status()->to_string();
  EXPECT_GE(waited, kChildExitGrace);
  EXPECT_LT(waited, kChildExitGrace + std::chrono::seconds(20));
}

TEST(SyncFacade, ConnectionsOfOneThreadShareAPrivateLoop) {
  ServerThread server(sync_service(), loopback());
  std::optional<SyncConnection> first = connect_sync("127.0.0.1", server.port());
  SyncConnection second = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(&first->loop(), &second.loop());
  EXPECT_EQ(first->callattr<std::int64_t>("add", 1, 1), 2);
  first.reset();  // the loop stays: the second connection still uses it
  EXPECT_EQ(second.callattr<std::int64_t>("add", 2, 2), 4);
  SyncConnection moved = std::move(second);
  EXPECT_EQ(moved.callattr<std::int64_t>("add", 3, 3), 6);
}

TEST(SyncFacade, TheFacadesOwnThePrivateLoopNotTheThread) {
  ServerThread server(sync_service(), loopback());
  ASSERT_EQ(EventLoop::current(), nullptr);
  {
    SyncConnection conn = connect_sync("127.0.0.1", server.port());
    EXPECT_EQ(EventLoop::current(), &conn.loop());
    EXPECT_EQ(conn.callattr<std::int64_t>("add", 1, 1), 2);
  }
  // The last facade took the loop with it; the next one makes a new one.
  EXPECT_EQ(EventLoop::current(), nullptr);
  SyncConnection again = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(again.callattr<std::int64_t>("add", 2, 2), 4);
}

TEST(SyncFacade, OneClosedAndDestroyedWhileAnotherOfTheThreadIsInUse) {
  ServerThread server(sync_service(), loopback());
  SyncConnection busy = connect_sync("127.0.0.1", server.port());
  std::optional<SyncConnection> other = connect_sync("127.0.0.1", server.port());
  EventLoop* loop = &busy.loop();
  EXPECT_EQ(other->callattr<std::int64_t>("add", 1, 2), 3);
  int calls = 0;
  // Inside busy's blocking call (the server calls back into this thread, whose loop turns),
  // the other connection is used, closed and destroyed.
  std::function<std::int64_t(std::int64_t)> cb = [&](std::int64_t n) -> std::int64_t {
    ++calls;
    if (other) {
      EXPECT_EQ(other->callattr<std::int64_t>("add", 20, 22), 42);
      other->close();
      EXPECT_TRUE(other->closed());
      other.reset();
    }
    return n;
  };
  EXPECT_EQ(busy.callattr<std::int64_t>("bounce", 3, cb), 3);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(other.has_value());
  // The loop they shared is still the thread's, and busy goes on using it.
  EXPECT_EQ(EventLoop::current(), loop);
  EXPECT_EQ(busy.callattr<std::int64_t>("add", 5, 6), 11);
  SyncConnection third = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(&third.loop(), loop);
  busy.close();
  EXPECT_EQ(third.callattr<std::int64_t>("add", 7, 8), 15);
}

TEST(SyncFacade, EachThreadHasAPrivateLoopOfItsOwn) {
  // A SyncConnection belongs to the thread that made it (its loop is that thread's); another
  // thread's facades make and share a loop of their own, at the same time.
  ServerThread server(sync_service(), loopback());
  SyncConnection here = connect_sync("127.0.0.1", server.port());
  EventLoop* other_loop = nullptr;
  std::atomic<int> other_ok{0};
  std::thread t([&]() {
    SyncConnection a = connect_sync("127.0.0.1", server.port());
    SyncConnection b = connect_sync("127.0.0.1", server.port());
    other_loop = &a.loop();
    if (&b.loop() != other_loop) return;
    for (int i = 0; i < 50; ++i) {
      if (a.callattr<std::int64_t>("add", i, 1) == i + 1 && b.callattr<std::int64_t>("add", i, 2) == i + 2) {
        other_ok.fetch_add(1);
      }
    }
    a.close();
    if (b.callattr<std::int64_t>("add", 1, 1) == 2) other_ok.fetch_add(1);
  });
  int ok = 0;
  for (int i = 0; i < 50; ++i) ok += here.callattr<std::int64_t>("add", i, 3) == i + 3 ? 1 : 0;
  t.join();
  EXPECT_EQ(ok, 50);
  EXPECT_EQ(other_ok.load(), 51);
  EXPECT_NE(other_loop, &here.loop());
  EXPECT_EQ(here.callattr<std::int64_t>("add", 1, 2), 3);
}

TEST(SyncFacade, OnALoopTheApplicationOwnsItIsBorrowedOrShared) {
  ServerThread server(sync_service(), loopback());
  {
    EventLoop mine;  // owned by the application: borrowed
    SyncConnection conn = connect_sync("127.0.0.1", server.port());
    EXPECT_EQ(&conn.loop(), &mine);
    EXPECT_EQ(conn.callattr<std::int64_t>("add", 1, 2), 3);
  }
  // Owned through a shared_ptr: the facade takes a share, the loop lives as long as it does.
  auto shared = std::make_shared<EventLoop>();
  std::weak_ptr<EventLoop> weak = shared;
  std::optional<SyncConnection> conn = connect_sync("127.0.0.1", server.port());
  shared.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(conn->callattr<std::int64_t>("add", 2, 3), 5);
  conn.reset();
  EXPECT_TRUE(weak.expired());
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
        if (conn.callattr<std::int64_t>("add", t, i) == t + i) ok.fetch_add(1);
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
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 1, 2), 3);
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
