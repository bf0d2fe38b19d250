// tether stats ADDR: a tether server's figures (its /status.json, docs/observability.md) as a
// table, as JSON, or refreshed like top(1).

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "address.hpp"
#include "commands.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/time.hpp"
#include "tether/net/connect.hpp"

namespace tether::tools {

namespace {

using nlohmann::json;

struct StatsArgs {
  std::string addr;
  bool json_out = false;
  bool watch = false;
  double interval = 2.0;
  int count = 0;  // refreshes with --watch (0: until interrupted)
  double timeout = 5.0;
};

/// Most bytes of an answer read.
constexpr std::size_t kMaxAnswer = std::size_t{16} << 20;

Task<std::string> http_get(Target target, double timeout) {
  ConnectOptions net;
  net.connect_timeout = seconds_to_duration(timeout);
  net.stream.max_buffer_size = kMaxAnswer;
  std::unique_ptr<BufferedStream> stream;
  if (target.kind == Target::Kind::kUnix) {
    stream = co_await open_unix_connection(target.path, net);
  } else {
    stream = co_await open_connection(target.host, target.port, net);
  }
  stream->write(
      "GET /status.json HTTP/1.1\r\nHost: tether\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
  Bytes answer = co_await stream->read_until_close();
  co_return std::string(answer.view());
}

/// The figures of `target`: its /status.json, checked to be a tether server's.
json fetch_status(const Target& target, double timeout) {
  const std::string where = target.to_string();
  std::string answer;
  EventLoop loop;
  try {
    answer = loop.run_until_complete(with_timeout(seconds_to_duration(timeout), http_get(target, timeout)));
  } catch (const Timeout&) {
    throw CliError(
        kExitConnection,
        fmt::format("{} gave no HTTP answer within {} s (a tether server answers HTTP on its RPC port only "
                    "with HTTP on the RPC port turned on; else give its admin address)",
                    where, timeout));
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kLimitExceeded) {
      throw CliError(kExitConnection,
                     fmt::format("{}: the answer is larger than {} bytes", where, kMaxAnswer));
    }
    throw CliError(kExitConnection, fmt::format("cannot fetch /status.json from {}: {}", where, e.what()));
  }
  if (!answer.starts_with("HTTP/1.")) {
    throw CliError(kExitConnection,
                   fmt::format("{} does not answer HTTP (an RPyC server without HTTP on its port? give the "
                               "tether server's admin address, or turn HTTP on the RPC port on)",
                               where));
  }
  const auto line_end = answer.find("\r\n");
  const std::string status_line = answer.substr(0, line_end);
  const auto head_end = answer.find("\r\n\r\n");
  if (status_line.find(" 200 ") == std::string::npos || head_end == std::string::npos) {
    throw CliError(kExitConnection,
                   fmt::format("{} answers HTTP but not as a tether server does ({} for /status.json)", where,
                               status_line));
  }
  json j = json::parse(answer.substr(head_end + 4), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("service") || !j.contains("totals") ||
      !j["totals"].is_object() || !j.contains("methods") || !j["methods"].is_array()) {
    throw CliError(kExitConnection,
                   fmt::format("{} answers /status.json, but not with a tether server's figures", where));
  }
  return j;
}

std::uint64_t u64(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

double num(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

std::string str(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string bytes_text(std::uint64_t n) {
  if (n < 1024) return fmt::format("{} B", n);
  if (n < (1u << 20)) return fmt::format("{:.1f} KiB", static_cast<double>(n) / 1024);
  if (n < (1u << 30)) return fmt::format("{:.1f} MiB", static_cast<double>(n) / (1u << 20));
  return fmt::format("{:.2f} GiB", static_cast<double>(n) / (1u << 30));
}

std::string ms(double seconds) { return fmt::format("{:.3f}", seconds * 1e3); }

/// The table. `previous` (the last refresh, or null) and `dt` give calls per second.
std::string render_table(const json& s, const json* previous, double dt) {
  const json& t = s["totals"];
  std::string out;
  const bool ready = s.value("ready", false);
  out += fmt::format("service {}  up {:.0f} s  {}\n", str(s, "service"), num(s, "uptime_seconds"),
                     s.value("draining", false) ? "draining"
                     : ready                    ? "ready"
                                                : "not ready");
  std::string closed;
  if (s.contains("closed_by_reason") && s["closed_by_reason"].is_object()) {
    for (const auto& [reason, n] : s["closed_by_reason"].items()) {
      closed += fmt::format("{}{} {}", closed.empty() ? " (" : ", ", reason,
                            n.is_number() ? n.get<std::uint64_t>() : 0);
    }
    if (!closed.empty()) closed += ")";
  }
  out += fmt::format("connections  open {}  accepted {}  refused {}  closed {}{}\n",
                     u64(t, "connections_open"), u64(t, "connections_accepted"),
                     u64(t, "connections_refused"), u64(t, "connections_closed"), closed);
  std::string rate;
  if (previous && dt > 0) {
    const double calls =
        static_cast<double>(u64(t, "requests")) - static_cast<double>(u64((*previous)["totals"], "requests"));
    rate = fmt::format("  calls/s {:.1f}", calls / dt);
  }
  out += fmt::format("requests     {}  errors {}  in flight {}{}\n", u64(t, "requests"), u64(t, "errors"),
                     u64(t, "in_flight"), rate);
  out += fmt::format("bytes        wire in {}  out {}  payload in {}  out {}\n",
                     bytes_text(u64(t, "wire_bytes_in")), bytes_text(u64(t, "wire_bytes_out")),
                     bytes_text(u64(t, "payload_bytes_in")), bytes_text(u64(t, "payload_bytes_out")));
  out += fmt::format("objects      exported {}  proxies {}\n", u64(t, "exported"), u64(t, "proxies"));
  if (s.contains("registry") && s["registry"].value("configured", false)) {
    const json& r = s["registry"];
    out += fmt::format("registry     {} with {}  announcements {}  failures {}\n",
                       r.value("registered", false) ? "registered" : "NOT registered", str(r, "registry"),
                       u64(r, "announcements"), u64(r, "failures"));
  }
  std::map<std::string, std::uint64_t> before;
  if (previous) {
    for (const json& m : (*previous)["methods"])
      before[str(m, "handler") + "/" + str(m, "method")] = u64(m, "calls");
  }
  out += fmt::format("\n{:<24} {:<10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "METHOD", "HANDLER",
                     "CALLS", "ERRORS", "CALLS/S", "P50 ms", "P90 ms", "P99 ms", "P99.9 ms");
  for (const json& m : s["methods"]) {
    const std::string key = str(m, "handler") + "/" + str(m, "method");
    std::string per_s = "-";
    if (previous && dt > 0) {
      const auto it = before.find(key);
      const std::uint64_t was = it == before.end() ? 0 : it->second;
      per_s =
          fmt::format("{:.1f}", static_cast<double>(u64(m, "calls") - std::min(was, u64(m, "calls"))) / dt);
    }
    const std::string method = str(m, "method");
    out += fmt::format("{:<24} {:<10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                       method.empty() ? "-" : method, str(m, "handler"), u64(m, "calls"), u64(m, "errors"),
                       per_s, ms(num(m, "p50")), ms(num(m, "p90")), ms(num(m, "p99")), ms(num(m, "p999")));
  }
  if (s.contains("loops") && s["loops"].is_array() && !s["loops"].empty()) {
    out += fmt::format("\n{:<6} {:>12} {:>12} {:>14} {:>8} {:>8} {:>8} {:>8}\n", "LOOP", "LAG avg ms",
                       "LAG max ms", "BUSY-POLL ms", "CAUGHT", "MISSED", "QUEUED", "RUNNING");
    for (const json& l : s["loops"]) {
      out += fmt::format("{:<6} {:>12} {:>12} {:>14} {:>8} {:>8} {:>8} {:>8}\n", u64(l, "loop"),
                         ms(num(l, "lag_avg_seconds")), ms(num(l, "lag_max_seconds")),
                         fmt::format("{:.1f}", num(l, "busy_poll_seconds") * 1e3), u64(l, "busy_poll_caught"),
                         u64(l, "busy_poll_missed"), u64(l, "worker_queued"), u64(l, "worker_running"));
    }
  }
  return out;
}

int run_stats(const StatsArgs& a) {
  const Target target = parse_target(a.addr);
  if (target.kind == Target::Kind::kService || target.tls) {
    throw CliError(kExitUsage,
                   "stats: give host:port (the RPC port with HTTP on it, or the admin address) or "
                   "unix:PATH");
  }
  json previous;
  auto taken = std::chrono::steady_clock::now();
  for (int n = 1;; ++n) {
    json s = fetch_status(target, a.timeout);
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now - taken).count();
    std::string text;
    if (a.json_out) {
      text = s.dump(a.watch ? -1 : 2, ' ', false, json::error_handler_t::replace) + "\n";
    } else {
      text = render_table(s, previous.is_null() ? nullptr : &previous, dt);
      if (a.watch)
        text = "\x1b[H\x1b[2J" +
               fmt::format("tether stats {}  every {} s\n", target.to_string(), a.interval) + text;
    }
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    if (!a.watch || (a.count > 0 && n >= a.count)) break;
    previous = std::move(s);
    taken = now;
    std::this_thread::sleep_for(std::chrono::duration<double>(a.interval));
  }
  return kExitOk;
}

}  // namespace

void add_stats(CLI::App& app, Runner& run) {
  auto a = std::make_shared<StatsArgs>();
  CLI::App* sub = app.add_subcommand(
      "stats",
      "Show a tether server's figures (connections, requests, errors, latency, bytes) from its /status.json");
  sub->add_option(
         "ADDR", a->addr,
         "host:port of the server's RPC port (with HTTP on it) or of its admin address, or unix:/path")
      ->required();
  sub->add_flag("--json", a->json_out, "Print the server's JSON instead of the table");
  sub->add_flag("-w,--watch", a->watch, "Refresh like top(1) until interrupted (or --count)");
  sub->add_option("-i,--interval", a->interval, "Seconds between refreshes with --watch")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  sub->add_option("-n,--count", a->count, "With --watch: stop after this many refreshes")
      ->check(CLI::Range(1, 1000000000));
  sub->add_option("--timeout", a->timeout, "Seconds to wait for the server's answer")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 3600.0));
  sub->callback([a, &run] { run = [a] { return run_stats(*a); }; });
}

}  // namespace tether::tools
