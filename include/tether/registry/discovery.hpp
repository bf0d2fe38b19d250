#pragma once
/// \file Finding servers by service name and connecting to one (RPyC's rpyc.discover and
/// rpyc.connect_by_service), over an RPyC registry or etcd, with load balancing.
///
///   auto conn = co_await tether::registry::connect_by_service("CALCULATOR");
///   auto conn = tether::registry::connect_by_service_sync("CALCULATOR", {.registry =
///   "etcd://127.0.0.1:2379"});
///
///   tether::registry::ServiceLocator locator({.registry = "tcp://10.0.0.5", .balance = Balance::kRandom});
///   auto a = co_await locator.connect("CALCULATOR");     // balanced across the servers found
///   auto b = co_await locator.connect("CALCULATOR");     // the next one
///
/// A ServiceLocator caches each name's endpoint set: an RPyC registry's answer for cache_ttl,
/// and with etcd a live set that follows servers joining and leaving (the prefix is read once,
/// then watched; while etcd is unreachable the last known set is kept, and the locator logs
/// that it does so). connect() orders the endpoints by the balancing policy, moves those that
/// recently refused or timed out to the back (cooldown), and tries them in turn; after a round
/// without success it waits (exponential backoff with jitter), asks for a fresh set and tries
/// again, `rounds` times in all. The free functions use a ServiceLocator of their own for one
/// call (no cache survives them).
///
/// Thread rules: a ServiceLocator belongs to the loop current when it was made; its Tasks run
/// there. It must outlive the Tasks it returned. Names are upper-cased (RPyC's rule).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tether/base/error.hpp"
#include "tether/base/export.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/registry/etcd.hpp"
#include "tether/registry/protocol.hpp"
#include "tether/service/client.hpp"
#include "tether/service/sync.hpp"

namespace tether::registry {

/// One server of a service. The RPyC registry knows only host and port; etcd also publishes
/// how the server speaks (TLS, generation) and its weight.
struct TETHER_API Endpoint {
  std::string host;
  std::uint16_t port = 0;
  bool tls = false;
  /// kAuto: either (or unknown). A client with generation kAuto starts with the one given here.
  rpc::Generation generation = rpc::Generation::kAuto;
  /// Relative share of connections; 0: never chosen (a server draining).
  std::uint32_t weight = 1;

  /// "host:port" ("[v6]:port").
  [[nodiscard]] std::string to_string() const;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

enum class Balance { kRoundRobin, kRandom };

struct DiscoverOptions {
  /// Where to look (RegistryUrl: "udp://...", "tcp://...", "etcd://...").
  std::string registry = "udp://255.255.255.255:18811";
  /// How long an RPyC registry, or etcd's first answer for a name, may take.
  Duration timeout = kClientTimeout;
  /// Only servers on this host (RPyC's `host` argument; a name is resolved). Empty: any.
  std::string host;
  Balance balance = Balance::kRoundRobin;
  /// An RPyC registry's answer is reused this long (etcd sets are watched instead).
  Duration cache_ttl = std::chrono::seconds(10);
  /// One endpoint: TCP connect, TLS and the RPC probe together.
  Duration connect_timeout = std::chrono::seconds(3);
  /// An endpoint that refused or timed out is tried after the others for this long.
  Duration cooldown = std::chrono::seconds(5);
  /// Passes over the endpoint set before connect() gives up.
  int rounds = 3;
  /// The wait between passes: exponential from backoff_initial to backoff_max, with jitter.
  Duration backoff_initial = std::chrono::milliseconds(100);
  Duration backoff_max = std::chrono::seconds(2);
  /// etcd settings (request timeouts, prefix, watch checks).
  EtcdOptions etcd;
};

/// No server was found, or none could be reached (RPyC's DiscoveryError). what() says which
/// registry was asked and, for connects, each endpoint tried and why it failed.
class TETHER_API DiscoveryError : public Error {
 public:
  explicit DiscoveryError(const std::string& what) : Error(ErrorKind::kIo, what) {}
};

class TETHER_API ServiceLocator {
 public:
  /// On the current loop. Throws UsageError for a malformed registry address.
  explicit ServiceLocator(DiscoverOptions options = DiscoverOptions());
  ~ServiceLocator();
  ServiceLocator(const ServiceLocator&) = delete;
  ServiceLocator& operator=(const ServiceLocator&) = delete;

