#include "address.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <optional>

#include "tether/base/error.hpp"
#include "tether/net/address.hpp"
#include "tether/net/tls.hpp"
#include "tether/registry/discovery.hpp"
#include "tether/registry/registry_url.hpp"

namespace tether::tools {

namespace {

std::optional<std::uint16_t> parse_port(std::string_view s, bool allow0) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535 || (v == 0 && !allow0)) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

bool is_host_name(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return h.front() != '-' && h.front() != '.';
}

bool is_service_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return false;
  for (char c : s) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

[[noreturn]] void bad(std::string_view text, const std::string& why) {
  throw CliError(kExitUsage, fmt::format("bad address '{}': {} (forms: host:port, [v6]:port, unix:/path, "
                                         "unix:@name, tls://host:port, or a service name)",
                                         text, why));
}

/// Library messages may span lines (a discovery error lists each endpoint tried): the tool
/// prints one line, so line breaks and the indentation after them become "; ".
std::string flatten(std::string_view text) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '\n' || text[i] == '\r') {
      while (i < text.size() && (text[i] == '\n' || text[i] == '\r' || text[i] == ' ' || text[i] == '\t'))
        ++i;
      while (!out.empty() && (out.back() == ' ' || out.back() == ':' || out.back() == ';')) out.pop_back();
      if (i < text.size() && !out.empty()) out += "; ";
      continue;
    }
    out += text[i++];
  }
  return out;
}

}  // namespace

std::string Target::to_string() const {
  switch (kind) {
    case Kind::kUnix: return (tls ? "tls+unix:" : "unix:") + path;
    case Kind::kService: return "service " + service;
    case Kind::kTcp: break;
  }
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return (tls ? "tls://" : "") + h + ":" + std::to_string(port);
}

Target parse_target(std::string_view text, bool allow_port0) {
  Target t;
  std::string_view rest = text;
  if (rest.empty()) bad(text, "empty");
  if (rest.substr(0, 6) == "tls://") {
    t.tls = true;
    rest.remove_prefix(6);
  } else if (rest.find("://") != std::string_view::npos) {
    bad(text, "unknown scheme (only tls:// is known)");
  }
  if (rest.substr(0, 5) == "unix:") {
    if (t.tls) bad(text, "tls:// takes host:port");
    rest.remove_prefix(5);
    if (rest.empty() || rest == "@") bad(text, "empty Unix socket path");
    if (rest[0] != '/' && rest[0] != '@' && rest[0] != '.')
      bad(text, "a Unix path must start with '/', '.' or '@'");
    try {
      (void)Address::unix_socket(rest);
    } catch (const Error&) {
      bad(text, "Unix socket path too long");
    }
    t.kind = Target::Kind::kUnix;
    t.path = std::string(rest);
    return t;
  }
  if (!rest.empty() && rest[0] == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) bad(text, "missing ']'");
    if (close + 1 >= rest.size() || rest[close + 1] != ':') bad(text, "missing ':port' after ']'");
    auto port = parse_port(rest.substr(close + 2), allow_port0);
    if (!port) bad(text, "port must be a number from 1 to 65535");
    const std::string_view host = rest.substr(1, close - 1);
    if (!Address::from_ip(host, *port)) bad(text, "not an IPv6 address inside []");
    t.host = std::string(host);
    t.port = *port;
    return t;
  }
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos) {
    if (t.tls) bad(text, "tls:// needs host:port");
    if (!is_service_name(rest)) bad(text, "neither host:port nor a service name");
    t.kind = Target::Kind::kService;
    t.service = std::string(rest);
    return t;
  }
  const std::string_view host = rest.substr(0, colon);
  if (host.find(':') != std::string_view::npos) bad(text, "an IPv6 address needs brackets: [addr]:port");
  auto port = parse_port(rest.substr(colon + 1), allow_port0);
  if (!port) bad(text, "port must be a number from 1 to 65535");
  if (!is_host_name(host)) bad(text, "bad host name");
  t.host = std::string(host);
  t.port = *port;
  return t;
}

std::chrono::steady_clock::duration seconds_to_duration(double s) {
  if (!(s > 0)) return std::chrono::steady_clock::duration::zero();
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
}

