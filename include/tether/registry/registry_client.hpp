#pragma once
/// \file RegistryClient: talks to an RPyC registry (RPyC's UDPRegistryClient and
/// TCPRegistryClient), tether's or Python's.
///
///   RegistryClient reg;                                  // UDP broadcast to port 18811
///   std::vector<HostPort> found = co_await reg.query("CALCULATOR");
///   RegistryClient tcp({.transport = RegistryTransport::kTcp, .host = "10.0.0.5"});
///
/// Each call opens its own socket on the current loop and closes it before it completes; the
/// client holds only its options, so it may be copied and used from any loop. Over UDP the
/// first well-formed reply from the registry's port wins (several registries may answer a
/// broadcast). Unlike RPyC's clients, a registry that does not answer is an error (Timeout),
/// not an empty answer, so that callers can tell "nobody registered" from "nobody listened".

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/registry/protocol.hpp"

namespace tether::registry {

enum class RegistryTransport { kUdp, kTcp };

struct RegistryClientOptions {
  RegistryTransport transport = RegistryTransport::kUdp;
  /// The registry's address, or a broadcast address for UDP (RPyC's default).
  std::string host = "255.255.255.255";
  std::uint16_t port = kRegistryPort;
  /// How long to wait for a reply (for TCP: connect, send and reply together).
  Duration timeout = kClientTimeout;
  /// UDP: set SO_BROADCAST. nullopt: RPyC's rule, when an octet of `host` is 255.
  std::optional<bool> broadcast;
  /// UDP: the local address to send from ("" = any). A server registers from its listening
  /// address so that the registry records that address (RPyC's `interface`).
  std::string interface;
};

class TETHER_API RegistryClient {
 public:
  RegistryClient() = default;
  explicit RegistryClient(RegistryClientOptions options) : options_(std::move(options)) {}

  /// QUERY: the servers registered under `name`, oldest registration first. Throws Timeout
  /// when no registry answered, IoError when one could not be reached (TCP refused ...),
  /// ProtocolError when the answer was not a QUERY reply.
  Task<std::vector<HostPort>> query(std::string name) const;
  /// REGISTER `aliases` for `port` (of this host). True once a registry answered "OK"; false
  /// when none did in time or it refused (RPyC's register() result). Never throws for
  /// network errors (they are logged at debug level and return false).
  Task<bool> register_service(std::vector<std::string> aliases, std::uint16_t port) const;
  /// UNREGISTER `port`. UDP: sent without waiting for the answer (as RPyC); TCP: waits for it
  /// (up to the timeout). Never throws for network errors.
  Task<void> unregister(std::uint16_t port) const;
  /// LIST: every service name (or those with a server on `filter_host`); nullopt when the
  /// registry refuses listing (RPyC's ForbiddenError). Errors as query().
  Task<std::optional<std::vector<std::string>>> list(std::optional<std::string> filter_host) const;
  Task<std::optional<std::vector<std::string>>> list() const { return list(std::nullopt); }

  [[nodiscard]] const RegistryClientOptions& options() const noexcept { return options_; }
  /// "udp://255.255.255.255:18811" / "tcp://10.0.0.5:18811".
  [[nodiscard]] std::string describe() const;

 private:
  /// Sends `request` and returns the first reply `accept` takes (see the .cpp).
  Task<Bytes> exchange(Bytes request, bool (*accept)(const Bytes& reply)) const;

  RegistryClientOptions options_;
};

}  // namespace tether::registry
