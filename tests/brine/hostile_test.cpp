// Hostile and malformed input: every case is a ProtocolError with a useful message.
#include <gtest/gtest.h>

#include <string>

#include "tether/base/error.hpp"
#include "tether/brine/codec.hpp"

namespace tether::brine {
namespace {

std::string b(std::initializer_list<int> bytes) {
  std::string s;
  for (int x : bytes) s += static_cast<char>(x);
  return s;
}

/// load(data) throws ProtocolError whose message contains `needle`.
void expect_rejected(const std::string& data, const std::string& needle, const Limits& limits = {}) {
  try {
    Value v = load(data, limits);
    ADD_FAILURE() << "accepted: " << v.repr(200);
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

TEST(BrineHostile, DepthBombOfAMillionTup1) {
  std::string bomb(1000000, '\x10');
  bomb += '\x50';
  expect_rejected(bomb, "nested deeper than 64");
}

TEST(BrineHostile, DepthLimitIsExact) {
  auto nested = [](int levels) {
    std::string s(static_cast<std::size_t>(levels), '\x10');
    s += '\x50';
    return s;
  };
  Value v = load(nested(64));
  int depth = 0;
  while (v.is_tuple()) {
    Value inner = v.as_tuple()[0];
    v = std::move(inner);
    ++depth;
  }
  EXPECT_EQ(depth, 64);
  expect_rejected(nested(65), "nested deeper than 64");
  Limits shallow;
  shallow.max_depth = 3;
  EXPECT_NO_THROW((void)load(nested(3), shallow));
  expect_rejected(nested(4), "nested deeper than 3", shallow);
  // Slices and frozensets count as levels too.
  expect_rejected(std::string(100, '\x19'), "nested deeper than 64");
  expect_rejected(std::string(100, '\x1a'), "nested deeper than 64");
}

TEST(BrineHostile, HugeDeclaredLengths) {
  expect_rejected(b({0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0x61, 0x62, 0x63}), "truncated STR_L4");
  expect_rejected(b({0x15, 0xFF, 0xFF, 0xFF, 0xFF, 0x50}), "TUP_L4");  // 2^32-1 elements
  expect_rejected(b({0x17, 0xFF, 0xFF, 0xFF, 0xFF, 0x31}), "INT_L4");
  expect_rejected(b({0x08, 0x0F, 0x7F, 0xFF, 0xFF, 0xFF}), "truncated STR_L4");
  expect_rejected(b({0x0E, 0x05, 0x61}), "truncated STR_L1");
  expect_rejected(b({0x14, 0x09, 0x50, 0x50}), "truncated TUP_L1");
}

TEST(BrineHostile, TruncatedFixedSizeValues) {
  expect_rejected("", "truncated");
  expect_rejected(b({0x18, 0, 0, 0}), "FLOAT");
  expect_rejected(b({0x1B, 0, 0, 0, 0, 0, 0, 0, 0, 0}), "COMPLEX");
  expect_rejected(b({0x0D, 0x61, 0x62}), "STR4");
  expect_rejected(b({0x12, 0x50, 0x50}), "TUP3");
  expect_rejected(b({0x0F, 0x00, 0x00}), "STR_L4");
  expect_rejected(b({0x08}), "UNICODE");
  expect_rejected(b({0x19}), "truncated");
}

TEST(BrineHostile, IntDigitLimit) {
  std::string five_thousand = b({0x17, 0x00, 0x00, 0x13, 0x88}) + std::string(5000, '7');
  expect_rejected(five_thousand, "more than 4300 digits");
  // Exactly 4300 digits (with a sign) is accepted, 4301 is not.
  std::string ok = b({0x17, 0x00, 0x00, 0x10, 0xCD}) + "-" + std::string(4300, '9');
  EXPECT_EQ(load(ok).as_big_int().digit_count(), 4300u);
  std::string over = b({0x17, 0x00, 0x00, 0x10, 0xCD}) + std::string(4301, '9');
  expect_rejected(over, "4300 digits");
  Limits small;
  small.max_int_digits = 30;
  expect_rejected(b({0x16, 0x20}) + std::string(32, '1'), "30 digits", small);
}

TEST(BrineHostile, MalformedIntText) {
  expect_rejected(b({0x16, 0x00}), "no digits");
  expect_rejected(b({0x16, 0x01, '-'}), "no digits");
  expect_rejected(b({0x16, 0x02, '1', 'x'}), "-?[0-9]+");
  expect_rejected(b({0x16, 0x02, '+', '1'}), "-?[0-9]+");
  expect_rejected(b({0x16, 0x03, ' ', '1', ' '}), "-?[0-9]+");
  expect_rejected(b({0x16, 0x03, '1', '_', '0'}), "-?[0-9]+");
  expect_rejected(b({0x16, 0x14}) + "1234567890123456789x", "-?[0-9]+");
  expect_rejected(b({0x16, 0x02, '-', '-'}), "-?[0-9]+");
  // Leading zeros and "-0" are accepted (Python's int() accepts them) and canonicalised.
  EXPECT_EQ(load(b({0x16, 0x03, '0', '0', '7'})), Value(7));
  EXPECT_EQ(load(b({0x16, 0x02, '-', '0'})), Value(0));
  EXPECT_EQ(load(b({0x16, 0x16}) + "0009223372036854775807"), Value(INT64_MAX));
}

TEST(BrineHostile, InvalidUtf8InStr) {
  expect_rejected(b({0x08, 0x0A, 0xFF}), "invalid UTF-8");
  expect_rejected(b({0x08, 0x0B, 0xC3, 0x28}), "invalid UTF-8");
  expect_rejected(b({0x08, 0x0C, 0xED, 0xA0, 0x80}), "invalid UTF-8");        // a surrogate
  expect_rejected(b({0x08, 0x0B, 0xC0, 0x80}), "invalid UTF-8");              // overlong NUL
  expect_rejected(b({0x08, 0x0D, 0xF4, 0x90, 0x80, 0x80}), "invalid UTF-8");  // > U+10FFFF
  EXPECT_EQ(load(b({0x08, 0x0B, 0xC3, 0xA9})).as_str(), "\xc3\xa9");
}

TEST(BrineHostile, UnicodeMustWrapBytes) {
  expect_rejected(b({0x08, 0x50}), "UNICODE must wrap a bytes value");
  expect_rejected(b({0x08, 0x08, 0x0A, 0x41}), "UNICODE must wrap a bytes value");
  expect_rejected(b({0x08, 0x10, 0x0A, 0x41}), "UNICODE must wrap a bytes value");
  expect_rejected(b({0x08, 0x00}), "UNICODE must wrap a bytes value");
  EXPECT_EQ(load(b({0x08, 0x01})), Value(""));
  EXPECT_EQ(load(b({0x08, 0x0E, 0x00})), Value(""));  // STR_L1 of length 0 is legal
}

TEST(BrineHostile, UnknownTags) {
  std::vector<int> unknown = {0x07, 0x09, 0x1C, 0x1D, 0x1E, 0x1F};
  for (int t = 0xF0; t <= 0xFF; ++t) unknown.push_back(t);
  for (int t : unknown) {
    SCOPED_TRACE(t);
    expect_rejected(b({t}), "unknown tag");
    expect_rejected(b({0x11, 0x50, t}), "offset 2");  // the offset of the bad tag is reported
  }
}

TEST(BrineHostile, SliceNeedsAThreeTuple) {
  expect_rejected(b({0x19, 0x11, 0x50, 0x51}), "SLICE must wrap a 3-tuple");
  expect_rejected(b({0x19, 0x13, 0x50, 0x51, 0x52, 0x53}), "SLICE must wrap a 3-tuple");
  expect_rejected(b({0x19, 0x0C, 0x61, 0x62, 0x63}),
                  "SLICE must wrap a 3-tuple");  // Python would iterate bytes
  expect_rejected(b({0x19, 0x50}), "SLICE must wrap a 3-tuple");
  expect_rejected(b({0x19, 0x02}), "SLICE must wrap a 3-tuple");
  EXPECT_EQ(load(b({0x19, 0x14, 0x03, 0x51, 0x00, 0x52})),
            Value::slice(1, {}, 2));  // TUP_L1 n=3 is a 3-tuple
}

TEST(BrineHostile, FrozensetNeedsATupleOfHashables) {
  expect_rejected(b({0x1A, 0x50}), "FSET must wrap a tuple");
  expect_rejected(b({0x1A, 0x0A, 0x41}), "FSET must wrap a tuple");
  expect_rejected(b({0x1A, 0x10, 0x19, 0x12, 0x50, 0x50, 0x50}), "unhashable");
  expect_rejected(b({0x1A, 0x10, 0x10, 0x19, 0x12, 0x50, 0x50, 0x50}), "unhashable");
  // Duplicates are dropped, as Python's frozenset() does.
  Value v = load(b({0x1A, 0x13, 0x51, 0x52, 0x51, 0x52}));
  EXPECT_EQ(v.as_frozenset().size(), 2u);
  EXPECT_EQ(v, Value::frozenset({2, 1}));
}

TEST(BrineHostile, TrailingBytes) {
  expect_rejected(b({0x50, 0x50}), "1 trailing byte");
  expect_rejected(b({0x11, 0x50, 0x51, 0x00, 0x00}), "2 trailing bytes");
  const std::string data = b({0x11, 0x50, 0x51, 0xFF, 0xFF});
  LoadResult r = load_prefix(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
  EXPECT_EQ(r.consumed, 3u);
  EXPECT_EQ(r.value, Value::tuple({0, 1}));
}

TEST(BrineHostile, ContainerAndTotalLimits) {
  Limits lim;
  lim.max_container_len = 4;
  EXPECT_NO_THROW((void)load(b({0x13, 0x50, 0x50, 0x50, 0x50}), lim));
  expect_rejected(b({0x14, 0x05, 0x50, 0x50, 0x50, 0x50, 0x50}), "Limits::max_container_len", lim);
  Limits total;
  total.max_total_values = 5;
  EXPECT_NO_THROW((void)load(b({0x13, 0x50, 0x50, 0x50, 0x50}), total));  // 5 values
  expect_rejected(b({0x12, 0x50, 0x50, 0x11, 0x50, 0x50}), "Limits::max_total_values", total);
  expect_rejected(b({0x14, 0x05, 0x50, 0x50, 0x50, 0x50, 0x50}), "Limits::max_total_values", total);
  Limits bytes;
  bytes.max_total_bytes = 10;
  EXPECT_NO_THROW((void)load(b({0x0E, 0x08}) + "abcdefgh", bytes));
  expect_rejected(b({0x0E, 0x09}) + "abcdefghi", "Limits::max_total_bytes", bytes);
  // A tuple of 2^22+1 elements is over the default container limit even with input to back it.
  std::string many = b({0x15, 0x00, 0x40, 0x00, 0x01}) + std::string((1u << 22) + 1, '\x50');
  expect_rejected(many, "Limits::max_container_len");
}

TEST(BrineHostile, DeclaredElementsBeyondInputAllocateNothingLarge) {
  // 2^24 declared elements but 3 bytes of input: refused before reserving memory.
  expect_rejected(b({0x15, 0x01, 0x00, 0x00, 0x00, 0x50, 0x50, 0x50}), "TUP_L4");
  Limits lim;
  lim.max_container_len = std::size_t{1} << 40;
  lim.max_total_values = std::size_t{1} << 40;
  expect_rejected(b({0x15, 0xFF, 0xFF, 0xFF, 0xFF, 0x50, 0x50, 0x50}), "truncated TUP_L4", lim);
}

}  // namespace
}  // namespace tether::brine

namespace tether::brine {
namespace {

// Large frozensets are deduplicated and compared by sorting, not hashing: a peer cannot pick
// members that make decoding quadratic. This exercises that path at scale.
TEST(BrineHostile, LargeFrozensetsDecodeAndCompare) {
  const std::uint32_t n = 100000;
  std::string data = b({0x1A, 0x15});
  data += static_cast<char>((n >> 24) & 0xFF);
  data += static_cast<char>((n >> 16) & 0xFF);
  data += static_cast<char>((n >> 8) & 0xFF);
  data += static_cast<char>(n & 0xFF);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::string digits = std::to_string((i * 7919u) % (n / 2) + 1000);  // every value twice
    data += '\x16';
    data += static_cast<char>(digits.size());
    data += digits;
  }
  const Value v = load(data);
  ASSERT_EQ(v.as_frozenset().size(), n / 2);
  Value::Tuple reversed(v.as_frozenset().rbegin(), v.as_frozenset().rend());
  EXPECT_EQ(v, Value::frozenset(std::move(reversed)));
}

}  // namespace
}  // namespace tether::brine
