// Discovery over a tether registry: discover / connect_by_service, round-robin and random
// balancing, weights, endpoints that refuse or stay silent skipped and cooled down, retries
// with backoff, the cached endpoint set, the host filter, TCP registries, blocking forms.

#include "tether/registry/discovery.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>

#include "registry_fixture.hpp"
#include "tether/net/sockets.hpp"
#include "tether/registry/registry_server.hpp"

namespace tether::registry {
namespace {

using namespace std::chrono_literals;
using tether::testing::connect_n;
using tether::testing::start_announced;
using tether::testing::wait_for;
using tether::testing::whoami_and_close;

class DiscoveryTest : public tether::testing::RegistryTest {
 protected:
  /// `n` echo servers announced to the registry; returns once all are registered.
  void start_servers(int n) {
    expected_ = added_count_ + n;
    added_.clear();
    for (int i = 0; i < n; ++i) {
      AnnounceOptions a;
      a.registry = "udp://127.0.0.1:" + std::to_string(registry_->udp_port());
      servers_.push_back(start_announced("s" + std::to_string(servers_.size()), a));
    }
    run(wait_for(added_, 5s));
  }

  DiscoverOptions options(const std::string& scheme = "udp") {
    DiscoverOptions o;
    o.registry = scheme + "://127.0.0.1:" +
                 std::to_string(scheme == "udp" ? registry_->udp_port() : registry_->tcp_port());
    o.timeout = 1s;
    o.connect_timeout = 1s;
    o.backoff_initial = 20ms;
    o.backoff_max = 100ms;
    return o;
  }

