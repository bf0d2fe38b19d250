#pragma once
/// \file What the tool's ADDR arguments mean, exit codes, and connecting to a target.
///
///   host:port  [v6]:port  unix:/path  unix:@abstract  tls://host:port  tls://[v6]:port
///   NAME       a service name ([A-Za-z][A-Za-z0-9_-]*), looked up through the registry
///
/// Numeric forms go through tether::Address::parse (the library's own parser); host names
/// and the scheme prefixes are handled here.

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "tether/registry/discovery.hpp"
#include "tether/service/sync.hpp"

namespace tether::tools {

/// Exit codes scripts can rely on.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRemote = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitConnection = 3;

/// An error the tool reports as one line on stderr and exits with `code`.
class CliError : public std::runtime_error {
 public:
  CliError(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  [[nodiscard]] int code() const noexcept { return code_; }

 private:
  int code_;
};

struct Target {
  enum class Kind { kTcp, kUnix, kService };
  Kind kind = Kind::kTcp;
  bool tls = false;
  std::string host;        ///< kTcp (without brackets)
  std::uint16_t port = 0;  ///< kTcp
  std::string path;        ///< kUnix ('@' first: abstract)
  std::string service;     ///< kService
  /// The text form for messages ("127.0.0.1:18861", "unix:/x", "service CALC").
  [[nodiscard]] std::string to_string() const;
};

/// Parses ADDR; throws CliError(kExitUsage) naming what is wrong. `allow_port0`: for serve.
Target parse_target(std::string_view text, bool allow_port0 = false);

/// Connection settings shared by the client subcommands.
struct ConnectFlags {
  double timeout = 10.0;      ///< connect and each request, seconds
  std::string ca, cert, key;  ///< TLS client settings (tls:// targets)
  std::string registry;       ///< registry URL for service names (empty: RPyC's UDP default)
  int generation = 0;         ///< 0 auto, 5, 6
};

/// Discovery settings for the registry URL `registry` ("" = RPyC's default, UDP broadcast to
/// port 18811) with `timeout` seconds for the registry's answer. Throws CliError(kExitUsage),
/// naming the URL and what is wrong with it, when it is malformed.
registry::DiscoverOptions discover_options(const std::string& registry, double timeout);

/// The client options for `flags` (TLS context when the target asks for it).
ClientOptions client_options(const Target& target, const ConnectFlags& flags);

/// A blocking connection to `target`. Throws CliError(kExitConnection) with one clear line when
/// the target cannot be reached in time.
SyncConnection connect_target(const Target& target, const ConnectFlags& flags);

/// Maps an exception escaping a subcommand to an exit code, printing one line on stderr
/// ("tether: ..."). Remote exceptions print as "Type: message" (the traceback too if verbose).
int report_exception(std::exception_ptr e, bool verbose);

std::chrono::steady_clock::duration seconds_to_duration(double s);

}  // namespace tether::tools
