// Announcing a tether::Server to a tether registry through the service layer's hook: REGISTER
// once listening (UDP and TCP), UNREGISTER on graceful shutdown, re-registration after a
// registry restart within one period, retries until a registry answers, Unix sockets skipped.

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "registry/udp_socket.hpp"
#include "registry_fixture.hpp"
#include "tether/registry/registry_server.hpp"

namespace tether::registry {
namespace {

using namespace std::chrono_literals;
using tether::testing::start_announced;
using tether::testing::wait_for;

class AnnounceTest : public tether::testing::RegistryTest {
 protected:
  AnnounceOptions announce_to(const std::string& scheme, std::uint16_t port) {
    AnnounceOptions a;
    a.registry = scheme + "://127.0.0.1:" + std::to_string(port);
    a.timeout = 500ms;
    return a;
  }
};

Task<void> shut_down(Server& s) { co_await s.shutdown(); }

TEST_F(AnnounceTest, RegistersOnListenAndUnregistersOnGracefulShutdownUdp) {
  start_registry();
  servers_.push_back(start_announced("a", announce_to("udp", registry_->udp_port()), "EchoService"));
  run(wait_for(added_, 5s));
  const std::uint16_t port = servers_[0]->port();
  EXPECT_EQ(registry_->table().query("ECHO", Clock::now()), (std::vector<HostPort>{{"127.0.0.1", port}}));
  run(shut_down(*servers_[0]));
  run(wait_for(removed_, 5s));  // UNREGISTER is sent before the server stops accepting
  EXPECT_EQ(registry_->table().entries(), 0u);
}

TEST_F(AnnounceTest, RegistersEveryAliasOverTcp) {
  start_registry();
  ServeOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.hooks.push_back(announce(announce_to("tcp", registry_->tcp_port())));
  Service svc("Calc", {"CALC", "math"});
  servers_.push_back(std::make_unique<Server>(svc, o));
  servers_[0]->start();
  run(wait_for(added_, 5s));
  EXPECT_EQ(registry_->table().list(std::nullopt), (std::vector<std::string>{"CALC", "MATH"}));
  run(shut_down(*servers_[0]));
  EXPECT_EQ(registry_->table().entries(), 0u);  // TCP's UNREGISTER waits for the answer
}

TEST_F(AnnounceTest, ARestartedRegistryHearsAgainWithinOnePeriod) {
  start_registry();
  const std::uint16_t port = registry_->udp_port();
  AnnounceOptions a = announce_to("udp", port);
  a.reregister_interval = 300ms;
  servers_.push_back(start_announced("a", a));
  run(wait_for(added_, 5s));
  // The registry restarts empty on the same port.
  registry_.reset();
  added_.clear();
  start_registry(port, /*tcp=*/false);
  EXPECT_EQ(registry_->table().entries(), 0u);
  // Re-announced by the 300 ms period (the default is 60 s: the 5 s bound tells them apart).
  run(wait_for(added_, 5s));
  EXPECT_EQ(registry_->table().query("ECHO", Clock::now()).size(), 1u);
}

/// A UDP port nobody listens on now (bound, then closed).
TEST_F(AnnounceTest, RetriesUntilARegistryAnswers) {
  // A socket holds the registry's port and answers nothing, so the first REGISTER goes
  // unanswered; then it makes way for the registry. (Holding the port, rather than picking a
  // free one and leaving it unbound, keeps tests running in parallel from taking it.)
  auto holder = std::make_unique<detail::UdpSocket>(loop_, *Address::from_ip("127.0.0.1", 0));
  const std::uint16_t port = holder->local_address().port();
  AnnounceOptions a = announce_to("udp", port);
  a.timeout = 100ms;
  a.retry_interval = 100ms;
  tether::testing::LogCapture log(LogLevel::kWarn);
  Event unanswered;
  log.watch("no registry acknowledged", unanswered);
  servers_.push_back(start_announced("a", a));
  run(wait_for(unanswered, 5s));
  // The server's figures tell: a registry configured, not registered, so not ready.
  std::shared_ptr<ServerMetrics> metrics = servers_[0]->metrics();
  ASSERT_TRUE(metrics);
  metrics::Snapshot s = metrics->snapshot();
  EXPECT_TRUE(s.registry.configured);
  EXPECT_FALSE(s.registry.registered);
  EXPECT_NE(s.registry.registry.find(std::to_string(port)), std::string::npos) << s.registry.registry;
  EXPECT_GE(s.registry.failures, 1u);
  EXPECT_EQ(s.registry.last_announce_unix, 0.0);
  EXPECT_FALSE(metrics->ready());
  holder.reset();
  start_registry(port, /*tcp=*/false);
  run(wait_for(added_, 5s));  // a later REGISTER reaches it (the retry, not a new start)
  EXPECT_EQ(registry_->table().entries(), 1u);
  // The acknowledgement reaches the announcer just after the registry recorded the server.
  for (int i = 0; i < 500 && !metrics->ready(); ++i) run(sleep(10ms));
  s = metrics->snapshot();
  EXPECT_TRUE(s.registry.registered);
  EXPECT_TRUE(metrics->ready());
  EXPECT_GE(s.registry.announcements, 1u);
  EXPECT_GT(s.registry.last_announce_unix, 0.0);
  EXPECT_TRUE(s.registry.last_error.empty());
}

TEST_F(AnnounceTest, AServerOnAUnixSocketIsNotAnnounced) {
  start_registry();
  ServeOptions o;
  o.unix_path = "@tether-registry-test-" + std::to_string(::getpid());
  o.hooks.push_back(announce(announce_to("udp", registry_->udp_port())));
  servers_.push_back(std::make_unique<Server>(tether::testing::echo_service("u"), o));
  tether::testing::LogCapture log(LogLevel::kWarn);
  servers_[0]->start();
  EXPECT_TRUE(log.contains("listens on no IP address")) << log.all();
}

TEST(AnnounceOptionsTest, AMalformedRegistryIsRefusedAtOnce) {
  EXPECT_THROW(announce("smtp://x"), UsageError);
  EXPECT_THROW(announce("etcd://"), UsageError);
}

}  // namespace
}  // namespace tether::registry
