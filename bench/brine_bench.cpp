// brine encode/decode throughput: a typical RPC payload, a 1 MiB bytes value and a big int,
// each beside a memcpy baseline of the same encoded size measured in the same run.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "tether/base/buffer.hpp"
#include "tether/brine/codec.hpp"

namespace {

using tether::Bytes;
using tether::brine::BigInt;
using tether::brine::Value;

/// A 5.x request as RPyC sends it: (MSG_REQUEST, seq, (HANDLE_CALL, (id_pack, args, kwargs))).
Value typical_call() {
  return Value::make_tuple(
      1, 42,
      Value::make_tuple(
          3, Value::make_tuple(Value::make_tuple("builtins.method", 94372110536624, 140234823318400),
                               Value::make_tuple(1, 2), Value::tuple({}))));
}

/// The smaller shape from the brief: (1, 42, (3, ((1, ("x", 1, 2)),))).
Value small_call() {
  return Value::make_tuple(
      1, 42, Value::make_tuple(3, Value::make_tuple(Value::make_tuple(1, Value::make_tuple("x", 1, 2)))));
}

Value mib_bytes() { return Value::bytes(std::string(1 << 20, 'q')); }

Value big_int() {
  std::string digits(4300, '0');
  for (std::size_t i = 0; i < digits.size(); ++i) digits[i] = static_cast<char>('1' + (i * 7) % 9);
  return Value(BigInt::parse(digits).value());
}

void dump_bench(benchmark::State& state, const Value& v) {
  std::string out;
  out.reserve(tether::brine::encoded_size(v));
  for (auto _ : state) {
    out.clear();
    tether::brine::dump_into(v, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(out.size()));
}

void dump_buffer_bench(benchmark::State& state, const Value& v) {
  tether::Buffer buf;
  for (auto _ : state) {
    buf.retrieve_all();
    tether::brine::dump_into(v, buf);
    benchmark::DoNotOptimize(buf.peek());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(tether::brine::encoded_size(v)));
}

void load_bench(benchmark::State& state, const Value& v) {
  const Bytes enc = tether::brine::dump(v);
  for (auto _ : state) {
    Value back = tether::brine::load(enc);
    benchmark::DoNotOptimize(back);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(enc.size()));
}

/// Baseline: copying the encoded bytes into a fresh std::string (one allocation + memcpy).
void copy_baseline(benchmark::State& state, const Value& v) {
  const Bytes enc = tether::brine::dump(v);
  for (auto _ : state) {
    std::string copy(enc.view());
    benchmark::DoNotOptimize(copy.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(enc.size()));
}

void BM_Typical_Dump(benchmark::State& s) { dump_bench(s, typical_call()); }
void BM_Typical_DumpBuffer(benchmark::State& s) { dump_buffer_bench(s, typical_call()); }
void BM_Typical_Load(benchmark::State& s) { load_bench(s, typical_call()); }
void BM_Typical_CopyBaseline(benchmark::State& s) { copy_baseline(s, typical_call()); }
void BM_Small_Dump(benchmark::State& s) { dump_bench(s, small_call()); }
void BM_Small_Load(benchmark::State& s) { load_bench(s, small_call()); }
void BM_Small_Build(benchmark::State& s) {
  for (auto _ : s) {
    Value v = small_call();
    benchmark::DoNotOptimize(v);
  }
}
void BM_Bytes1MiB_Dump(benchmark::State& s) { dump_bench(s, mib_bytes()); }
void BM_Bytes1MiB_DumpBuffer(benchmark::State& s) { dump_buffer_bench(s, mib_bytes()); }
void BM_Bytes1MiB_Load(benchmark::State& s) { load_bench(s, mib_bytes()); }
void BM_Bytes1MiB_CopyBaseline(benchmark::State& s) { copy_baseline(s, mib_bytes()); }
void BM_BigInt4300_Dump(benchmark::State& s) { dump_bench(s, big_int()); }
void BM_BigInt4300_Load(benchmark::State& s) { load_bench(s, big_int()); }
void BM_BigInt4300_CopyBaseline(benchmark::State& s) { copy_baseline(s, big_int()); }

BENCHMARK(BM_Typical_Dump);
BENCHMARK(BM_Typical_DumpBuffer);
BENCHMARK(BM_Typical_Load);
BENCHMARK(BM_Typical_CopyBaseline);
BENCHMARK(BM_Small_Build);
BENCHMARK(BM_Small_Dump);
BENCHMARK(BM_Small_Load);
BENCHMARK(BM_Bytes1MiB_Dump);
BENCHMARK(BM_Bytes1MiB_DumpBuffer);
BENCHMARK(BM_Bytes1MiB_Load);
BENCHMARK(BM_Bytes1MiB_CopyBaseline);
BENCHMARK(BM_BigInt4300_Dump);
BENCHMARK(BM_BigInt4300_Load);
BENCHMARK(BM_BigInt4300_CopyBaseline);

}  // namespace

BENCHMARK_MAIN();
