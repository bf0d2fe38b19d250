// The etcd backend against a real etcd that each test starts on loopback ports: the client
// (leases, keys, failover, error replies), a server's registration appearing and going, a
// SIGKILLed server expiring within its TTL, etcd restarted (with and without its data), clients
// keeping the last known endpoints while etcd is down, authentication failures, and a
// three-member cluster losing a member.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <map>
#include <set>
#include <string>

#include "etcd_process.hpp"
#include "registry/etcd_client.hpp"
#include "registry/etcd_keys.hpp"
#include "registry_fixture.hpp"
#include "tether/net/process.hpp"
#include "tether/registry/discovery.hpp"

namespace tether::registry {
namespace {

using namespace std::chrono_literals;
using tether::testing::connect_n;
using tether::testing::EtcdCluster;
using tether::testing::LogCapture;
using tether::testing::LoopTest;
using tether::testing::start_announced;
using tether::testing::wait_for;
using tether::testing::whoami_and_close;

constexpr Duration kTtl = 2s;

// --- pieces that need no etcd -------------------------------------------------------------------

TEST(EtcdPieces, Base64AndPrefixEnd) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar",
                                                       std::string("\0\xff\x10", 3)}) {
    EXPECT_EQ(detail::base64_decode(detail::base64_encode(s)), s);
  }
  EXPECT_EQ(detail::base64_encode("/tether/services/X/"), "L3RldGhlci9zZXJ2aWNlcy9YLw==");
  EXPECT_FALSE(detail::base64_decode("a*b"));
  EXPECT_EQ(detail::prefix_end("/a/"), "/a0");
  EXPECT_EQ(detail::prefix_end(std::string("a\xff", 2)), "b");
}

TEST(EtcdPieces, KeysAndValues) {
  EXPECT_EQ(detail::service_key("/tether/services/", "echo", "::1", 7), "/tether/services/ECHO/[::1]:7");
  std::optional<Endpoint> ep =
      detail::parse_service_entry("10.0.0.1:18861", detail::service_value(rpc::Generation::k6, true, 5));
  ASSERT_TRUE(ep);
  EXPECT_EQ(*ep, (Endpoint{"10.0.0.1", 18861, true, rpc::Generation::k6, 5}));
  ep = detail::parse_service_entry("[fd00::1]:9", "not json");
  ASSERT_TRUE(ep);
  EXPECT_EQ(*ep, (Endpoint{"fd00::1", 9, false, rpc::Generation::kAuto, 1}));
  EXPECT_FALSE(detail::parse_service_entry("no-port", "{}"));
}

// --- against a real etcd ------------------------------------------------------------------------

class EtcdTest : public LoopTest {
 protected:
  void SetUp() override {
    LoopTest::SetUp();
    if (EtcdCluster::program().empty())
      GTEST_SKIP() << "etcd is not installed (scripts/deps.sh installs etcd-server)";
  }
  void TearDown() override {
    locator_.reset();
    for (auto& s : servers_) s->close();
    servers_.clear();
    LoopTest::TearDown();
    etcd_.reset();
  }

  void start_etcd(int members = 1) { etcd_ = std::make_unique<EtcdCluster>(members); }

  AnnounceOptions announce_options(std::string url = "") {
    AnnounceOptions a;
    a.registry = url.empty() ? etcd_->url() : std::move(url);
    a.etcd.ttl = kTtl;
    a.etcd.request_timeout = 1s;
    a.etcd.backoff_initial = 50ms;
    a.etcd.backoff_max = 300ms;
    return a;
  }

  DiscoverOptions discover_options(std::string url = "") {
    DiscoverOptions o;
    o.registry = url.empty() ? etcd_->url() : std::move(url);
    o.timeout = 5s;
    o.connect_timeout = 1s;
    o.etcd.request_timeout = 1s;
    o.etcd.backoff_initial = 50ms;
    o.etcd.backoff_max = 300ms;
    o.etcd.watch_check = 1s;
    return o;
  }

  /// A locator whose watched changes of ECHO are recorded.
  ServiceLocator& watch_echo(DiscoverOptions o) {
    locator_ = std::make_unique<ServiceLocator>(std::move(o));
    locator_->set_on_change([this](const std::string& name, const std::vector<Endpoint>& eps) {
      if (name != "ECHO") return;
      latest_ = eps;
      changed_.set();
    });
    locator_->watch("echo");
    return *locator_;
  }

  std::set<std::uint16_t> latest_ports() const {
    std::set<std::uint16_t> out;
    for (const Endpoint& e : latest_) out.insert(e.port);
    return out;
  }

