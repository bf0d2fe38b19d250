#include <CLI/CLI.hpp>

#include "commands.hpp"

namespace tether::tools {
void add_tap(CLI::App& app, Runner& run) {
  CLI::App* sub = app.add_subcommand("tap", "not yet");
  sub->callback([&run] { run = [] { return 2; }; });
}
}  // namespace tether::tools
