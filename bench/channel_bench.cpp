// Channel benchmarks: frames encoded, sent through an in-memory pipe, received and decoded,
// beside the same bytes through plain BufferedStream writes/reads (the baseline, measured in
// the same run), and the pure encode/decode cost without a stream.
//
//   bench_channel_bench [--benchmark_filter=...]
// Payloads: 64 B (raw), 4 KiB (compressed: text-like / random), 1 MiB (raw random,
// compressed text-like, compressed random). Throughput counts payload bytes.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>

#include "tether/base/error.hpp"
#include "tether/channel/channel.hpp"
#include "tether/channel/frame.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/mem_pipe.hpp"

namespace {

using namespace tether;

enum Kind : int { kRandom = 0, kText = 1 };

std::string make_payload(std::size_t n, int kind) {
  std::mt19937_64 rng(n * 31 + static_cast<std::size_t>(kind));
  std::string s(n, '\0');
  if (kind == kRandom) {
    for (auto& c : s) c = static_cast<char>(rng());
  } else {
    // Words from a small vocabulary: compresses roughly like serialized RPC traffic.
    static const char* kWords[] = {"call ", "reply ", "netref ", "id_pack ", "tuple ", "value ",
                                   "0123 ", "add ", "getattr ", "exposed_ "};
    std::size_t i = 0;
    while (i < n) {
      const char* w = kWords[rng() % 10];
      for (; *w && i < n; ++w) s[i++] = *w;
    }
  }
  return s;
}

/// Frames per benchmark iteration: enough to keep the pipe busy for small payloads.
std::size_t batch_for(std::size_t n) { return std::max<std::size_t>(1, (256 << 10) / n); }

Task<void> channel_batch(Channel* tx, Channel* rx, const std::string* payload, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    tx->send(std::string_view(*payload));
    if (payload->size() >= (64 << 10)) {
      Bytes got = co_await rx->recv();
      benchmark::DoNotOptimize(got.data());
    }
  }
  if (payload->size() < (64 << 10)) {
    for (std::size_t i = 0; i < count; ++i) {
      Bytes got = co_await rx->recv();
      benchmark::DoNotOptimize(got.data());
    }
  }
  co_await tx->drain();
}

Task<void> stream_batch(BufferedStream* tx, BufferedStream* rx, const std::string* payload,
                        std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    tx->write(std::string_view(*payload));
    if (payload->size() >= (64 << 10)) {
      Bytes got = co_await rx->read_exactly(payload->size());
      benchmark::DoNotOptimize(got.data());
    }
  }
  if (payload->size() < (64 << 10)) {
    for (std::size_t i = 0; i < count; ++i) {
      Bytes got = co_await rx->read_exactly(payload->size());
      benchmark::DoNotOptimize(got.data());
    }
  }
  co_await tx->drain();
}

/// Args: payload size, kind, compress (0/1).
void BM_ChannelMemPipe(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::string payload = make_payload(n, static_cast<int>(state.range(1)));
  ChannelOptions opts;
  opts.compress = state.range(2) != 0;
  EventLoop loop;
  auto pipe = make_mem_pipe(loop, std::size_t{256} << 10);
  Channel tx(std::make_unique<BufferedStream>(std::move(pipe.first)), opts);
  Channel rx(std::make_unique<BufferedStream>(std::move(pipe.second)), opts);
  const std::size_t batch = batch_for(n);
  for (auto _ : state) loop.run_until_complete(channel_batch(&tx, &rx, &payload, batch));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * batch * n));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
  const ChannelStats s = tx.stats();
  state.counters["wire/payload"] =
      static_cast<double>(s.wire_bytes_out) / static_cast<double>(std::max<std::uint64_t>(1, s.payload_bytes_out));
}

/// Baseline: the same payload bytes, unframed, through the same streams and pipe.
void BM_StreamMemPipe(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::string payload = make_payload(n, static_cast<int>(state.range(1)));
  EventLoop loop;
  auto pipe = make_mem_pipe(loop, std::size_t{256} << 10);
  BufferedStream tx(std::move(pipe.first));
  BufferedStream rx(std::move(pipe.second));
  const std::size_t batch = batch_for(n);
  for (auto _ : state) loop.run_until_complete(stream_batch(&tx, &rx, &payload, batch));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * batch * n));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

/// encode_frame + FrameDecoder::decode, no stream.
void BM_EncodeDecode(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::string payload = make_payload(n, static_cast<int>(state.range(1)));
  ChannelOptions opts;
  opts.compress = state.range(2) != 0;
  FrameDecoder dec(opts);
  Buffer buf;
  for (auto _ : state) {
    const Bytes wire = encode_frame(payload, opts);
    buf.append(wire.view());
    auto f = dec.decode(buf);
    benchmark::DoNotOptimize(f->payload.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

void frame_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"size", "text", "zlib"});
  b->Args({64, kText, 1});             // below the threshold: raw
  b->Args({4 << 10, kText, 1});        // compressed
  b->Args({4 << 10, kRandom, 1});      // compressed, incompressible
  b->Args({1 << 20, kRandom, 0});      // raw
  b->Args({1 << 20, kText, 1});        // compressed
  b->Args({1 << 20, kRandom, 1});      // compressed, incompressible
}

void stream_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"size", "text"});
  b->Args({64, kText});
  b->Args({4 << 10, kText});
  b->Args({1 << 20, kRandom});
}

BENCHMARK(BM_ChannelMemPipe)->Apply(frame_args)->UseRealTime();
BENCHMARK(BM_StreamMemPipe)->Apply(stream_args)->UseRealTime();
BENCHMARK(BM_EncodeDecode)->Apply(frame_args);

}  // namespace

BENCHMARK_MAIN();
