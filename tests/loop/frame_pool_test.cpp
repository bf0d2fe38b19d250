// Coroutine frame memory (detail::frame_alloc / frame_free): reuse on one thread, sizes above the
// largest class, frees on another thread, the per-class cap, release at thread exit, frees after
// that release; and Task and Runner frames going through it. Checks of the pool's own state run
// on fresh threads, whose caches start empty whatever earlier tests did on the main thread.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "loop_fixture.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/runner.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task.hpp"

namespace tether {
namespace {

using detail::frame_alloc;
using detail::frame_free;
using detail::frame_pool_cached_bytes;
using detail::frame_pool_enabled;
using testing::LoopFixture;

constexpr const char* kCompiledOut =
    "the frame pool is compiled out (ASan/TSan build or -DTETHER_FRAME_POOL=OFF): frames are plain "
    "::operator new blocks, nothing is cached or reused";

void on_fresh_thread(const std::function<void()>& fn) {
  std::thread t(fn);
  t.join();
}

std::uintptr_t address(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

TEST(TaskFramePool, AFreedBlockIsReusedOnTheSameThread) {
  std::uintptr_t first = 0, second = 0;
  on_fresh_thread([&] {
    void* a = frame_alloc(200);
    std::memset(a, 0xab, 200);
    first = address(a);
    frame_free(a, 200);
    void* b = frame_alloc(200);
    std::memset(b, 0xcd, 200);
    second = address(b);
    frame_free(b, 200);
  });
  if (!frame_pool_enabled()) GTEST_SKIP() << kCompiledOut;
  EXPECT_EQ(first, second);
}

TEST(TaskFramePool, SizesInOneClassShareBlocks) {
  std::uintptr_t first = 0, second = 0;
  on_fresh_thread([&] {
    void* a = frame_alloc(129);  // the 192-byte class
    first = address(a);
    frame_free(a, 129);
    void* b = frame_alloc(192);
    std::memset(b, 0x5a, 192);
    second = address(b);
    frame_free(b, 192);
  });
  if (!frame_pool_enabled()) GTEST_SKIP() << kCompiledOut;
  EXPECT_EQ(first, second);
}

TEST(TaskFramePool, SizesAboveTheLargestClassWork) {
  const std::size_t max = detail::frame_pool_max_size();
  ASSERT_GE(max, 1024u);
  on_fresh_thread([max] {
    for (std::size_t size : {max, max + 1, max + 64, std::size_t{64 * 1024}, std::size_t{1 << 20}}) {
      const std::size_t before = frame_pool_cached_bytes();
      void* p = frame_alloc(size);
      ASSERT_NE(p, nullptr);
      std::memset(p, 0x11, size);
      frame_free(p, size);
      const std::size_t cached = frame_pool_cached_bytes() - before;
      EXPECT_EQ(cached, size <= max && frame_pool_enabled() ? size : 0u) << "size " << size;
    }
  });
}

TEST(TaskFramePool, ABlockFreedOnAnotherThreadJoinsThatThreadsCache) {
  void* block = nullptr;
  on_fresh_thread([&] {
    block = frame_alloc(256);
    std::memset(block, 0x22, 256);
  });
  std::uintptr_t reused = 0;
  on_fresh_thread([&] {
    ASSERT_EQ(frame_pool_cached_bytes(), 0u);
    frame_free(block, 256);
    EXPECT_EQ(frame_pool_cached_bytes(), frame_pool_enabled() ? 256u : 0u);
    void* p = frame_alloc(256);
    std::memset(p, 0x33, 256);
    reused = address(p);
    EXPECT_EQ(frame_pool_cached_bytes(), 0u);
    frame_free(p, 256);
  });
  if (!frame_pool_enabled()) GTEST_SKIP() << kCompiledOut;
  EXPECT_EQ(reused, address(block));
}

TEST(TaskFramePool, EachClassCachesAtMostItsCap) {
  const std::size_t cap = detail::frame_pool_class_cap_bytes();
  constexpr std::size_t kSize = 512;
  const std::size_t fit = cap / kSize;
  ASSERT_GE(fit, 1u);
  on_fresh_thread([&] {
    std::vector<void*> blocks;
    for (std::size_t i = 0; i < 3 * fit + 5; ++i) blocks.push_back(frame_alloc(kSize));
    for (void* p : blocks) frame_free(p, kSize);
    const std::size_t full = frame_pool_enabled() ? fit * kSize : 0;
    EXPECT_EQ(frame_pool_cached_bytes(), full);
    EXPECT_LE(frame_pool_cached_bytes(), cap);

    // Taking them all out and one more empties the class; putting them back refills it to the cap.
    blocks.clear();
    for (std::size_t i = 0; i < fit + 1; ++i) blocks.push_back(frame_alloc(kSize));
    EXPECT_EQ(frame_pool_cached_bytes(), 0u);
    for (void* p : blocks) frame_free(p, kSize);
    EXPECT_EQ(frame_pool_cached_bytes(), full);

    // Another class has its own cap.
    blocks.clear();
    for (int i = 0; i < 10; ++i) blocks.push_back(frame_alloc(64));
    for (void* p : blocks) frame_free(p, 64);
    EXPECT_EQ(frame_pool_cached_bytes(), full + (frame_pool_enabled() ? 640u : 0u));
  });
}

TEST(TaskFramePool, AThreadsCacheIsReleasedAtThreadExit) {
  const std::size_t released_before = detail::frame_pool_released_at_thread_exit();
  std::size_t cached = 0;
  on_fresh_thread([&] {
    std::vector<void*> blocks;
    for (int i = 0; i < 10; ++i) blocks.push_back(frame_alloc(256));
    for (void* p : blocks) frame_free(p, 256);
    cached = frame_pool_cached_bytes();
  });
  const std::size_t released = detail::frame_pool_released_at_thread_exit() - released_before;
  if (!frame_pool_enabled()) {
    EXPECT_EQ(cached, 0u);
    EXPECT_EQ(released, 0u);
    GTEST_SKIP() << kCompiledOut;
  }
  EXPECT_EQ(cached, 2560u);
  EXPECT_GE(released, cached) << "the exiting thread's cached blocks went back to the system";
}

// Built on its thread before that thread's frame cache, so destroyed after it.
struct FreesAtThreadExit {
  FreesAtThreadExit() = default;
  FreesAtThreadExit(const FreesAtThreadExit&) = delete;
  FreesAtThreadExit& operator=(const FreesAtThreadExit&) = delete;
  ~FreesAtThreadExit() {
    if (!block) return;
    frame_free(block, 256);
    cached_after->store(frame_pool_cached_bytes());
  }
  void* block = nullptr;
  std::atomic<std::size_t>* cached_after = nullptr;
};

TEST(TaskFramePool, AFreeAfterTheThreadsCacheWasReleasedGoesToTheSystem) {
  std::atomic<std::size_t> cached_after{~std::size_t{0}};
  on_fresh_thread([&] {
    static thread_local FreesAtThreadExit late;
    late.block = frame_alloc(256);
    late.cached_after = &cached_after;
    void* p = frame_alloc(256);
    frame_free(p, 256);  // builds this thread's cache (after `late`)
    EXPECT_EQ(frame_pool_cached_bytes(), frame_pool_enabled() ? 256u : 0u);
  });
  EXPECT_EQ(cached_after.load(), 0u) << "a free after the cache was released must not cache the block";
}

// ------------------------------------------------------------------ Task and Runner frames

Task<int> small_frame(int v) { co_return v + 1; }

// The array lives across a suspension, so it is part of the frame (several KiB: above the
// largest class).
Task<int> big_frame(Event* go) {
  std::array<unsigned char, 6000> buf{};
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<unsigned char>(i);
  co_await go->wait();
  int sum = 0;
  for (unsigned char c : buf) sum += c;
  co_return sum;
}

int expected_big_sum() {
  int sum = 0;
  for (std::size_t i = 0; i < 6000; ++i) sum += static_cast<int>(static_cast<unsigned char>(i));
  return sum;
}

TEST(TaskFramePool, TaskFramesAreReused) {
  std::uintptr_t first = 0, second = 0;
  long live_inside = 0;
  const long before = live_task_count();
  on_fresh_thread([&] {
    {
      Task<int> t = small_frame(1);
      first = address(t.handle().address());
      live_inside = live_task_count();
    }
    Task<int> t = small_frame(2);
    second = address(t.handle().address());
  });
  EXPECT_EQ(live_inside, before + 1);
  EXPECT_EQ(live_task_count(), before);
  if (!frame_pool_enabled()) GTEST_SKIP() << kCompiledOut;
  EXPECT_EQ(first, second);
}

void no_hook(void*, std::coroutine_handle<>, std::exception_ptr) noexcept {}

TEST(TaskFramePool, RunnerFramesAreReused) {
  // A runner and the task it holds are two frames; when both sizes fall into one class the
  // second pair may take the first pair's blocks in either order, so compare the pairs.
  std::uintptr_t first_runner = 0, first_task = 0, second_runner = 0, second_task = 0;
  const long before = live_task_count();
  on_fresh_thread([&] {
    Task<int> t1 = small_frame(1);
    first_task = address(t1.handle().address());
    auto a = detail::start_runner(std::move(t1), detail::RunnerHook{&no_hook, nullptr});
    first_runner = address(a.address());
    a.destroy();  // never started: destroys the Task it holds too
    Task<int> t2 = small_frame(1);
    second_task = address(t2.handle().address());
    auto b = detail::start_runner(std::move(t2), detail::RunnerHook{&no_hook, nullptr});
    second_runner = address(b.address());
    b.destroy();
  });
  EXPECT_EQ(live_task_count(), before);
  if (!frame_pool_enabled()) GTEST_SKIP() << kCompiledOut;
  EXPECT_TRUE((second_runner == first_runner && second_task == first_task) ||
              (second_runner == first_task && second_task == first_runner))
      << "the second runner and task did not reuse the first pair's blocks";
}

class TaskFramePoolLoop : public LoopFixture {};

TEST_F(TaskFramePoolLoop, TasksWithFramesAboveTheLargestClassRun) {
  Event go;
  Task<int> t = big_frame(&go);
  start(t);
  turn();
  EXPECT_FALSE(t.done());
  go.set();
  ASSERT_TRUE(turn_until([&] { return t.done(); }));
  EXPECT_EQ(t.take_result(), expected_big_sum());
}

TEST_F(TaskFramePoolLoop, ATaskCreatedOnAnotherThreadRunsAndIsFreedHere) {
  Task<int> t;
  on_fresh_thread([&] { t = small_frame(41); });
  EXPECT_EQ(run(std::move(t)), 42);
}

Task<int> sum_small_frames(int n) {
  int sum = 0;
  for (int i = 0; i < n; ++i) {
    int v = co_await small_frame(i);
    sum += v;
  }
  co_return sum;
}

TEST_F(TaskFramePoolLoop, ManyShortTasksKeepTheCacheBounded) {
  EXPECT_EQ(run(sum_small_frames(10000)), 10000 * 10001 / 2);
  // Every class is capped, so one thread never holds more than all caps together.
  const std::size_t classes = detail::frame_pool_max_size() / 64;
  EXPECT_LE(frame_pool_cached_bytes(), classes * detail::frame_pool_class_cap_bytes());
}

}  // namespace
}  // namespace tether
