// tether ping ADDR: RPyC PING round trips, like ping(8).

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "address.hpp"
#include "commands.hpp"
#include "stats.hpp"

namespace tether::tools {

namespace {

struct PingArgs {
  std::string addr;
  int count = 4;
  double interval = 1.0;
  ConnectFlags flags;
};

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int run_ping(PingArgs& a) {
  const Target target = parse_target(a.addr);
  const auto t0 = std::chrono::steady_clock::now();
  SyncConnection conn = connect_target(target, a.flags);
  std::printf("PING %s: connected in %.3f ms, RPyC %d.x\n", target.to_string().c_str(), ms_since(t0),
              static_cast<int>(conn.connection().generation()));
  std::fflush(stdout);
  std::vector<double> times;
  int sent = 0;
  int code = kExitOk;
  for (int i = 1; i <= a.count; ++i) {
    if (i > 1 && a.interval > 0) std::this_thread::sleep_for(std::chrono::duration<double>(a.interval));
    ++sent;
    const auto t = std::chrono::steady_clock::now();
    try {
      conn.ping();
    } catch (...) {
      code = report_exception(std::current_exception(), false);
      break;
    }
    const double ms = ms_since(t);
    times.push_back(ms);
    std::printf("reply from %s: seq=%d time=%.3f ms\n", target.to_string().c_str(), i, ms);
    std::fflush(stdout);
  }
  const std::size_t received = times.size();
  LatencySummary s = summarize(times);
  std::printf("--- %s ping statistics ---\n", target.to_string().c_str());
  std::printf("%d sent, %zu received, %.0f%% lost\n", sent, received,
              sent ? 100.0 * static_cast<double>(static_cast<std::size_t>(sent) - received) / sent : 0.0);
  if (received > 0) std::printf("rtt min/avg/max/p99 = %.3f/%.3f/%.3f/%.3f ms\n", s.min, s.avg, s.max, s.p99);
  std::fflush(stdout);
  try {
    conn.close();
  } catch (...) {
  }
  return code;
}

}  // namespace

void add_ping(CLI::App& app, Runner& run) {
  auto a = std::make_shared<PingArgs>();
  CLI::App* sub = app.add_subcommand("ping", "Measure RPyC PING round trips (like ping(8))");
  sub->add_option("ADDR", a->addr,
                  "host:port, [v6]:port, unix:/path, unix:@name, tls://host:port or a service name")
      ->required();
  sub->add_option("-c,--count", a->count, "Number of pings")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  sub->add_option("-i,--interval", a->interval, "Seconds between pings")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  add_connect_flags(*sub, a->flags);
  sub->callback([a, &run] { run = [a] { return run_ping(*a); }; });
}

}  // namespace tether::tools
