#pragma once
// The service the reliability tests call, in-process or in a child (fault_server.cpp):
//
//   echo(i)      -> 7 * i + 3, counted and remembered in memory (executed_ids(); not in
//                   fault_server, whose runs are long); with a log fd set, each
//                   executed id is also written there as one line by one write(2), so the
//                   record survives a SIGKILL of the process
//   slow(ms)     -> ms, after sleeping ms milliseconds (counted when it starts)
//   apply(f, x)  -> f(x) + 1: calls back into the client (a coroutine binding)
//   executed()   -> how many echo calls ran
//   heap()       -> bytes of heap in use in the serving process (service/heap_probe.hpp)
//   connections() -> connections open (on_connect minus on_disconnect)
//
// Each reply is a function of its request, so a reply delivered to the wrong caller shows.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "service/heap_probe.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/task.hpp"
#include "tether/loop/time.hpp"
#include "tether/rpc/any.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"

namespace tether::testing {

/// What a correct echo(i) returns.
constexpr std::int64_t echo_of(std::int64_t i) { return 7 * i + 3; }
/// What the client's callback returns for x; apply(f, x) returns this + 1.
constexpr std::int64_t callback_of(std::int64_t x) { return 5 * x + 1; }

struct FaultCounters {
  std::atomic<std::int64_t> echoed{0};
  std::atomic<std::int64_t> slow_started{0};
  std::atomic<std::int64_t> applied{0};
  std::atomic<std::int64_t> callback_disconnected{0};
  std::atomic<std::int64_t> connections{0};
  std::atomic<int> log_fd{-1};
  std::atomic<bool> keep_ids{true};  // off in long runs (fault_server): 8 bytes per call
  std::mutex mu;
  std::vector<std::int64_t> ids;  // echo ids, in the order executed

  void reset() {
    echoed = 0;
    slow_started = 0;
    applied = 0;
    callback_disconnected = 0;
    std::lock_guard<std::mutex> lock(mu);
    ids.clear();
  }
  std::vector<std::int64_t> executed_ids() {
    std::lock_guard<std::mutex> lock(mu);
    return ids;
  }
};

inline FaultCounters& fault_counters() {
  static FaultCounters c;
  return c;
}

inline std::int64_t fault_echo(std::int64_t i) {
  FaultCounters& c = fault_counters();
  if (c.keep_ids) {
    std::lock_guard<std::mutex> lock(c.mu);
    c.ids.push_back(i);
  }
  const int fd = c.log_fd.load();
  if (fd >= 0) {
    const std::string line = std::to_string(i) + "\n";
    if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      throw std::runtime_error("log write failed");
    }
  }
  ++c.echoed;
  return echo_of(i);
}

inline Task<std::int64_t> fault_slow(std::int64_t ms) {
  ++fault_counters().slow_started;
  co_await sleep(std::chrono::milliseconds(ms));
  co_return ms;
}

inline Task<std::int64_t> fault_apply(Netref f, std::int64_t x) {
  ++fault_counters().applied;
  Any r;
  try {
    Any got = co_await f.call(make_args(x));
    r = std::move(got);
  } catch (const Disconnected&) {
    ++fault_counters().callback_disconnected;
    throw;
  }
  std::int64_t v = co_await from_any<std::int64_t>(std::move(r));
  co_return v + 1;
}

/// Serving on `host`, a free port, with a short grace period at shutdown.
inline ServeOptions fault_serve_options(const std::string& host) {
  ServeOptions o;
  o.host = host;
  o.port = 0;
  o.shutdown_grace = std::chrono::milliseconds(500);
  return o;
}

inline Service fault_service() {
  Service svc("FaultService");
  svc.expose("echo", &fault_echo, arg_names("i"));
  svc.expose_async("slow", &fault_slow, arg_names("ms"));
  svc.expose_async("apply", &fault_apply, arg_names("f", "x"));
  svc.expose("executed", []() { return fault_counters().echoed.load(); });
  svc.expose("heap", []() { return static_cast<std::int64_t>(heap_in_use()); });
  svc.expose("connections", []() { return fault_counters().connections.load(); });
  svc.on_connect([](Session&) { ++fault_counters().connections; });
  svc.on_disconnect([](Session&) { --fault_counters().connections; });
  return svc;
}

}  // namespace tether::testing
