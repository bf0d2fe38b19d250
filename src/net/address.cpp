#include "tether/net/address.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "tether/base/error.hpp"
#include "tether/loop/worker_pool.hpp"

namespace tether {

namespace {

constexpr std::size_t kMaxUnixPath = sizeof(sockaddr_un::sun_path);

std::optional<std::uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

int to_ai_family(AddressFamily f) {
  switch (f) {
    case AddressFamily::kIPv4: return AF_INET;
    case AddressFamily::kIPv6: return AF_INET6;
    case AddressFamily::kAny: break;
  }
  return AF_UNSPEC;
}

bool family_allowed(const Address& a, AddressFamily f) {
  if (f == AddressFamily::kIPv4) return a.family() == Address::Family::kIPv4;
  if (f == AddressFamily::kIPv6) return a.family() == Address::Family::kIPv6;
  return true;
}

}  // namespace

Address::Address() noexcept { std::memset(&storage_, 0, sizeof storage_); }

std::optional<Address> Address::from_ip(std::string_view ip, std::uint16_t port) {
  if (ip.size() >= 64) return std::nullopt;
  char text[64];
  std::memcpy(text, ip.data(), ip.size());
  text[ip.size()] = '\0';
  Address a;
  sockaddr_in v4{};
  if (::inet_pton(AF_INET, text, &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    std::memcpy(&a.storage_, &v4, sizeof v4);
    a.len_ = sizeof v4;
    a.family_ = Family::kIPv4;
    return a;
  }
  // IPv6, optionally with a %scope (interface name or number).
  std::uint32_t scope = 0;
  if (char* pct = std::strchr(text, '%')) {
    *pct = '\0';
    const char* zone = pct + 1;
    unsigned idx = ::if_nametoindex(zone);
    if (idx == 0) {
      std::string_view z(zone);
      auto [p, ec] = std::from_chars(z.data(), z.data() + z.size(), idx);
      if (ec != std::errc() || p != z.data() + z.size() || z.empty()) return std::nullopt;
    }
    scope = idx;
  }
  sockaddr_in6 v6{};
  if (::inet_pton(AF_INET6, text, &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    v6.sin6_scope_id = scope;
    std::memcpy(&a.storage_, &v6, sizeof v6);
    a.len_ = sizeof v6;
    a.family_ = Family::kIPv6;
    return a;
  }
  return std::nullopt;
}

Address Address::unix_socket(std::string_view path) {
  bool abstract = !path.empty() && (path[0] == '@' || path[0] == '\0');
  // Path names need room for their terminating NUL; abstract names are length-delimited.
  if (path.empty() || path.size() > kMaxUnixPath - (abstract ? 0 : 1)) {
    throw UsageError(fmt::format("unix socket name too long or empty ({} bytes)", path.size()));
  }
  Address a;
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, path.data(), path.size());
  if (abstract) un.sun_path[0] = '\0';
  std::memcpy(&a.storage_, &un, sizeof un);
  a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  a.family_ = Family::kUnix;
  return a;
}

Address Address::loopback_v4(std::uint16_t port) { return *from_ip("127.0.0.1", port); }
Address Address::loopback_v6(std::uint16_t port) { return *from_ip("::1", port); }

Address Address::from_sockaddr(const sockaddr* sa, socklen_t len) {
  Address a;
  if (!sa || len <= 0 || static_cast<std::size_t>(len) > sizeof a.storage_) return a;
  std::memcpy(&a.storage_, sa, static_cast<std::size_t>(len));
  a.len_ = len;
  switch (sa->sa_family) {
    case AF_INET: a.family_ = Family::kIPv4; break;
    case AF_INET6: a.family_ = Family::kIPv6; break;
    case AF_UNIX: a.family_ = Family::kUnix; break;
    default: a.family_ = Family::kNone; a.len_ = 0; break;
  }
  return a;
}

std::optional<Address> Address::parse(std::string_view text) {
  if (text.starts_with("unix:")) {
    auto path = text.substr(5);
    if (path.empty() || path.size() > kMaxUnixPath - 1) return std::nullopt;
    return unix_socket(path);
  }
  if (text.starts_with("/")) {
    if (text.size() > kMaxUnixPath - 1) return std::nullopt;
    return unix_socket(text);
  }
  if (text.starts_with("[")) {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    auto port = parse_port(text.substr(close + 2));
    if (!port) return std::nullopt;
    auto a = from_ip(text.substr(1, close - 1), *port);
    if (!a || a->family() != Family::kIPv6) return std::nullopt;
    return a;
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto port = parse_port(text.substr(colon + 1));
  if (!port) return std::nullopt;
  auto a = from_ip(text.substr(0, colon), *port);
  if (!a || a->family() != Family::kIPv4) return std::nullopt;
  return a;
}

bool Address::is_abstract() const noexcept {
  if (family_ != Family::kUnix) return false;
  const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
  return len_ > offsetof(sockaddr_un, sun_path) && un->sun_path[0] == '\0';
}

bool Address::is_loopback() const noexcept {
  if (family_ == Family::kIPv4) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage_);
    return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  }
  if (family_ == Family::kIPv6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
    return IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr) != 0;
  }
  return false;
}

