#pragma once
// Private: the etcd key layout and value format (see tether/registry/etcd.hpp).
//
//   key    <prefix><NAME>/<HOST>:<PORT>          ("[v6]:port" for IPv6 hosts)
//   value  {"generation": 0|5|6, "tls": bool, "weight": n}

#include <optional>
#include <string>
#include <string_view>

#include "tether/registry/discovery.hpp"

namespace tether::registry::detail {

/// "<prefix><NAME>/" (NAME upper-cased).
std::string service_prefix(const std::string& prefix, const std::string& name);
std::string service_key(const std::string& prefix, const std::string& name, const std::string& host,
                        std::uint16_t port);
std::string service_value(rpc::Generation generation, bool tls, std::uint32_t weight);
/// The endpoint of a key's last segment ("HOST:PORT") and its value; nullopt when the key is
/// malformed. A value that is not the expected JSON gives the defaults (weight 1, no TLS).
std::optional<Endpoint> parse_service_entry(std::string_view host_port, std::string_view value);

}  // namespace tether::registry::detail
