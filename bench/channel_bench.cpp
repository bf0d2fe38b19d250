// Channel benchmarks: frames encoded, sent through an in-memory pipe, received and decoded,
// beside the same bytes through plain BufferedStream writes/reads (the baseline, measured in
// the same run), the pure encode/decode cost without a stream, and small-frame request/reply
// (ping-pong) between two channels on one loop.
//
//   bench_channel_bench [--benchmark_filter=...]
//   bench_channel_bench --count MODE FRAMES    (a fixed amount of work, for callgrind)
// Payloads: 64 B (raw), 4 KiB (compressed: text-like / random), 1 MiB (raw random,
// compressed text-like, compressed random). Throughput counts payload bytes.
//
// --count runs MODE once with FRAMES small frames and exits, outside Google Benchmark, so that
// instruction counts are repeatable: run it twice (two FRAMES values) under
// `valgrind --tool=callgrind` and divide the difference by the difference in frames to get
// instructions per frame, set-up cancelled. MODE is one of
//   pingpong-mem, pingpong-sock   request/reply: send, then recv() the echo (mem pipe / socketpair)
//   batch-mem                     64 frames sent in one turn, then 64 recv()s, repeated
//   ...-peek (each of the above)  received with peek() + consume() (wait() when
//                                 nothing is buffered) instead of recv(): no copy
// A frame counts once: sent by one side and received by the other.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tether/base/error.hpp"
#include "tether/channel/channel.hpp"
#include "tether/channel/frame.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/gather.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/fd_transport.hpp"
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
    static const char* kWords[] = {"call ",  "reply ", "netref ", "id_pack ", "tuple ",
                                   "value ", "0123 ",  "add ",    "getattr ", "exposed_ "};
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
    tx->send(tether::OutFrame::copied(*payload));
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
  state.counters["wire/payload"] = static_cast<double>(s.wire_bytes_out) /
                                   static_cast<double>(std::max<std::uint64_t>(1, s.payload_bytes_out));
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

/// encode_frame + FrameDecoder::peek / take_payload / consume, no stream.
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
    auto f = dec.peek(buf);
    Bytes payload = dec.take_payload(*f);
    dec.consume(buf, *f);
    benchmark::DoNotOptimize(payload.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

void frame_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"size", "text", "zlib"});
  b->Args({64, kText, 1});         // below the threshold: raw
  b->Args({4 << 10, kText, 1});    // compressed
  b->Args({4 << 10, kRandom, 1});  // compressed, incompressible
  b->Args({1 << 20, kRandom, 0});  // raw
  b->Args({1 << 20, kText, 1});    // compressed
  b->Args({1 << 20, kRandom, 1});  // compressed, incompressible
}

void stream_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"size", "text"});
  b->Args({64, kText});
  b->Args({4 << 10, kText});
  b->Args({1 << 20, kRandom});
}

// ------------------------------------------------------------------ small-frame ping-pong

/// A small request/reply payload (RPC messages are typically 20-80 bytes).
constexpr std::size_t kSmallPayload = 64;

struct ChannelPair {
  std::unique_ptr<Channel> client;
  std::unique_ptr<Channel> server;
};

ChannelPair make_channels(EventLoop& loop, bool socketpair) {
  std::unique_ptr<Transport> a;
  std::unique_ptr<Transport> b;
  if (socketpair) {
    auto t = make_socketpair_transports(loop);
    a = std::move(t.first);
    b = std::move(t.second);
  } else {
    auto t = make_mem_pipe(loop);
    a = std::move(t.first);
    b = std::move(t.second);
  }
  return {std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(a))),
          std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(b)))};
}

/// Client side of one request/reply exchange per frame pair: send, then wait for the echo.
Task<void> ping_recv(Channel* ch, const std::string* msg, std::size_t rounds) {
  for (std::size_t i = 0; i < rounds; ++i) {
    ch->send(tether::OutFrame::copied(*msg));
    Bytes got = co_await ch->recv();
    benchmark::DoNotOptimize(got.data());
  }
}

/// Server side: echo every payload (recv() into Bytes, send(string_view)).
Task<void> pong_recv(Channel* ch, std::size_t rounds) {
  for (std::size_t i = 0; i < rounds; ++i) {
    Bytes got = co_await ch->recv();
    ch->send(tether::OutFrame::copied(got.view()));
  }
}

/// The same with the zero-copy receive: peek(), else wait(); consume() after use.
Task<void> ping_peek(Channel* ch, const std::string* msg, std::size_t rounds) {
  for (std::size_t i = 0; i < rounds; ++i) {
    ch->send(tether::OutFrame::copied(*msg));
    for (;;) {
      std::optional<std::span<const std::uint8_t>> got = ch->peek();
      if (!got) {
        co_await ch->wait();
        continue;
      }
      benchmark::DoNotOptimize(got->data());
      ch->consume();
      break;
    }
  }
}

