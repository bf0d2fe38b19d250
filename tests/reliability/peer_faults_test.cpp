// Faults at the peer, at both ends of a tether connection (issue 24 item 2): the peer killed
// mid-call (SIGKILL of a child process), a connection reset (SO_LINGER 0), a half-closed socket
// (shutdown(SHUT_WR)) and a peer that stops reading. The combinations covered elsewhere are
// not repeated here (docs/reliability.md has the table):
//
//   client resets / sends EOF / stops mid-frame during a callback   tests/service/vanish_test.cpp
//   client stops reading                                            tests/service/limits_test.cpp
//   peer vanishes with calls pending (in-memory pipe)               tests/rpc/rpc_test.cpp

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "eventually.hpp"
#include "fault_service.hpp"
#include "interop/py_process.hpp"
#include "service/raw_peer.hpp"
#include "test_util.hpp"
#include "tether/rpc/bind.hpp"
#include "tether/service/client.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/sync.hpp"

namespace tether::testing {
namespace {

using namespace std::chrono_literals;

void expect_still_serving(std::uint16_t port) {
  SyncConnection c = connect_sync("127.0.0.1", port);
  EXPECT_EQ(c.callattr<std::int64_t>("echo", 6), echo_of(6));
  c.close();
}

/// "Disconnected", "Timeout", "Error: <what>" or "none" for what the call `make()` starts
/// threw (whether it throws at once, as a call on a closed connection does, or on completion).
template <class F>
Task<std::string> outcome(F make) {
  using T = typename decltype(make())::value_type;
  try {
    auto t = make();
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
    } else {
      T v = co_await std::move(t);
      (void)v;
    }
  } catch (const Disconnected&) {
    co_return "Disconnected";
  } catch (const Timeout&) {
    co_return "Timeout";
  } catch (const std::exception& e) {
    co_return std::string("Error: ") + e.what();
  }
  co_return "none";
}

ClientOptions client_options(std::chrono::milliseconds timeout) {
  ClientOptions o;
  o.connection.sync_request_timeout = timeout;
  return o;
}

// ====================================================== the server's end fails; client under test

class ServerEndTest : public LoopTest {};

// --- the server process is SIGKILLed

std::atomic<pid_t> g_victim{-1};

Task<std::vector<std::string>> calls_while_server_dies(std::uint16_t port) {
  ClientOptions o = client_options(30s);
  std::unique_ptr<Connection> conn = co_await connect("127.0.0.1", port, o);
  Netref root = co_await conn->root();
  std::vector<AsyncResult> pending;
  for (int i = 0; i < 20; ++i) pending.push_back(root.callattr_async("slow", make_args(60000)));
  // A sync call behind them: once it is answered, the server has read the slow calls.
  std::int64_t v = co_await root.callattr<std::int64_t>("echo", 1);
  EXPECT_EQ(v, echo_of(1));
  ::kill(g_victim.load(), SIGKILL);
  std::vector<std::string> out;
  for (AsyncResult& r : pending) {
    auto wait = [&r] { return r.wait(); };
    std::string what = co_await outcome(wait);
    out.push_back(what);
  }
  auto echo = [&root] { return root.callattr<std::int64_t>("echo", 2); };
  std::string after = co_await outcome(echo);
  out.push_back(after);
  co_return out;
}

TEST_F(ServerEndTest, ServerKilledMidCallFailsEveryPendingCallWithDisconnected) {
  PyProcess child({TETHER_FAULT_SERVER});
  g_victim = child.pid();
  // 20 pipelined calls in flight (each for a minute), the run bounded at 20 s: only the
  // connection's end can answer them in time.
  std::vector<std::string> got = run(calls_while_server_dies(child.port()), 20s);
  ASSERT_EQ(got.size(), 21u);
  for (std::size_t i = 0; i < 20; ++i) EXPECT_EQ(got[i], "Disconnected") << "call " << i;
  EXPECT_NE(got[20], "none") << "a call after the server died succeeded";
  EXPECT_NE(got[20], "Timeout") << "a call on a dead connection waited for its deadline";
}

std::int64_t kill_server_then_answer(std::int64_t x) {
  ::kill(g_victim.load(), SIGKILL);
  return callback_of(x);
}

Task<std::string> callback_kills_server(std::uint16_t port) {
  ClientOptions o = client_options(30s);
  std::unique_ptr<Connection> conn = co_await connect("127.0.0.1", port, o);
  ObjectPtr f = make_function_object("f", &kill_server_then_answer);
  auto apply = [&] { return conn->callattr<std::int64_t>("apply", f, 3); };
  std::string what = co_await outcome(apply);
  f.reset();
  co_return what;
}

TEST_F(ServerEndTest, ServerKilledWhileItWaitsForACallbackFailsTheOuterCall) {
  PyProcess child({TETHER_FAULT_SERVER});
  g_victim = child.pid();
  EXPECT_EQ(run(callback_kills_server(child.port()), 20s), "Disconnected");
}

// --- a raw server that resets, half-closes or stops reading

enum class ServerDoes { kReset, kHalfClose, kStopsReading };

/// A listening socket on 127.0.0.1; on a thread: accepts one connection, waits for its first
/// bytes (unless it stops reading), then does `what` and keeps the socket until destroyed.
class RawServer {
 public:
  explicit RawServer(ServerDoes what) : what_(what) {
    listen_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_.get(), 4) != 0 ||
        ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("raw server: bind/listen");
    }
    port_ = ntohs(a.sin_port);
    if (what_ == ServerDoes::kStopsReading) {
      // A small receive buffer, set before accept so the window is small from the start.
      const int small = 4096;
      ::setsockopt(listen_.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    thread_ = std::thread([this] { serve(); });
  }
  ~RawServer() {
    done_ = true;
    thread_.join();
  }
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] bool acted() const noexcept { return acted_; }

