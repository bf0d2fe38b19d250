// Seeded random round trips and mutation fuzzing of valid encodings.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "brine/random_value.hpp"
#include "tether/base/buffer.hpp"
#include "tether/base/error.hpp"
#include "tether/brine/codec.hpp"

namespace tether::brine {
namespace {

TEST(BrineRoundTrip, RandomValuesSurviveDumpAndLoad) {
  for (std::uint64_t seed : {1u, 2u, 3u, 4u}) {
    testing::RandomValues gen(seed, {.max_depth = 5});
    for (int i = 0; i < 1500; ++i) {
      const Value v = gen.any();
      const Bytes enc = dump(v);
      ASSERT_EQ(enc.size(), encoded_size(v));
      const Value back = load(enc);
      ASSERT_EQ(back, v) << "seed " << seed << " #" << i << ": " << v.repr(500);
      ASSERT_EQ(back.hash(), v.hash());
      // Canonical: re-encoding the decoded value gives the same bytes.
      ASSERT_EQ(dump(back), enc);
    }
  }
}

TEST(BrineRoundTrip, CopiesCompareEqualAndAreIndependent) {
  testing::RandomValues gen(7);
  for (int i = 0; i < 300; ++i) {
    Value v = gen.any();
    Value copy = v;
    EXPECT_EQ(copy, v);
    Value moved = std::move(copy);
    EXPECT_TRUE(copy.is_none());  // NOLINT(bugprone-use-after-move): documented moved-from state
    EXPECT_EQ(moved, v);
  }
}

TEST(BrineRoundTrip, DumpIntoAppendsToStringAndBuffer) {
  testing::RandomValues gen(11);
  std::string s = "prefix";
  Buffer buf;
  buf.append("xy", 2);
  std::string expected = "prefix";
  std::string expected_buf = "xy";
  for (int i = 0; i < 50; ++i) {
    Value v = gen.any();
    dump_into(v, s);
    dump_into(v, buf);
    expected += dump(v).view();
    expected_buf += dump(v).view();
  }
  EXPECT_EQ(s, expected);
  EXPECT_EQ(buf.view(), expected_buf);
  EXPECT_GE(buf.prependable_bytes(), Buffer::kCheapPrepend);
  // The concatenation decodes value by value with load_prefix.
  std::span<const std::uint8_t> rest(reinterpret_cast<const std::uint8_t*>(s.data()) + 6, s.size() - 6);
  int count = 0;
  while (!rest.empty()) {
    LoadResult r = load_prefix(rest);
    ASSERT_GT(r.consumed, 0u);
    rest = rest.subspan(r.consumed);
    ++count;
  }
  EXPECT_EQ(count, 50);
}

/// Feeds `data` to load and load_prefix: each must return or throw ProtocolError.
void expect_graceful(const std::string& data, const Limits& limits, int& returned, int& rejected) {
  try {
    Value v = load(data, limits);
    ++returned;
    // Whatever was accepted re-encodes and decodes to itself.
    EXPECT_EQ(load(dump(v), limits), v);
  } catch (const ProtocolError&) {
    ++rejected;
  }
  try {
    (void)load_prefix(
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()),
        limits);
  } catch (const ProtocolError&) {
  }
}

TEST(BrineFuzz, MutatedAndTruncatedEncodingsNeverCrash) {
  testing::RandomValues gen(0xF022);
  Limits limits;
  limits.max_depth = 16;
  int returned = 0;
  int rejected = 0;
  for (int i = 0; i < 2500; ++i) {
    const std::string enc(dump(gen.any()).view());
    // Every truncation.
    if (enc.size() < 200) {
      for (std::size_t n = 0; n < enc.size(); ++n)
        expect_graceful(enc.substr(0, n), limits, returned, rejected);
    } else {
      expect_graceful(enc.substr(0, static_cast<std::size_t>(gen.below(static_cast<int>(enc.size())))),
                      limits, returned, rejected);
    }
    // Random byte mutations, insertions and deletions.
    for (int m = 0; m < 12; ++m) {
      std::string mut = enc;
      const int edits = 1 + gen.below(3);
      for (int e = 0; e < edits; ++e) {
        const std::size_t pos =
            mut.empty() ? 0 : static_cast<std::size_t>(gen.below(static_cast<int>(mut.size())));
        switch (gen.below(4)) {
          case 0:
            if (!mut.empty()) mut[pos] = static_cast<char>(gen.below(256));
            break;
          case 1:
            if (!mut.empty()) mut[pos] = static_cast<char>(mut[pos] ^ (1 << gen.below(8)));
            break;
          case 2: mut.insert(pos, 1, static_cast<char>(gen.below(256))); break;
          default:
            if (!mut.empty()) mut.erase(pos, 1);
            break;
        }
      }
      expect_graceful(mut, limits, returned, rejected);
    }
  }
  // Both outcomes occur (the fuzzer is not trivially rejecting or accepting everything).
  EXPECT_GT(returned, 100);
  EXPECT_GT(rejected, 1000);
}

TEST(BrineFuzz, RandomBytesNeverCrash) {
  testing::RandomValues gen(0xB17E5);
  int returned = 0;
  int rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s(static_cast<std::size_t>(1 + gen.below(40)), '\0');
    for (auto& c : s) c = static_cast<char>(gen.below(256));
    expect_graceful(s, Limits{}, returned, rejected);
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(returned, 0);
}

}  // namespace
}  // namespace tether::brine