/// Server side, zero-copy: the echo is sent straight from the peeked payload.
Task<void> pong_peek(Channel* ch, std::size_t rounds) {
  for (std::size_t i = 0; i < rounds;) {
    std::optional<std::span<const std::uint8_t>> got = ch->peek();
    if (!got) {
      co_await ch->wait();
      continue;
    }
    ch->send(
        tether::OutFrame::copied(std::string_view(reinterpret_cast<const char*>(got->data()), got->size())));
    ch->consume();
    ++i;
  }
}

void run_pingpong(EventLoop& loop, ChannelPair& p, const std::string& msg, std::size_t rounds, bool peek) {
  std::vector<Task<void>> both;
  both.push_back(peek ? pong_peek(p.server.get(), rounds) : pong_recv(p.server.get(), rounds));
  both.push_back(peek ? ping_peek(p.client.get(), &msg, rounds) : ping_recv(p.client.get(), &msg, rounds));
  loop.run_until_complete(gather(std::move(both)));
}

/// Small frames in batches of 64 per turn, received with recv().
Task<void> batch_recv(Channel* tx, Channel* rx, const std::string* msg, std::size_t batches) {
  for (std::size_t b = 0; b < batches; ++b) {
    for (int i = 0; i < 64; ++i) tx->send(tether::OutFrame::copied(*msg));
    for (int i = 0; i < 64; ++i) {
      Bytes got = co_await rx->recv();
      benchmark::DoNotOptimize(got.data());
    }
  }
}

Task<void> batch_peek(Channel* tx, Channel* rx, const std::string* msg, std::size_t batches) {
  for (std::size_t b = 0; b < batches; ++b) {
    for (int i = 0; i < 64; ++i) tx->send(tether::OutFrame::copied(*msg));
    for (int i = 0; i < 64;) {
      std::optional<std::span<const std::uint8_t>> got = rx->peek();
      if (!got) {
        co_await rx->wait();
        continue;
      }
      benchmark::DoNotOptimize(got->data());
      rx->consume();
      ++i;
    }
  }
}

/// Args: socketpair (0 = mem pipe), peek (0 = recv()). One round = a request and its reply
/// (two frames); items count frames.
void BM_ChannelPingPong(benchmark::State& state) {
  const std::string msg = make_payload(kSmallPayload, kText);
  EventLoop loop;
  ChannelPair p = make_channels(loop, state.range(0) != 0);
  constexpr std::size_t kRounds = 256;
  for (auto _ : state) run_pingpong(loop, p, msg, kRounds, state.range(1) != 0);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kRounds * 2));
}

BENCHMARK(BM_ChannelMemPipe)->Apply(frame_args)->UseRealTime();
BENCHMARK(BM_StreamMemPipe)->Apply(stream_args)->UseRealTime();
BENCHMARK(BM_EncodeDecode)->Apply(frame_args);
BENCHMARK(BM_ChannelPingPong)->ArgNames({"socketpair", "peek"})->ArgsProduct({{0, 1}, {0, 1}});

/// --count MODE FRAMES: see the file comment.
int run_count(const std::string& mode, std::size_t frames) {
  const std::string msg = make_payload(kSmallPayload, kText);
  EventLoop loop;
  const bool peek = mode.ends_with("-peek");
  const std::string base = peek ? mode.substr(0, mode.size() - 5) : mode;
  ChannelPair p = make_channels(loop, base.ends_with("-sock"));
  if (base == "pingpong-mem" || base == "pingpong-sock") {
    run_pingpong(loop, p, msg, frames / 2, peek);
  } else if (base == "batch-mem" && peek) {
    loop.run_until_complete(batch_peek(p.client.get(), p.server.get(), &msg, frames / 64));
  } else if (base == "batch-mem") {
    loop.run_until_complete(batch_recv(p.client.get(), p.server.get(), &msg, frames / 64));
  } else {
    std::fprintf(stderr, "unknown --count mode %s\n", mode.c_str());
    return 2;
  }
  const ChannelStats a = p.client->stats();
  const ChannelStats b = p.server->stats();
  std::printf("%s: %llu frames sent, %llu received\n", mode.c_str(),
              static_cast<unsigned long long>(a.frames_out + b.frames_out),
              static_cast<unsigned long long>(a.frames_in + b.frames_in));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--count") == 0) {
    if (argc != 4) {
      std::fprintf(stderr, "usage: %s --count MODE FRAMES\n", argv[0]);
      return 2;
    }
    return run_count(argv[2], std::strtoull(argv[3], nullptr, 10));
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
