// User-space memory per idle BufferedStream (target: <= 1 KiB), measured with mallinfo2 over
// many socketpair streams: everything the stream, its FdTransport, watcher and wake cells
// allocate, malloc's own per-chunk overhead included. Skipped under sanitizers (their
// allocators do not report through mallinfo2).
#include <malloc.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "stream_test_util.hpp"
#include "test_util.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/fd_transport.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TETHER_UNDER_SANITIZER 1
#else
#define TETHER_UNDER_SANITIZER 0
#endif

namespace tether::testing {
namespace {

using StreamMemoryTest = LoopTest;

constexpr int kPairs = 1000;

std::size_t heap_in_use() { return mallinfo2().uordblks; }

Task<void> ping_all(std::vector<std::unique_ptr<BufferedStream>>& streams) {
  for (std::size_t i = 0; i + 1 < streams.size(); i += 2) {
    streams[i]->write(std::string_view("ping"));
    co_await streams[i]->drain();
    Bytes got = co_await streams[i + 1]->read_exactly(4);
    EXPECT_EQ(got.view(), "ping");
  }
  co_await yield_turns(2);  // let the end-of-turn flush callbacks run
}

TEST_F(StreamMemoryTest, IdleStreamUsesAtMostOneKiB) {
  if (TETHER_UNDER_SANITIZER) GTEST_SKIP() << "mallinfo2 does not see sanitizer allocations";
  std::vector<std::unique_ptr<BufferedStream>> streams;
  streams.reserve(2 * kPairs);
  std::vector<TransportPair> transports;
  transports.reserve(kPairs);
  for (int i = 0; i < kPairs; ++i) transports.push_back(make_socketpair_transports(loop_));
  const std::size_t before = heap_in_use();
  for (auto& t : transports) {
    streams.push_back(std::make_unique<BufferedStream>(std::move(t.first)));
    streams.push_back(std::make_unique<BufferedStream>(std::move(t.second)));
  }
  const std::size_t fresh = heap_in_use() - before;
  run(ping_all(streams));
  const std::size_t after_traffic = heap_in_use() - before;
  const double per_fresh = static_cast<double>(fresh) / streams.size();
  const double per_used = static_cast<double>(after_traffic) / streams.size();
  std::printf("idle BufferedStream over a socketpair: %.0f B fresh, %.0f B after one exchange "
              "(sizeof BufferedStream %zu, FdTransport %zu)\n",
              per_fresh, per_used, sizeof(BufferedStream), sizeof(FdTransport));
  EXPECT_LE(per_fresh, 1024.0);
  EXPECT_LE(per_used, 1024.0);
  streams.clear();
}

}  // namespace
}  // namespace tether::testing
