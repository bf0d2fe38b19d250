#pragma once
/// \file The subcommands of the tether tool. Each add_*() registers its options on `app` and,
/// when the subcommand is chosen, sets `run` to the function that carries it out (called by
/// main() after parsing). Runners return an exit code (address.hpp) and may throw; main()
/// turns exceptions into one line on stderr and an exit code (report_exception).

#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace tether::tools {

using Runner = std::function<int()>;

/// Options every client subcommand shares (--timeout, --ca/--cert/--key, --registry,
/// --generation); defined in client.cpp.
struct ConnectFlags;
void add_connect_flags(CLI::App& sub, ConnectFlags& flags);

/// The positional arguments CLI11 left over (ARGS of call and bench), unsplit; throws
/// CliError(kExitUsage) for an unknown --option among them.
std::vector<std::string> extra_args(const CLI::App& sub);

void add_serve(CLI::App& app, Runner& run);
void add_call(CLI::App& app, Runner& run);
void add_inspect(CLI::App& app, Runner& run);
void add_ping(CLI::App& app, Runner& run);
void add_stats(CLI::App& app, Runner& run);
void add_bench(CLI::App& app, Runner& run);
void add_tap(CLI::App& app, Runner& run);
void add_registry(CLI::App& app, Runner& run);
void add_list(CLI::App& app, Runner& run);
void add_discover(CLI::App& app, Runner& run);

}  // namespace tether::tools
