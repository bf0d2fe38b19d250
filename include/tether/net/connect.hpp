#pragma once
/// \file Client connections (asyncio's open_connection / open_unix_connection, tornado's
/// TCPClient.connect): resolve, try every address in turn with a connect timeout, optionally
/// run a TLS handshake, and return a BufferedStream.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "tether/base/export.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/net/address.hpp"
#include "tether/net/sockets.hpp"
#include "tether/net/tls.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/transport.hpp"

namespace tether {

struct ConnectOptions {
  /// Limit for each address tried (zero: none). Expiry -> Timeout naming the address.
  Duration connect_timeout = std::chrono::seconds(30);
  /// Restrict the families resolve() may return.
  AddressFamily family = AddressFamily::kAny;
  /// TCP_NODELAY (default on), keep-alive, buffer sizes.
  SocketOptions socket;
  /// Limits and watermarks of the returned stream.
  StreamOptions stream;
  /// Set: speak TLS with this client context (TlsContext::client(...)).
  std::optional<TlsContext> tls;
  /// Name sent as SNI and checked against the certificate; empty: the host argument.
  std::string server_hostname;
  /// Limit for the TLS handshake (zero: none).
  Duration tls_handshake_timeout = std::chrono::seconds(10);
};

/// Connects to host:port. Names resolve on the loop's worker pool; every resolved address is
/// tried in order until one connects. Errors: Timeout (the address that timed out is named),
/// IoError (e.g. ECONNREFUSED; the message lists each address tried and why it failed),
/// TlsError / Disconnected from the TLS handshake. Cancelling the task closes any socket in
/// progress. Runs on the current loop; the stream is bound to it.
TETHER_API Task<std::unique_ptr<BufferedStream>> open_connection(std::string host, std::uint16_t port,
                                                                 ConnectOptions opts);

/// Connects to a Unix socket path ('@' prefix: abstract name). TLS over Unix sockets works
/// too (opts.tls; the server name must then be given in opts.server_hostname).
TETHER_API Task<std::unique_ptr<BufferedStream>> open_unix_connection(std::string path, ConnectOptions opts);

/// The transport-level form of open_connection (no BufferedStream around it).
TETHER_API Task<std::unique_ptr<Transport>> connect_transport(std::string host, std::uint16_t port,
                                                              ConnectOptions opts);
/// Connects to one known address (any family) and returns the transport.
TETHER_API Task<std::unique_ptr<Transport>> connect_transport(Address addr, ConnectOptions opts);

// Default-option forms. These are overloads, not default arguments, on purpose: GCC 12
// bit-copies a class-type default argument of a coroutine when the call sits in a co_await
// inside another coroutine (a std::string member then frees a foreign pointer).
inline Task<std::unique_ptr<BufferedStream>> open_connection(std::string host, std::uint16_t port) {
  return open_connection(std::move(host), port, ConnectOptions{});
}
inline Task<std::unique_ptr<BufferedStream>> open_unix_connection(std::string path) {
  return open_unix_connection(std::move(path), ConnectOptions{});
}
inline Task<std::unique_ptr<Transport>> connect_transport(std::string host, std::uint16_t port) {
  return connect_transport(std::move(host), port, ConnectOptions{});
}
inline Task<std::unique_ptr<Transport>> connect_transport(Address addr) {
  return connect_transport(addr, ConnectOptions{});
}

}  // namespace tether