  /// Waits (bounded) until the watched set of ECHO holds exactly `ports`.
  Task<void> wait_for_ports(std::set<std::uint16_t> ports, Duration limit) {
    const TimePoint deadline = Clock::now() + limit;
    while (latest_ports() != ports) {
      const Duration left = deadline - Clock::now();
      if (left <= Duration::zero()) throw Timeout("the endpoint set did not become what was expected");
      changed_.clear();
      co_await with_timeout(left, changed_.wait());
    }
  }

  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::unique_ptr<ServiceLocator> locator_;
  std::vector<Endpoint> latest_;
  Event changed_;
};

// --- the client itself

Task<void> client_basics(detail::EtcdClient& c) {
  const std::int64_t lease = co_await c.grant(kTtl);
  EXPECT_NE(lease, 0);
  co_await c.put("/t/a/k1", "v1", lease);
  co_await c.put("/t/b", "other", 0);
  detail::EtcdClient::Range r = co_await c.get_prefix("/t/a/");
  EXPECT_EQ(r.kvs.size(), 1u);
  if (r.kvs.size() == 1) {
    EXPECT_EQ(r.kvs[0].key, "/t/a/k1");
    EXPECT_EQ(r.kvs[0].value, "v1");
    EXPECT_EQ(r.kvs[0].lease, lease);
  }
  EXPECT_GT(r.revision, 0);
  const std::int64_t left = co_await c.keepalive(lease);
  EXPECT_EQ(left, 2);
  co_await c.revoke(lease);
  r = co_await c.get_prefix("/t/a/");
  EXPECT_TRUE(r.kvs.empty());
  const std::int64_t gone = co_await c.keepalive(lease);
  EXPECT_EQ(gone, 0);
}

TEST_F(EtcdTest, ClientLeasesKeysAndRevocation) {
  start_etcd();
  detail::EtcdClient c(loop_, detail::EtcdConfig{{etcd_->endpoint(0)}, "", "", EtcdOptions()});
  run(client_basics(c));
}

/// A loopback port where nothing listens.
std::string dead_endpoint() {
  std::vector<Fd> fds = bind_sockets(0, "127.0.0.1");
  return "127.0.0.1:" + std::to_string(local_address(fds.front().get()).port());
}

Task<std::string> put_error(detail::EtcdClient& c, std::int64_t lease) {
  try {
    co_await c.put("/t/x", "y", lease);
  } catch (const Error& e) {
    co_return std::string(e.what());
  }
  co_return std::string("no error");
}

TEST_F(EtcdTest, ClientFailsOverAndReportsErrorsClearly) {
  start_etcd();
  const std::string dead = dead_endpoint();
  EtcdOptions o;
  o.connect_timeout = 500ms;
  detail::EtcdClient c(loop_, detail::EtcdConfig{{dead, etcd_->endpoint(0)}, "", "", o});
  EXPECT_EQ(run(put_error(c, 0)), "no error");
  EXPECT_EQ(c.current(), 1u);  // the live member became current
  const std::string missing = run(put_error(c, 0x1234));
  EXPECT_NE(missing.find("etcd at " + etcd_->endpoint(0) +
                         ": kv/put failed: etcdserver: requested lease not found (code 5)"),
            std::string::npos)
      << missing;
  detail::EtcdClient nobody(loop_, detail::EtcdConfig{{dead, dead_endpoint()}, "", "", o});
  const std::string unreachable = run(put_error(nobody, 0));
  EXPECT_NE(unreachable.find("no etcd endpoint answered kv/put: " + dead + ": "), std::string::npos)
      << unreachable;
}

TEST_F(EtcdTest, ClientMovesPastAMemberThatTimesOut) {
  start_etcd();
  // Accepts connections (the kernel does, into the backlog) but never answers.
  std::vector<Fd> silent = bind_sockets(0, "127.0.0.1");
  const std::string mute = "127.0.0.1:" + std::to_string(local_address(silent.front().get()).port());
  EtcdOptions o;
  o.request_timeout = 300ms;
  detail::EtcdClient c(loop_, detail::EtcdConfig{{mute, etcd_->endpoint(0)}, "", "", o});
  const TimePoint t0 = Clock::now();
  EXPECT_EQ(run(put_error(c, 0)), "no error");
  EXPECT_GE(Clock::now() - t0, 300ms);
  EXPECT_EQ(c.current(), 1u);
  detail::EtcdClient only_mute(loop_, detail::EtcdConfig{{mute}, "", "", o});
  const std::string why = run(put_error(only_mute, 0));
  EXPECT_NE(why.find("no etcd endpoint answered kv/put: " + mute + ": "), std::string::npos) << why;
  EXPECT_NE(why.find("timed out"), std::string::npos) << why;
}

