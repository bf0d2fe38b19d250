// tether inspect ADDR [PATH]: the names a server exposes, with their kinds.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "address.hpp"
#include "commands.hpp"
#include "output.hpp"

namespace tether::tools {

namespace {

struct InspectArgs {
  std::string addr;
  std::string path;
  bool all = false;
  bool json = false;
  ConnectFlags flags;
};

struct Entry {
  std::string name;
  std::string kind;  // function, object, class, value, ?
  std::string detail;
  std::string doc;  // the function's or class's __doc__, when the server gives one
};

/// The object's __doc__ ("" when it has none or the server refuses it). A tether server's
/// functions start theirs with the C++ signature in Python notation.
std::string doc_of(const SyncNetref& owner, const Netref& ref) {
  try {
    SyncNetref f(ref, owner.loop());
    Any d = f.getattr("__doc__");
    if (d.is_value() && d.value().is_str()) return d.value().as_str();
  } catch (const RemoteError&) {
  }
  return {};
}

bool is_callable_type(const std::string& t) {
  return t == "builtins.function" || t == "builtins.method" || t == "builtins.builtin_function_or_method" ||
         t == "builtins.method-wrapper" || t == "tether.function" || t.ends_with(".function");
}

Entry describe(SyncConnection& conn, const SyncNetref& obj, const std::string& name) {
  Entry e{name, "?", ""};
  try {
    Any v = obj.getattr(name);
    if (v.is_netref()) {
      const Netref& ref = v.netref();
      const brine::Value& id = ref.id_pack();
      const bool is_class = id.is_tuple() && id.as_tuple().size() == 3 && id.as_tuple()[2].is_int() &&
                            id.as_tuple()[2].is_int64() && id.as_tuple()[2].as_int64() == 0;
      e.detail = ref.type_name();
      if (is_class) {
        e.kind = "class";
        e.doc = doc_of(obj, ref);
      } else if (is_callable_type(ref.type_name())) {
        e.kind = "function";
        e.doc = doc_of(obj, ref);
        // The first line of the doc: a signature ("add(a: int, b: int) -> int") or a summary.
        const std::string first = e.doc.substr(0, e.doc.find('\n'));
        if (!first.empty()) e.detail = first;
      } else {
        e.kind = "object";
      }
    } else {
      e.kind = "value";
      e.detail = result_repr(conn, v);
      if (e.detail.size() > 60) e.detail = e.detail.substr(0, 57) + "...";
    }
  } catch (const RemoteError& err) {
    e.detail = err.qualified_name();
  }
  return e;
}

int run_inspect(InspectArgs& a) {
  const Target target = parse_target(a.addr);
  std::vector<std::string> path;
  if (!a.path.empty()) {
    std::size_t start = 0;
    for (;;) {
      const auto dot = a.path.find('.', start);
      path.push_back(a.path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    for (const auto& p : path) {
      if (p.empty()) throw CliError(kExitUsage, fmt::format("bad PATH '{}'", a.path));
    }
  }
  SyncConnection conn = connect_target(target, a.flags);
  SyncNetref root = conn.root();
  SyncNetref obj = root;
  for (const auto& p : path) obj = obj.attr(p);

  std::string service;
  try {
    Any n = root.callattr<Any>("get_service_name");
    if (n.is_value() && n.value().is_str()) service = n.value().as_str();
  } catch (const RemoteError&) {
  }
  const int generation = static_cast<int>(conn.connection().generation());

  std::set<std::string> names;
  for (const auto& raw : obj.dir()) {
    std::string n = raw;
    const bool exposed = n.starts_with("exposed_");
    if (exposed) n = n.substr(8);
    if (!a.all && (n.empty() || n[0] == '_')) continue;
    // Python's dir() lists everything; only exposed_ names are reachable on an rpyc.Service with
    // the default policy, so without --all the others are listed only when they are reachable.
    names.insert(n);
  }
  std::vector<Entry> entries;
  for (const auto& n : names) {
    Entry e = describe(conn, obj, n);
    if (!a.all && e.kind == "?") continue;
    entries.push_back(std::move(e));
  }

  if (a.json) {
    nlohmann::json j;
    j["target"] = target.to_string();
    j["generation"] = fmt::format("{}.x", generation);
    j["service"] = service;
    j["type"] = obj.type_name();
    j["path"] = a.path;
    j["members"] = nlohmann::json::array();
    for (const auto& e : entries)
      j["members"].push_back({{"name", e.name}, {"kind", e.kind}, {"detail", e.detail}, {"doc", e.doc}});
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s  RPyC %d.x  service %s  %s%s\n", target.to_string().c_str(), generation,
                service.empty() ? "?" : service.c_str(), a.path.empty() ? "root " : (a.path + " ").c_str(),
                obj.type_name().c_str());
    std::size_t width = 4;
    for (const auto& e : entries) width = std::max(width, e.name.size());
    for (const auto& e : entries) {
      std::printf("  %-*s  %-8s  %s\n", static_cast<int>(width), e.name.c_str(), e.kind.c_str(),
                  e.detail.c_str());
    }
  }
  std::fflush(stdout);
  try {
    conn.close();
  } catch (...) {
  }
  return kExitOk;
}

}  // namespace

void add_inspect(CLI::App& app, Runner& run) {
  auto a = std::make_shared<InspectArgs>();
  CLI::App* sub =
      app.add_subcommand("inspect", "List what a server exposes: names, kinds, the RPyC generation");
  sub->add_option("ADDR", a->addr,
                  "host:port, [v6]:port, unix:/path, unix:@name, tls://host:port or a service name")
      ->required();
  sub->add_option("PATH", a->path, "An object under the root, dotted (store)");
  sub->add_flag("-a,--all", a->all, "Also list private names and names the server refuses to resolve");
  sub->add_flag("--json", a->json, "Print JSON");
  add_connect_flags(*sub, a->flags);
  sub->callback([a, &run] { run = [a] { return run_inspect(*a); }; });
}

}  // namespace tether::tools
