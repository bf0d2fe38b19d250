// tether registry: an RPyC-compatible registry server in the foreground.
// tether list: every service a registry knows, with its servers.
// tether discover NAME: the servers of one service, one per line.
//
// All three go through the registry layer's public API (RegistryServer, RegistryClient,
// ServiceLocator); the registry URL is checked by discover_options() (address.cpp), as for
// `tether call NAME`.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "address.hpp"
#include "commands.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/registry/discovery.hpp"
#include "tether/registry/networks.hpp"
#include "tether/registry/registry_client.hpp"
#include "tether/registry/registry_server.hpp"
#include "tether/registry/registry_url.hpp"

namespace tether::tools {

namespace {

// ---------------------------------------------------------------- tether registry

struct RegistryArgs {
  bool udp = false;
  bool tcp = false;
  std::string host = "0.0.0.0";
  int port = registry::kRegistryPort;
  double pruning = 240;
  std::string allowed;
  bool allow_listing = false;
};

void print_stats(const registry::RegistryServerStats& s) {
  std::printf(
      "registry stopped: requests=%llu replies=%llu garbage=%llu oversized=%llu bad_magic=%llu "
      "unknown_command=%llu bad_arguments=%llu refused_network=%llu refused_full=%llu truncated_replies=%llu "
      "send_errors=%llu tcp_connections=%llu tcp_timeouts=%llu added=%llu removed=%llu services=%zu "
      "entries=%zu\n",
      static_cast<unsigned long long>(s.requests), static_cast<unsigned long long>(s.replies),
      static_cast<unsigned long long>(s.garbage), static_cast<unsigned long long>(s.oversized),
      static_cast<unsigned long long>(s.bad_magic), static_cast<unsigned long long>(s.unknown_command),
      static_cast<unsigned long long>(s.bad_arguments), static_cast<unsigned long long>(s.refused_network),
      static_cast<unsigned long long>(s.refused_full), static_cast<unsigned long long>(s.truncated_replies),
      static_cast<unsigned long long>(s.send_errors), static_cast<unsigned long long>(s.tcp_connections),
      static_cast<unsigned long long>(s.tcp_timeouts), static_cast<unsigned long long>(s.added),
      static_cast<unsigned long long>(s.removed), s.services, s.entries);
  std::fflush(stdout);
}

int run_registry(const RegistryArgs& a) {
  registry::RegistryServerOptions o;
  o.host = a.host;
  o.port = static_cast<std::uint16_t>(a.port);
  // --udp, --tcp or both; neither: UDP (rpyc_registry's default mode).
  o.udp = a.udp || !a.tcp;
  o.tcp = a.tcp;
  o.pruning_timeout = seconds_to_duration(a.pruning);
  o.allow_listing = a.allow_listing;
  if (!a.allowed.empty()) {
    std::string why;
    auto nets = registry::NetworkList::parse(a.allowed, &why);
    if (!nets) throw CliError(kExitUsage, fmt::format("registry: bad --allowed: {}", why));
    o.allowed_networks = std::move(*nets);
  }
  const std::string allowed = o.allowed_networks.to_string();
  registry::RegistryServer server(o);
  server.table().set_on_added([](const std::string& name, const registry::HostPort& ep) {
    TETHER_LOG_INFO("registry: {} registered at {}", name, registry::join_host_port(ep.host, ep.port));
  });
  server.table().set_on_removed([](const std::string& name, const registry::HostPort& ep) {
    TETHER_LOG_INFO("registry: {} at {} removed (unregistered or pruned)", name,
                    registry::join_host_port(ep.host, ep.port));
  });
  try {
    registry::serve_until_signal(server, [&server, &o, &allowed] {
      if (o.udp)
        std::printf("registry listening on %s (udp)\n",
                    registry::join_host_port(o.host, server.udp_port()).c_str());
      if (o.tcp)
        std::printf("registry listening on %s (tcp)\n",
                    registry::join_host_port(o.host, server.tcp_port()).c_str());
      std::fflush(stdout);
      TETHER_LOG_INFO("registry: listing {}, REGISTER accepted from {}, pruning after {:.0f} s",
                      o.allow_listing ? "allowed" : "refused", allowed,
                      std::chrono::duration<double>(o.pruning_timeout).count());
    });
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kUsage) throw CliError(kExitUsage, fmt::format("registry: {}", e.what()));
    throw CliError(kExitConnection, fmt::format("registry: cannot listen on {}: {}",
                                                registry::join_host_port(o.host, o.port), e.what()));
  } catch (const std::exception& e) {
    throw CliError(kExitConnection, fmt::format("registry: cannot listen on {}: {}",
                                                registry::join_host_port(o.host, o.port), e.what()));
  }
  print_stats(server.stats());
  return kExitOk;
}

// ---------------------------------------------------------------- tether list / discover

struct LookupArgs {
  std::string name;
  std::string registry;
  double timeout = 2.0;
};

/// How an endpoint is printed: an ADDR `tether call` takes (tls:// when etcd says TLS).
std::string endpoint_text(const registry::Endpoint& ep) { return (ep.tls ? "tls://" : "") + ep.to_string(); }

struct Listing {
  std::string name;
  std::vector<registry::Endpoint> endpoints;
};

/// RPyC registry: LIST, then QUERY for each name, with the registry client itself so that an
/// empty answer (a name whose entries went stale: LIST does not prune, QUERY does) is told
/// apart from a registry that stopped answering.
Task<std::vector<Listing>> list_rpyc(registry::RegistryClientOptions options) {
  const registry::RegistryClient client(std::move(options));
  std::optional<std::vector<std::string>> names;
  try {
    names = co_await client.list();
  } catch (const std::exception& e) {
    throw CliError(kExitConnection,
                   fmt::format("registry {} did not answer LIST: {}", client.describe(), e.what()));
  }
  if (!names) {
    throw CliError(kExitConnection,
                   fmt::format("registry {} does not allow listing (start it with listing allowed: 'tether "
                               "registry --allow-listing', 'rpyc_registry -l true')",
                               client.describe()));
  }
  std::vector<Listing> out;
  for (std::string& name : *names) {
    Listing l;
    l.name = std::move(name);
    std::vector<registry::HostPort> found;
    try {
      found = co_await client.query(l.name);
    } catch (const std::exception& e) {
      throw CliError(kExitConnection, fmt::format("registry {} did not answer QUERY {}: {}",
                                                  client.describe(), l.name, e.what()));
    }
    for (registry::HostPort& hp : found) {
      registry::Endpoint ep;
      ep.host = std::move(hp.host);
      ep.port = hp.port;
      l.endpoints.push_back(std::move(ep));
    }
    out.push_back(std::move(l));
  }
  co_return out;
}

/// etcd: the names under the prefix, then each one's set. The locator lives in the task, so
/// that it is gone (its requests and watches closed) before the loop's last turns.
Task<std::vector<Listing>> list_etcd(registry::DiscoverOptions options) {
  registry::ServiceLocator locator(std::move(options));
  std::vector<std::string> names = co_await locator.list();
  std::vector<Listing> out;
  for (std::string& name : names) {
    Listing l;
    l.name = std::move(name);
    l.endpoints = co_await locator.discover(l.name);
    out.push_back(std::move(l));
  }
  co_return out;
}

Task<std::vector<registry::Endpoint>> discover_one(registry::DiscoverOptions options, std::string name) {
  registry::ServiceLocator locator(std::move(options));
  std::vector<registry::Endpoint> eps = co_await locator.discover(std::move(name));
  co_return eps;
}

/// Runs `task` on a loop of its own (the tool's thread has none), letting the loop finish
/// closing what the task opened.
template <class T>
T run_on_own_loop(EventLoop& loop, Task<T> task) {
  try {
    T result = loop.run_until_complete(std::move(task));
    for (int i = 0; i < 3; ++i) loop.run_once(Duration::zero());
    return result;
  } catch (...) {
    for (int i = 0; i < 3; ++i) loop.run_once(Duration::zero());
    throw;
  }
}

[[noreturn]] void lookup_failed(const char* what, const std::exception& e) {
  throw CliError(kExitConnection, fmt::format("{}: {}", what, e.what()));
}

int run_list(const LookupArgs& a) {
  registry::DiscoverOptions d = discover_options(a.registry, a.timeout);
  const std::optional<registry::RegistryUrl> url = registry::RegistryUrl::parse(d.registry);
  EventLoop loop;
  std::vector<Listing> listing;
  try {
    if (url && url->kind != registry::RegistryUrl::Kind::kEtcd) {
      registry::RegistryClientOptions o = url->client_options();
      o.timeout = d.timeout;
      listing = run_on_own_loop(loop, list_rpyc(std::move(o)));
    } else {
      listing = run_on_own_loop(loop, list_etcd(std::move(d)));
    }
  } catch (const CliError& e) {
    throw CliError(e.code(), fmt::format("list: {}", e.what()));
  } catch (const std::exception& e) {
    lookup_failed("list", e);
  }
  for (const Listing& l : listing) {
    std::string line = l.name;
    if (l.endpoints.empty()) line += " (no servers)";
    for (const registry::Endpoint& ep : l.endpoints) line += " " + endpoint_text(ep);
    std::printf("%s\n", line.c_str());
  }
  std::fflush(stdout);
  return kExitOk;
}

int run_discover(const LookupArgs& a) {
  registry::DiscoverOptions d = discover_options(a.registry, a.timeout);
  EventLoop loop;
  std::vector<registry::Endpoint> eps;
  try {
    eps = run_on_own_loop(loop, discover_one(std::move(d), a.name));
  } catch (const std::exception& e) {
    lookup_failed("discover", e);
  }
  for (const registry::Endpoint& ep : eps) std::printf("%s\n", endpoint_text(ep).c_str());
  std::fflush(stdout);
  return kExitOk;
}

void add_lookup_flags(CLI::App& sub, LookupArgs& a) {
  sub.add_option("--registry", a.registry,
                 "udp://HOST[:PORT], tcp://HOST[:PORT] or etcd://HOST[:PORT][,HOST[:PORT]...] "
                 "(default: UDP broadcast to port 18811)");
  sub.add_option("--timeout", a.timeout, "Seconds to wait for the registry's answer")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 3600.0));
}

}  // namespace

