#pragma once
/// \file RegistryUrl: where servers announce themselves and clients look them up, as one
/// string (what `tether serve --register ADDR` and `tether discover --registry ADDR` take).
///
///   udp://255.255.255.255:18811      RPyC registry over UDP (broadcast; the default)
///   udp://10.0.0.5                   ... to one registry (port 18811)
///   tcp://10.0.0.5:18811             RPyC registry over TCP (through routers)
///   etcd://127.0.0.1:2379,10.0.0.7:2379        etcd cluster members (port 2379 by default)
///   etcd://user:password@127.0.0.1:2379        ... with etcd authentication
///   10.0.0.5:18811                   no scheme: UDP
///
/// IPv6 hosts go in brackets ("udp://[fd00::5]:18811"). A regular value, no loop affinity.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/registry/protocol.hpp"
#include "tether/registry/registry_client.hpp"

namespace tether::registry {

/// etcd's client port.
inline constexpr std::uint16_t kEtcdPort = 2379;

struct TETHER_API RegistryUrl {
  enum class Kind { kUdp, kTcp, kEtcd };
  Kind kind = Kind::kUdp;
  /// kUdp / kTcp: the registry (or broadcast address) and port.
  std::string host = "255.255.255.255";
  std::uint16_t port = kRegistryPort;
  /// kEtcd: "host:port" of each member, in the order they are tried.
  std::vector<std::string> etcd_endpoints;
  std::string username;
  std::string password;

  /// nullopt when malformed; `error`, when given, says why.
  static std::optional<RegistryUrl> parse(std::string_view text, std::string* error = nullptr);
  /// The URL again (the password shown as "***").
  [[nodiscard]] std::string to_string() const;
  /// kUdp / kTcp: a RegistryClient's options for this registry.
  [[nodiscard]] RegistryClientOptions client_options() const;
};

/// Splits "host:port", "[v6]:port" or "host" (then `default_port`); nullopt when malformed.
TETHER_API std::optional<HostPort> split_host_port(std::string_view text, std::uint16_t default_port);
/// "host:port", or "[host]:port" for an IPv6 host.
TETHER_API std::string join_host_port(std::string_view host, std::uint16_t port);

}  // namespace tether::registry
