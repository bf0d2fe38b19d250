// The Value model: construction, typing, accessors, equality, hashing, repr; BigInt; UTF-8.
#include "tether/brine/value.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <unordered_set>

#include "tether/base/error.hpp"
#include "tether/brine/codec.hpp"
#include "tether/brine/utf8.hpp"

namespace tether::brine {
namespace {

TEST(BrineValue, ImplicitConstructionPicksPythonTypes) {
  EXPECT_EQ(Value().type(), Type::kNone);
  EXPECT_EQ(Value(nullptr).type(), Type::kNone);
  EXPECT_EQ(Value(true).type(), Type::kBool);
  EXPECT_EQ(Value(1).type(), Type::kInt);
  EXPECT_EQ(Value(std::uint8_t{200}).type(), Type::kInt);
  EXPECT_EQ(Value(1.5f).type(), Type::kFloat);
  EXPECT_EQ(Value(std::complex<double>(1, 2)).type(), Type::kComplex);
  EXPECT_EQ(Value("x").type(), Type::kStr);
  EXPECT_EQ(Value(std::string("x")).type(), Type::kStr);
  EXPECT_EQ(Value(std::string_view("x")).type(), Type::kStr);
  EXPECT_EQ(Value(Bytes::from("x")).type(), Type::kBytes);
  EXPECT_EQ(Value::tuple({}).type(), Type::kTuple);
  EXPECT_EQ(Value::frozenset({}).type(), Type::kFrozenSet);
  EXPECT_EQ(Value::slice(1, 2, 3).type(), Type::kSlice);
  EXPECT_EQ(Value::ellipsis().type(), Type::kEllipsis);
  EXPECT_EQ(Value::not_implemented().type(), Type::kNotImplemented);
  EXPECT_EQ(type_name(Type::kNone), "NoneType");
  EXPECT_EQ(type_name(Value::ellipsis().type()), "ellipsis");
}

TEST(BrineValue, IntsAreCanonical) {
  const Value u64max(std::numeric_limits<std::uint64_t>::max());
  EXPECT_TRUE(u64max.is_big_int());
  EXPECT_EQ(u64max.as_big_int().to_string(), "18446744073709551615");
  EXPECT_TRUE(Value(std::uint64_t{5}).is_int64());
  // A BigInt in int64 range becomes int64 and equals the int64 construction.
  const Value from_big(BigInt::parse("-9223372036854775808").value());
  EXPECT_TRUE(from_big.is_int64());
  EXPECT_EQ(from_big, Value(std::numeric_limits<std::int64_t>::min()));
  EXPECT_EQ(from_big.hash(), Value(std::numeric_limits<std::int64_t>::min()).hash());
  EXPECT_THROW((void)u64max.as_int64(), IntRangeError);
  EXPECT_EQ(Value(7).as_big_int(), BigInt(7));
}

TEST(BrineValue, BoolIntFloatStrBytesStayDistinct) {
  EXPECT_NE(Value(true), Value(1));
  EXPECT_NE(Value(false), Value(0));
  EXPECT_NE(Value(1), Value(1.0));
  EXPECT_NE(Value("a"), Value::bytes("a"));
  EXPECT_NE(Value::tuple({}), Value::frozenset({}));
  EXPECT_NE(Value(), Value::ellipsis());
  EXPECT_EQ(dump(Value(true)).view(), "\x03");
  EXPECT_EQ(dump(Value(1)).view(), "\x51");
}

TEST(BrineValue, FloatEqualityIsReflexiveAndPythonLike) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(Value(nan), Value(nan));
  EXPECT_EQ(Value(0.0), Value(-0.0));
  EXPECT_EQ(Value(0.0).hash(), Value(-0.0).hash());
  EXPECT_NE(Value(1.0), Value(1.0000000000000002));
  EXPECT_EQ(Value::complex(0.0, nan), Value::complex(-0.0, nan));
  // -0.0 survives the wire even though it equals 0.0.
  EXPECT_TRUE(std::signbit(load(dump(Value(-0.0))).as_double()));
}

TEST(BrineValue, AccessorsThrowTypedErrors) {
  const Value s("abc");
  EXPECT_EQ(s.as_str(), "abc");
  try {
    (void)s.as_int64();
    ADD_FAILURE() << "no throw";
  } catch (const ValueTypeError& e) {
    EXPECT_EQ(e.expected(), Type::kInt);
    EXPECT_EQ(e.actual(), Type::kStr);
    EXPECT_EQ(std::string(e.what()), "expected int, got str ('abc')");
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
  }
  EXPECT_THROW((void)Value(1).as_bool(), ValueTypeError);
  EXPECT_THROW((void)Value(true).as_int64(), ValueTypeError);
  EXPECT_THROW((void)Value(1).as_double(), ValueTypeError);
  EXPECT_THROW((void)Value::bytes("x").as_str(), ValueTypeError);
  EXPECT_THROW((void)Value("x").as_bytes(), ValueTypeError);
  EXPECT_THROW((void)Value::frozenset({}).as_tuple(), ValueTypeError);
  EXPECT_THROW((void)Value::tuple({}).as_frozenset(), ValueTypeError);
  EXPECT_THROW((void)Value().as_slice(), ValueTypeError);
  EXPECT_THROW((void)Value().as_complex(), ValueTypeError);
  EXPECT_THROW((void)Value().as_object(), ValueTypeError);
  EXPECT_THROW((void)std::move(Value(1)).take_tuple(), ValueTypeError);
}

TEST(BrineValue, TakeMovesPayloadOut) {
  Value t = Value::make_tuple(1, "two", Value::bytes("3"));
  Value::Tuple items = std::move(t).take_tuple();
  EXPECT_TRUE(t.is_none());  // NOLINT(bugprone-use-after-move): documented
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(std::move(items[1]).take_str(), "two");
  EXPECT_EQ(std::move(items[2]).take_bytes(), Bytes::from("3"));
}

TEST(BrineValue, StrMustBeValidUtf8) {
  EXPECT_THROW(Value("\xff"), UsageError);
  EXPECT_THROW(Value::str(std::string("a\xed\xa0\x80")), UsageError);
  EXPECT_NO_THROW(Value::str("\xf0\x9f\x98\x80"));
  EXPECT_NO_THROW(Value::bytes("\xff"));  // bytes are any bytes
}

TEST(BrineValue, FrozensetIsASet) {
  const Value a = Value::frozenset({1, 2, 3, 2, 1});
  EXPECT_EQ(a.as_frozenset().size(), 3u);
  EXPECT_EQ(a.as_frozenset()[0], Value(1));  // first occurrences, in order
  EXPECT_EQ(a, Value::frozenset({3, 2, 1}));
  EXPECT_EQ(a.hash(), Value::frozenset({3, 1, 2}).hash());
  EXPECT_NE(a, Value::frozenset({1, 2}));
  EXPECT_NE(a, Value::frozenset({1, 2, 4}));
  // Large sets take the hashed path.
  Value::Tuple fwd, rev;
  for (int i = 0; i < 100; ++i) {
    fwd.emplace_back(i);
    rev.emplace_back(99 - i);
    rev.emplace_back(99 - i);
  }
  const Value big_fwd = Value::frozenset(fwd);
  const Value big_rev = Value::frozenset(rev);
  EXPECT_EQ(big_rev.as_frozenset().size(), 100u);
  EXPECT_EQ(big_fwd, big_rev);
  // Unhashable members are refused, as in Python.
  EXPECT_THROW(Value::frozenset({Value::slice(1, 2, 3)}), UsageError);
  EXPECT_THROW(Value::frozenset({Value::tuple({Value::slice(1, 2, 3)})}), UsageError);
}

TEST(BrineValue, HashIsConsistentWithEquality) {
  std::unordered_set<Value> set;
  set.insert(Value(1));
  set.insert(Value(true));
  set.insert(Value(1.0));
  set.insert(Value("1"));
  set.insert(Value::bytes("1"));
  set.insert(Value::make_tuple(1, 2));
  set.insert(Value::make_tuple(1, 2));
  set.insert(Value::frozenset({1, 2}));
  set.insert(Value::frozenset({2, 1}));
  EXPECT_EQ(set.size(), 7u);
}

TEST(BrineValue, ReprIsPythonLike) {
  EXPECT_EQ(Value().repr(), "None");
  EXPECT_EQ(Value(true).repr(), "True");
  EXPECT_EQ(Value(-5).repr(), "-5");
  EXPECT_EQ(Value(1.0).repr(), "1.0");
  EXPECT_EQ(Value(1e16).repr(), "1e+16");
  EXPECT_EQ(Value(1e-5).repr(), "1e-05");
  EXPECT_EQ(Value(-0.0).repr(), "-0.0");
  EXPECT_EQ(Value(std::numeric_limits<double>::infinity()).repr(), "inf");
  EXPECT_EQ(Value::complex(0, 2).repr(), "2j");
  EXPECT_EQ(Value::complex(1.5, -2).repr(), "(1.5-2j)");
  EXPECT_EQ(Value::bytes(std::string_view("a'\0", 3)).repr(), "b\"a'\\x00\"");
  EXPECT_EQ(Value("a\nb").repr(), "'a\\nb'");
  EXPECT_EQ(Value::tuple({1}).repr(), "(1,)");
  EXPECT_EQ(Value::make_tuple(1, "a", Value()).repr(), "(1, 'a', None)");
  EXPECT_EQ(Value::frozenset({}).repr(), "frozenset()");
  EXPECT_EQ(Value::frozenset({5, 6}).repr(), "frozenset({5, 6})");
  EXPECT_EQ(Value::slice(1, {}, -1).repr(), "slice(1, None, -1)");
  EXPECT_EQ(Value::ellipsis().repr(), "Ellipsis");
  EXPECT_EQ(Value::not_implemented().repr(), "NotImplemented");
  // Truncation for error messages.
  const std::string cut = Value::bytes(std::string(1 << 20, 'x')).repr(50);
  EXPECT_EQ(cut.size(), 50u);
  EXPECT_EQ(cut.substr(cut.size() - 3), "...");
  EXPECT_EQ(Value::make_tuple(1, 2).repr(6), "(1, 2)");
  EXPECT_EQ(Value::make_tuple(1, 2).repr(5), "(1...");
}

class TestObject : public Object {
 public:
  explicit TestObject(int id) : id_(id) {}
  [[nodiscard]] std::string repr() const override { return "<obj " + std::to_string(id_) + ">"; }

