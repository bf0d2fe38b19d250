#include "tether/registry/networks.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace tether::registry {

namespace {

using Prefix = NetworkList::Prefix;

/// A numeric host ("10.1.2.3", "fe80::1%eth0") as a full-length prefix; IPv4-mapped IPv6
/// addresses become IPv4.
std::optional<Prefix> parse_host(std::string_view text) {
  std::string host(text.substr(0, text.find('%')));  // drop an IPv6 scope
  Prefix p;
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    std::memcpy(p.bytes.data(), &v4, 4);
    p.bits = 32;
    return p;
  }
  if (::inet_pton(AF_INET6, host.c_str(), &v6) != 1) return std::nullopt;
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(v6.s6_addr, kMapped, 12) == 0) {
    std::memcpy(p.bytes.data(), v6.s6_addr + 12, 4);
    p.bits = 32;
    return p;
  }
  p.v6 = true;
  std::memcpy(p.bytes.data(), v6.s6_addr, 16);
  p.bits = 128;
  return p;
}

std::optional<Prefix> parse_prefix(std::string_view text) {
  const std::size_t slash = text.find('/');
  std::optional<Prefix> p = parse_host(text.substr(0, slash));
  if (!p) return std::nullopt;
  if (slash == std::string_view::npos) return p;
  std::string_view bits_text = text.substr(slash + 1);
  unsigned bits = 0;
  auto [end, ec] = std::from_chars(bits_text.data(), bits_text.data() + bits_text.size(), bits);
  if (ec != std::errc() || end != bits_text.data() + bits_text.size() || bits_text.empty())
    return std::nullopt;
  if (bits > p->bits) return std::nullopt;
  p->bits = bits;
  // Canonical: host bits cleared.
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned first = i * 8;
    if (first >= bits) {
      p->bytes[i] = 0;
    } else if (bits - first < 8) {
      p->bytes[i] &= static_cast<std::uint8_t>(0xff << (8 - (bits - first)));
    }
  }
  return p;
}

bool matches(const Prefix& net, const Prefix& host) {
  if (net.v6 != host.v6) return false;
  const unsigned full = net.bits / 8;
  if (std::memcmp(net.bytes.data(), host.bytes.data(), full) != 0) return false;
  const unsigned rest = net.bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (net.bytes[full] & mask) == (host.bytes[full] & mask);
}

std::string prefix_text(const Prefix& p) {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(p.v6 ? AF_INET6 : AF_INET, p.bytes.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(p.bits);
}

}  // namespace

NetworkList NetworkList::private_networks() {
  NetworkList n;
  for (const char* p : {"127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                        "::1/128", "fc00::/7", "fe80::/10"}) {
    n.add(p);
  }
  return n;
}

NetworkList NetworkList::any() {
  NetworkList n;
  n.add("0.0.0.0/0");
  n.add("::/0");
  return n;
}

std::optional<NetworkList> NetworkList::parse(std::string_view text, std::string* error) {
  NetworkList n;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = text.find_first_of(", \t", at);
    std::string_view item = text.substr(at, end == std::string_view::npos ? text.size() - at : end - at);
    if (!item.empty() && !n.add(item)) {
      if (error) *error = "not an IP network: '" + std::string(item) + "'";
      return std::nullopt;
    }
    if (end == std::string_view::npos) break;
    at = end + 1;
  }
  return n;
}

bool NetworkList::add(std::string_view prefix) {
  std::optional<Prefix> p = parse_prefix(prefix);
  if (!p) return false;
  prefixes_.push_back(*p);
  return true;
}

bool NetworkList::contains(const Prefix& host) const {
  for (const Prefix& net : prefixes_) {
    if (matches(net, host)) return true;
  }
  return false;
}

bool NetworkList::contains(std::string_view ip) const {
  std::optional<Prefix> host = parse_host(ip);
  return host && contains(*host);
}

bool NetworkList::contains(const Address& address) const {
  return address.is_ip() && contains(address.host());
}

std::string NetworkList::to_string() const {
  std::string out;
  for (const Prefix& p : prefixes_) {
    if (!out.empty()) out += ", ";
    out += prefix_text(p);
  }
  return out;
}

}  // namespace tether::registry