  /// Registers (host, port) under ECHO directly in the table (a server that is not there).
  void register_raw(std::uint16_t port) {
    registry_->table().register_endpoint("127.0.0.1", {"ECHO"}, port, Clock::now());
  }
};

Task<std::vector<Endpoint>> discover_with(ServiceLocator& locator, std::string name) {
  std::vector<Endpoint> eps = co_await locator.discover(std::move(name));
  co_return eps;
}

TEST_F(DiscoveryTest, DiscoverAndConnectByServiceFindAndCall) {
  start_registry();
  start_servers(1);
  std::vector<Endpoint> eps = run(discover("echo", options()));
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_EQ(eps[0].host, "127.0.0.1");
  EXPECT_EQ(eps[0].port, servers_[0]->port());
  std::unique_ptr<Connection> conn = run(connect_by_service("ECHO", options()));
  EXPECT_EQ(run(whoami_and_close(std::move(conn))), "s0");
}

TEST_F(DiscoveryTest, RoundRobinVisitsEveryServerInTurn) {
  start_registry();
  start_servers(3);
  ServiceLocator locator(options());
  std::vector<std::string> ids = run(connect_n(locator, 6));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ids[i], ids[i + 3]) << i;
  EXPECT_NE(ids[0], ids[1]);
  EXPECT_NE(ids[1], ids[2]);
  EXPECT_NE(ids[0], ids[2]);
}

TEST_F(DiscoveryTest, RandomBalancingSpreadsConnections) {
  start_registry();
  start_servers(3);
  DiscoverOptions o = options();
  o.balance = Balance::kRandom;
  ServiceLocator locator(o);
  std::map<std::string, int> count;
  for (const std::string& id : run(connect_n(locator, 30))) ++count[id];
  EXPECT_EQ(count.size(), 3u);  // P(a server never chosen in 30) < 3 * (2/3)^30 ~ 1.6e-5
}

TEST(ServiceLocatorOrder, WeightsCooldownAndDrainingEndpoints) {
  EventLoop loop;
  DiscoverOptions o;
  o.registry = "udp://127.0.0.1:9";  // never asked: order() works on what it is given
  o.cooldown = 1h;
  ServiceLocator locator(o);
  Endpoint a{"10.0.0.1", 1, false, rpc::Generation::kAuto, 3};
  Endpoint b{"10.0.0.2", 2, false, rpc::Generation::kAuto, 1};
  Endpoint c{"10.0.0.3", 3, false, rpc::Generation::kAuto, 0};  // draining
  std::map<std::string, int> first;
  for (int i = 0; i < 8; ++i) {
    std::vector<Endpoint> ordered = locator.order("X", {a, b, c});
    ASSERT_EQ(ordered.size(), 2u);
    ++first[ordered[0].to_string()];
  }
  EXPECT_EQ(first["10.0.0.1:1"], 6);  // smooth weighted round robin: 3:1
  EXPECT_EQ(first["10.0.0.2:2"], 2);
  locator.report_failure(a);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(locator.order("X", {a, b, c}).front(), b);
  locator.report_success(a);
  int a_first = 0;
  for (int i = 0; i < 4; ++i) a_first += locator.order("X", {a, b, c}).front() == a;
  EXPECT_EQ(a_first, 3);
}

/// A port where nothing listens (bound, then closed).
std::uint16_t dead_port() {
  std::vector<Fd> fds = bind_sockets(0, "127.0.0.1");
  return local_address(fds.front().get()).port();
}

TEST_F(DiscoveryTest, RefusingEndpointsAreSkippedAndCooledDown) {
  start_registry();
  register_raw(dead_port());  // registered first: RPyC's order puts it first
  start_servers(1);
  tether::testing::LogCapture log(LogLevel::kDebug);
  ServiceLocator locator(options());
  std::vector<std::string> ids = run(connect_n(locator, 4));
  EXPECT_EQ(ids, (std::vector<std::string>{"s0", "s0", "s0", "s0"}));
  // The dead endpoint was tried once, then left to the end while cooling down.
  std::string all = log.all();
  std::size_t tried = 0;
  for (std::size_t at = all.find("did not answer"); at != std::string::npos;
       at = all.find("did not answer", at + 1))
    ++tried;
  EXPECT_EQ(tried, 1u) << all;
}

TEST_F(DiscoveryTest, SilentEndpointsTimeOutAndAreSkipped) {
  start_registry();
  // Accepts connections (the kernel does, into the backlog) but never answers.
  std::vector<Fd> silent = bind_sockets(0, "127.0.0.1");
  register_raw(local_address(silent.front().get()).port());
  start_servers(1);
  DiscoverOptions o = options();
  o.connect_timeout = 300ms;
  ServiceLocator locator(o);
  const TimePoint t0 = Clock::now();
  std::vector<std::string> ids = run(connect_n(locator, 2));
  EXPECT_EQ(ids, (std::vector<std::string>{"s0", "s0"}));
  EXPECT_LT(Clock::now() - t0, 300ms + 700ms);  // one timeout, not two
}

Task<std::string> failure_of_connect(ServiceLocator& locator) {
  try {
    std::unique_ptr<Connection> c = co_await locator.connect("echo");
    (void)c;
  } catch (const DiscoveryError& e) {
    co_return std::string(e.what());
  }
  co_return std::string("connected");
}

TEST_F(DiscoveryTest, NoServerIsADiscoveryError) {
  start_registry();
  DiscoverOptions o = options();
  o.rounds = 1;
  ServiceLocator locator(o);
  std::string why = run(failure_of_connect(locator));
  EXPECT_NE(why.find("no servers exposing 'ECHO' were found (udp://127.0.0.1:"), std::string::npos) << why;
}

TEST_F(DiscoveryTest, AllDownRetriesWithBackoffThenFailsListingEveryAttempt) {
  start_registry();
  const std::uint16_t a = dead_port();
  const std::uint16_t b = dead_port();
  register_raw(a);
  register_raw(b);
  DiscoverOptions o = options();
  o.rounds = 3;
  o.backoff_initial = 50ms;
  o.backoff_max = 50ms;
  ServiceLocator locator(o);
  const TimePoint t0 = Clock::now();
  std::string why = run(failure_of_connect(locator));
  // Two waits of 25..50 ms (jitter takes up to half off).
  EXPECT_GE(Clock::now() - t0, 50ms);
  EXPECT_NE(why.find("3 round(s)"), std::string::npos) << why;
  for (std::uint16_t p : {a, b}) {
    EXPECT_NE(why.find("127.0.0.1:" + std::to_string(p) + ": "), std::string::npos) << why;
  }
  // Each round asked the registry again (no cache between rounds).
  EXPECT_EQ(registry_->stats().requests, 3u);
}

TEST_F(DiscoveryTest, TheEndpointSetIsCachedUntilItsTtl) {
  start_registry();
  start_servers(1);
  DiscoverOptions o = options();
  o.cache_ttl = 1h;
  ServiceLocator locator(o);
  const std::uint64_t before = registry_->stats().requests;  // the server's REGISTER
  run(discover_with(locator, "echo"));
  run(discover_with(locator, "ECHO"));
  EXPECT_EQ(registry_->stats().requests - before, 1u);
  locator.invalidate("echo");
  run(discover_with(locator, "echo"));
  EXPECT_EQ(registry_->stats().requests - before, 2u);
}

TEST_F(DiscoveryTest, HostFilterAndTcpRegistry) {
  start_registry();
  start_servers(1);
  DiscoverOptions o = options("tcp");
  o.host = "127.0.0.1";
  EXPECT_EQ(run(discover("echo", o)).size(), 1u);
  o.host = "127.0.0.2";
  ServiceLocator locator(o);
  EXPECT_THROW(run(discover_with(locator, "echo")), DiscoveryError);
}

TEST_F(DiscoveryTest, ListServices) {
  start_registry();
  start_servers(1);
  // Listing is refused by default (RPyC's ForbiddenError).
  EXPECT_THROW(run(list_services(options())), DiscoveryError);
}

TEST_F(DiscoveryTest, BlockingFormsFromAThreadWithoutALoop) {
  start_registry();
  start_servers(2);
  DiscoverOptions o = options();
  std::vector<Endpoint> found;
  std::string id;
  std::string error;
  Event done;
  std::thread t([&]() {
    try {
      found = discover_sync("echo", o);
      SyncConnection conn = connect_by_service_sync("echo", o);
      id = conn.callattr<std::string>("whoami");
      conn.close();
    } catch (const std::exception& e) {
      error = e.what();
    }
    loop_.post([&done]() { done.set(); });
  });
  run(wait_for(done, 10s));  // this loop serves the registry and the servers meanwhile
  t.join();
  EXPECT_EQ(error, "");
  EXPECT_EQ(found.size(), 2u);
  EXPECT_TRUE(id == "s0" || id == "s1") << id;
}

}  // namespace
}  // namespace tether::registry
