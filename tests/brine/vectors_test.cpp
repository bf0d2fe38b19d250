// Byte-exact agreement with the stock RPyC 5.3 brine, generated at test time by Python.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "brine/python_oracle.hpp"
#include "brine/random_value.hpp"
#include "tether/brine/codec.hpp"
#include "tether/brine/utf8.hpp"

namespace tether::brine {
namespace {

using testing::from_hex;
using testing::PythonOracle;
using testing::to_hex;

Value big(const std::string& decimal) { return Value(BigInt::parse(decimal).value()); }
std::string pow10(int n) { return "1" + std::string(static_cast<std::size_t>(n), '0'); }
Value range_tuple(int n) {
  Value::Tuple t;
  for (int i = 0; i < n; ++i) t.emplace_back(i);
  return Value::tuple(std::move(t));
}
std::string repeat(std::string_view s, int n) {
  std::string r;
  for (int i = 0; i < n; ++i) r += s;
  return r;
}

struct Case {
  std::string expr;         // the Python expression building the same value
  Value value;              // the C++ construction
  bool order_free = false;  // a frozenset whose Python member order is not predictable
};

std::vector<Case> cases() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  std::string bytes256;
  for (int i = 0; i < 256; ++i) bytes256 += static_cast<char>(i);
  std::vector<Case> c = {
      // singletons
      {"None", Value()},
      {"True", Value(true)},
      {"False", Value(false)},
      {"NotImplemented", Value::not_implemented()},
      {"Ellipsis", Value::ellipsis()},
      // ints: immediate edges, int64 edges, big ints, INT_L1/INT_L4 boundary, the digit limit
      {"0", Value(0)},
      {"1", Value(1)},
      {"-1", Value(-1)},
      {"42", Value(42)},
      {"-48", Value(-48)},
      {"-49", Value(-49)},
      {"159", Value(159)},
      {"160", Value(160)},
      {"255", Value(255)},
      {"256", Value(256)},
      {"-1000", Value(-1000)},
      {"2**31", Value(std::int64_t{1} << 31)},
      {"2**32", Value(std::uint32_t{0xFFFFFFFFu} + std::int64_t{1})},
      {"2**63-1", Value(std::numeric_limits<std::int64_t>::max())},
      {"-2**63", Value(std::numeric_limits<std::int64_t>::min())},
      {"2**63", big("9223372036854775808")},
      {"-2**63-1", big("-9223372036854775809")},
      {"2**64-1", Value(std::numeric_limits<std::uint64_t>::max())},
      {"2**64", big("18446744073709551616")},
      {"10**18", Value(std::int64_t{1000000000000000000})},
      {"-10**19", big("-10000000000000000000")},
      {"10**300", big(pow10(300))},
      {"-10**300", big("-" + pow10(300))},
      {"10**254", big(pow10(254))},         // 255 characters: INT_L1
      {"10**255", big(pow10(255))},         // 256 characters: INT_L4
      {"-10**253", big("-" + pow10(253))},  // 255 characters with the sign
      {"-10**254", big("-" + pow10(254))},  // 256 characters with the sign
      {"10**4299", big(pow10(4299))},       // 4300 digits: Python's limit
      {"-(10**4300-1)", big("-" + std::string(4300, '9'))},
      // floats
      {"0.0", Value(0.0)},
      {"-0.0", Value(-0.0)},
      {"1.5", Value(1.5)},
      {"18.2", Value(18.2)},
      {"-2.25", Value(-2.25)},
      {"1e300", Value(1e300)},
      {"5e-324", Value(5e-324)},
      {"1e16", Value(1e16)},
      {"1e-05", Value(1e-05)},
      {"0.1", Value(0.1)},
      {"123456789012345678.0", Value(123456789012345678.0)},
      {"nan", Value(nan)},
      {"inf", Value(inf)},
      {"-inf", Value(-inf)},
      // complex
      {"13+18.2j", Value::complex(13, 18.2)},
      {"0j", Value::complex(0, 0)},
      {"-1-1j", Value::complex(-1, -1)},
      {"1j", Value::complex(0, 1)},
      {"complex(-0.0, 2)", Value::complex(-0.0, 2)},
      {"complex(nan, inf)", Value::complex(nan, inf)},
      // bytes: every length class
      {"b''", Value::bytes("")},
      {"b'a'", Value::bytes("a")},
      {"b'ab'", Value::bytes("ab")},
      {"b'abc'", Value::bytes("abc")},
      {"b'abcd'", Value::bytes("abcd")},
      {"b'abcde'", Value::bytes("abcde")},
      {"b'\\x00\\xff\\'\"'", Value::bytes(std::string_view("\x00\xff'\"", 4))},
      {"b'x'*255", Value::bytes(std::string(255, 'x'))},
      {"b'x'*256", Value::bytes(std::string(256, 'x'))},
      {"bytes(range(256))", Value::bytes(bytes256)},
      {"b'y'*70000", Value::bytes(std::string(70000, 'y'))},
      // str: ASCII, non-ASCII, the 255/256 boundary in UTF-8 bytes
      {"''", Value("")},
      {"'a'", Value("a")},
      {"'add'", Value("add")},
      {"'abcd'", Value("abcd")},
      {"'hello'", Value("hello")},
      {"'\\xe9'", Value("\xc3\xa9")},
      {"'\\u65e5\\u672c\\u8a9e'", Value("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e")},
      {"'\\U0001f600'", Value("\xf0\x9f\x98\x80")},
      {"'x'*255", Value(std::string(255, 'x'))},
      {"'x'*256", Value(std::string(256, 'x'))},
      {"'\\xe9'*127 + 'x'", Value(repeat("\xc3\xa9", 127) + "x")},  // 255 UTF-8 bytes
      {"'\\xe9'*128", Value(repeat("\xc3\xa9", 128))},              // 256 UTF-8 bytes
      {"\"it's\"", Value("it's")},
      {"'a\"b\\'c'", Value("a\"b'c")},
      {"'\\x00\\n\\t\\r\\x7f\\\\'", Value(std::string_view("\0\n\t\r\x7f\\", 6))},
      // tuples: every length class, nesting
      {"()", Value::tuple({})},
      {"(1,)", Value::tuple({1})},
      {"(1, 2)", Value::tuple({1, 2})},
      {"(1, 2, 3)", Value::tuple({1, 2, 3})},
      {"(1, 2, 3, 4)", Value::tuple({1, 2, 3, 4})},
      {"(1, 2, 3, 4, 5)", Value::tuple({1, 2, 3, 4, 5})},
      {"tuple(range(255))", range_tuple(255)},
      {"tuple(range(256))", range_tuple(256)},
      {"tuple(range(1000))", range_tuple(1000)},
      {"((),)", Value::tuple({Value::tuple({})})},
      {"(((1,),),)", Value::tuple({Value::tuple({Value::tuple({1})})})},
      {"((1, 'a'), (b'b', None, (True, 2.5)))",
       Value::tuple(
           {Value::tuple({1, "a"}), Value::tuple({Value::bytes("b"), Value(), Value::tuple({true, 2.5})})})},
      {"(1, 42, (3, ((1, ('x', 1, 2)),)))",
       Value::make_tuple(
           1, 42,
           Value::make_tuple(3, Value::make_tuple(Value::make_tuple(1, Value::make_tuple("x", 1, 2)))))},
      {"(True, 1, 1.0, b'1', '1')", Value::make_tuple(true, 1, 1.0, Value::bytes("1"), "1")},
      // slices
      {"slice(1, 2, 3)", Value::slice(1, 2, 3)},
      {"slice(None, None, None)", Value::slice({}, {}, {})},
      {"slice(1, None, -1)", Value::slice(1, {}, -1)},
      {"slice('a', b'b', (1,))", Value::slice("a", Value::bytes("b"), Value::tuple({1}))},
      {"slice(2**70, -5, 1.5)", Value::slice(big("1180591620717411303424"), -5, 1.5)},
      {"(slice(0, 10, 2), Ellipsis)", Value::make_tuple(Value::slice(0, 10, 2), Value::ellipsis())},
      // frozensets
      {"frozenset()", Value::frozenset({})},
      {"frozenset([1])", Value::frozenset({1})},
      {"frozenset([5, 6, 7])", Value::frozenset({5, 6, 7})},
      {"frozenset([(1, 2), 3])", Value::frozenset({Value::tuple({1, 2}), 3}), true},
      {"frozenset(['a', 'b', 'c'])", Value::frozenset({"a", "b", "c"}), true},
      {"frozenset([b'x', 300, None])", Value::frozenset({Value::bytes("x"), 300, Value()}), true},
      {"frozenset(range(300))", Value::frozenset(range_tuple(300).as_tuple())},
      {"(frozenset([frozenset([1])]),)", Value::tuple({Value::frozenset({Value::frozenset({1})})})},
      // the brine module's docstring example (spec §3.1)
      {"('he', 7, 'llo', 8, (), 900, None, True, Ellipsis, 18.2, 18.2j + 13, slice(1,2,3), "
       "frozenset([5,6,7]), "
       "NotImplemented)",
       Value::tuple({"he", 7, "llo", 8, Value::tuple({}), 900, Value(), true, Value::ellipsis(), 18.2,
                     Value::complex(13, 18.2), Value::slice(1, 2, 3), Value::frozenset({5, 6, 7}),
                     Value::not_implemented()})},
  };
  return c;
}

TEST(BrineVectors, CasesCoverTheSpecList) { EXPECT_GE(cases().size(), 63u); }

TEST(BrineVectors, ByteExactWithStockRpyc) {
  const auto cs = cases();
  std::vector<std::string> exprs;
  for (const auto& c : cs) exprs.push_back(c.expr);
  const auto answers = PythonOracle::run("exprs", exprs);
  ASSERT_EQ(PythonOracle::version().substr(0, 2), "5.")
      << "the reference is RPyC 5.x, got " << PythonOracle::version();
  for (std::size_t i = 0; i < cs.size(); ++i) {
    const Case& c = cs[i];
    const auto& a = answers[i];
    SCOPED_TRACE("case " + c.expr);
    ASSERT_TRUE(a.ok) << a.raw;
    // Python bytes -> C++ value: equal to the C++ construction; re-dump keeps the bytes.
    Value loaded = load(a.encoded);
    EXPECT_EQ(loaded, c.value);
    EXPECT_EQ(to_hex(dump(loaded)), to_hex(a.encoded));
    if (!c.order_free) {
      // C++ value -> bytes: identical to Python's brine.dump.
      EXPECT_EQ(to_hex(dump(c.value)), to_hex(a.encoded));
      EXPECT_EQ(c.value.repr(), a.repr);
    }
  }
}

TEST(BrineVectors, DocstringExampleFixedVector) {
  // Spec §3.1: the real 5.3 encoding of brine's docstring example.
  const std::string hex =
      "140e080b686557080c6c6c6f580216033930300003061840323333333333331b402a0000000000004032333333333333191251"
      "52531a12"
      "55565705";
  const Value expected =
      Value::tuple({"he", 7, "llo", 8, Value::tuple({}), 900, Value(), true, Value::ellipsis(), 18.2,
                    Value::complex(13, 18.2), Value::slice(1, 2, 3), Value::frozenset({5, 6, 7}),
                    Value::not_implemented()});
  EXPECT_EQ(to_hex(dump(expected)), hex);
  EXPECT_EQ(load(from_hex(hex)), expected);
}

// Random values: C++ dump -> Python load + dump -> C++ load. Without frozensets the bytes
// must match exactly; with them, the value must survive (Python may reorder members).
TEST(BrineVectors, RandomValuesCrossCheckedWithPython) {
  testing::RandomValues gen(0x5eed0001, {.max_depth = 4, .frozensets = true, .repr_safe_text = true});
  std::vector<Value> values;
  std::vector<std::string> hexes;
  for (int i = 0; i < 400; ++i) {
    values.push_back(gen.any());
    hexes.push_back(to_hex(dump(values.back())));
  }
  const auto answers = PythonOracle::run("roundtrip", hexes);
  for (std::size_t i = 0; i < values.size(); ++i) {
    SCOPED_TRACE("value " + values[i].repr(300));
    ASSERT_TRUE(answers[i].ok) << answers[i].raw;
    EXPECT_EQ(load(answers[i].encoded), values[i]);
    if (!testing::contains_frozenset(values[i])) {
      EXPECT_EQ(to_hex(answers[i].encoded), hexes[i]);
      EXPECT_EQ(values[i].repr(), answers[i].repr);
    }
  }
}

// Random doubles: tether's repr is Python's repr (shortest round-trip digits, same layout).
TEST(BrineVectors, FloatReprMatchesPython) {
  testing::RandomValues gen(0x5eed0002);
  std::vector<Value> values;
  std::vector<std::string> hexes;
  for (int i = 0; i < 2000; ++i) {
    values.push_back(i % 4 == 3 ? Value::complex(gen.real(), gen.real()) : Value(gen.real()));
    hexes.push_back(to_hex(dump(values.back())));
  }
  const auto answers = PythonOracle::run("roundtrip", hexes);
  for (std::size_t i = 0; i < values.size(); ++i) {
    ASSERT_TRUE(answers[i].ok) << answers[i].raw;
    EXPECT_EQ(values[i].repr(), answers[i].repr) << "bytes " << hexes[i];
  }
}

// Random byte strings: tether's UTF-8 validation accepts exactly what Python's strict codec does.
TEST(BrineVectors, Utf8ValidationMatchesPython) {
  testing::RandomValues gen(0x5eed0003);
  std::vector<std::string> samples;
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    const int n = gen.below(12);
    for (int k = 0; k < n; ++k) {
      // Bias towards bytes that form (almost) valid sequences.
      switch (gen.below(4)) {
        case 0: s += static_cast<char>(gen.below(256)); break;
        case 1: s += static_cast<char>(0x80 + gen.below(0x40)); break;
        case 2: s += static_cast<char>(0xC0 + gen.below(0x40)); break;
        default: testing::RandomValues::append_utf8(s, gen.code_point()); break;
      }
    }
    samples.push_back(s);
  }
  // Known edge cases.
  for (const char* e :
       {"\xed\x9f\xbf", "\xed\xa0\x80", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xe0\x9f\xbf",
        "\xe0\xa0\x80", "\xf0\x8f\xbf\xbf", "\xf0\x90\x80\x80", "\xc1\xbf", "\xc2\x80", "\xef\xbf\xbf"}) {
    samples.emplace_back(e);
  }
  std::vector<std::string> hexes;
  for (const auto& s : samples) hexes.push_back(to_hex(s));
  const auto answers = PythonOracle::run_raw("utf8", hexes);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    EXPECT_EQ(is_valid_utf8(samples[i]), answers[i] == "1") << "bytes " << hexes[i];
  }
}

// Python's own decoder accepts what tether's rejects only where the spec allows it (leading
// zeros are accepted by both; the value is canonicalised).
TEST(BrineVectors, LenientIntTextAgreesWithPython) {
  const std::vector<std::string> hexes = {
      "16033030"
      "37",
      "16022d30", "1603303030", "1614" + to_hex("00000000000000000000")};
  const auto answers = PythonOracle::run("roundtrip", hexes);
  for (std::size_t i = 0; i < hexes.size(); ++i) {
    ASSERT_TRUE(answers[i].ok) << answers[i].raw;
    EXPECT_EQ(to_hex(dump(load(from_hex(hexes[i])))), to_hex(answers[i].encoded)) << hexes[i];
  }
}

}  // namespace
}  // namespace tether::brine
