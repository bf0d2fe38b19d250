#pragma once
/// \file NetworkList: a set of IPv4/IPv6 prefixes ("10.0.0.0/8", "fc00::/7") that addresses
/// are checked against, e.g. the networks a registry accepts registrations from.
///
/// A regular value: copyable, no loop affinity. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d)
/// are matched as the IPv4 address they carry.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/net/address.hpp"

namespace tether::registry {

class TETHER_API NetworkList {
 public:
  /// One prefix: the address bytes (IPv4 in the first 4) and how many leading bits count.
  struct Prefix {
    bool v6 = false;
    std::array<std::uint8_t, 16> bytes{};
    unsigned bits = 0;
    friend bool operator==(const Prefix&, const Prefix&) = default;
  };

  /// Matches nothing.
  NetworkList() = default;

  /// Loopback and private ranges: 127.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16,
  /// 169.254.0.0/16 (link-local), ::1/128, fc00::/7 (unique local), fe80::/10 (link-local).
  static NetworkList private_networks();
  /// Every address (0.0.0.0/0 and ::/0).
  static NetworkList any();
  /// Comma- or space-separated prefixes ("10.0.0.0/8, 127.0.0.1"; a bare address is a single
  /// host). nullopt when one is malformed; `error`, when given, then names it.
  static std::optional<NetworkList> parse(std::string_view text, std::string* error = nullptr);

  /// Adds one prefix ("192.168.1.0/24", "::1", "fd00::/8"); false if malformed.
  bool add(std::string_view prefix);

  /// True when `ip` (a numeric IPv4 or IPv6 host, scope allowed) lies in one of the prefixes.
  [[nodiscard]] bool contains(std::string_view ip) const;
  [[nodiscard]] bool contains(const Address& address) const;

  [[nodiscard]] const std::vector<Prefix>& prefixes() const noexcept { return prefixes_; }
  [[nodiscard]] bool empty() const noexcept { return prefixes_.empty(); }
  /// "127.0.0.0/8, 10.0.0.0/8, ..." (canonical forms).
  [[nodiscard]] std::string to_string() const;

 private:
  [[nodiscard]] bool contains(const Prefix& host) const;
  std::vector<Prefix> prefixes_;
};

}  // namespace tether::registry
