#pragma once
/// \file Address: a socket address value (IPv4, IPv6, Unix path or Linux abstract Unix name)
/// and asynchronous name resolution.
///
/// Address is a regular value: copyable, comparable, no loop affinity, safe to pass between
/// threads. Text forms (to_string / parse):
///
///   IPv4       "127.0.0.1:8080"
///   IPv6       "[::1]:8080"          (scope: "[fe80::1%eth0]:8080")
///   Unix path  "unix:/run/app.sock"
///   abstract   "unix:@name"          (Linux abstract namespace; '@' stands for the leading NUL)

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/loop/task.hpp"

namespace tether {

class TETHER_API Address {
 public:
  enum class Family { kNone, kIPv4, kIPv6, kUnix };

  /// An empty address (family kNone).
  Address() noexcept;

  /// A numeric IPv4 or IPv6 host ("127.0.0.1", "::1", "fe80::1%lo") with a port; nullopt if
  /// `ip` is not a numeric address. Never resolves names.
  static std::optional<Address> from_ip(std::string_view ip, std::uint16_t port);
  /// A Unix socket address. A leading '@' or '\0' selects the Linux abstract namespace.
  /// Throws UsageError if the name does not fit in sockaddr_un.
  static Address unix_socket(std::string_view path);
  /// 127.0.0.1:port / [::1]:port.
  static Address loopback_v4(std::uint16_t port);
  static Address loopback_v6(std::uint16_t port);
  /// Copies a kernel-provided address (accept, getsockname, getaddrinfo).
  static Address from_sockaddr(const sockaddr* sa, socklen_t len);
  /// Parses the text forms listed in the file comment; a bare path starting with '/' is also
  /// accepted as a Unix path. nullopt when malformed (no name resolution).
  static std::optional<Address> parse(std::string_view text);

  [[nodiscard]] Family family() const noexcept { return family_; }
  [[nodiscard]] bool empty() const noexcept { return family_ == Family::kNone; }
  [[nodiscard]] bool is_ip() const noexcept { return family_ == Family::kIPv4 || family_ == Family::kIPv6; }
  [[nodiscard]] bool is_unix() const noexcept { return family_ == Family::kUnix; }
  /// True for a Linux abstract Unix name.
  [[nodiscard]] bool is_abstract() const noexcept;
  [[nodiscard]] bool is_loopback() const noexcept;

  /// The port (IP families), else 0.
  [[nodiscard]] std::uint16_t port() const noexcept;
  /// A copy with another port (IP families; unchanged otherwise).
  [[nodiscard]] Address with_port(std::uint16_t port) const noexcept;
  /// The numeric host ("127.0.0.1", "::1") or the Unix path ("@name" for abstract names).
  [[nodiscard]] std::string host() const;
  /// The text form (see the file comment); "" for an empty address.
  [[nodiscard]] std::string to_string() const;

  /// AF_INET / AF_INET6 / AF_UNIX / AF_UNSPEC.
  [[nodiscard]] int os_family() const noexcept;
  [[nodiscard]] const sockaddr* sockaddr_ptr() const noexcept {
    return reinterpret_cast<const sockaddr*>(&storage_);
  }
  [[nodiscard]] socklen_t sockaddr_len() const noexcept { return len_; }

  friend TETHER_API bool operator==(const Address& a, const Address& b) noexcept;

 private:
  sockaddr_storage storage_;
  socklen_t len_ = 0;
  Family family_ = Family::kNone;
};

/// Which families resolve() may return.
enum class AddressFamily { kAny, kIPv4, kIPv6 };

/// Resolves `host` to every address for `port`, in the resolver's preference order.
/// Numeric hosts complete inline without touching the worker pool; names run getaddrinfo on
/// the current loop's worker pool (run_in_worker), so the loop thread never blocks.
/// Throws Error (kind kIo) naming the host and the resolver's reason when nothing is found.
/// Cancelling the task drops the result (the lookup itself runs to completion on the pool).
TETHER_API Task<std::vector<Address>> resolve(std::string host, std::uint16_t port,
                                             AddressFamily family = AddressFamily::kAny);

/// The blocking form of resolve(), for start-up code (bind) and worker threads.
/// `passive` resolves for binding (an empty host means every local interface).
TETHER_API std::vector<Address> resolve_blocking(const std::string& host, std::uint16_t port,
                                                AddressFamily family = AddressFamily::kAny,
                                                bool passive = false);

}  // namespace tether
