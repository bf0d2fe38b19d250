#include <CLI/CLI.hpp>

#include "address.hpp"
#include "commands.hpp"

namespace tether::tools {

void add_connect_flags(CLI::App& sub, ConnectFlags& flags) {
  sub.add_option("--timeout", flags.timeout,
                 "Seconds allowed for connecting and for each request (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub.add_option("--ca", flags.ca,
                 "tls:// targets: CA file to verify the server with (default: system store)")
      ->check(CLI::ExistingFile);
  sub.add_option("--cert", flags.cert, "tls:// targets: client certificate (PEM)")->check(CLI::ExistingFile);
  sub.add_option("--key", flags.key, "tls:// targets: client private key (PEM)")->check(CLI::ExistingFile);
  sub.add_option("--registry", flags.registry,
                 "Registry for service-name targets: udp://HOST[:PORT], tcp://HOST[:PORT], etcd://HOST:PORT "
                 "(default: UDP broadcast)");
  sub.add_option("--generation", flags.generation, "RPyC generation to speak: 0 = probe (default), 5 or 6")
      ->check(CLI::IsMember({0, 5, 6}));
}

std::vector<std::string> extra_args(const CLI::App& sub) {
  std::vector<std::string> out = sub.remaining();
  for (const auto& arg : out) {
    // Literals never start with "--"; "-5" and "-inf" are negative numbers, not options.
    if (arg.size() > 2 && arg[0] == '-' && arg[1] == '-') {
      throw CliError(kExitUsage, "unknown option " + arg + " (see 'tether " + sub.get_name() + " --help')");
    }
  }
  return out;
}

}  // namespace tether::tools