 private:
  void serve() {
    pollfd p{listen_.get(), POLLIN, 0};
    while (!done_ && ::poll(&p, 1, 20) <= 0) {
    }
    if (done_) return;
    conn_ = Fd(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (what_ != ServerDoes::kStopsReading) {
      pollfd q{conn_.get(), POLLIN, 0};
      while (!done_ && ::poll(&q, 1, 20) <= 0) {
      }
      char buf[4096];
      (void)::recv(conn_.get(), buf, sizeof buf, 0);  // the first request (GETROOT)
      if (what_ == ServerDoes::kReset) {
        linger l{1, 0};
        ::setsockopt(conn_.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
        conn_.reset();
      } else {
        ::shutdown(conn_.get(), SHUT_WR);
      }
    }
    acted_ = true;
    while (!done_) {
      pollfd q{listen_.get(), POLLIN, 0};
      (void)::poll(&q, 1, 20);
    }
  }

  ServerDoes what_;
  Fd listen_;
  Fd conn_;
  std::uint16_t port_ = 0;
  std::atomic<bool> done_{false};
  std::atomic<bool> acted_{false};
  std::thread thread_;
};

/// Without the generation probe (a GETROOT inside connect()), so that connect() returns at
/// once and root() is the call pending when the server acts.
ClientOptions unprobed(std::chrono::milliseconds timeout) {
  ClientOptions o = client_options(timeout);
  o.connection.generation = rpc::Generation::k5;
  return o;
}

/// One call to a raw server — GETROOT, or (`big_ping`) a 16 MiB ping that a server that stops
/// reading cannot take — then close(): "<how the call ended>, close: <how close() ended>".
Task<std::string> call_then_close(std::uint16_t port, std::chrono::milliseconds timeout, bool big_ping) {
  ClientOptions o = unprobed(timeout);
  std::unique_ptr<Connection> conn = co_await connect("127.0.0.1", port, o);
  std::string what;
  if (big_ping) {
    auto ping = [&conn] { return conn->ping(std::string(16 << 20, 'x')); };
    std::string w = co_await outcome(ping);
    what = w;
  } else {
    auto root = [&conn] { return conn->root(); };
    std::string w = co_await outcome(root);
    what = w;
    EXPECT_TRUE(conn->closed());
  }
  // close() must not wait for what cannot be sent: it is bounded by the sync timeout.
  auto close = [&conn] { return conn->close(); };
  std::string closing = co_await outcome(close);
  co_return what + ", close: " + closing;
}

struct RawServerCase {
  ServerDoes what;
  std::chrono::milliseconds timeout;
  bool big_ping;
  std::string expected;  // how the call ends
};

void PrintTo(const RawServerCase& c, std::ostream* os) { *os << c.expected; }

class RawServerTest : public LoopTest, public ::testing::WithParamInterface<RawServerCase> {};

// Reset and half-close: the pending GETROOT fails with Disconnected, not by its 15 s timeout.
// Stops reading: the 16 MiB ping fails with Timeout at its 500 ms deadline, and close() returns
// (with no watcher or timer left on the loop: LoopTest checks).
TEST_P(RawServerTest, PendingCallEndsWithAClearErrorAndCloseIsBounded) {
  const RawServerCase& c = GetParam();
  RawServer server(c.what);
  const std::string got = run(call_then_close(server.port(), c.timeout, c.big_ping), 15s);
  EXPECT_EQ(got.substr(0, got.find(',')), c.expected) << got;
  std::printf("%s\n", got.c_str());
}

INSTANTIATE_TEST_SUITE_P(ServerEnd, RawServerTest,
                         ::testing::Values(RawServerCase{ServerDoes::kReset, 15s, false, "Disconnected"},
                                           RawServerCase{ServerDoes::kHalfClose, 15s, false, "Disconnected"},
                                           RawServerCase{ServerDoes::kStopsReading, 500ms, true, "Timeout"}),
                         [](const ::testing::TestParamInfo<RawServerCase>& info) {
                           switch (info.param.what) {
                             case ServerDoes::kReset: return std::string("ServerResets");
                             case ServerDoes::kHalfClose: return std::string("ServerHalfCloses");
                             case ServerDoes::kStopsReading: return std::string("ServerStopsReading");
                           }
                           return std::string("unknown");
                         });

// ====================================================== the client's end fails; server under test

// --- the client process is SIGKILLed

TEST(ClientEndTest, ClientKilledWhileTheServerWaitsForItsCallbackEndsTheBindingWithDisconnected) {
  fault_counters().reset();
  ServerThread server(fault_service(), fault_serve_options("127.0.0.1"));
  PyProcess child({TETHER_FAULT_SERVER, "--client", std::to_string(server.port()), "apply"});
  ASSERT_TRUE(eventually([&] { return fault_counters().applied.load() == 1; })) << "apply() never started";
  ::kill(child.pid(), SIGKILL);
  EXPECT_TRUE(eventually([&] { return fault_counters().callback_disconnected.load() == 1; }))
      << "the binding waiting for the dead client's callback did not see Disconnected";
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
  expect_still_serving(server.port());
  server.stop();
}

TEST(ClientEndTest, ClientKilledMidCallLeavesAServerThatDropsTheReplyAndServesOthers) {
  fault_counters().reset();
  ServerThread server(fault_service(), fault_serve_options("127.0.0.1"));
  PyProcess child({TETHER_FAULT_SERVER, "--client", std::to_string(server.port()), "slow"});
  ASSERT_TRUE(eventually([&] { return fault_counters().slow_started.load() == 1; }))
      << "slow() never started";
  ::kill(child.pid(), SIGKILL);
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }))
      << "the dead client's connection is still open";
  expect_still_serving(server.port());  // also after slow(2000) has finished and its reply had nowhere to go
  server.stop();
}

