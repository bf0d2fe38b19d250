// Across hosts, simulated: two network namespaces joined by a veth pair (10.231.0.1/24 in A,
// 10.231.0.2/24 in B). Each side's code runs on a thread that entered its namespace, with a loop
// of its own.
//
//  * UDP broadcast discovery with RPyC's defaults (255.255.255.255, port 18811): a registry
//    and a server in A, a server in B announcing by broadcast across the pair; a client in B
//    finds both by broadcast and calls each.
//  * An etcd-backed call: etcd and a server in A, a client in B watching etcd across the pair.
//
// Needs root (CAP_SYS_ADMIN) and iproute2; skipped with the reason otherwise.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "etcd_process.hpp"
#include "netns_util.hpp"
#include "registry_fixture.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/registry/discovery.hpp"
#include "tether/registry/registry_server.hpp"

namespace tether::registry {
namespace {

using namespace std::chrono_literals;
using tether::testing::echo_service;
using tether::testing::whoami_and_close;

using tether::testing::kAddrA;
using tether::testing::kAddrB;
using tether::testing::NetnsPair;
using tether::testing::NetnsThread;

std::unique_ptr<Server> start_server(const std::string& id, const std::string& host, AnnounceOptions a) {
  ServeOptions o;
  o.host = host;
  o.port = 0;
  o.hooks.push_back(announce(std::move(a)));
  auto s = std::make_unique<Server>(echo_service(id), std::move(o));
  s->start();
  return s;
}

/// Finds `expected` servers of ECHO (waiting for the set to change when a watched registry
/// has fewer yet), then connects `expected` times (round robin: each once).
Task<std::set<std::string>> discover_and_call(DiscoverOptions o, std::size_t expected) {
  ServiceLocator locator(o);
  Event changed;
  locator.set_on_change([&changed](const std::string&, const std::vector<Endpoint>&) { changed.set(); });
  locator.watch("echo");
  std::vector<Endpoint> eps;
  const TimePoint deadline = Clock::now() + 20s;
  for (;;) {
    changed.clear();
    try {
      eps = co_await locator.discover("echo");
    } catch (const DiscoveryError&) {
      eps.clear();
    }
    if (eps.size() >= expected) break;
    co_await with_timeout(deadline - Clock::now(), changed.wait());  // Timeout ends the test
  }
  std::set<std::string> out;
  for (const Endpoint& e : eps) out.insert("at " + e.to_string());
  for (std::size_t i = 0; i < expected; ++i) {
    std::unique_ptr<Connection> conn = co_await locator.connect("echo");
    std::string id = co_await whoami_and_close(std::move(conn));
    out.insert("called " + id);
  }
  co_return out;
}

class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pair_ = std::make_unique<NetnsPair>();
    if (!pair_->reason().empty()) GTEST_SKIP() << "network namespaces not available: " << pair_->reason();
  }
  void TearDown() override { pair_.reset(); }

  std::unique_ptr<NetnsPair> pair_;
};

TEST_F(NetnsTest, UdpBroadcastDiscoveryAcrossAVethPair) {
  NetnsThread a(pair_->a());
  NetnsThread b(pair_->b());
  std::unique_ptr<RegistryServer> registry;
  std::unique_ptr<Server> server_a;
  std::unique_ptr<Server> server_b;
  AnnounceOptions broadcast;  // RPyC's defaults: udp://255.255.255.255:18811
  std::promise<void> both_registered;
  std::future<void> registered = both_registered.get_future();
  int added = 0;
  a.exec([&]() {
    RegistryServerOptions ro;  // 0.0.0.0:18811, inside namespace A
    registry = std::make_unique<RegistryServer>(ro);
    registry->table().set_on_added([&](const std::string&, const HostPort&) {
      if (++added == 2) both_registered.set_value();
    });
    registry->start();
    server_a = start_server("in-a", kAddrA, broadcast);
  });
  b.exec([&]() { server_b = start_server("in-b", kAddrB, broadcast); });
  ASSERT_EQ(registered.wait_for(20s), std::future_status::ready) << "the servers' broadcasts did not arrive";
  std::uint16_t port_a = 0;
  std::uint16_t port_b = 0;
  a.exec([&]() { port_a = server_a->port(); });
  b.exec([&]() { port_b = server_b->port(); });
  DiscoverOptions o;  // broadcast too
  std::set<std::string> seen = b.call<std::set<std::string>>([o]() { return discover_and_call(o, 2); }, 30s);
  const std::string at_a = std::string("at ") + kAddrA + ":" + std::to_string(port_a);
  const std::string at_b = std::string("at ") + kAddrB + ":" + std::to_string(port_b);
  EXPECT_EQ(seen, (std::set<std::string>{at_a, at_b, "called in-a", "called in-b"}));
  std::size_t entries = 0;
  a.exec([&]() { entries = registry->stats().entries; });
  EXPECT_EQ(entries, 2u);  // B's REGISTER crossed the pair by broadcast
  b.stop_tasks();
  b.exec([&]() { server_b.reset(); });
  a.exec([&]() {
    server_a.reset();
    registry.reset();
  });
}

TEST_F(NetnsTest, EtcdBackedCallAcrossAVethPair) {
  if (tether::testing::EtcdCluster::program().empty()) GTEST_SKIP() << "etcd is not installed";
  tether::testing::EtcdCluster etcd(1, kAddrA, pair_->a(), pair_->ip());
  NetnsThread a(pair_->a());
  NetnsThread b(pair_->b());
  std::unique_ptr<Server> server_a;
  AnnounceOptions ao;
  ao.registry = etcd.url();
  ao.etcd.ttl = 2s;
  a.exec([&]() { server_a = start_server("in-a", kAddrA, ao); });
  std::uint16_t port_a = 0;
  a.exec([&]() { port_a = server_a->port(); });
  DiscoverOptions o;
  o.registry = etcd.url();
  o.timeout = 5s;
  std::set<std::string> seen = b.call<std::set<std::string>>([o]() { return discover_and_call(o, 1); }, 30s);
  EXPECT_EQ(seen, (std::set<std::string>{std::string("at ") + kAddrA + ":" + std::to_string(port_a),
                                         "called in-a"}));
  b.stop_tasks();
  a.exec([&]() { server_a.reset(); });
}

}  // namespace
}  // namespace tether::registry