std::uint16_t Address::port() const noexcept {
  if (family_ == Family::kIPv4) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family_ == Family::kIPv6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

Address Address::with_port(std::uint16_t port) const noexcept {
  Address a = *this;
  if (family_ == Family::kIPv4) reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_port = htons(port);
  if (family_ == Family::kIPv6) reinterpret_cast<sockaddr_in6*>(&a.storage_)->sin6_port = htons(port);
  return a;
}

std::string Address::host() const {
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
  switch (family_) {
    case Family::kIPv4: {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage_);
      ::inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
      return buf;
    }
    case Family::kIPv6: {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
      ::inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
      std::string out(buf);
      if (v6->sin6_scope_id != 0) {
        char name[IF_NAMESIZE] = {};
        if (::if_indextoname(v6->sin6_scope_id, name)) {
          out += fmt::format("%{}", name);
        } else {
          out += fmt::format("%{}", v6->sin6_scope_id);
        }
      }
      return out;
    }
    case Family::kUnix: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
      std::size_t n = len_ - offsetof(sockaddr_un, sun_path);
      if (n == 0) return {};
      if (un->sun_path[0] == '\0') return "@" + std::string(un->sun_path + 1, n - 1);
      return std::string(un->sun_path, ::strnlen(un->sun_path, n));
    }
    case Family::kNone: break;
  }
  return {};
}

std::string Address::to_string() const {
  switch (family_) {
    case Family::kIPv4: return fmt::format("{}:{}", host(), port());
    case Family::kIPv6: return fmt::format("[{}]:{}", host(), port());
    case Family::kUnix: {
      std::string h = host();
      return h.empty() ? "unix:(unnamed)" : "unix:" + h;
    }
    case Family::kNone: break;
  }
  return {};
}

int Address::os_family() const noexcept {
  switch (family_) {
    case Family::kIPv4: return AF_INET;
    case Family::kIPv6: return AF_INET6;
    case Family::kUnix: return AF_UNIX;
    case Family::kNone: break;
  }
  return AF_UNSPEC;
}

bool operator==(const Address& a, const Address& b) noexcept {
  if (a.family_ != b.family_ || a.len_ != b.len_) return false;
  if (a.family_ == Address::Family::kNone) return true;
  if (a.family_ == Address::Family::kIPv4) {
    const auto* x = reinterpret_cast<const sockaddr_in*>(&a.storage_);
    const auto* y = reinterpret_cast<const sockaddr_in*>(&b.storage_);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.family_ == Address::Family::kIPv6) {
    const auto* x = reinterpret_cast<const sockaddr_in6*>(&a.storage_);
    const auto* y = reinterpret_cast<const sockaddr_in6*>(&b.storage_);
    return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
           std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

std::vector<Address> resolve_blocking(const std::string& host, std::uint16_t port, AddressFamily family,
                                      bool passive) {
  if (!passive || !host.empty()) {
    if (auto a = Address::from_ip(host, port)) {
      if (!family_allowed(*a, family)) {
        throw Error(ErrorKind::kIo, fmt::format("address {} is not of the requested family", host));
      }
      return {*a};
    }
  }
  addrinfo hints{};
  hints.ai_family = to_ai_family(family);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG | (passive ? AI_PASSIVE : 0);
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (rc == EAI_BADFLAGS || (rc != 0 && (hints.ai_flags & AI_ADDRCONFIG))) {
    // Some hosts (no configured non-loopback address) reject AI_ADDRCONFIG lookups of
    // "localhost": retry without it.
    hints.ai_flags &= ~AI_ADDRCONFIG;
    rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  }
  if (rc != 0) {
    std::string reason = rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc);
    throw Error(ErrorKind::kIo, fmt::format("cannot resolve '{}': {}", host, reason));
  }
  std::vector<Address> out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    Address a = Address::from_sockaddr(ai->ai_addr, ai->ai_addrlen);
    if (a.empty()) continue;
    bool dup = false;
    for (const auto& seen : out) dup = dup || seen == a;
    if (!dup) out.push_back(a);
  }
  ::freeaddrinfo(res);
  if (out.empty()) throw Error(ErrorKind::kIo, fmt::format("cannot resolve '{}': no addresses", host));
  return out;
}

namespace {
struct ResolveJob {
  std::string host;
  std::uint16_t port;
  AddressFamily family;
  std::vector<Address> operator()() const { return resolve_blocking(host, port, family, false); }
};
}  // namespace

Task<std::vector<Address>> resolve(std::string host, std::uint16_t port, AddressFamily family) {
  if (auto a = Address::from_ip(host, port)) {
    if (!family_allowed(*a, family)) {
      throw Error(ErrorKind::kIo, fmt::format("address {} is not of the requested family", host));
    }
    co_return std::vector<Address>{*a};
  }
  if (host.empty()) throw UsageError("resolve: empty host name");
  // Named job and task: GCC 12 mishandles non-trivial temporaries inside a co_await operand.
  ResolveJob job{std::move(host), port, family};
  Task<std::vector<Address>> lookup = run_in_worker(std::move(job));
  std::vector<Address> out = co_await lookup;
  co_return out;
}

}  // namespace tether
