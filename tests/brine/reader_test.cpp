// brine::Reader: walking a value with the try_ methods gives load()'s value and, for broken
// or hostile input, load()'s error, at the same point.

#include "tether/brine/reader.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "random_value.hpp"
#include "tether/brine/codec.hpp"

namespace tether::brine {
namespace {

std::span<const std::uint8_t> span_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

/// Rebuilds the value the way the rpc layer reads messages: tuples through try_tuple, ints
/// and strs through their try_ forms, everything else through read().
Value walk(Reader& r, std::size_t depth) {
  if (auto n = r.try_tuple(depth)) {
    Value::Tuple items;
    for (std::size_t i = 0; i < *n; ++i) items.push_back(walk(r, depth + 1));
    return Value::tuple(std::move(items));
  }
  if (auto i = r.try_int64()) return Value(*i);
  if (auto s = r.try_str()) return Value(std::string(*s));
  return r.read(depth);
}

/// "ok" or the error message, for load() and for walk().
std::string outcome_of_load(const std::string& bytes, const Limits& limits) {
  try {
    (void)load(span_of(bytes), limits);
    return "ok";
  } catch (const ProtocolError& e) {
    return e.what();
  }
}

std::string outcome_of_walk(const std::string& bytes, const Limits& limits, Value* out = nullptr) {
  try {
    Reader r(span_of(bytes), limits);
    Value v = walk(r, 0);
    r.expect_end();
    if (out) *out = std::move(v);
    return "ok";
  } catch (const ProtocolError& e) {
    return e.what();
  }
}

TEST(BrineReader, WalkRebuildsRandomValues) {
  testing::RandomValues gen(20261201);
  for (int i = 0; i < 2000; ++i) {
    Value v = gen.any();
    const std::string bytes(dump(v).view());
    Value back;
    ASSERT_EQ(outcome_of_walk(bytes, Limits{}, &back), "ok") << v.repr(200);
    EXPECT_EQ(back, load(span_of(bytes))) << v.repr(200);
  }
}

TEST(BrineReader, BrokenInputFailsLikeLoad) {
  // Random values, then each truncated, with bytes overwritten, and under tight limits: the
  // walk must agree with load() on success or on the exact error.
  testing::RandomValues gen(7);
  std::mt19937_64 rng(99);
  Limits tight;
  tight.max_depth = 3;
  tight.max_container_len = 3;
  tight.max_total_values = 12;
  tight.max_total_bytes = 40;
  tight.max_int_digits = 5;
  int failures_seen = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string good(dump(gen.any()).view());
    std::vector<std::string> variants{good, good.substr(0, rng() % (good.size() + 1)), good + "\x01"};
    std::string flipped = good;
    for (int k = 0; k < 3 && !flipped.empty(); ++k)
      flipped[rng() % flipped.size()] = static_cast<char>(rng());
    variants.push_back(flipped);
    for (const std::string& bytes : variants) {
      for (const Limits& limits : {Limits{}, tight}) {
        const std::string expected = outcome_of_load(bytes, limits);
        if (expected != "ok") ++failures_seen;
        ASSERT_EQ(outcome_of_walk(bytes, limits), expected) << "input of " << bytes.size() << " bytes";
      }
    }
  }
  EXPECT_GT(failures_seen, 1000);  // the corpus really exercises the error paths
}

TEST(BrineReader, TryFormsConsumeNothingOnAnotherShape) {
  const std::string bytes(dump(Value::make_tuple(Value(1.5), Value("x"))).view());
  Reader r(span_of(bytes), Limits{});
  EXPECT_FALSE(r.try_int64());
  EXPECT_FALSE(r.try_str());
  EXPECT_EQ(r.offset(), 0u);
  ASSERT_EQ(r.try_tuple(0), 2u);
  EXPECT_FALSE(r.try_tuple(1));
  EXPECT_FALSE(r.try_str());
  EXPECT_EQ(r.read(1), Value(1.5));
  auto s = r.try_str();
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, "x");
  EXPECT_TRUE(r.at_end());
  r.expect_end();
}

TEST(BrineReader, BigIntsAreNotInt64) {
  const BigInt big = BigInt::parse("123456789012345678901234567890", 100).value();
  const std::string bytes(dump(Value(big)).view());
  Reader r(span_of(bytes), Limits{});
  EXPECT_FALSE(r.try_int64());
  EXPECT_EQ(r.offset(), 0u);
  EXPECT_EQ(r.read(0), Value(big));
  // The largest and smallest int64 take the INT_L1 path and still fit.
  for (std::int64_t edge : {INT64_MAX, INT64_MIN, std::int64_t{-49}, std::int64_t{160}}) {
    const std::string b(dump(Value(edge)).view());
    Reader e(span_of(b), Limits{});
    EXPECT_EQ(e.try_int64(), edge);
    EXPECT_TRUE(e.at_end());
  }
}

