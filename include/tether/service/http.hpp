#pragma once
/// \file The HTTP side of a Server: /metrics (Prometheus), /healthz, /readyz, /status.json and
/// the web console at /. Served on the RPC port when HttpOptions::on_rpc_port is set (a
/// connection whose first bytes start an HTTP request line is answered as HTTP/1.1 instead of
/// RPyC), and on a separate admin address when HttpOptions::admin_port is set. See
/// docs/observability.md; the limits are listed in docs/security.md.
///
/// One request per connection (answered with `Connection: close`), GET and HEAD only. The
/// request head is parsed by Debian's http-parser (libhttp-parser) after it has been read
/// whole within max_head_bytes and timeout.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "tether/base/export.hpp"
#include "tether/loop/task.hpp"
#include "tether/loop/time.hpp"
#include "tether/service/metrics.hpp"
#include "tether/stream/buffered_stream.hpp"

namespace tether {

struct HttpOptions {
  /// Answer HTTP requests on the RPC port too. Off by default: turning it on publishes the
  /// service's method names, peers and error messages to whoever can reach the port (see
  /// docs/security.md).
  bool on_rpc_port = false;
  /// Non-zero (or admin_port_any): also listen for HTTP alone on admin_host:admin_port.
  std::string admin_host = "127.0.0.1";
  std::uint16_t admin_port = 0;
  /// Listen on a kernel-chosen admin port (Server::admin_port() tells it).
  bool admin_port_any = false;
  /// The request line and headers together, at most (more: 431).
  std::size_t max_head_bytes = 8192;
  /// The whole request must have arrived within this (else 408), and the response must have
  /// left within it again (else the connection is dropped).
  Duration timeout = std::chrono::seconds(10);
  /// Serve the web console at / (off: 404).
  bool console = true;
};

/// An answer to one HTTP request.
struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  /// Extra header lines, each ending in "\r\n".
  std::string headers;
};

namespace http {
/// True when `first` (the first 4 bytes a client sent) starts an HTTP/1.x request line. No
/// RPyC frame starts so: its first byte is the high byte of a 32-bit length, and these letters
/// would announce a frame of more than 1 GiB.
TETHER_API bool starts_request(std::string_view first) noexcept;

/// The answer to the request head `head` (request line and headers, ending in an empty line):
/// parsed strictly, routed to the endpoints. Pure: no I/O.
TETHER_API HttpResponse respond(std::string_view head, const ServerMetrics& metrics, const HttpOptions& options);

/// HttpResponse as bytes (`head_only`: without the body, for HEAD).
TETHER_API std::string serialize(const HttpResponse& r, bool head_only);

/// Serves one HTTP request on `stream` (first byte not yet consumed), then closes it.
TETHER_API Task<void> serve(BufferedStream& stream, std::shared_ptr<ServerMetrics> metrics, HttpOptions options);

/// The web console page (HTML, CSS and script in one; no external resources).
TETHER_API std::string_view console_page() noexcept;
}  // namespace http

}  // namespace tether
