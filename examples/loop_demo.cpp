// loop_demo: a tour of tether's event loop. Timers, a blocking job on the worker pool,
// gather() of concurrent tasks, with_timeout() both ways, a TaskGroup and cancellation.
// Prints what happens with millisecond timestamps and exits 0 when every step behaved.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tether/tether.hpp"

namespace {

using namespace std::chrono_literals;
using tether::Task;

const tether::TimePoint g_start = tether::Clock::now();

template <class... Args>
void say(fmt::format_string<Args...> f, Args&&... args) {
  const auto ms = std::chrono::duration<double, std::milli>(tether::Clock::now() - g_start).count();
  fmt::print("[{:7.1f} ms] {}\n", ms, fmt::format(f, std::forward<Args>(args)...));
  std::fflush(stdout);
}

int g_failures = 0;
void check(bool ok, const char* what) {
  if (!ok) {
    ++g_failures;
    say("UNEXPECTED: {}", what);
  }
}

Task<int> slow_square(int x, std::chrono::milliseconds delay) {
  say("  square({}) starts, will take {} ms", x, delay.count());
  co_await tether::sleep(delay);
  say("  square({}) done", x);
  co_return x * x;
}

// Pretend to be blocking work (a CPU-bound computation) that must not run on the loop thread.
long count_primes(long limit) {
  long count = 0;
  for (long n = 2; n < limit; ++n) {
    bool prime = true;
    for (long d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    if (prime) ++count;
  }
  return count;
}

Task<void> ticker(int* ticks) {
  for (;;) {
    co_await tether::sleep(20ms);
    ++*ticks;
  }
}

Task<void> demo(tether::EventLoop* loop) {
  // 1. Plain timers: callbacks fire in deadline order.
  say("1. timers");
  std::vector<int> order;
  tether::Event timers_done;
  loop->call_later(30ms, [&] {
    order.push_back(30);
    say("  timer 30 ms fired");
    timers_done.set();
  });
  loop->call_later(10ms, [&] {
    order.push_back(10);
    say("  timer 10 ms fired");
  });
  tether::TimerHandle cancelled = loop->call_later(20ms, [&] { order.push_back(20); });
  cancelled.cancel();
  say("  timer 20 ms cancelled");
  co_await timers_done.wait();
  check(order == std::vector<int>{10, 30}, "timers fired in order, the cancelled one not at all");

  // 2. A blocking job on the worker pool while the loop keeps ticking.
  say("2. run_in_worker while a ticker runs on the loop");
  int ticks = 0;
  tether::TaskGroup background(*loop);
  background.spawn(ticker(&ticks));
  const auto loop_thread = std::this_thread::get_id();
  bool off_loop = false;
  auto job = [&off_loop, loop_thread] {  // (g++ 12: never build a lambda inside co_await)
    off_loop = std::this_thread::get_id() != loop_thread;
    return count_primes(300000);
  };
  long primes = co_await tether::run_in_worker(job);
  say("  worker found {} primes below 300000 (ran off the loop thread: {}); ticks meanwhile: {}", primes,
      off_loop, ticks);
  check(primes == 25997 && off_loop, "worker result");
  background.cancel_all();
  say("  ticker cancelled");

  // 3. gather: three tasks run concurrently; total time is the longest, not the sum.
  say("3. gather of three concurrent tasks");
  const auto t0 = tether::Clock::now();
  auto squares = co_await tether::gather(slow_square(3, 30ms), slow_square(4, 10ms), slow_square(5, 20ms));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(tether::Clock::now() - t0);
  say("  results {} {} {} after {} ms", std::get<0>(squares), std::get<1>(squares), std::get<2>(squares),
      took.count());
  check(std::get<0>(squares) == 9 && std::get<1>(squares) == 16 && std::get<2>(squares) == 25, "gather results");
  check(took < 55ms, "gather ran concurrently");

  // 4. with_timeout: in time, then too late (the slow task is cancelled).
  say("4. with_timeout");
  int quick = co_await tether::with_timeout(100ms, slow_square(6, 5ms));
  say("  in time: {}", quick);
  check(quick == 36, "with_timeout in time");
  bool timed_out = false;
  try {
    int late = co_await tether::with_timeout(15ms, slow_square(7, 1000ms));
    say("  late result {} (should not happen)", late);
  } catch (const tether::Timeout& e) {
    timed_out = true;
    say("  too slow: caught Timeout ({}); the inner task was cancelled", e.what());
  }
  check(timed_out, "with_timeout expired");
  say("  loop now holds {} timer(s): the demo's own 10 s limit", loop->stats().timers);
}

}  // namespace

int main() {
  tether::EventLoop loop;
  loop.set_worker_threads(2);
  say("loop demo: one EventLoop on the main thread, a 2-thread worker pool");
  try {
    loop.run_until_complete(tether::with_timeout(10s, demo(&loop)));
  } catch (...) {
    say("demo failed: {}", tether::describe_current_exception());
    return 1;
  }
  const auto s = loop.stats();
  say("done: {} watchers, {} timers, {} ready callbacks left; {} live tasks", s.watchers, s.timers, s.ready,
      tether::live_task_count());
  if (g_failures) {
    say("{} unexpected result(s)", g_failures);
    return 1;
  }
  return 0;
}
