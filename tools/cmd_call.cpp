// tether call ADDR METHOD [ARGS...]: one remote call, arguments as Python literals.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "address.hpp"
#include "commands.hpp"
#include "literal.hpp"
#include "output.hpp"
#include "py_objects.hpp"

namespace tether::tools {

namespace {

struct CallArgs {
  std::string addr;
  std::string method;
  std::vector<std::string> args;
  std::vector<std::string> kwargs;
  bool json = false;
  bool verbose = false;
  ConnectFlags flags;
};

bool is_identifier(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  }
  return true;
}

std::vector<std::string> split_path(const std::string& method) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    const auto dot = method.find('.', start);
    parts.push_back(method.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (const auto& p : parts) {
    if (!is_identifier(p))
      throw CliError(kExitUsage, fmt::format("bad METHOD '{}': expected names separated by dots", method));
  }
  return parts;
}

Literal parse_arg(const std::string& text, const std::string& what) {
  auto lit = parse_literal(text);
  if (!lit) throw CliError(kExitUsage, fmt::format("{}: {}: {}", what, lit.error().to_string(), text));
  return std::move(lit).value();
}

int run_call(CallArgs& a) {
  const Target target = parse_target(a.addr);
  const std::vector<std::string> path = split_path(a.method);
  // Everything is checked before connecting.
  std::vector<Any> args;
  for (std::size_t i = 0; i < a.args.size(); ++i) {
    args.push_back(literal_to_any(parse_arg(a.args[i], fmt::format("argument {}", i + 1))));
  }
  Kwargs kwargs;
  for (const auto& kv : a.kwargs) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || !is_identifier(kv.substr(0, eq))) {
      throw CliError(kExitUsage, fmt::format("--kw '{}': expected name=value", kv));
    }
    const std::string name = kv.substr(0, eq);
    kwargs.emplace_back(name, literal_to_any(parse_arg(kv.substr(eq + 1), fmt::format("--kw {}", name))));
  }

  SyncConnection conn = connect_target(target, a.flags);
  try {
    SyncNetref obj = conn.root();
    for (std::size_t i = 0; i + 1 < path.size(); ++i) obj = obj.attr(path[i]);
    Any result = obj.callattr_kw<Any>(path.back(), std::move(args), std::move(kwargs));
    std::string text = a.json ? result_json(conn, result).dump() : result_repr(conn, result);
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
  } catch (...) {
    const int code = report_exception(std::current_exception(), a.verbose);
    try {
      conn.close();
    } catch (...) {
    }
    return code;
  }
  try {
    conn.close();
  } catch (...) {
  }
  return kExitOk;
}

}  // namespace

void add_call(CLI::App& app, Runner& run) {
  auto a = std::make_shared<CallArgs>();
  CLI::App* sub = app.add_subcommand(
      "call", "Call a remote function: tether call ADDR METHOD [ARGS...] (ARGS: Python literals)");
  sub->add_option("ADDR", a->addr,
                  "host:port, [v6]:port, unix:/path, unix:@name, tls://host:port or a service name")
      ->required();
  sub->add_option("METHOD", a->method, "Function to call; dotted for objects under the root (store.get)")
      ->required();
  // ARGS are taken raw from what CLI11 leaves over (CLI11 would split "[1, 2]" into items).
  sub->allow_extras();
  sub->fallthrough(false);  // leftovers stay here instead of going up to the main app
  sub->add_option("--kw", a->kwargs, "Keyword argument name=LITERAL (repeatable)")->allow_extra_args(false);
  sub->add_flag("--json", a->json, "Print the result as JSON (see docs/cli.md for the mapping)");
  sub->add_flag("-v,--verbose", a->verbose, "Print the remote traceback of an exception");
  add_connect_flags(*sub, a->flags);
  sub->footer(
      "Quote arguments for the shell: tether call 127.0.0.1:18861 upper \"'hello'\"\n"
      "A remote exception prints as 'Type: message' and exits 1.");
  sub->callback([a, sub, &run] {
    a->args = extra_args(*sub);
    run = [a] { return run_call(*a); };
  });
}

}  // namespace tether::tools
