// The command-line literal parser (tools/literal.hpp): what it accepts, what it refuses (with
// the column), and repr -> parse round trips over seeded random values.

#include "literal.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>

namespace tether::tools {
namespace {

using brine::Value;

Literal parse_ok(std::string_view text) {
  auto r = parse_literal(text);
  EXPECT_TRUE(r.has_value()) << text << " -> " << (r ? "" : r.error().to_string());
  return r ? std::move(r).value() : Literal();
}

LiteralError parse_err(std::string_view text) {
  auto r = parse_literal(text);
  EXPECT_FALSE(r.has_value()) << text << " parsed as " << (r ? literal_repr(r.value()) : "");
  return r ? LiteralError{} : r.error();
}

Value v(std::string_view text) {
  auto lit = parse_ok(text);
  auto val = literal_to_value(lit);
  EXPECT_TRUE(val.has_value()) << text;
  return val ? *val : Value();
}

TEST(ToolsLiteral, Scalars) {
  EXPECT_EQ(v("None"), Value());
  EXPECT_EQ(v("True"), Value(true));
  EXPECT_EQ(v("False"), Value(false));
  EXPECT_EQ(v("..."), Value::ellipsis());
  EXPECT_EQ(v("Ellipsis"), Value::ellipsis());
  EXPECT_EQ(v("  42  "), Value(42));
  EXPECT_EQ(v("-7"), Value(-7));
  EXPECT_EQ(v("+7"), Value(7));
  EXPECT_EQ(v("--7"), Value(7));
  EXPECT_EQ(v("0"), Value(0));
  EXPECT_EQ(v("000"), Value(0));
  EXPECT_EQ(v("1_000_000"), Value(1000000));
  EXPECT_EQ(v("0x_ff"), Value(255));
  EXPECT_EQ(v("0o17"), Value(15));
  EXPECT_EQ(v("0b101"), Value(5));
  EXPECT_EQ(v("-0x10"), Value(-16));
  EXPECT_EQ(v("9223372036854775807"), Value(INT64_MAX));
  EXPECT_EQ(v("-9223372036854775808"), Value(INT64_MIN));
}

TEST(ToolsLiteral, BigInts) {
  Value big = v("123456789012345678901234567890");
  ASSERT_TRUE(big.is_big_int());
  EXPECT_EQ(big.as_big_int().to_string(), "123456789012345678901234567890");
  EXPECT_EQ(v("-9223372036854775809").as_big_int().to_string(), "-9223372036854775809");
  // 2**64 in hex and binary
  EXPECT_EQ(v("0x10000000000000000").as_big_int().to_string(), "18446744073709551616");
  EXPECT_EQ(v("0b1" + std::string(64, '0')).as_big_int().to_string(), "18446744073709551616");
  EXPECT_EQ(v(std::string(4300, '9')).as_big_int().digit_count(), 4300u);
  auto e = parse_err(std::string(4301, '9'));
  EXPECT_EQ(e.column, 1u);
  EXPECT_NE(e.message.find("4300"), std::string::npos);
}

TEST(ToolsLiteral, Floats) {
  EXPECT_EQ(v("1.5"), Value(1.5));
  EXPECT_EQ(v("-0.25"), Value(-0.25));
  EXPECT_EQ(v("1e3"), Value(1000.0));
  EXPECT_EQ(v("1E-3"), Value(0.001));
  EXPECT_EQ(v(".5"), Value(0.5));
  EXPECT_EQ(v("5."), Value(5.0));
  EXPECT_EQ(v("1_0.0_1"), Value(10.01));
  EXPECT_EQ(v("1e999"), Value(std::numeric_limits<double>::infinity()));
  EXPECT_EQ(v("inf"), Value(std::numeric_limits<double>::infinity()));
  EXPECT_EQ(v("-inf"), Value(-std::numeric_limits<double>::infinity()));
  EXPECT_TRUE(std::isnan(v("nan").as_double()));
  EXPECT_EQ(v("float('inf')"), Value(std::numeric_limits<double>::infinity()));
  EXPECT_EQ(v("float(\"-Infinity\")"), Value(-std::numeric_limits<double>::infinity()));
  EXPECT_TRUE(std::isnan(v("float('nan')").as_double()));
  EXPECT_EQ(v("float('2.5')"), Value(2.5));
  EXPECT_TRUE(std::signbit(v("-0.0").as_double()));
}

TEST(ToolsLiteral, Complex) {
  EXPECT_EQ(v("2j"), Value::complex(0, 2));
  EXPECT_EQ(v("(1+2j)"), Value::complex(1, 2));
  EXPECT_EQ(v("1.5-2.5j"), Value::complex(1.5, -2.5));
  EXPECT_EQ(v("-1-1j"), Value::complex(-1, -1));
  EXPECT_EQ(parse_err("1+2").column, 2u);
}

TEST(ToolsLiteral, Strings) {
  EXPECT_EQ(v("'abc'"), Value("abc"));
  EXPECT_EQ(v("\"a'b\""), Value("a'b"));
  EXPECT_EQ(v("'a\\'b'"), Value("a'b"));
  EXPECT_EQ(v("'\\n\\t\\\\\\x41\\101\\u00e9\\U0001F600'"), Value("\n\t\\AA\xc3\xa9\xf0\x9f\x98\x80"));
  EXPECT_EQ(v("'h\xc3\xa9'"), Value("h\xc3\xa9"));
  EXPECT_EQ(v("r'a\\nb'"), Value("a\\nb"));
  EXPECT_EQ(v("u'x'"), Value("x"));
  EXPECT_EQ(v("'''a\nb'''"), Value("a\nb"));
  EXPECT_EQ(v("'a' \"b\" 'c'"), Value("abc"));
  EXPECT_EQ(v("'\\q'"), Value("\\q"));  // unknown escapes stay, as in Python
  EXPECT_EQ(v("b'\\x00\\xff'"), Value::bytes(std::string("\x00\xff", 2)));
  EXPECT_EQ(v("B'\\u1234'"), Value::bytes("\\u1234"));
  EXPECT_EQ(v("rb'\\x00'"), Value::bytes("\\x00"));
  EXPECT_EQ(v("b''"), Value::bytes(""));
}

TEST(ToolsLiteral, Containers) {
  Literal l = parse_ok("[1, 'a', [2], (3,), {}, set()]");
  ASSERT_EQ(l.kind, Literal::Kind::kList);
  ASSERT_EQ(l.items.size(), 6u);
  EXPECT_EQ(l.items[2].kind, Literal::Kind::kList);
  EXPECT_EQ(l.items[3].kind, Literal::Kind::kTuple);
  EXPECT_EQ(l.items[4].kind, Literal::Kind::kDict);
  EXPECT_EQ(l.items[5].kind, Literal::Kind::kSet);
  EXPECT_FALSE(literal_to_value(l).has_value());

  Literal d = parse_ok("{'a': 1, 'b': [2], 'a': 3,}");
  ASSERT_EQ(d.kind, Literal::Kind::kDict);
  ASSERT_EQ(d.items.size(), 4u);  // the repeated key keeps its place and takes the last value
  EXPECT_EQ(literal_repr(d), "{'a': 3, 'b': [2]}");

  Literal s = parse_ok("{1, 2, 1, (1, 2)}");
  ASSERT_EQ(s.kind, Literal::Kind::kSet);
  EXPECT_EQ(literal_repr(s), "{1, 2, (1, 2)}");
  // Each nan is a float of its own, unequal to any other (as in Python): a set keeps them all,
  // so its repr parses back to the same set (found by the literal fuzz target).
  Literal nans = parse_ok("{5, -nan, 2, --nan, 2, nan, (nan,), (nan,)}");
  ASSERT_EQ(nans.items.size(), 7u);
  EXPECT_EQ(literal_repr(parse_ok(literal_repr(nans))), literal_repr(nans));

  EXPECT_EQ(v("()"), Value::tuple(Value::Tuple{}));
  EXPECT_EQ(v("(1,)"), Value::tuple({Value(1)}));
  EXPECT_EQ(v("(1)"), Value(1));
  EXPECT_EQ(v("((1, 2), 'x')"), Value::tuple({Value::tuple({Value(1), Value(2)}), Value("x")}));
  EXPECT_EQ(v("frozenset({3, 1})"), Value::frozenset({Value(3), Value(1)}));
  EXPECT_EQ(v("frozenset()"), Value::frozenset(Value::Tuple{}));
  EXPECT_EQ(literal_repr(parse_ok("[ ]")), "[]");
}

TEST(ToolsLiteral, ErrorsNameTheColumn) {
  struct Case {
    const char* text;
    std::size_t column;
    const char* words;
  };
  const Case cases[] = {
      {"", 1, "end of input"},
      {"[1, 2", 6, "expected ',' or ']'"},
      {"(1 2)", 4, "expected ',' or ')'"},
      {"{1: 2, 3}", 9, "':'"},
      {"hello", 1, "unknown name 'hello'"},
      {"'abc", 1, "unterminated"},
      {"1 2", 3, "after the literal"},
      {"01", 1, "leading zeros"},
      {"1__0", 3, "'_'"},
      {"0x", 3, "digits"},
      {"1e", 2, "exponent"},
      {"12abc", 3, "invalid character"},
      {"-'a'", 2, "sign"},
      {"{[1]: 2}", 2, "unhashable type: 'list'"},
      {"{1, {2}}", 5, "unhashable type: 'set'"},
      {"b'\xc3\xa9'", 3, "ASCII"},
      {"'\\x4'", 2, "hex digits"},
      {"'\\ud800'", 2, "surrogate"},
      {"'\\N{DASH}'", 2, "\\N"},
      {"'a' b'b'", 5, "mix"},
      {"set(1)", 5, "only set()"},
      {"float(1)", 7, "float() takes a string"},
      {"float('x')", 7, "could not convert"},
      {"'\xc3\xa9' 1", 5, "after the literal"},  // columns count characters, not bytes
  };
  for (const auto& c : cases) {
    LiteralError e = parse_err(c.text);
    EXPECT_EQ(e.column, c.column) << c.text << ": " << e.to_string();
    EXPECT_NE(e.message.find(c.words), std::string::npos) << c.text << ": " << e.to_string();
    EXPECT_EQ(e.to_string().rfind("column " + std::to_string(e.column) + ": ", 0), 0u);
  }
}

TEST(ToolsLiteral, DepthIsBounded) {
  std::string deep(10000, '[');
  LiteralError e = parse_err(deep);
  EXPECT_NE(e.message.find("nesting deeper than 64"), std::string::npos);
  EXPECT_EQ(e.column, 65u);
  std::string ok = std::string(60, '[') + std::string(60, ']');
  EXPECT_TRUE(parse_literal(ok).has_value());
}

// Random literals: repr -> parse gives back an equal literal.
class Gen {
 public:
  explicit Gen(std::uint32_t seed) : rng_(seed) {}
  Literal any(int depth) {
    const int pick = static_cast<int>(rng_() % (depth > 3 ? 8 : 12));
    switch (pick) {
      case 0: return Literal::of(Value());
      case 1: return Literal::of(Value(rng_() % 2 == 0));
      case 2: return Literal::of(Value(static_cast<std::int64_t>(rng_()) - (1ll << 31)));
      case 3: {
        std::string digits = std::to_string(1 + rng_() % 9);
        const std::size_t n = 19 + rng_() % 60;
        for (std::size_t i = 0; i < n; ++i) digits += static_cast<char>('0' + rng_() % 10);
        if (rng_() % 2) digits.insert(digits.begin(), '-');
        return Literal::of(Value(brine::BigInt::parse(digits).value()));
      }
      case 4: {
        std::uniform_real_distribution<double> d(-1e6, 1e6);
        const int k = static_cast<int>(rng_() % 10);
        if (k == 0) return Literal::of(Value(std::numeric_limits<double>::infinity()));
        if (k == 1) return Literal::of(Value(-std::numeric_limits<double>::infinity()));
        if (k == 2) return Literal::of(Value(std::ldexp(d(rng_), static_cast<int>(rng_() % 600) - 300)));
        return Literal::of(Value(d(rng_)));
      }
      case 5: return Literal::of(Value::str(random_text()));
      case 6: {
        std::string b;
        const std::size_t n = rng_() % 12;
        for (std::size_t i = 0; i < n; ++i) b += static_cast<char>(rng_() % 256);
        return Literal::of(Value::bytes(b));
      }
      case 7:
        return Literal::of(
            Value::complex(static_cast<double>(rng_() % 100) - 50, static_cast<double>(rng_() % 100) / 4));
      default: {
        Literal c;
        const int k = pick - 8;
        c.kind = k == 0   ? Literal::Kind::kTuple
                 : k == 1 ? Literal::Kind::kList
                 : k == 2 ? Literal::Kind::kDict
                          : Literal::Kind::kSet;
        const std::size_t n = rng_() % 5;
        for (std::size_t i = 0; i < n; ++i) {
          if (c.kind == Literal::Kind::kDict || c.kind == Literal::Kind::kSet) {
            Literal key = Literal::of(Value::str("k" + std::to_string(i) + random_text()));
            c.items.push_back(key);
            if (c.kind == Literal::Kind::kDict) c.items.push_back(any(depth + 1));
          } else {
            c.items.push_back(any(depth + 1));
          }
        }
        return c;
      }
    }
  }