  /// The servers of `name` (cached; see the file comment). Throws DiscoveryError when there
  /// are none, or the registry cannot be reached and nothing is known.
  Task<std::vector<Endpoint>> discover(std::string name);
  /// A connection to one server of `name`, chosen and retried as the file comment says.
  /// Throws DiscoveryError listing every endpoint tried. `client`'s connect timeout is capped
  /// by options().connect_timeout; an endpoint that needs TLS is skipped without a TLS context.
  Task<std::unique_ptr<Connection>> connect(std::string name, ClientOptions client);
  Task<std::unique_ptr<Connection>> connect(std::string name) {
    return connect(std::move(name), ClientOptions());
  }
  /// Every service name the registry knows (RPyC's list_services: DiscoveryError when the
  /// registry refuses listing; etcd: the names under the prefix).
  Task<std::vector<std::string>> list();

  /// The order connect() would try `endpoints` of `name` in now (advances the round-robin
  /// state): balancing policy first, endpoints in cooldown last, weight 0 left out.
  std::vector<Endpoint> order(const std::string& name, const std::vector<Endpoint>& endpoints);
  /// Records that an endpoint refused or timed out (cooldown) / answered (cooldown over).
  void report_failure(const Endpoint& endpoint);
  void report_success(const Endpoint& endpoint);
  /// Forgets the cached set of `name` (the next discover() asks the registry).
  void invalidate(const std::string& name);

  /// Called on the locator's loop whenever the set of a followed name changes (etcd), with the
  /// new set. It must not destroy the locator.
  using ChangeListener = std::function<void(const std::string& name, const std::vector<Endpoint>& endpoints)>;
  void set_on_change(ChangeListener fn);
  /// Starts following `name` at once (etcd: reads and watches its prefix; every name looked up
  /// is followed from then on), so that the change listener hears of it. A no-op for RPyC
  /// registries, which are asked, not watched.
  void watch(const std::string& name);

  [[nodiscard]] const DiscoverOptions& options() const noexcept;
  [[nodiscard]] EventLoop& loop() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// rpyc.discover: the servers of `name` (DiscoveryError if none). On the current loop.
TETHER_API Task<std::vector<Endpoint>> discover(std::string name, DiscoverOptions options);
inline Task<std::vector<Endpoint>> discover(std::string name) {
  return discover(std::move(name), DiscoverOptions());
}

/// rpyc.connect_by_service: a connection to one server of `name`.
TETHER_API Task<std::unique_ptr<Connection>> connect_by_service(std::string name, DiscoverOptions options,
                                                                ClientOptions client);
inline Task<std::unique_ptr<Connection>> connect_by_service(std::string name, DiscoverOptions options) {
  return connect_by_service(std::move(name), std::move(options), ClientOptions());
}
inline Task<std::unique_ptr<Connection>> connect_by_service(std::string name) {
  return connect_by_service(std::move(name), DiscoverOptions(), ClientOptions());
}

/// rpyc.list_services.
TETHER_API Task<std::vector<std::string>> list_services(DiscoverOptions options);

/// Blocking forms: they run on this thread's loop, or on a private one (as connect_sync does).
TETHER_API std::vector<Endpoint> discover_sync(std::string name, DiscoverOptions options = DiscoverOptions());
TETHER_API SyncConnection connect_by_service_sync(std::string name,
                                                  DiscoverOptions options = DiscoverOptions(),
                                                  ClientOptions client = ClientOptions());
TETHER_API std::vector<std::string> list_services_sync(DiscoverOptions options = DiscoverOptions());

}  // namespace tether::registry