void add_registry(CLI::App& app, Runner& run) {
  auto a = std::make_shared<RegistryArgs>();
  CLI::App* sub = app.add_subcommand(
      "registry",
      "Run an RPyC-compatible registry server (Ctrl-C or SIGTERM stops it and prints its counters)");
  sub->add_flag("--udp", a->udp, "Serve RPyC's UDP registry protocol (the default)");
  sub->add_flag("--tcp", a->tcp, "Serve RPyC's TCP registry protocol (with --udp: both)");
  sub->add_option("--host", a->host, "Address to listen on")->capture_default_str();
  sub->add_option("--port", a->port, "Port to listen on (0: a free one, printed)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  sub->add_option("--pruning", a->pruning, "Seconds after which a server that did not re-register is dropped")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 86400.0));
  sub->add_option("--allowed", a->allowed,
                  "Networks allowed to REGISTER/UNREGISTER, comma-separated (default: loopback and private "
                  "ranges; 0.0.0.0/0,::/0 for any)");
  sub->add_flag("--allow-listing", a->allow_listing, "Answer LIST requests (what 'tether list' sends)");
  sub->footer(
      "Prints 'registry listening on HOST:PORT (udp|tcp)' first, with the port the kernel chose for port 0. "
      "--log-level info logs each registration and removal.");
  sub->callback([a, &run] { run = [a] { return run_registry(*a); }; });
}

void add_list(CLI::App& app, Runner& run) {
  auto a = std::make_shared<LookupArgs>();
  CLI::App* sub = app.add_subcommand("list", "List the services a registry knows and their servers");
  add_lookup_flags(*sub, *a);
  sub->footer(
      "One line per service: NAME HOST:PORT... (RPyC registries answer only when started with listing "
      "allowed: 'tether registry --allow-listing', 'rpyc_registry -l true').");
  sub->callback([a, &run] { run = [a] { return run_list(*a); }; });
}

void add_discover(CLI::App& app, Runner& run) {
  auto a = std::make_shared<LookupArgs>();
  CLI::App* sub = app.add_subcommand("discover", "Print the servers of a service, one per line");
  sub->add_option("NAME", a->name, "Service name (case does not matter)")->required();
  add_lookup_flags(*sub, *a);
  sub->footer("Exit code 3 when no server of NAME is registered or the registry does not answer.");
  sub->callback([a, &run] { run = [a] { return run_discover(*a); }; });
}

}  // namespace tether::tools