// --- servers and clients

TEST_F(EtcdTest, RegistrationAppearsWithItsValueAndGoesOnGracefulShutdown) {
  start_etcd();
  ServiceLocator& locator = watch_echo(discover_options());
  AnnounceOptions a = announce_options();
  a.weight = 7;
  servers_.push_back(start_announced("a", a));
  const std::uint16_t port = servers_[0]->port();
  run(wait_for_ports({port}, 10s));
  EXPECT_EQ(latest_.at(0), (Endpoint{"127.0.0.1", port, false, rpc::Generation::kAuto, 7}));
  // The key layout, read straight from etcd.
  std::string range = etcd_->post(
      0, "kv/range",
      "{\"key\":\"" + detail::base64_encode("/tether/services/ECHO/127.0.0.1:" + std::to_string(port)) +
          "\"}");
  EXPECT_NE(range.find(detail::base64_encode("{\"generation\":0,\"tls\":false,\"weight\":7}")),
            std::string::npos)
      << range;
  std::unique_ptr<Connection> conn = run(locator.connect("echo"));
  EXPECT_EQ(run(whoami_and_close(std::move(conn))), "a");
  // Graceful shutdown revokes the lease: the key goes at once, not after the TTL.
  const TimePoint t0 = Clock::now();
  run(servers_[0]->shutdown());
  run(wait_for_ports({}, 5s));
  EXPECT_LT(Clock::now() - t0, kTtl);
}

/// Starts announced_server in a child process; its port.
Task<std::uint16_t> spawn_announced(std::unique_ptr<ChildProcess>& child,
                                    std::unique_ptr<BufferedStream>& out, std::string url, std::string id) {
  std::vector<std::string> argv = {TETHER_ANNOUNCED_SERVER, "--registry", std::move(url), "--id",
                                   std::move(id),           "--ttl-ms",   "2000"};
  SpawnedProcess p = spawn_process(argv);
  child = std::move(p.process);
  out = std::move(p.stream);
  Bytes line = co_await out->read_until("\n");
  const std::string text(line.view());
  if (text.rfind("PORT ", 0) != 0) throw std::runtime_error("announced_server said: " + text);
  co_return static_cast<std::uint16_t>(std::stoi(text.substr(5)));
}

TEST_F(EtcdTest, ASigkilledServersEntryDisappearsWithinItsTtlAndIsNoLongerChosen) {
  start_etcd();
  ServiceLocator& locator = watch_echo(discover_options());
  servers_.push_back(start_announced("a", announce_options()));
  std::unique_ptr<ChildProcess> child;
  std::unique_ptr<BufferedStream> child_out;
  const std::uint16_t child_port = run(spawn_announced(child, child_out, etcd_->url(), "b"));
  run(wait_for_ports({servers_[0]->port(), child_port}, 10s));
  std::vector<std::string> both = run(connect_n(locator, 2));
  EXPECT_EQ(std::set<std::string>(both.begin(), both.end()), (std::set<std::string>{"a", "b"}));
  ASSERT_TRUE(child->send_signal(SIGKILL));
  const TimePoint t0 = Clock::now();
  run(child->wait());
  run(wait_for_ports({servers_[0]->port()}, kTtl + 3s));
  const Duration gone_after = Clock::now() - t0;
  EXPECT_LT(gone_after, kTtl + 1500ms);
  std::printf(
      "[ figure ] SIGKILLed server's key gone after %lld ms (TTL %lld ms)\n",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(gone_after).count()),
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(kTtl).count()));
  EXPECT_EQ(run(connect_n(locator, 4)), (std::vector<std::string>{"a", "a", "a", "a"}));
  child_out.reset();
}

TEST_F(EtcdTest, ARestartedEtcdIsReconnectedAndLeasesAreReestablished) {
  start_etcd();
  LogCapture log(LogLevel::kInfo);
  Event announced;
  Event watch_back;
  log.watch("registry: announced /tether/services/ECHO/", announced);
  log.watch("etcd reachable again", watch_back);
  ServiceLocator& locator = watch_echo(discover_options());
  servers_.push_back(start_announced("a", announce_options()));
  const std::uint16_t port = servers_[0]->port();
  run(wait_for(announced, 10s));
  run(wait_for_ports({port}, 10s));
  // Restarted without its data: the lease and the key are gone, the revision starts again.
  // The server learns it from a keep-alive ("no longer knows lease") or a put ("requested
  // lease not found"), depending on where etcd's death caught it.
  announced.clear();
  etcd_->restart(0, /*wipe=*/true);
  run(wait_for(announced, 10s));   // the key is back under a new lease
  run(wait_for(watch_back, 10s));  // the client's watch is connected again
  run(wait_for_ports({port}, 10s));
  EXPECT_TRUE(log.contains("no longer knows lease") || log.contains("requested lease not found"))
      << log.all();
  // Really back in etcd: a new client finds it.
  std::vector<Endpoint> fresh = run(discover("echo", discover_options()));
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].port, port);
  std::unique_ptr<Connection> conn = run(locator.connect("echo"));
  EXPECT_EQ(run(whoami_and_close(std::move(conn))), "a");
}

