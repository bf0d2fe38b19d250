#pragma once
/// \file RegistryServer: an RPyC-compatible registry (RPyC's UDPRegistryServer and
/// TCPRegistryServer in one), bounded and hardened.
///
///   tether::registry::RegistryServer registry({.port = 0, .tcp = true});
///   registry.start();                       // on the current loop
///   ... registry.udp_port(), registry.tcp_port() ...
///
/// Behaviour as RPyC's (wire spec §16): REGISTER/UNREGISTER/QUERY/LIST, names upper-cased,
/// entries pruned when not refreshed within pruning_timeout, listing off by default, the
/// sender's IP address recorded. Where tether differs, it refuses rather than obeys:
///  * requests that are not brine, too large, of another magic, of an unknown command or with
///    arguments of the wrong shape are ignored (no reply) and counted in stats();
///  * REGISTER and UNREGISTER are accepted only from `allowed_networks` (default: loopback and
///    private ranges); others are ignored and counted;
///  * the table is bounded (RegistryLimits); an alias over a bound is not recorded, and a
///    REGISTER none of whose aliases could be recorded gets no reply (the server retries);
///  * replies never exceed what a Python client reads (kMaxDatagram; LIST over UDP:
///    kMaxUdpListReply): longer answers are cut, keeping the first entries, and counted;
///  * stale entries are also pruned in the background (every pruning_timeout / 4), not only
///    when queried, so that they do not hold room.
///
/// Thread rules: every method on the loop current at start() (the TCP side runs there too).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tether/base/bytes.hpp"
#include "tether/base/export.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/net/address.hpp"
#include "tether/registry/networks.hpp"
#include "tether/registry/protocol.hpp"
#include "tether/registry/table.hpp"

namespace tether::registry {

struct RegistryServerOptions {
  /// Where to listen (RPyC's default: every IPv4 interface).
  std::string host = "0.0.0.0";
  /// UDP and TCP port. 0: the kernel picks (then UDP's and TCP's may differ; see udp_port()).
  std::uint16_t port = kRegistryPort;
  bool udp = true;
  bool tcp = false;
  /// Entries not refreshed for this long are dropped (RPyC's -t; default 240 s).
  Duration pruning_timeout = kPruningTimeout;
  /// Answer LIST (RPyC's allow_listing, off by default: LIST then gets None).
  bool allow_listing = false;
  /// Who may REGISTER and UNREGISTER.
  NetworkList allowed_networks = NetworkList::private_networks();
  RegistryLimits limits;
  RequestLimits request_limits;
  /// A TCP client must have sent its whole request within this (RPyC's TCP server: 3 s).
  Duration tcp_timeout = std::chrono::seconds(3);
  /// TCP connections served at once; more are closed at once.
  std::size_t max_tcp_connections = 64;
  /// Datagrams read per wake-up before other work gets a turn.
  int udp_batch = 64;
};

/// Counters since start() (one snapshot).
struct RegistryServerStats {
  std::uint64_t requests = 0;   ///< well-formed requests
  std::uint64_t replies = 0;    ///< replies sent
  std::uint64_t garbage = 0;    ///< not one bounded brine value
  std::uint64_t oversized = 0;  ///< over kMaxDatagram bytes
  std::uint64_t bad_magic = 0;
  std::uint64_t unknown_command = 0;
  std::uint64_t bad_arguments = 0;
  std::uint64_t refused_network = 0;  ///< REGISTER/UNREGISTER from outside allowed_networks
  std::uint64_t refused_full = 0;     ///< aliases not recorded because of RegistryLimits
  std::uint64_t truncated_replies = 0;
  std::uint64_t send_errors = 0;  ///< UDP replies the kernel refused
  std::uint64_t tcp_connections = 0;
  std::uint64_t tcp_timeouts = 0;  ///< TCP clients that did not send a request in time
  std::uint64_t added = 0;         ///< new entries
  std::uint64_t removed = 0;       ///< entries unregistered or pruned
  std::size_t services = 0;        ///< names now
  std::size_t entries = 0;         ///< (name, host, port) entries now
};

class TETHER_API RegistryServer {
 public:
  explicit RegistryServer(RegistryServerOptions options = RegistryServerOptions());
  /// close().
  ~RegistryServer();
  RegistryServer(const RegistryServer&) = delete;
  RegistryServer& operator=(const RegistryServer&) = delete;

  /// Binds the UDP and/or TCP sockets and serves them on the current loop. Throws IoError
  /// (address in use ...) or UsageError (neither udp nor tcp, started twice).
  void start();
  /// Stops serving and closes the sockets; the table is kept. Idempotent.
  void close();

  /// The bound ports (0 when that transport is off or not started).
  [[nodiscard]] std::uint16_t udp_port() const noexcept;
  [[nodiscard]] std::uint16_t tcp_port() const noexcept;
  [[nodiscard]] RegistryServerStats stats() const;
  [[nodiscard]] const RegistryServerOptions& options() const noexcept;
  /// The table (read it, or set its listeners: RPyC's on_service_added/on_service_removed).
  [[nodiscard]] RegistryTable& table() noexcept;

  enum class Via { kUdp, kTcp };
  /// Serves one request from `peer_host` as if it had arrived over `via`: counts it, applies
  /// the rules, and returns the reply to send (nullopt: none). start() is not needed.
  std::optional<Bytes> handle(std::span<const std::uint8_t> request, const std::string& peer_host, Via via);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// Runs `server` until SIGINT or SIGTERM, then closes it (what `tether registry` does): starts
/// it on this thread's loop, or on a loop made for the call, and calls `on_serving` once it
/// serves (its ports are known then). Blocks both signals in this thread for the duration.
/// Throws what start() throws. The server's table and stats() remain readable afterwards.
TETHER_API void serve_until_signal(RegistryServer& server, std::function<void()> on_serving = {});

}  // namespace tether::registry
