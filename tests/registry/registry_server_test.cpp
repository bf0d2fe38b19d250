// RegistryServer and RegistryClient over loopback UDP and TCP: RPyC's registry test cases
// (api, listing, filters), and bad input: garbage, oversized, wrong magic, floods of garbage
// and of names, disallowed networks, slow and oversized TCP clients.

#include "tether/registry/registry_server.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "registry/udp_socket.hpp"
#include "test_util.hpp"
#include "tether/brine/codec.hpp"
#include "tether/loop/time.hpp"
#include "tether/net/connect.hpp"
#include "tether/registry/registry_client.hpp"

namespace tether::registry {
namespace {

using namespace std::chrono_literals;
using tether::testing::LoopTest;

/// REGISTER of one alias (GCC 12: no braced lists inside a co_await expression).
Task<bool> reg(const RegistryClient& c, std::string alias, std::uint16_t port) {
  std::vector<std::string> aliases{std::move(alias)};
  const bool ok = co_await c.register_service(std::move(aliases), port);
  co_return ok;
}

class RegistryServerTest : public LoopTest {
 protected:
  void TearDown() override {
    server_.reset();
    LoopTest::TearDown();
  }

  RegistryServer& start(RegistryServerOptions o = RegistryServerOptions()) {
    o.host = "127.0.0.1";
    o.port = 0;
    o.tcp = true;
    server_ = std::make_unique<RegistryServer>(std::move(o));
    server_->start();
    return *server_;
  }

  RegistryClient client(RegistryTransport t, std::string interface = "") {
    RegistryClientOptions o;
    o.transport = t;
    o.host = "127.0.0.1";
    o.port = t == RegistryTransport::kUdp ? server_->udp_port() : server_->tcp_port();
    o.timeout = 2s;
    o.interface = std::move(interface);
    return RegistryClient(std::move(o));
  }

