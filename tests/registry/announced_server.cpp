// A tether server announced to a registry, for tests that need one in another process (a
// server SIGKILLed under etcd, Python's registries and clients finding a tether server).
//
//   announced_server --registry URL [--id ID] [--service NAME] [--host H] [--ttl-ms N]
//                    [--reregister-ms N] [--retry-ms N] [--weight N]
//
// Prints "PORT <n>" once listening, serves the "Echo" service (whoami() -> ID, add(a, b))
// until SIGTERM or SIGINT, then shuts down gracefully (unregistering) and prints "STOPPED".

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tether/registry/announce.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"

namespace {

void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  tether::registry::AnnounceOptions announce;
  std::string id = "child";
  std::string service = "EchoService";
  tether::ServeOptions opts;
  opts.host = "127.0.0.1";
  opts.port = 0;
  bool have_registry = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    auto ms = [&]() { return std::chrono::milliseconds(std::atoll(argv[++i])); };
    if (arg == "--registry" && has_value) {
      announce.registry = argv[++i];
      have_registry = true;
    } else if (arg == "--id" && has_value) {
      id = argv[++i];
    } else if (arg == "--service" && has_value) {
      service = argv[++i];
    } else if (arg == "--host" && has_value) {
      opts.host = argv[++i];
    } else if (arg == "--ttl-ms" && has_value) {
      announce.etcd.ttl = ms();
    } else if (arg == "--reregister-ms" && has_value) {
      announce.reregister_interval = ms();
    } else if (arg == "--retry-ms" && has_value) {
      announce.retry_interval = ms();
    } else if (arg == "--weight" && has_value) {
      announce.weight = static_cast<std::uint32_t>(std::atoll(argv[++i]));
    } else {
      std::fprintf(stderr,
                   "usage: announced_server --registry URL [--id ID] [--service NAME] [--host H] "
                   "[--ttl-ms N] [--reregister-ms N] [--retry-ms N] [--weight N]\n");
      return 2;
    }
  }
  if (!have_registry) {
    std::fprintf(stderr, "announced_server: --registry is required\n");
    return 2;
  }
  try {
    tether::Service svc(service);
    svc.expose("whoami", [id]() { return id; });
    svc.expose(
        "add", [](std::int64_t a, std::int64_t b) { return a + b; }, tether::arg_names("a", "b"));
    opts.on_listen = [](const std::vector<tether::Address>& addresses) {
      say("PORT " + std::to_string(addresses.front().port()));
    };
    opts.hooks.push_back(tether::registry::announce(announce));
    tether::serve(svc, opts);
    say("STOPPED");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "announced_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