 private:
  int id_;
};

TEST(BrineValue, ObjectExtensionIsNotDumpable) {
  auto obj = std::make_shared<TestObject>(7);
  const Value v = Value::object(obj);
  EXPECT_TRUE(v.is_object());
  EXPECT_EQ(v.as_object().get(), obj.get());
  EXPECT_EQ(v, Value::object(obj));
  EXPECT_NE(v, Value::object(std::make_shared<TestObject>(7)));  // identity
  const Value t = Value::make_tuple(1, Value::make_tuple(v));
  EXPECT_FALSE(t.is_dumpable());
  EXPECT_TRUE(Value::make_tuple(1, 2).is_dumpable());
  EXPECT_EQ(t.repr(), "(1, (<obj 7>,))");
  std::string out = "keep";
  EXPECT_THROW(dump_into(t, out), UsageError);
  EXPECT_EQ(out, "keep");  // nothing written
  EXPECT_THROW(Value::object(nullptr), UsageError);
}

TEST(BrineBigInt, ParseAndPrintAreInverse) {
  for (const char* s : {"0", "1", "-1", "999999999", "1000000000", "-1000000000",
                        "123456789012345678901234567890", "-98765432109876543210"}) {
    auto b = BigInt::parse(s);
    ASSERT_TRUE(b.has_value()) << s;
    EXPECT_EQ(b->to_string(), s);
    EXPECT_EQ(b->decimal_size(), std::string(s).size());
  }
  EXPECT_EQ(BigInt::parse("-0")->to_string(), "0");
  EXPECT_FALSE(BigInt::parse("-0")->is_negative());
  EXPECT_EQ(BigInt::parse("000123")->to_string(), "123");
  EXPECT_EQ(BigInt::parse("").error(), IntParseError::kEmpty);
  EXPECT_EQ(BigInt::parse("1.5").error(), IntParseError::kSyntax);
  EXPECT_EQ(BigInt::parse(std::string(4301, '1')).error(), IntParseError::kTooManyDigits);
  EXPECT_TRUE(BigInt::parse(std::string(4301, '1'), 5000).has_value());
}

TEST(BrineBigInt, ConversionsAndOrdering) {
  EXPECT_EQ(BigInt(INT64_MIN).to_string(), "-9223372036854775808");
  EXPECT_EQ(BigInt(INT64_MIN).to_int64(), INT64_MIN);
  EXPECT_EQ(BigInt::from_uint64(UINT64_MAX).to_uint64(), UINT64_MAX);
  EXPECT_FALSE(BigInt::from_uint64(UINT64_MAX).fits_int64());
  EXPECT_FALSE(BigInt::parse("18446744073709551616")->to_uint64().has_value());
  EXPECT_FALSE(BigInt(-1).to_uint64().has_value());
  EXPECT_LT(BigInt(-5), BigInt(3));
  EXPECT_LT(BigInt::parse("-100000000000000000000").value(), BigInt(-5));
  EXPECT_GT(BigInt::parse("100000000000000000000").value(), BigInt(INT64_MAX));
  EXPECT_EQ((-BigInt(5)).to_string(), "-5");
  EXPECT_DOUBLE_EQ(BigInt::parse("1" + std::string(20, '0'))->to_double(), 1e20);
  EXPECT_EQ(BigInt::parse(std::string(4300, '9'))->digit_count(), 4300u);
}

TEST(BrineUtf8, ValidatorBasics) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii text that is longer than eight bytes"));
  EXPECT_EQ(find_invalid_utf8("abcdefghij\xff"), 10u);
  EXPECT_EQ(find_invalid_utf8("ab\xe6\x97"), 2u);  // truncated sequence
  EXPECT_TRUE(is_valid_utf8("\xef\xbf\xbf"));      // U+FFFF is valid UTF-8
}

}  // namespace
}  // namespace tether::brine