  std::unique_ptr<RegistryServer> server_;
};

class RegistryBothTransports : public RegistryServerTest,
                               public ::testing::WithParamInterface<RegistryTransport> {};

Task<void> api_case(RegistryClient c) {
  EXPECT_TRUE(co_await reg(c, "FOO", 12345));
  EXPECT_TRUE(co_await reg(c, "FOO", 45678));
  std::vector<HostPort> found = co_await c.query("foo");
  EXPECT_EQ(found, (std::vector<HostPort>{{"127.0.0.1", 12345}, {"127.0.0.1", 45678}}));
  co_await c.unregister(12345);
  // UDP's UNREGISTER is not acknowledged; the next request from this host is served after it
  // only if it reached the server first. It did: both leave from loopback in order, but from
  // different sockets, so wait for the table rather than assume.
  for (int i = 0; i < 100; ++i) {
    found = co_await c.query("FOO");
    if (found.size() == 1) break;
  }
  EXPECT_EQ(found, (std::vector<HostPort>{{"127.0.0.1", 45678}}));
  std::optional<std::vector<std::string>> names = co_await c.list();
  EXPECT_EQ(names, (std::vector<std::string>{"FOO"}));
  EXPECT_TRUE(co_await reg(c, "BAR", 54321));
  names = co_await c.list();
  EXPECT_EQ(names, (std::vector<std::string>{"BAR", "FOO"}));
}

TEST_P(RegistryBothTransports, ApiAsRpycsTest) {
  RegistryServerOptions o;
  o.allow_listing = true;
  start(o);
  run(api_case(client(GetParam())));
  EXPECT_EQ(server_->stats().garbage, 0u);
}

Task<void> listing_case(RegistryClient from_1, RegistryClient from_2) {
  EXPECT_TRUE(co_await reg(from_1, "FOO", 12345));
  EXPECT_TRUE(co_await reg(from_2, "BAR", 54321));
  std::vector<HostPort> foo = co_await from_1.query("FOO");
  EXPECT_EQ(foo.at(0).host, "127.0.0.1");
  std::vector<HostPort> bar = co_await from_1.query("BAR");
  EXPECT_EQ(bar.at(0).host, "127.0.0.2");  // the address the REGISTER came from
  std::optional<std::vector<std::string>> all = co_await from_1.list();
  EXPECT_EQ(all, (std::vector<std::string>{"BAR", "FOO"}));
  std::optional<std::vector<std::string>> on_1 = co_await from_1.list(std::string("127.0.0.1"));
  EXPECT_EQ(on_1, (std::vector<std::string>{"FOO"}));
}

TEST_F(RegistryServerTest, ListingWithHostFilter) {
  RegistryServerOptions o;
  o.allow_listing = true;
  start(o);
  run(listing_case(client(RegistryTransport::kUdp, "127.0.0.1"),
                   client(RegistryTransport::kUdp, "127.0.0.2")));
}

Task<void> listing_refused(RegistryClient c) {
  std::optional<std::vector<std::string>> names = co_await c.list();
  EXPECT_FALSE(names);
}

TEST_P(RegistryBothTransports, ListingIsOffByDefault) {
  start();
  run(listing_refused(client(GetParam())));
}

INSTANTIATE_TEST_SUITE_P(Transports, RegistryBothTransports,
                         ::testing::Values(RegistryTransport::kUdp, RegistryTransport::kTcp),
                         [](const auto& info) {
                           return info.param == RegistryTransport::kUdp ? "Udp" : "Tcp";
                         });

Task<std::string> failure_of(Task<std::vector<HostPort>> t) {
  try {
    std::vector<HostPort> r = co_await std::move(t);
    (void)r;
  } catch (const Error& e) {
    co_return std::string(to_string(e.kind())) + ": " + e.what();
  }
  co_return std::string("no error");
}

TEST_F(RegistryServerTest, NoRegistryIsAnErrorNotAnEmptyAnswer) {
  start();
  const std::uint16_t udp_port = server_->udp_port();
  const std::uint16_t tcp_port = server_->tcp_port();
  server_->close();
  RegistryClientOptions o;
  o.host = "127.0.0.1";
  o.port = udp_port;
  o.timeout = 200ms;
  std::string udp = run(failure_of(RegistryClient(o).query("X")));
  EXPECT_NE(udp.find("no registry answered at udp://127.0.0.1:"), std::string::npos) << udp;
  o.transport = RegistryTransport::kTcp;
  o.port = tcp_port;
  std::string tcp = run(failure_of(RegistryClient(o).query("X")));
  EXPECT_NE(tcp.find("refused"), std::string::npos) << tcp;
  EXPECT_FALSE(run(reg(RegistryClient(o), "X", 1)));
}

// --- bad input over UDP --------------------------------------------------------------------------

/// Sends `datagrams` from one socket, then a QUERY from the same socket, and waits for its
/// answer: datagrams from one socket are served in order, so all were handled by then.
Task<std::size_t> send_then_query(std::uint16_t port, std::vector<Bytes> datagrams) {
  detail::UdpSocket s(EventLoop::current_or_throw(), *Address::from_ip("127.0.0.1", 0));
  const Address to = Address::loopback_v4(port);
  for (const Bytes& d : datagrams) EXPECT_TRUE(s.send_to(d.span(), to));
  const Bytes query = encode_query("PROBE");
  EXPECT_TRUE(s.send_to(query.span(), to));
  std::size_t replies = 0;
  for (;;) {
    const bool readable = co_await s.readable(5s);
    if (!readable) break;
    std::optional<detail::UdpSocket::Datagram> d = s.try_receive(kMaxUdpListReply);
    if (!d) continue;
    ++replies;
    if (decode_query_reply(d->data.span())) break;  // the probe's answer
  }
  co_return replies;
}

TEST_F(RegistryServerTest, GarbageOversizedAndMalformedDatagramsAreIgnoredAndCounted) {
  start();
  std::vector<Bytes> bad;
  bad.push_back(Bytes::from("\xff\xfe garbage"));
  bad.push_back(Bytes());
  bad.push_back(Bytes::filled(2000, 0x02));
  bad.push_back(Bytes::filled(60000, 'x'));
  bad.push_back(brine::dump(brine::Value::make_tuple("NOPE", "QUERY", brine::Value::make_tuple("X"))));
  bad.push_back(brine::dump(brine::Value::make_tuple("RPYC", "EXPLODE", brine::Value::make_tuple())));
  bad.push_back(brine::dump(brine::Value::make_tuple("RPYC", "REGISTER", brine::Value::make_tuple("X", 0))));
  const std::size_t replies = run(send_then_query(server_->udp_port(), std::move(bad)));
  EXPECT_EQ(replies, 1u);  // only the probe was answered
  RegistryServerStats st = server_->stats();
  EXPECT_EQ(st.garbage, 2u);
  EXPECT_EQ(st.oversized, 2u);
  EXPECT_EQ(st.bad_magic, 1u);
  EXPECT_EQ(st.unknown_command, 1u);
  EXPECT_EQ(st.bad_arguments, 1u);
  EXPECT_EQ(st.requests, 1u);
  EXPECT_EQ(st.entries, 0u);
}

Task<void> flood(std::uint16_t port, int batches, int per_batch) {
  for (int b = 0; b < batches; ++b) {
    std::vector<Bytes> junk;
    for (int i = 0; i < per_batch; ++i)
      junk.push_back(Bytes::from("junk" + std::to_string(b * per_batch + i)));
    const std::size_t replies = co_await send_then_query(port, std::move(junk));
    EXPECT_EQ(replies, 1u);
  }
}

TEST_F(RegistryServerTest, AFloodOfGarbageDoesNotStopService) {
  start();
  run(flood(server_->udp_port(), 50, 100));
  EXPECT_EQ(server_->stats().garbage, 5000u);
  EXPECT_EQ(server_->stats().requests, 50u);
}

Task<void> refused_case(RegistryClient c, std::uint16_t port) {
  EXPECT_FALSE(co_await reg(c, "EVIL", 666));
  std::vector<Bytes> unregister;
  unregister.push_back(encode_unregister(666));
  const std::size_t replies = co_await send_then_query(port, std::move(unregister));
  EXPECT_EQ(replies, 1u);
}

TEST_F(RegistryServerTest, RegistrationsFromOutsideTheAllowedNetworksAreRefused) {
  RegistryServerOptions o;
  o.allowed_networks = *NetworkList::parse("10.0.0.0/8");
  start(o);
  RegistryClient c = client(RegistryTransport::kUdp);
  run(refused_case(c, server_->udp_port()));
  EXPECT_EQ(server_->stats().refused_network, 2u);
  EXPECT_EQ(server_->stats().entries, 0u);
}

Task<int> register_many(RegistryClient c, int n) {
  int acknowledged = 0;
  for (int i = 0; i < n; ++i) {
    const bool ok = co_await reg(c, "FLOOD" + std::to_string(i), 1000);
    if (ok) ++acknowledged;
  }
  co_return acknowledged;
}

TEST_F(RegistryServerTest, ANameFloodIsBounded) {
  RegistryServerOptions o;
  o.limits.max_services = 50;
  start(o);
  RegistryClientOptions co;
  co.host = "127.0.0.1";
  co.port = server_->udp_port();
  co.timeout = 100ms;  // refused registrations are not answered
  const int acknowledged = run(register_many(RegistryClient(co), 80));
  EXPECT_EQ(acknowledged, 50);
  RegistryServerStats st = server_->stats();
  EXPECT_EQ(st.services, 50u);
  EXPECT_EQ(st.refused_full, 30u);
}

Task<void> register_hosts(RegistryServer& server, int n) {
  for (int i = 0; i < n; ++i) {
    server.handle(encode_register({"WIDE"}, static_cast<std::uint16_t>(20000 + i)).span(),
                  "192.168.77." + std::to_string(i), RegistryServer::Via::kUdp);
  }
  co_return;
}

Task<std::size_t> query_count(RegistryClient c) {
  std::vector<HostPort> found = co_await c.query("WIDE");
  co_return found.size();
}

TEST_F(RegistryServerTest, LongAnswersAreCutAndCounted) {
  RegistryServerOptions o;
  o.limits.max_endpoints_per_service = 200;
  start(o);
  run(register_hosts(*server_, 150));
  const std::size_t got = run(query_count(client(RegistryTransport::kUdp)));
  EXPECT_GT(got, 40u);
  EXPECT_LT(got, 150u);
  EXPECT_EQ(server_->stats().truncated_replies, 1u);
}

// --- bad input over TCP ---------------------------------------------------------------------

/// Connects, sends `parts` (each written and flushed on its own), waits for the server to close;
/// returns what it answered (nothing when it reset the connection: it closes with unread bytes).
Task<Bytes> tcp_send(std::uint16_t port, std::vector<Bytes> parts) {
  std::unique_ptr<BufferedStream> s = co_await open_connection("127.0.0.1", port);
  Bytes reply;
  try {
    for (const Bytes& p : parts) {
      s->write(p.view());
      co_await s->flush();
    }
    reply = co_await s->read_until_close();
  } catch (const Error&) {
  }
  co_return reply;
}

TEST_F(RegistryServerTest, TcpRequestsInPiecesGarbageSilenceAndOversize) {
  RegistryServerOptions o;
  o.tcp_timeout = 300ms;
  start(o);
  const std::uint16_t port = server_->tcp_port();
  const Bytes query = encode_query("X");
  std::vector<Bytes> halves{Bytes(query.view().substr(0, 5)), Bytes(query.view().substr(5))};
  EXPECT_EQ(run(tcp_send(port, halves)), encode_query_reply({}));
  std::vector<Bytes> garbage{Bytes::from("GET / HTTP/1.0\r\n\r\n")};
  EXPECT_TRUE(run(tcp_send(port, garbage)).empty());  // ignored once the time is up
  EXPECT_TRUE(run(tcp_send(port, {})).empty());       // silence
  std::vector<Bytes> big{Bytes::filled(3000, 0x02)};
  EXPECT_TRUE(run(tcp_send(port, big)).empty());
  RegistryServerStats st = server_->stats();
  EXPECT_EQ(st.requests, 1u);
  EXPECT_EQ(st.tcp_timeouts, 2u);
  EXPECT_EQ(st.oversized, 1u);
  EXPECT_EQ(st.tcp_connections, 4u);
}

}  // namespace
}  // namespace tether::registry