// --- the client half-closes

TEST(ClientEndTest, ClientHalfClosesWithACallInFlight) {
  fault_counters().reset();
  ServerThread server(fault_service(), fault_serve_options("127.0.0.1"));
  RawPeer p(server.port());
  p.get_root();
  const std::int64_t seq = p.callattr("slow", RawPeer::value(brine::Value(200)));
  ASSERT_TRUE(eventually([&] { return fault_counters().slow_started.load() == 1; }));
  ::shutdown(p.fd(), SHUT_WR);
  // The server may answer the call it has started, then must close; or close at once. Either
  // way the peer sees the end of the stream (not its 15 s read timeout) and the server lets
  // the connection go.
  std::optional<RawMessage> m = p.recv();
  std::string seen = "EOF";
  if (m) {
    while (m && m->type == 1) m = p.recv();  // DEL requests may come first
    if (m) {
      EXPECT_EQ(m->type, 2);
      EXPECT_EQ(m->seq, seq);
      EXPECT_EQ(m->body, RawPeer::value(brine::Value(200)));
      seen = "the reply, then EOF";
      EXPECT_FALSE(p.recv().has_value()) << "the stream did not end after the reply";
    }
  }
  std::printf("client half-closes during slow(200): the client saw %s\n", seen.c_str());
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
  expect_still_serving(server.port());
  server.stop();
}

}  // namespace
}  // namespace tether::testing
