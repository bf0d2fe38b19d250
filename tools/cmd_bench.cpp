// tether bench ADDR [METHOD ARGS...]: a load generator on the library's coroutine client.
//
// C connections on one loop (this thread), W requests in flight on each (W workers per
// connection, each waiting for its reply before sending the next). Without METHOD the
// requests are RPyC PINGs.

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "address.hpp"
#include "commands.hpp"
#include "literal.hpp"
#include "py_objects.hpp"
#include "stats.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/loop/time.hpp"
#include "tether/registry/discovery.hpp"
#include "tether/service/client.hpp"

namespace tether::tools {

namespace {

using Clock = std::chrono::steady_clock;

struct BenchArgs {
  std::string addr;
  std::string method;
  std::vector<std::string> args;
  int connections = 1;
  double duration = 5.0;
  int pipeline = 1;
  double report = 1.0;
  bool json = false;
  bool quiet = false;
  ConnectFlags flags;
};

struct BenchState {
  bool stop = false;
  std::uint64_t calls = 0;
  std::uint64_t errors = 0;
  std::string first_error;
  std::vector<double> latencies;  // ms, every call
  std::vector<double> window;     // ms, since the last progress report
};

constexpr std::size_t kMaxSamples = 20'000'000;

void record(BenchState& st, double ms) {
  ++st.calls;
  if (st.latencies.size() < kMaxSamples) st.latencies.push_back(ms);
  st.window.push_back(ms);
}

Task<void> bench_worker(Connection& conn, Netref root, const std::string& method,
                        const std::vector<Any>& args, BenchState& st) {
  while (!st.stop) {
    const auto t0 = Clock::now();
    try {
      if (method.empty()) {
        co_await conn.ping();
      } else {
        std::vector<Any> call_args = args;
        Any r = co_await root.callattr(method, std::move(call_args));
        (void)r;
      }
    } catch (const RemoteError& e) {
      ++st.errors;
      if (st.first_error.empty())
        st.first_error = e.qualified_name() + (e.args().empty() ? "" : ": " + e.args()[0]);
      continue;
    } catch (const std::exception& e) {
      ++st.errors;
      if (st.first_error.empty()) st.first_error = e.what();
      co_return;  // the connection is gone or stuck: this worker stops
    }
    record(st, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
}

Task<std::unique_ptr<Connection>> open_one(const Target& t, const ConnectFlags& flags) {
  ClientOptions opts = client_options(t, flags);
  if (t.kind == Target::Kind::kUnix) {
    auto c = co_await connect_unix(t.path, std::move(opts));
    co_return c;
  }
  if (t.kind == Target::Kind::kService) {
    registry::DiscoverOptions d;
    if (!flags.registry.empty()) d.registry = flags.registry;
    d.rounds = 1;
    auto c = co_await registry::connect_by_service(t.service, std::move(d), std::move(opts));
    co_return c;
  }
  auto c = co_await tether::connect(t.host, t.port, std::move(opts));
  co_return c;
}

struct Progress {
  bool tty = false;
  FILE* out = stdout;
  bool quiet = false;
};

void print_progress(const Progress& p, BenchState& st, double elapsed, double total, double since_last,
                    std::uint64_t calls_in_window) {
  if (p.quiet) return;
  LatencySummary w = summarize(st.window);
  const double rate = since_last > 0 ? static_cast<double>(calls_in_window) / since_last : 0;
  if (p.tty) {
    std::fprintf(p.out, "\r\033[K%5.1f/%.1f s  %10.0f calls/s  p50 %.3f ms  p99 %.3f ms  errors %llu",
                 elapsed, total, rate, w.p50, w.p99, static_cast<unsigned long long>(st.errors));
  } else {
    std::fprintf(p.out, "t=%.1fs calls/s=%.0f p50_ms=%.3f p99_ms=%.3f errors=%llu\n", elapsed, rate, w.p50,
                 w.p99, static_cast<unsigned long long>(st.errors));
  }
  std::fflush(p.out);
  st.window.clear();
}

struct BenchResult {
  double seconds = 0;
  int connected = 0;
};

Task<BenchResult> bench_main(const BenchArgs& a, const Target& t, const std::vector<Any>& args,
                             BenchState& st, const Progress& progress) {
  EventLoop& loop = EventLoop::current_or_throw();
  std::vector<std::unique_ptr<Connection>> conns;
  std::vector<Netref> roots;
  for (int i = 0; i < a.connections; ++i) {
    std::unique_ptr<Connection> c = co_await open_one(t, a.flags);
    Netref root = co_await c->root();
    conns.push_back(std::move(c));
    roots.push_back(std::move(root));
  }
  TaskGroup group(loop);
  const auto start = Clock::now();
  for (std::size_t i = 0; i < conns.size(); ++i) {
    for (int w = 0; w < a.pipeline; ++w) group.spawn(bench_worker(*conns[i], roots[i], a.method, args, st));
  }
  const auto end = start + seconds_to_duration(a.duration);
  auto last = start;
  std::uint64_t last_calls = 0;
  while (Clock::now() < end) {
    const auto next = std::min(last + seconds_to_duration(a.report), end);
    co_await tether::sleep(next - Clock::now());
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - start).count();
    const double since = std::chrono::duration<double>(now - last).count();
    print_progress(progress, st, elapsed, a.duration, since, st.calls - last_calls);
    last = now;
    last_calls = st.calls;
  }
  st.stop = true;
  BenchResult r;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.connected = static_cast<int>(conns.size());
  // Let the calls in flight finish (bounded by the request timeout), then close.
  co_await group.wait();
  for (auto& c : conns) {
    try {
      co_await c->close();
    } catch (const std::exception&) {
    }
  }
  co_return r;
}

int run_bench(BenchArgs& a) {
  const Target target = parse_target(a.addr);
  std::vector<Any> args;
  if (a.method.empty() && !a.args.empty()) throw CliError(kExitUsage, "bench: ARGS need a METHOD");
  for (std::size_t i = 0; i < a.args.size(); ++i) {
    auto lit = parse_literal(a.args[i]);
    if (!lit)
      throw CliError(kExitUsage,
                     fmt::format("argument {}: {}: {}", i + 1, lit.error().to_string(), a.args[i]));
    args.push_back(literal_to_any(lit.value()));
  }
  Progress progress;
  progress.out = a.json ? stderr : stdout;
  progress.tty = ::isatty(fileno(progress.out)) != 0;
  progress.quiet = a.quiet;
  BenchState st;
  EventLoop loop;
  BenchResult r;
  try {
    r = loop.run_until_complete(bench_main(a, target, args, st, progress));
  } catch (const RemoteError&) {
    throw;
  } catch (const CliError&) {
    throw;
  } catch (const std::exception& e) {
    throw CliError(kExitConnection, fmt::format("bench: {}: {}", target.to_string(), e.what()));
  }
  if (progress.tty && !a.quiet) std::fprintf(progress.out, "\n");
  const std::uint64_t calls = st.calls;
  LatencySummary s = summarize(st.latencies);
  const double rate = r.seconds > 0 ? static_cast<double>(calls) / r.seconds : 0;
  const std::string what = a.method.empty() ? "ping" : a.method;
  if (a.json) {
    nlohmann::ordered_json j;
    j["target"] = target.to_string();
    j["method"] = what;
    j["connections"] = a.connections;
    j["pipeline"] = a.pipeline;
    j["duration_s"] = r.seconds;
    j["calls"] = calls;
    j["errors"] = st.errors;
    j["calls_per_s"] = rate;
    j["latency_ms"] = {{"min", s.min}, {"p50", s.p50}, {"avg", s.avg}, {"p99", s.p99}, {"max", s.max}};
    if (!st.first_error.empty()) j["first_error"] = st.first_error;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("--- bench %s %s ---\n", target.to_string().c_str(), what.c_str());
    std::printf("%-12s %d x %d in flight\n", "connections", a.connections, a.pipeline);
    std::printf("%-12s %.2f s\n", "duration", r.seconds);
    std::printf("%-12s %llu\n", "calls", static_cast<unsigned long long>(calls));
    std::printf("%-12s %llu%s%s\n", "errors", static_cast<unsigned long long>(st.errors),
                st.first_error.empty() ? "" : "  first: ", st.first_error.c_str());
    std::printf("%-12s %.1f\n", "calls/s", rate);
    std::printf("%-12s min %.3f  p50 %.3f  avg %.3f  p99 %.3f  max %.3f\n", "latency ms", s.min, s.p50, s.avg,
                s.p99, s.max);
  }
  std::fflush(stdout);
  if (calls == 0 && st.errors > 0)
    return st.first_error.find("Error") != std::string::npos ? kExitRemote : kExitConnection;
  return kExitOk;
}

}  // namespace

void add_bench(CLI::App& app, Runner& run) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* sub = app.add_subcommand(
      "bench",
      "Load generator: tether bench ADDR [METHOD [ARGS...]]; calls/s and latency (default: RPyC PING)");
  sub->add_option("ADDR", a->addr,
                  "host:port, [v6]:port, unix:/path, unix:@name, tls://host:port or a service name")
      ->required();
  sub->add_option("METHOD", a->method, "Function of the root to call (none: PING)");
  // ARGS are taken raw from what CLI11 leaves over (CLI11 would split "[1, 2]" into items).
  sub->allow_extras();
  sub->fallthrough(false);  // leftovers stay here instead of going up to the main app
  sub->add_option("-c,--connections", a->connections, "Connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  sub->add_option("-d,--duration", a->duration, "Seconds to run")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 86400.0));
  sub->add_option("-p,--pipeline", a->pipeline, "Requests in flight per connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  sub->add_option("--report", a->report, "Seconds between progress reports")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 3600.0));
  sub->add_flag("--json", a->json, "Print the final result as JSON on stdout (progress goes to stderr)");
  sub->add_flag("-q,--quiet", a->quiet, "No progress reports");
  add_connect_flags(*sub, a->flags);
  sub->footer("On a terminal the progress is one line updated in place; otherwise one line per report.");
  sub->callback([a, sub, &run] {
    a->args = extra_args(*sub);
    run = [a] { return run_bench(*a); };
  });
}

}  // namespace tether::tools
