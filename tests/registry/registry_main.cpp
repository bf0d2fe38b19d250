// A tether registry in a process of its own, for the Python interop tests.
//
//   registry_main [--host H] [--pruning-ms N] [--allow-listing] [--allowed NETWORKS]
//
// Serves UDP and TCP on kernel-chosen ports, prints "UDP <port>" and "TCP <port>", and runs
// until SIGTERM or SIGINT, then prints its counters ("STATS garbage=N ...") and "STOPPED".
//
//   registry_main --discover NAME --registry URL
//
// The client side instead: discover_sync(NAME) printing "FOUND host:port" per server, then
// connect_by_service_sync(NAME) printing "CALLED <root.whoami()>"; exit status 1 on failure.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tether/registry/discovery.hpp"
#include "tether/registry/registry_server.hpp"

namespace {

void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

int discover_and_call(const std::string& name, const std::string& registry) {
  tether::registry::DiscoverOptions o;
  o.registry = registry;
  try {
    for (const tether::registry::Endpoint& ep : tether::registry::discover_sync(name, o))
      say("FOUND " + ep.to_string());
    tether::SyncConnection conn = tether::registry::connect_by_service_sync(name, o);
    say("CALLED " + conn.callattr<std::string>("whoami"));
    conn.close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "registry_main: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tether::registry::RegistryServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.udp = true;
  o.tcp = true;
  std::string discover_name;
  std::string registry;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--discover" && i + 1 < argc) {
      discover_name = argv[++i];
    } else if (arg == "--registry" && i + 1 < argc) {
      registry = argv[++i];
    } else if (arg == "--host" && i + 1 < argc) {
      o.host = argv[++i];
    } else if (arg == "--pruning-ms" && i + 1 < argc) {
      o.pruning_timeout = std::chrono::milliseconds(std::atoll(argv[++i]));
    } else if (arg == "--allow-listing") {
      o.allow_listing = true;
    } else if (arg == "--allowed" && i + 1 < argc) {
      std::string error;
      auto nets = tether::registry::NetworkList::parse(argv[++i], &error);
      if (!nets) {
        std::fprintf(stderr, "registry_main: %s\n", error.c_str());
        return 2;
      }
      o.allowed_networks = *nets;
    } else {
      std::fprintf(stderr,
                   "usage: registry_main [--host H] [--pruning-ms N] [--allow-listing] [--allowed NETS]\n"
                   "       registry_main --discover NAME --registry URL\n");
      return 2;
    }
  }
  if (!discover_name.empty()) return discover_and_call(discover_name, registry);
  try {
    tether::registry::RegistryServer server(o);
    tether::registry::serve_until_signal(server, [&server]() {
      say("UDP " + std::to_string(server.udp_port()));
      say("TCP " + std::to_string(server.tcp_port()));
    });
    const tether::registry::RegistryServerStats st = server.stats();
    say("STATS requests=" + std::to_string(st.requests) + " garbage=" + std::to_string(st.garbage) +
        " oversized=" + std::to_string(st.oversized) + " refused_network=" + std::to_string(st.refused_network));
    say("STOPPED");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "registry_main: %s\n", e.what());
    return 1;
  }
  return 0;
}