 private:
  std::string random_text() {
    static const char* const pieces[] = {"a",
                                         "Z",
                                         " ",
                                         "'",
                                         "\"",
                                         "\\",
                                         "\n",
                                         "\t",
                                         "\x01",
                                         "\x7f",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "\xc2\x85",
                                         "\xe2\x80\xa8"};
    std::string s;
    const std::size_t n = rng_() % 8;
    for (std::size_t i = 0; i < n; ++i) s += pieces[rng_() % (sizeof pieces / sizeof pieces[0])];
    return s;
  }
  std::mt19937 rng_;
};

bool same(const Literal& a, const Literal& b) {
  if (a.kind != b.kind || a.items.size() != b.items.size()) return false;
  if (a.kind == Literal::Kind::kValue) return a.value == b.value;
  for (std::size_t i = 0; i < a.items.size(); ++i) {
    if (!same(a.items[i], b.items[i])) return false;
  }
  return true;
}

TEST(ToolsLiteral, ReprRoundTrip) {
  Gen gen(20261207);
  for (int i = 0; i < 3000; ++i) {
    Literal lit = gen.any(0);
    const std::string text = literal_repr(lit);
    auto back = parse_literal(text);
    ASSERT_TRUE(back.has_value()) << text << " -> " << back.error().to_string();
    EXPECT_TRUE(same(lit, back.value())) << text << " came back as " << literal_repr(back.value());
  }
}

TEST(ToolsLiteral, ValueConversions) {
  Value t = Value::tuple({Value(1), Value::tuple({Value("x"), Value::bytes("y")})});
  Literal l = literal_from_value(t);
  EXPECT_EQ(l.kind, Literal::Kind::kTuple);
  EXPECT_EQ(literal_to_value(l), t);
  EXPECT_EQ(literal_repr(l), "(1, ('x', b'y'))");
}

}  // namespace
}  // namespace tether::tools
