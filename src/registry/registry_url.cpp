#include "tether/registry/registry_url.hpp"

#include <charconv>

namespace tether::registry {

std::optional<HostPort> split_host_port(std::string_view text, std::uint16_t default_port) {
  HostPort out;
  out.port = default_port;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = std::string(text.substr(1, close - 1));
    rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return std::nullopt;
  } else {
    const std::size_t colon = text.rfind(':');
    // More than one ':' without brackets: a bare IPv6 address, no port.
    if (colon != std::string_view::npos && text.find(':') == colon) {
      out.host = std::string(text.substr(0, colon));
      rest = text.substr(colon);
    } else {
      out.host = std::string(text);
    }
  }
  if (!rest.empty()) {
    std::string_view digits = rest.substr(1);
    unsigned port = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || port == 0 ||
        port > 65535) {
      return std::nullopt;
    }
    out.port = static_cast<std::uint16_t>(port);
  }
  if (out.host.empty() || out.host.find_first_of(" /@,") != std::string::npos) return std::nullopt;
  return out;
}

std::string join_host_port(std::string_view host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string_view::npos;
  return (v6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" + std::to_string(port);
}

std::optional<RegistryUrl> RegistryUrl::parse(std::string_view text, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<RegistryUrl> {
    if (error) *error = "registry address '" + std::string(text) + "': " + why;
    return std::nullopt;
  };
  RegistryUrl url;
  std::string_view rest = text;
  const std::size_t scheme_end = text.find("://");
  if (scheme_end != std::string_view::npos) {
    std::string_view scheme = text.substr(0, scheme_end);
    rest = text.substr(scheme_end + 3);
    if (scheme == "udp") {
      url.kind = Kind::kUdp;
    } else if (scheme == "tcp") {
      url.kind = Kind::kTcp;
    } else if (scheme == "etcd") {
      url.kind = Kind::kEtcd;
    } else {
      return fail("unknown scheme '" + std::string(scheme) + "' (udp, tcp or etcd)");
    }
  }
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty()) return fail("no host");
  if (url.kind != Kind::kEtcd) {
    std::optional<HostPort> hp = split_host_port(rest, kRegistryPort);
    if (!hp) return fail("expected HOST[:PORT]");
    url.host = std::move(hp->host);
    url.port = hp->port;
    return url;
  }
  const std::size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view credentials = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const std::size_t colon = credentials.find(':');
    if (colon == std::string_view::npos || colon == 0) return fail("credentials must be USER:PASSWORD");
    url.username = std::string(credentials.substr(0, colon));
    url.password = std::string(credentials.substr(colon + 1));
  }
  url.host.clear();
  url.port = 0;
  std::size_t start = 0;
  while (start <= rest.size()) {
    const std::size_t comma = rest.find(',', start);
    std::string_view item =
        rest.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    std::optional<HostPort> hp = split_host_port(item, kEtcdPort);
    if (!hp) return fail("expected HOST:PORT[,HOST:PORT...], not '" + std::string(item) + "'");
    url.etcd_endpoints.push_back(join_host_port(hp->host, hp->port));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return url;
}

std::string RegistryUrl::to_string() const {
  switch (kind) {
    case Kind::kUdp: return "udp://" + join_host_port(host, port);
    case Kind::kTcp: return "tcp://" + join_host_port(host, port);
    case Kind::kEtcd: {
      std::string out = "etcd://";
      if (!username.empty()) out += username + ":***@";
      for (std::size_t i = 0; i < etcd_endpoints.size(); ++i) {
        if (i) out += ",";
        out += etcd_endpoints[i];
      }
      return out;
    }
  }
  return {};
}

RegistryClientOptions RegistryUrl::client_options() const {
  RegistryClientOptions o;
  o.transport = kind == Kind::kTcp ? RegistryTransport::kTcp : RegistryTransport::kUdp;
  o.host = host;
  o.port = port;
  return o;
}

}  // namespace tether::registry
