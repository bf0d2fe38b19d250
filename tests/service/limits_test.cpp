// What a careless or hostile client can make a server hold, and for how long: a client that
// never reads its replies, frame headers announcing bodies that never come, a frame trickled a
// byte at a time, an idle connection, a small compressed request that decodes into millions of
// values, and many large requests at once. Each bound is asserted against the limits that
// imply it; memory is measured in-process (heap_probe.hpp) around a ServerThread.

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "heap_probe.hpp"
#include "raw_peer.hpp"
#include "tether/base/buffer.hpp"
#include "tether/base/bytes.hpp"
#include "tether/base/endian.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/time.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"
#include "tether/service/sync.hpp"

namespace tether {
namespace {

using brine::Value;
using testing::HeapPeak;
using testing::heap_in_use;
using testing::RawMessage;
using testing::eventually;
using testing::RawPeer;
using namespace std::chrono_literals;

constexpr std::size_t kBlob = 16 * 1024;

std::atomic<int> g_held{0};
std::atomic<bool> g_release{false};

Task<std::int64_t> hold(Bytes data) {
  ++g_held;
  while (!g_release.load()) co_await sleep(1ms);
  co_return static_cast<std::int64_t>(data.size());
}

Task<std::int64_t> sleep_ms(std::int64_t ms) {
  co_await sleep(std::chrono::milliseconds(ms));
  co_return ms;
}

Service limits_service() {
  Service svc("LimitsService");
  svc.expose("blob", []() { return Bytes(std::string(kBlob, 'b')); });
  svc.expose("echo", [](Bytes b) { return b; });
  svc.expose("count", [](Value v) { return static_cast<std::int64_t>(v.is_tuple() ? v.as_tuple().size() : 0); });
  svc.expose_async("hold", &hold);
  svc.expose_async("sleep_ms", &sleep_ms);
  svc.expose("add", [](std::int64_t a, std::int64_t b) { return a + b; });
  return svc;
}

ServeOptions loopback() {
  ServeOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.shutdown_grace = 1s;
  return o;
}

/// Whether the server has closed the peer's socket (EOF or reset) within `limit`.
bool closed_by_server(int fd, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return true;
  }
}

void expect_still_serving(std::uint16_t port) {
  SyncConnection c = connect_sync("127.0.0.1", port);
  EXPECT_EQ(c.callattr<std::int64_t>("add", 2, 3), 5);
  c.close();
}

// ------------------------------------------------------------ a client that never reads

TEST(ServerLimits, ClientThatNeverReadsHoldsBoundedMemoryReturnedWhenItGoes) {
  ServeOptions o = loopback();
  ServerThread server(limits_service(), o);
  expect_still_serving(server.port());  // warm up: pools and first allocations
  const std::size_t before = heap_in_use();
  HeapPeak peak;

  RawPeer p(server.port());
  p.get_root();
  // Requests of ~60 bytes, each answered with 16 KiB; sent until the server stops reading
  // (the socket buffers fill and a send waits 500 ms in vain).
  std::size_t sent = 0;
  std::string batch;
  for (int i = 0; i < 64; ++i) {
    batch += RawPeer::request_frame(static_cast<std::int64_t>(1000 + i), rpc::Handler::kCallAttr,
                                    RawPeer::boxed_tuple(RawPeer::theirs(p.root()), RawPeer::value(Value("blob")),
                                                         RawPeer::value(Value::make_tuple()),
                                                         RawPeer::value(Value::make_tuple())));
  }
  for (;;) {
    pollfd pf{p.fd(), POLLOUT, 0};
    if (::poll(&pf, 1, 500) <= 0) break;  // blocked: the server no longer reads
    const ssize_t n = ::send(p.fd(), batch.data(), batch.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
    if (static_cast<std::size_t>(n) < batch.size()) {
      // finish this batch's frames before the next (keeps the framing whole)
      std::size_t off = static_cast<std::size_t>(n);
      bool stuck = false;
      while (off < batch.size()) {
        pollfd pw{p.fd(), POLLOUT, 0};
        if (::poll(&pw, 1, 500) <= 0) {
          stuck = true;
          break;
        }
        const ssize_t m = ::send(p.fd(), batch.data() + off, batch.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (m <= 0) break;
        off += static_cast<std::size_t>(m);
        sent += static_cast<std::size_t>(m);
      }
      if (stuck) break;
    }
    if (sent > (std::size_t{256} << 20)) break;  // the server kept reading: the check below fails
  }
  const std::size_t requests = sent / (batch.size() / 64);
  const std::size_t grown = peak.peak_growth();
  peak.stop();
  // Without backpressure the server would have produced a reply per request read.
  const std::size_t unbounded = requests * kBlob;
  // The bound: the write high watermark, plus the replies of the requests decoded before the
  // serving loop noticed (one read's worth, at most 256 frames per turn), plus read buffers.
  const std::size_t bound = o.server.stream.write_high_water + 300 * (kBlob + 512) + (4u << 20);
  EXPECT_GT(unbounded, 4 * bound) << "too few requests got through to tell (" << requests << ")";
  EXPECT_LT(grown, bound) << "server heap grew by " << grown << " bytes for " << requests << " requests sent";
  std::printf("non-reading client: %zu requests sent (%zu MiB of replies unbounded), heap +%zu KiB (bound %zu KiB)\n",
              requests, unbounded >> 20, grown >> 10, bound >> 10);

  p.close_rst();
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
  expect_still_serving(server.port());
  EXPECT_LT(heap_in_use(), before + (1u << 20)) << "memory returned when the connection went";
  server.stop();
}

// --------------------------------------------------- announced frames that never come

TEST(ServerLimits, FrameHeadersAnnouncingLargeBodiesCostLittle) {
  ServerThread server(limits_service(), loopback());
  expect_still_serving(server.port());
  HeapPeak peak;
  std::vector<std::unique_ptr<RawPeer>> peers;
  for (int i = 0; i < 20; ++i) {
    auto p = std::make_unique<RawPeer>(server.port());
    std::string header(5, '\0');
    store_be32(reinterpret_cast<std::uint8_t*>(header.data()), 60u << 20);  // 60 MiB announced
    p->send_bytes(header);
    peers.push_back(std::move(p));
  }
  // The headers have been read (a fresh call through the same loop goes after them); then one
  // byte of each body arrives, and is read toward the announced size.
  EXPECT_TRUE(eventually([&] { return server.connections() == 20; }));
  expect_still_serving(server.port());
  for (auto& p : peers) p->send_bytes("x");
  expect_still_serving(server.port());
  expect_still_serving(server.port());
  const std::size_t grown = peak.peak_growth();
  peak.stop();
  EXPECT_LT(grown, std::size_t{20} * (512u << 10))
      << "20 peers that announced 60 MiB and sent a byte cost " << (grown >> 20) << " MiB";
  std::printf("20 announced 60 MiB frames: heap +%zu KiB\n", grown >> 10);
  // A legitimate large call still works beside them.
  {
    SyncConnection c = connect_sync("127.0.0.1", server.port());
    Bytes big(std::string(8u << 20, 'z'));
    Bytes back = c.callattr<Bytes>("echo", big);
    EXPECT_EQ(back.size(), big.size());
    c.close();
  }
  peers.clear();
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
  server.stop();
}

// ----------------------------------------------------------- trickling and idle peers

TEST(ServerLimits, TricklingFrameIsCutWhileASlowSteadyUploadIsNot) {
  ServeOptions o = loopback();
  o.connection.frame_timeout = 300ms;
  o.connection.min_frame_rate = 16 * 1024;  // bytes per second
  ServerThread server(limits_service(), o);

  // The steady one: a 256 KiB echo request sent in 8 KiB pieces every 10 ms (~800 KiB/s),
  // taking longer than one frame_timeout in all.
  RawPeer steady(server.port());
  steady.get_root();
  const std::string request = RawPeer::request_frame(
      7, rpc::Handler::kCallAttr,
      RawPeer::boxed_tuple(RawPeer::theirs(steady.root()), RawPeer::value(Value("echo")),
                           RawPeer::boxed_tuple(RawPeer::value(Value(Bytes(std::string(256 * 1024, 's'))))),
                           RawPeer::value(Value::make_tuple())));
  // The trickler: a frame announcing 1000 bytes, then a byte every 20 ms (50 bytes/s).
  RawPeer trickler(server.port());
  trickler.get_root();
  std::string header(5, '\0');
  store_be32(reinterpret_cast<std::uint8_t*>(header.data()), 1000);
  trickler.send_bytes(header);

  const auto start = std::chrono::steady_clock::now();
  std::size_t off = 0;
  bool trickler_cut = false;
  while (off < request.size() || !trickler_cut) {
    if (off < request.size()) {
      const std::size_t n = std::min<std::size_t>(4096, request.size() - off);
      steady.send_bytes(request.substr(off, n));
      off += n;
    }
    if (!trickler_cut) {
      try {
        trickler.send_bytes("t");
      } catch (...) {
        trickler_cut = true;  // the server closed it
      }
      if (!trickler_cut) trickler_cut = closed_by_server(trickler.fd(), 1ms);
    }
    std::this_thread::sleep_for(10ms);  // pacing the peers, not synchronisation
    ASSERT_LT(std::chrono::steady_clock::now() - start, 10s) << "neither finished";
  }
  const auto upload = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(trickler_cut);
  RawMessage reply = steady.expect(2);
  EXPECT_EQ(reply.seq, 7);
  EXPECT_EQ(reply.body.as_tuple()[1].as_bytes().size(), 256u * 1024u);
  EXPECT_GT(upload, o.connection.frame_timeout) << "the steady upload outlasted frame_timeout and was kept";
  server.stop();
}

TEST(ServerLimits, IdleConnectionIsClosedButNotOneWaitingForAReply) {
  ServeOptions o = loopback();
  o.connection.idle_timeout = 200ms;
  ServerThread server(limits_service(), o);
  RawPeer idle(server.port());
  idle.get_root();
  RawPeer busy(server.port());
  busy.get_root();
  // The busy one waits 900 ms for its reply: longer than idle_timeout, but a call is pending.
  const std::int64_t seq = busy.callattr("sleep_ms", RawPeer::value(Value(900)));
  EXPECT_TRUE(closed_by_server(idle.fd(), 5s)) << "the idle connection was closed";
  RawMessage r = busy.expect(2);
  EXPECT_EQ(r.seq, seq);
  EXPECT_EQ(r.body, RawPeer::value(Value(900)));
  EXPECT_TRUE(closed_by_server(busy.fd(), 5s)) << "and once idle, the busy one too";
  server.stop();
}

// ------------------------------------------------------------------ amplification

/// A compressed frame: header + zlib(payload) + trailer.
std::string compressed_frame(const std::string& payload) {
  uLongf bound = compressBound(payload.size());
  std::string body(bound, '\0');
  compress2(reinterpret_cast<Bytef*>(body.data()), &bound, reinterpret_cast<const Bytef*>(payload.data()),
            payload.size(), 9);
  body.resize(bound);
  std::string f(5, '\0');
  store_be32(reinterpret_cast<std::uint8_t*>(f.data()), static_cast<std::uint32_t>(body.size()));
  f[4] = 1;
  return f + body + '\n';
}

TEST(ServerLimits, SmallCompressedRequestOfMillionsOfValuesCostsAtMostAFewBudgets) {
  ServeOptions o = loopback();
  o.connection.limits.max_decoded_bytes = 8u << 20;
  ServerThread server(limits_service(), o);
  RawPeer p(server.port());
  p.get_root();
  // count((0, 0, 0, ... 4 million times)): ~4 MB of brine (one byte per 0), a few KB zipped.
  constexpr std::uint32_t kItems = 4'000'000;
  std::string args_tuple;
  args_tuple += static_cast<char>(brine::tag::kTupL4);
  std::string len(4, '\0');
  store_be32(reinterpret_cast<std::uint8_t*>(len.data()), kItems);
  args_tuple += len;
  args_tuple.append(kItems, static_cast<char>(brine::tag::kImmBias));  // the int 0
  Buffer prefix;
  // (1, seq, (CALLATTR, (TUPLE, ((LOCAL_REF root), (VALUE "count"), (VALUE (big,)), (VALUE ()))))
  brine::dump_tuple_header(3, prefix);
  brine::dump_into(Value(1), prefix);
  brine::dump_into(Value(9), prefix);
  brine::dump_tuple_header(2, prefix);
  brine::dump_into(Value(static_cast<std::int64_t>(rpc::Handler::kCallAttr)), prefix);
  brine::dump_tuple_header(2, prefix);
  brine::dump_into(Value(2), prefix);
  brine::dump_tuple_header(4, prefix);
  brine::dump_into(RawPeer::theirs(p.root()), prefix);
  brine::dump_into(RawPeer::value(Value("count")), prefix);
  brine::dump_tuple_header(2, prefix);
  brine::dump_into(Value(1), prefix);
  brine::dump_tuple_header(1, prefix);
  std::string payload = std::string(prefix.view()) + args_tuple;
  brine::dump_into(RawPeer::value(Value::make_tuple()), payload);
  const std::string frame = compressed_frame(payload);
  ASSERT_LT(frame.size(), 16u * 1024u);

  HeapPeak peak;
  p.send_bytes(frame);
  EXPECT_TRUE(closed_by_server(p.fd(), 20s)) << "the request breaks the budget: the connection closes";
  const std::size_t grown = peak.peak_growth();
  peak.stop();
  std::printf("4 M values in a %zu-byte frame: heap peak +%zu KiB (budget %zu KiB)\n", frame.size(), grown >> 10,
              o.connection.limits.max_decoded_bytes >> 10);
  // The inflated payload (4 MB) plus at most about twice the budget.
  EXPECT_LT(grown, payload.size() + 3 * o.connection.limits.max_decoded_bytes);
  expect_still_serving(server.port());
  server.stop();
}

TEST(ServerLimits, DecodedMemoryInFlightPerConnectionPausesReading) {
  ServeOptions o = loopback();
  o.connection.max_inflight_decoded_bytes = 1u << 20;
  ServerThread server(limits_service(), o);
  g_held = 0;
  g_release = false;
  RawPeer p(server.port());
  p.get_root();
  // Ten requests of 300 KiB each to a method that holds them: at most four fit the budget
  // (the fourth goes past it, then reading pauses).
  for (int i = 0; i < 10; ++i) p.callattr("hold", RawPeer::value(Value(Bytes(std::string(300 * 1024, 'h')))));
  EXPECT_TRUE(eventually([] { return g_held.load() >= 4; }));
  // A call through another connection orders after this one's reads.
  expect_still_serving(server.port());
  EXPECT_EQ(g_held.load(), 4) << "reading paused while 4 x 300 KiB were being served";
  g_release = true;
  for (int i = 0; i < 10; ++i) {
    RawMessage r = p.expect(2);
    EXPECT_EQ(r.body, RawPeer::value(Value(300 * 1024)));
  }
  EXPECT_EQ(g_held.load(), 10);
  server.stop();
}

}  // namespace
}  // namespace tether
