#pragma once
// Seeded random brine values for round-trip, cross-check and fuzz tests.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "tether/brine/value.hpp"

namespace tether::brine::testing {

struct RandomOptions {
  int max_depth = 4;
  /// Include frozensets (Python may reorder their members when it re-dumps them).
  bool frozensets = true;
  /// Draw str characters only from an alphabet whose Python repr tether reproduces exactly.
  bool repr_safe_text = false;
};

class RandomValues {
 public:
  explicit RandomValues(std::uint64_t seed, RandomOptions opt = {}) : rng_(seed), opt_(opt) {}

  Value any(int depth = 0) {
    const int pick = below(depth >= opt_.max_depth ? 12 : 16);
    switch (pick) {
      case 12:
      case 13: return tuple(depth);
      case 14:
        if (opt_.frozensets) return frozenset();
        return tuple(depth);
      case 15: return Value::slice(any(opt_.max_depth), any(opt_.max_depth), any(depth + 1));
      default: return scalar();
    }
  }

  Value scalar() {
    switch (below(12)) {
      case 0: return Value();
      case 1: return Value(below(2) == 1);
      case 2: return Value(static_cast<std::int64_t>(below(220)) - 60);  // around the immediate range
      case 3: return Value(int64());
      case 4: return big_int();
      case 5: return Value(real());
      case 6: return Value::complex(real(), real());
      case 7: return Value(bytes());
      case 8: return Value(text());
      case 9: return below(2) ? Value::ellipsis() : Value::not_implemented();
      case 10: return Value(text());
      default: return Value(static_cast<std::int64_t>(below(1000)));
    }
  }

  /// A hashable member that compares the same way in Python and in tether (no bool/float mixing).
  Value hashable() {
    switch (below(5)) {
      case 0: return Value(int64());
      case 1: return Value(text());
      case 2: return Value(bytes());
      case 3: return big_int();
      default: return Value::make_tuple(int64(), text());
    }
  }

  Value tuple(int depth) {
    std::size_t n = below(10) == 0 ? 250 + below(12) : below(7);
    Value::Tuple items;
    items.reserve(n);
    for (std::size_t i = 0; i < n; ++i) items.push_back(n > 20 ? scalar() : any(depth + 1));
    return Value::tuple(std::move(items));
  }

  Value frozenset() {
    std::size_t n = below(6);
    Value::Tuple items;
    for (std::size_t i = 0; i < n; ++i) items.push_back(hashable());
    return Value::frozenset(std::move(items));
  }

  std::int64_t int64() {
    const int bits = below(64);
    std::uint64_t v = rng_() >> (63 - bits);
    if (below(2)) return -static_cast<std::int64_t>(v >> 1) - (below(2) ? 1 : 0);
    return static_cast<std::int64_t>(v >> 1);
  }

  Value big_int() {
    const std::size_t digits = 19 + below(below(8) == 0 ? 600 : 40);
    std::string s;
    if (below(2)) s += '-';
    s += static_cast<char>('1' + below(9));
    for (std::size_t i = 1; i < digits; ++i) s += static_cast<char>('0' + below(10));
    return Value(BigInt::parse(s).value());
  }

  double real() {
    switch (below(6)) {
      case 0: {
        std::uint64_t bits = rng_();
        double d;
        std::memcpy(&d, &bits, 8);
        return d;  // anything, NaN payloads included
      }
      case 1: return static_cast<double>(int64()) / 1024.0;
      case 2: return std::uniform_real_distribution<double>(-1e6, 1e6)(rng_);
      case 3: {
        constexpr double kInf = std::numeric_limits<double>::infinity();
        static constexpr double kEdges[] = {0.0, -0.0,  1e16,   1e-5, 1e-4,  1e15,
                                            0.1, 1e300, 5e-324, kInf, -kInf, 123456789012345678.0};
        return kEdges[below(sizeof kEdges / sizeof kEdges[0])];
      }
      default: return std::ldexp(std::uniform_real_distribution<double>(0.5, 1.0)(rng_), below(2000) - 1000);
    }
  }

  Bytes bytes() {
    std::size_t n = below(8) == 0 ? 250 + below(12) : below(8);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(below(256));
    return Bytes(std::move(s));
  }

  std::string text() {
    std::size_t n = below(8) == 0 ? 120 + below(20) : below(8);
    std::string s;
    for (std::size_t i = 0; i < n; ++i) append_utf8(s, code_point());
    return s;
  }

  char32_t code_point() {
    if (opt_.repr_safe_text) {
      static constexpr char32_t kSafe[] = {U'a',  U'Z',   U'0',   U' ',    U'\'',  U'"',   U'\\',  U'\n',
                                           U'\t', U'\r',  U'\0',  0x7F,    0xE9,   0xDF,   0xA0,   0xAD,
                                           0x85,  0x65E5, 0x672C, 0x1F600, 0x2028, 0xFEFF, 0x3000, 0x4E2D};
      return kSafe[below(sizeof kSafe / sizeof kSafe[0])];
    }
    switch (below(4)) {
      case 0: return static_cast<char32_t>(below(0x80));
      case 1: return static_cast<char32_t>(0x80 + below(0x780));
      case 2: {
        char32_t c = static_cast<char32_t>(0x800 + below(0x10000 - 0x800));
        return (c >= 0xD800 && c <= 0xDFFF) ? U'x' : c;
      }
      default: return static_cast<char32_t>(0x10000 + below(0x100000));
    }
  }

  static void append_utf8(std::string& s, char32_t c) {
    if (c < 0x80) {
      s += static_cast<char>(c);
    } else if (c < 0x800) {
      s += static_cast<char>(0xC0 | (c >> 6));
      s += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      s += static_cast<char>(0xE0 | (c >> 12));
      s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (c >> 18));
      s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (c & 0x3F));
    }
  }

  int below(int n) { return static_cast<int>(rng_() % static_cast<std::uint64_t>(n)); }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
  RandomOptions opt_;
};

/// True if a frozenset occurs anywhere in v.
inline bool contains_frozenset(const Value& v) {
  if (v.is_frozenset()) return true;
  if (v.is_tuple()) {
    for (const auto& m : v.as_tuple()) {
      if (contains_frozenset(m)) return true;
    }
  }
  if (v.is_slice()) {
    const auto& s = v.as_slice();
    return contains_frozenset(s.start) || contains_frozenset(s.stop) || contains_frozenset(s.step);
  }
  return false;
}

}  // namespace tether::brine::testing
