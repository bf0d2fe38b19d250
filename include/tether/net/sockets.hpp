#pragma once
/// \file Socket helpers: options, listening sockets (tornado's netutil.bind_sockets /
/// bind_unix_socket) and an asynchronous connect with a timeout.
///
/// Every socket made here is non-blocking and close-on-exec. No loop affinity except where a
/// function returns a Task (then: the current loop's thread).

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/base/fd.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/net/address.hpp"

namespace tether {

/// Per-connection socket options (TCP ones are ignored on Unix sockets).
struct SocketOptions {
  bool tcp_nodelay = true;  ///< disable Nagle (on by default, as tornado and asyncio do)
  bool keepalive = false;   ///< SO_KEEPALIVE
  /// Keep-alive tuning; zero leaves the kernel default.
  std::chrono::seconds keepalive_idle{0};
  std::chrono::seconds keepalive_interval{0};
  int keepalive_count = 0;
  int send_buffer = 0;  ///< SO_SNDBUF bytes (0: kernel default)
  int recv_buffer = 0;  ///< SO_RCVBUF bytes (0: kernel default)
};

/// Applies `opts` to a connected socket. Returns false (errno set) if a setsockopt failed.
TETHER_API bool apply_socket_options(int fd, const SocketOptions& opts) noexcept;

/// Creates listening sockets for `port` on every address `host` resolves to (passive lookup;
/// "" = all interfaces, IPv4 and IPv6, the IPv6 socket set IPV6_V6ONLY). Port 0 picks a free
/// port for the first socket and reuses it for the others. SO_REUSEADDR is always set;
/// SO_REUSEPORT when `reuse_port`. Blocking (resolves names synchronously): call it at start-up.
/// Throws IoError naming the address on failure.
TETHER_API std::vector<Fd> bind_sockets(std::uint16_t port, const std::string& host = "",
                                        int backlog = 128, bool reuse_port = false);

/// Creates a listening Unix socket at `path` ('@' prefix: abstract name). A stale socket file
/// (nobody accepting) is removed first; a live one, or a non-socket file, is an IoError
/// (EADDRINUSE). The file is not removed on close: StreamServer does that for its own sockets.
TETHER_API Fd bind_unix_socket(const std::string& path, int backlog = 128);

/// getsockname / getpeername as Address values (empty Address on failure).
TETHER_API Address local_address(int fd);
TETHER_API Address peer_address(int fd);

/// Opens a non-blocking stream socket and connects it to `addr`, waiting at most `timeout`
/// (zero: no limit). Applies `opts` once connected. Throws Timeout ("connect to ADDR timed
/// out after N ms"), IoError (refused, unreachable: the message names the address) or
/// Cancelled-by-destruction as usual. Loop thread only.
TETHER_API Task<Fd> connect_socket(Address addr, Duration timeout = Duration::zero(),
                                   SocketOptions opts = {});

}  // namespace tether
