// tether: the command-line tool (docs/cli.md). Exit codes: 0 ok, 1 remote error, 2 usage,
// 3 connection failure or timeout.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "address.hpp"
#include "commands.hpp"
#include "tether/base/log.hpp"

namespace {

std::optional<tether::LogLevel> parse_level(const std::string& s) {
  using tether::LogLevel;
  if (s == "trace") return LogLevel::kTrace;
  if (s == "debug") return LogLevel::kDebug;
  if (s == "info") return LogLevel::kInfo;
  if (s == "warn" || s == "warning") return LogLevel::kWarn;
  if (s == "error") return LogLevel::kError;
  if (s == "off") return LogLevel::kOff;
  return std::nullopt;
}

/// CLI11's messages can span lines; keep the first.
std::string first_line(std::string s) {
  const auto nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "tether: call, serve, inspect, measure and watch RPyC services (Python's RPyC or tether), run and "
      "query registries",
      "tether"};
  app.set_version_flag("--version", std::string("tether ") + TETHER_VERSION_STRING);
  app.require_subcommand(1);
  app.fallthrough();
  std::string level = "warn";
  auto* level_opt = app.add_option("--log-level", level, "trace, debug, info, warn, error or off")
                        ->capture_default_str()
                        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "warning", "error", "off"}));
  app.footer(
      "Exit codes: 0 ok, 1 remote error, 2 usage, 3 connection failure, timeout or nothing found. See "
      "docs/cli.md.");

  tether::tools::Runner run;
  tether::tools::add_serve(app, run);
  tether::tools::add_call(app, run);
  tether::tools::add_inspect(app, run);
  tether::tools::add_ping(app, run);
  tether::tools::add_stats(app, run);
  tether::tools::add_bench(app, run);
  tether::tools::add_tap(app, run);
  tether::tools::add_registry(app, run);
  tether::tools::add_list(app, run);
  tether::tools::add_discover(app, run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string where;
    for (const auto* sub : app.get_subcommands()) where = std::string(" ") + sub->get_name();
    std::fprintf(stderr, "tether: %s (see 'tether%s --help')\n", first_line(e.what()).c_str(), where.c_str());
    return tether::tools::kExitUsage;
  } catch (...) {
    return tether::tools::report_exception(std::current_exception(), false);
  }
  // Without --log-level: TETHER_LOG_LEVEL if set, else warn for the long-running subcommands
  // (serve, tap, registry) and off for the clients, whose errors the tool reports itself in one line.
  if (level_opt->count() > 0) {
    if (auto l = parse_level(level)) tether::set_log_level(*l);
  } else if (std::getenv("TETHER_LOG_LEVEL") == nullptr) {
    const bool long_running =
        app.got_subcommand("serve") || app.got_subcommand("tap") || app.got_subcommand("registry");
    tether::set_log_level(long_running ? tether::LogLevel::kWarn : tether::LogLevel::kOff);
  }
  if (!run) {
    std::fprintf(stderr, "tether: no subcommand (see 'tether --help')\n");
    return tether::tools::kExitUsage;
  }
  try {
    return run();
  } catch (...) {
    return tether::tools::report_exception(std::current_exception(), false);
  }
}