TEST_F(EtcdTest, ClientsKeepTheLastKnownEndpointsWhileEtcdIsDownAndSaySo) {
  start_etcd();
  LogCapture log(LogLevel::kWarn);
  Event keeping;
  Event back;
  log.watch("keeping the 1 last known endpoint(s) of ECHO", keeping);
  log.watch("etcd reachable again", back);
  ServiceLocator& locator = watch_echo(discover_options());
  servers_.push_back(start_announced("a", announce_options()));
  run(wait_for_ports({servers_[0]->port()}, 10s));
  etcd_->kill(0);
  run(wait_for(keeping, 10s));
  std::vector<Endpoint> kept = run(locator.discover("echo"));
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].port, servers_[0]->port());
  std::unique_ptr<Connection> conn = run(locator.connect("echo"));
  EXPECT_EQ(run(whoami_and_close(std::move(conn))), "a");
  // With its data kept, etcd comes back with the lease (it renews leases on restart).
  etcd_->restart(0, /*wipe=*/false);
  run(wait_for(back, 15s));
  EXPECT_EQ(run(locator.discover("echo")).size(), 1u);
}

TEST_F(EtcdTest, AuthenticationFailuresAreReportedClearly) {
  start_etcd();
  for (const auto& [path, body] : std::vector<std::pair<std::string, std::string>>{
           {"auth/user/add", R"({"name":"root","password":"s3cret"})"},
           {"auth/role/add", R"({"name":"root"})"},
           {"auth/user/grant", R"({"user":"root","role":"root"})"},
           {"auth/enable", "{}"}}) {
    const std::string reply = etcd_->post(0, path, body);
    ASSERT_EQ(reply.find("\"error\""), std::string::npos) << path << ": " << reply;
  }
  const std::string good = "etcd://root:s3cret@" + etcd_->endpoint(0);
  const std::string bad = "etcd://root:wrong@" + etcd_->endpoint(0);
  LogCapture log(LogLevel::kWarn);
  Event refused;
  log.watch("authentication as 'root' failed", refused);
  servers_.push_back(start_announced("wrong", announce_options(bad)));
  run(wait_for(refused, 10s));
  EXPECT_TRUE(log.contains("registry: announcing /tether/services/ECHO/127.0.0.1:")) << log.all();
  servers_.push_back(start_announced("right", announce_options(good)));
  ServiceLocator& locator = watch_echo(discover_options(good));
  run(wait_for_ports({servers_[1]->port()}, 10s));
  std::unique_ptr<Connection> conn = run(locator.connect("echo"));
  EXPECT_EQ(run(whoami_and_close(std::move(conn))), "right");
  try {
    run(discover("echo", discover_options(bad)));
    ADD_FAILURE() << "discovery with a wrong password succeeded";
  } catch (const DiscoveryError& e) {
    EXPECT_NE(std::string(e.what()).find("authentication as 'root' failed"), std::string::npos) << e.what();
  }
}

TEST_F(EtcdTest, AThreeMemberClusterSurvivesLosingAMember) {
  start_etcd(3);
  ServiceLocator& locator = watch_echo(discover_options());
  servers_.push_back(start_announced("a", announce_options()));
  const std::uint16_t a = servers_[0]->port();
  run(wait_for_ports({a}, 10s));
  // Member 0 is the one everybody talks to first.
  etcd_->kill(0);
  servers_.push_back(start_announced("b", announce_options()));
  const std::uint16_t b = servers_[1]->port();
  run(wait_for_ports({a, b}, 15s));
  // a's lease is kept alive through the other members beyond its TTL (time is what is tested).
  run(sleep(kTtl + 1s));
  EXPECT_EQ(latest_ports(), (std::set<std::uint16_t>{a, b}));
  std::vector<Endpoint> fresh = run(discover("echo", discover_options()));
  EXPECT_EQ(fresh.size(), 2u);
  std::vector<std::string> ids = run(connect_n(locator, 4));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), (std::set<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace tether::registry
