// Loop-layer micro-benchmarks: post() throughput (same thread / other thread), timers,
// Task create+resume (small and ~1 KiB frames), TaskGroup spawn, gather. Run a Release build:
//   cmake -B build-rel -DCMAKE_BUILD_TYPE=Release && ninja -C build-rel bench_loop_bench
//   build-rel/bench/bench_loop_bench
#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "tether/loop/event_loop.hpp"
#include "tether/loop/gather.hpp"
#include "tether/loop/task.hpp"
#include "tether/loop/task_group.hpp"

namespace {

using namespace tether;

// A baseline for the post() figures: pushing the same callables into a vector and calling them.
void BM_CallbackVectorBaseline(benchmark::State& state) {
  std::vector<Callback> v;
  v.reserve(256);
  std::uint64_t n = 0;
  for (auto _ : state) {
    v.emplace_back([&n] { ++n; });
    if (v.size() == 256) {
      for (auto& f : v) f();
      v.clear();
    }
  }
  for (auto& f : v) f();
  benchmark::DoNotOptimize(n);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CallbackVectorBaseline);

void BM_PostFromLoopThread(benchmark::State& state) {
  EventLoop loop;
  std::uint64_t n = 0;
  std::uint64_t posted = 0;
  for (auto _ : state) {
    loop.post([&n] { ++n; });
    if (++posted % 256 == 0) loop.run_once(Duration::zero());
  }
  while (n < posted) loop.run_once(Duration::zero());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PostFromLoopThread);

void BM_CallSoon(benchmark::State& state) {
  EventLoop loop;
  std::uint64_t n = 0;
  std::uint64_t queued = 0;
  for (auto _ : state) {
    loop.call_soon([&n] { ++n; });
    if (++queued % 256 == 0) loop.run_once(Duration::zero());
  }
  while (n < queued) loop.run_once(Duration::zero());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CallSoon);

// One producer thread posts `batch` callbacks; the loop thread runs until all have arrived.
void BM_PostFromOtherThread(benchmark::State& state) {
  const auto batch = static_cast<std::uint64_t>(state.range(0));
  EventLoop loop;
  std::uint64_t n = 0;
  for (auto _ : state) {
    n = 0;
    std::thread producer([&loop, &n, batch] {
      for (std::uint64_t i = 0; i < batch; ++i) loop.post([&n] { ++n; });
    });
    while (n < batch) loop.run_once(std::chrono::milliseconds(100));
    producer.join();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}
BENCHMARK(BM_PostFromOtherThread)->Arg(100000)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_TimerAddCancel(benchmark::State& state) {
  EventLoop loop;
  for (auto _ : state) {
    TimerHandle h = loop.call_later(std::chrono::seconds(10), [] {});
    h.cancel();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TimerAddCancel);

// Adds timers that are already due and lets the loop fire them, 256 per iteration of the loop.
void BM_TimerAddFire(benchmark::State& state) {
  EventLoop loop;
  std::uint64_t fired = 0, added = 0;
  for (auto _ : state) {
    loop.call_later(Duration::zero(), [&fired] { ++fired; });
    if (++added % 256 == 0) loop.run_once(Duration::zero());
  }
  while (fired < added) loop.run_once(Duration::zero());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TimerAddFire);

Task<int> trivial(int v) { co_return v + 1; }

Task<void> await_trivial_loop(benchmark::State* state) {
  int acc = 0;
  for (auto _ : *state) {
    int v = co_await trivial(acc);
    acc = v & 0xff;
  }
  benchmark::DoNotOptimize(acc);
}

// Create a Task, co_await it (start, complete, transfer back), destroy it.
void BM_TaskCreateResume(benchmark::State& state) {
  EventLoop loop;
  loop.run_until_complete(await_trivial_loop(&state));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TaskCreateResume);

// A task whose frame is about 1 KiB (the array lives across a suspension, so it is in the frame),
// like the larger request-handling frames in rpc.
Task<int> kib_frame(int v) {
  std::array<unsigned char, 960> buf;
  buf[static_cast<std::size_t>(v) % buf.size()] = static_cast<unsigned char>(v);
  co_await std::suspend_never{};
  co_return buf[static_cast<std::size_t>(v) % buf.size()] + 1;
}

Task<void> await_kib_frame_loop(benchmark::State* state) {
  int acc = 0;
  for (auto _ : *state) {
    int v = co_await kib_frame(acc);
    acc = v & 0xff;
  }
  benchmark::DoNotOptimize(acc);
}

// As BM_TaskCreateResume with a ~1 KiB frame.
void BM_TaskCreateResume1KiB(benchmark::State& state) {
  EventLoop loop;
  loop.run_until_complete(await_kib_frame_loop(&state));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TaskCreateResume1KiB);

Task<long> chain(int depth) {
  if (depth == 0) co_return 0;
  long below = co_await chain(depth - 1);
  co_return below + 1;
}

// 1000 nested synchronous awaits per iteration (frame allocation + two transfers per level).
void BM_TaskNestedChain1000(benchmark::State& state) {
  EventLoop loop;
  for (auto _ : state) {
    long v = loop.run_until_complete(chain(1000));
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_TaskNestedChain1000);

Task<void> noop_task(std::uint64_t* n) {
  ++*n;
  co_return;
}

Task<void> wait_group(TaskGroup* g) { co_await g->wait(); }

// Spawn `batch` trivial tasks into a TaskGroup and wait for them.
void BM_TaskGroupSpawn(benchmark::State& state) {
  const auto batch = static_cast<std::uint64_t>(state.range(0));
  EventLoop loop;
  TaskGroup group(loop);
  std::uint64_t n = 0;
  for (auto _ : state) {
    for (std::uint64_t i = 0; i < batch; ++i) group.spawn(noop_task(&n));
    loop.run_until_complete(wait_group(&group));
  }
  benchmark::DoNotOptimize(n);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}
BENCHMARK(BM_TaskGroupSpawn)->Arg(1000);

Task<void> gather_noops(std::uint64_t* n, std::uint64_t count) {
  std::vector<Task<void>> tasks;
  tasks.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) tasks.push_back(noop_task(n));
  co_await gather(std::move(tasks));
}

void BM_Gather(benchmark::State& state) {
  const auto batch = static_cast<std::uint64_t>(state.range(0));
  EventLoop loop;
  std::uint64_t n = 0;
  for (auto _ : state) loop.run_until_complete(gather_noops(&n, batch));
  benchmark::DoNotOptimize(n);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}
BENCHMARK(BM_Gather)->Arg(1000);

}  // namespace

BENCHMARK_MAIN();