registry::DiscoverOptions discover_options(const std::string& registry, double timeout) {
  registry::DiscoverOptions d;
  if (!registry.empty()) {
    std::string why;
    if (!registry::RegistryUrl::parse(registry, &why)) {
      if (why.empty()) why = fmt::format("registry address '{}': malformed", registry);
      throw CliError(kExitUsage,
                     fmt::format("bad --registry: {} (forms: udp://HOST[:PORT], tcp://HOST[:PORT], "
                                 "etcd://HOST[:PORT][,HOST[:PORT]...])",
                                 why));
    }
    d.registry = registry;
  }
  d.timeout = seconds_to_duration(timeout);
  return d;
}

ClientOptions client_options(const Target& target, const ConnectFlags& flags) {
  ClientOptions o;
  o.net.connect_timeout = seconds_to_duration(flags.timeout);
  o.net.tls_handshake_timeout = seconds_to_duration(flags.timeout);
  // 0 means no limit: the connect timeout takes zero as "none", a request deadline does not.
  o.connection.sync_request_timeout =
      flags.timeout > 0 ? seconds_to_duration(flags.timeout)
                        : std::chrono::duration_cast<Duration>(std::chrono::hours(24 * 365));
  if (flags.generation == 5) o.connection.generation = rpc::Generation::k5;
  if (flags.generation == 6) o.connection.generation = rpc::Generation::k6;
  if (target.tls) {
    TlsClientOptions tls;
    tls.ca_file = flags.ca;
    tls.cert_file = flags.cert;
    tls.key_file = flags.key;
    try {
      o.net.tls = TlsContext::client(tls);
    } catch (const std::exception& e) {
      throw CliError(kExitUsage, fmt::format("TLS settings: {}", e.what()));
    }
  } else if (!flags.ca.empty() || !flags.cert.empty() || !flags.key.empty()) {
    throw CliError(kExitUsage, "--ca/--cert/--key need a tls:// address");
  }
  return o;
}

SyncConnection connect_target(const Target& target, const ConnectFlags& flags) {
  ClientOptions opts = client_options(target, flags);
  // A malformed --registry is a usage error (2), found before anything is tried.
  registry::DiscoverOptions d;
  if (target.kind == Target::Kind::kService)
    d = discover_options(flags.registry, flags.timeout > 0 ? std::min(flags.timeout, 5.0) : 5.0);
  try {
    switch (target.kind) {
      case Target::Kind::kTcp: return connect_sync(target.host, target.port, opts);
      case Target::Kind::kUnix: return connect_sync_unix(target.path, opts);
      case Target::Kind::kService: {
        d.connect_timeout = seconds_to_duration(flags.timeout);
        d.rounds = 1;
        return registry::connect_by_service_sync(target.service, d, opts);
      }
    }
  } catch (const RemoteError&) {
    throw;
  } catch (const std::exception& e) {
    throw CliError(kExitConnection, fmt::format("cannot connect to {}: {}", target.to_string(), e.what()));
  }
  throw CliError(kExitUsage, "unknown target kind");
}

int report_exception(std::exception_ptr ep, bool verbose) {
  try {
    std::rethrow_exception(ep);
  } catch (const CliError& e) {
    std::fprintf(stderr, "tether: %s\n", flatten(e.what()).c_str());
    return e.code();
  } catch (const RemoteError& e) {
    std::string msg;
    if (e.args().size() == 1) {
      msg = e.args()[0];
    } else if (e.args().size() > 1) {
      msg = "(";
      for (std::size_t i = 0; i < e.args().size(); ++i) msg += (i ? ", " : "") + e.args()[i];
      msg += ")";
    }
    if (verbose && !e.traceback().empty()) {
      std::fprintf(stderr, "remote traceback:\n%s\n", e.traceback().c_str());
    }
    std::fprintf(stderr, "%s%s%s\n", e.qualified_name().c_str(), msg.empty() ? "" : ": ",
                 flatten(msg).c_str());
    return kExitRemote;
  } catch (const Error& e) {
    switch (e.kind()) {
      case ErrorKind::kTimeout:
        std::fprintf(stderr, "tether: timed out: %s\n", flatten(e.what()).c_str());
        return kExitConnection;
      case ErrorKind::kUsage:
        std::fprintf(stderr, "tether: %s\n", flatten(e.what()).c_str());
        return kExitUsage;
      default:
        std::fprintf(stderr, "tether: %s: %s\n", std::string(to_string(e.kind())).c_str(),
                     flatten(e.what()).c_str());
        return kExitConnection;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tether: %s\n", flatten(e.what()).c_str());
    return kExitConnection;
  }
}

}  // namespace tether::tools
