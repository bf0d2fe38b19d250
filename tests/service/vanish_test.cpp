// A peer that vanishes while the server is calling back into it (issue: SIGSEGV of the server),
// and a peer whose callback is held while other clients are served. Every way of leaving —
// EOF, reset, half a frame — at nesting depths 1 and 10, for the three kinds of binding that
// call back: synchronous with a std::function (runs on a fiber), a coroutine awaiting a
// Netref, and a blocking binding on the worker pool.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "raw_peer.hpp"
#include "tether/base/error.hpp"
#include "tether/rpc/any.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"
#include "tether/service/sync.hpp"

namespace tether {
namespace {

using brine::Value;
using testing::RawMessage;
using testing::eventually;
using testing::RawPeer;
using namespace std::chrono_literals;

// What the bindings saw (test-wide: coroutine bindings cannot capture).
std::atomic<int> g_started{0};
std::atomic<int> g_disconnected{0};
std::atomic<int> g_other{0};
std::atomic<int> g_returned{0};

void reset_counters() {
  g_started = 0;
  g_disconnected = 0;
  g_other = 0;
  g_returned = 0;
}

std::int64_t apply_sync(std::function<std::int64_t(std::int64_t)> f, std::int64_t x) {
  ++g_started;
  try {
    std::int64_t r = f(x);
    ++g_returned;
    return r;
  } catch (const Disconnected&) {
    ++g_disconnected;
    throw;
  } catch (...) {
    ++g_other;
    throw;
  }
}

Task<std::int64_t> apply_async(Netref f, std::int64_t x) {
  ++g_started;
  Any r;
  try {
    Any got = co_await f.call(make_args(x));
    r = std::move(got);
  } catch (const Disconnected&) {
    ++g_disconnected;
    throw;
  } catch (...) {
    ++g_other;
    throw;
  }
  ++g_returned;
  co_return r.value().as_int64();
}

Service vanish_service() {
  Service svc("VanishService");
  svc.expose("apply_sync", &apply_sync, arg_names("f", "x"));
  svc.expose_async("apply_async", &apply_async, arg_names("f", "x"));
  svc.expose_blocking("apply_blocking", &apply_sync, arg_names("f", "x"));
  svc.expose("add", [](std::int64_t a, std::int64_t b) { return a + b; });
  return svc;
}

ServeOptions loopback() {
  ServeOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.server.worker_threads = 16;  // blocking bindings nested 10 deep each hold a worker
  o.shutdown_grace = 2s;
  return o;
}

/// Turns `pred` until it holds or `limit` passes (a bounded wait for another thread's work).
/// The server still serves a fresh client, start to end.
void expect_still_serving(std::uint16_t port) {
  SyncConnection c = connect_sync("127.0.0.1", port);
  EXPECT_EQ(c.callattr<std::int64_t>("add", 20, 22), 42);
  c.close();
}

enum class Leave { kEof, kReset, kMidFrame };

std::string leave_name(Leave how) {
  switch (how) {
    case Leave::kEof: return "eof";
    case Leave::kReset: return "reset";
    case Leave::kMidFrame: return "mid-frame";
  }
  return "?";
}

/// Calls `method(f, 1)`; each callback the server makes into f is answered by calling
/// `method(f, level + 1)` again, `depth` levels deep; then the peer leaves `how`.
void vanish_during_callbacks(std::uint16_t port, const std::string& method, int depth, Leave how) {
  RawPeer p(port);
  p.get_root();
  std::int64_t last_callback_seq = -1;
  p.callattr(method, RawPeer::ours(RawPeer::function_id(1)), RawPeer::value(Value(1)));
  for (int level = 1; level <= depth; ++level) {
    RawMessage m = p.expect(1);  // the server calls our function
    ASSERT_EQ(m.handler(), static_cast<std::int64_t>(rpc::Handler::kCall)) << "level " << level;
    last_callback_seq = m.seq;
    if (level < depth) {
      p.callattr(method, RawPeer::ours(RawPeer::function_id(1)), RawPeer::value(Value(level + 1)));
    }
  }
  switch (how) {
    case Leave::kEof: p.close_eof(); break;
    case Leave::kReset: p.close_rst(); break;
    case Leave::kMidFrame: {
      // Half of the reply the server waits for, then EOF.
      const std::string reply = RawPeer::frame(2, last_callback_seq, RawPeer::value(Value(7)));
      p.close_mid_frame(reply, reply.size() / 2);
      break;
    }
  }
}

struct Case {
  std::string method;
  int depth;
  Leave how;
};

class VanishDuringCallback : public ::testing::TestWithParam<Case> {};

TEST_P(VanishDuringCallback, BindingSeesDisconnectedAndServerKeepsServing) {
  const Case& c = GetParam();
  reset_counters();
  ServerThread server(vanish_service(), loopback());
  vanish_during_callbacks(server.port(), c.method, c.depth, c.how);
  // Every waiting binding's callback failed with Disconnected inside the binding, the
  // connection went, and nothing else was disturbed.
  EXPECT_TRUE(eventually([&] { return g_disconnected.load() == c.depth; }))
      << "bindings that saw Disconnected: " << g_disconnected.load() << " of " << c.depth;
  EXPECT_EQ(g_started.load(), c.depth);
  EXPECT_EQ(g_other.load(), 0);
  EXPECT_EQ(g_returned.load(), 0);
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
  expect_still_serving(server.port());
  server.stop();
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (const char* m : {"apply_sync", "apply_async", "apply_blocking"}) {
    for (int depth : {1, 10}) {
      for (Leave how : {Leave::kEof, Leave::kReset, Leave::kMidFrame}) out.push_back(Case{m, depth, how});
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Bindings, VanishDuringCallback, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string name = info.param.method + "_depth" + std::to_string(info.param.depth) +
                                              "_" + leave_name(info.param.how);
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

TEST(VanishDuringCallback, ManyClientsEachLeaveACallbackUnansweredThenAllClose) {
  reset_counters();
  constexpr int kClients = 250;
  ServerThread server(vanish_service(), loopback());
  std::vector<std::unique_ptr<RawPeer>> peers;
  for (int i = 0; i < kClients; ++i) {
    auto p = std::make_unique<RawPeer>(server.port());
    p->get_root();
    p->callattr(i % 2 ? "apply_sync" : "apply_async", RawPeer::ours(RawPeer::function_id(1)),
                RawPeer::value(Value(i)));
    peers.push_back(std::move(p));
  }
  for (auto& p : peers) {
    RawMessage m = p->expect(1);
    ASSERT_EQ(m.handler(), static_cast<std::int64_t>(rpc::Handler::kCall));
  }
  EXPECT_EQ(g_started.load(), kClients);
  // While all 250 callbacks are pending, a fresh client is served at once.
  expect_still_serving(server.port());
  for (std::size_t i = 0; i < peers.size(); ++i) {
    if (i % 2) {
      peers[i]->close_eof();
    } else {
      peers[i]->close_rst();
    }
  }
  EXPECT_TRUE(eventually([&] { return g_disconnected.load() == kClients; }))
      << g_disconnected.load() << " of " << kClients;
  EXPECT_EQ(g_other.load(), 0);
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
  expect_still_serving(server.port());
  server.stop();
}

// ------------------------------------------------------------------- a held callback

// Client H's callback is held; client L calls the same binding and answers at once: L's reply
// must not wait for H's (a nested loop would make it: an inner wait ends before an outer one).
// A fresh client's GETROOT is answered meanwhile too. Ordering is asserted, not time.
class HeldCallback : public ::testing::TestWithParam<std::string> {};

TEST_P(HeldCallback, DoesNotDelayAnotherClientsReplyOrAFreshConnection) {
  const std::string method = GetParam();
  reset_counters();
  ServerThread server(vanish_service(), loopback());

  RawPeer h(server.port());
  h.get_root();
  h.callattr(method, RawPeer::ours(RawPeer::function_id(1)), RawPeer::value(Value(5)));
  RawMessage h_callback = h.expect(1);  // held: not answered yet

  RawPeer l(server.port());
  l.get_root();
  const std::int64_t l_seq = l.callattr(method, RawPeer::ours(RawPeer::function_id(1)), RawPeer::value(Value(3)));
  RawMessage l_callback = l.expect(1);
  l.reply(l_callback.seq, RawPeer::value(Value(30)));  // f(3) = 30
  RawMessage l_reply = l.expect(2);                    // arrives while H's callback is held
  EXPECT_EQ(l_reply.seq, l_seq);
  EXPECT_EQ(l_reply.body, RawPeer::value(Value(30)));

  RawPeer fresh(server.port());
  EXPECT_TRUE(fresh.get_root().is_tuple()) << "a fresh client's GETROOT is answered";

  EXPECT_EQ(g_returned.load(), 1) << "only L's binding has returned";
  h.reply(h_callback.seq, RawPeer::value(Value(50)));
  RawMessage h_reply = h.expect(2);
  EXPECT_EQ(h_reply.body, RawPeer::value(Value(50)));
  EXPECT_EQ(g_returned.load(), 2);
  server.stop();
}

INSTANTIATE_TEST_SUITE_P(Bindings, HeldCallback, ::testing::Values("apply_sync", "apply_async", "apply_blocking"));

}  // namespace
}  // namespace tether