TEST(BrineReader, MarkAndRewindRestoreTheValueCount) {
  Limits limits;
  limits.max_total_values = 3;
  const std::string bytes(dump(Value::make_tuple(Value(1), Value(2))).view());
  Reader r(span_of(bytes), limits);
  const Reader::Mark m = r.mark();
  for (int round = 0; round < 5; ++round) {  // would exceed 3 values without the rewind
    r.rewind(m);
    ASSERT_EQ(r.try_tuple(0), 2u);
    EXPECT_EQ(r.try_int64(), 1);
    EXPECT_EQ(r.try_int64(), 2);
  }
  EXPECT_EQ(r.since(m).size(), bytes.size());
}

TEST(BrineReader, LeafWritersMatchDump) {
  for (std::int64_t i : {std::int64_t{0}, std::int64_t{-48}, std::int64_t{159}, std::int64_t{160},
                         std::int64_t{-49}, INT64_MAX, INT64_MIN, std::int64_t{1234567}}) {
    Buffer b;
    dump_int(i, b);
    EXPECT_EQ(std::string(b.view()), std::string(dump(Value(i)).view())) << i;
  }
  for (std::string s : {std::string(), std::string("abc"), std::string(300, 'x'), std::string("h\xc3\xa9")}) {
    Buffer b;
    dump_str(s, b);
    EXPECT_EQ(std::string(b.view()), std::string(dump(Value(s)).view()));
  }
  Buffer n;
  dump_none(n);
  EXPECT_EQ(std::string(n.view()), std::string(dump(Value()).view()));
}

}  // namespace
}  // namespace tether::brine

namespace tether::brine {
namespace {

/// try_encoded of a value's own bytes succeeds exactly when read() would, with the same effect
/// on the limits (checked by what a following value then does).
TEST(BrineReader, TryEncodedAcceptsExactlyWhatReadWould) {
  const std::vector<Value> samples{
      Value::make_tuple(Value("builtins.method"), Value(std::int64_t{140234567890123}), Value(7)),
      Value::make_tuple(Value("x"), Value(1), Value(2)),
      Value::make_tuple(Value("tests.Root"), Value(std::int64_t{-123456}), Value(std::int64_t{99999}))};
  int accepted = 0;
  int refused = 0;
  for (const Value& v : samples) {
    const std::string enc(dump(v).view());
    const auto& t = v.as_tuple();
    std::size_t longest = 0;
    for (std::size_t i = 1; i < 3; ++i) {
      const std::int64_t x = t[i].as_int64();
      if (x < tag::kImmMin || x > tag::kImmMax) longest = std::max(longest, std::to_string(x).size());
    }
    const Reader::Shape shape{4, 1, 3, longest};
    const std::string input = enc + std::string(dump(Value(7)).view());
    for (std::size_t depth : {0u, 1u, 2u}) {
      for (std::size_t max_depth : {1u, 2u, 3u}) {
        for (std::size_t max_len : {2u, 3u}) {
          for (std::size_t max_values : {3u, 4u, 5u, 6u}) {
            for (std::size_t max_digits : {4u, 14u, 20u}) {
              Limits lim;
              lim.max_depth = max_depth;
              lim.max_container_len = max_len;
              lim.max_total_values = max_values;
              lim.max_int_digits = max_digits;
              Reader a(span_of(input), lim);
              const bool fast = a.try_encoded(span_of(enc), shape, depth);
              Reader b(span_of(input), lim);
              bool slow = true;
              try {
                (void)b.read(depth);
              } catch (const ProtocolError&) {
                slow = false;
              }
              ASSERT_EQ(fast, slow) << v.repr() << " depth " << depth << " max_depth " << max_depth
                                    << " max_len " << max_len << " max_values " << max_values << " digits "
                                    << max_digits;
              if (!fast) {
                EXPECT_EQ(a.offset(), 0u);
                ++refused;
                continue;
              }
              ++accepted;
              EXPECT_EQ(a.offset(), b.offset());
              std::string next_a, next_b;  // the trailing value sees the same count
              try {
                next_a = a.read(depth).repr();
              } catch (const ProtocolError& e) {
                next_a = e.what();
              }
              try {
                next_b = b.read(depth).repr();
              } catch (const ProtocolError& e) {
                next_b = e.what();
              }
              EXPECT_EQ(next_a, next_b);
            }
          }
        }
      }
    }
  }
  EXPECT_GT(accepted, 20);
  EXPECT_GT(refused, 20);
  // Other bytes never match.
  const std::string enc(dump(samples[0]).view());
  std::string other = enc;
  other.back() = static_cast<char>(other.back() ^ 1);
  Reader r(span_of(other), Limits{});
  EXPECT_FALSE(r.try_encoded(span_of(enc), Reader::Shape{4, 1, 3, 15}, 0));
  EXPECT_EQ(r.offset(), 0u);
}

}  // namespace
}  // namespace tether::brine
