// Value::repr(): Python-like repr text.
#include <charconv>
#include <cmath>
#include <cstring>

#include "brine/float_repr.hpp"
#include "tether/brine/value.hpp"

namespace tether::brine {

namespace detail {

std::string float_repr(double d, bool add_dot_0, bool always_sign) {
  std::string out;
  if (std::isnan(d)) {
    // Python never prints a NaN's sign.
    if (always_sign) out += '+';
    out += "nan";
    return out;
  }
  if (std::signbit(d)) {
    out += '-';
    d = -d;
  } else if (always_sign) {
    out += '+';
  }
  if (std::isinf(d)) {
    out += "inf";
    return out;
  }
  // Shortest round-trip digits, as Python's repr (David Gay's mode 0) chooses them.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<std::size_t>(res.ptr - buf));
  const std::size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits += c;
  }
  int exp10 = 0;
  std::from_chars(sci.data() + e_pos + 1 + (sci[e_pos + 1] == '+' ? 1 : 0), sci.data() + sci.size(), exp10);
  // Python's decpt: value = 0.DIGITS * 10^decpt.
  const int decpt = exp10 + 1;
  const int n = static_cast<int>(digits.size());
  if (d != 0.0 && (decpt <= -4 || decpt > 16)) {
    out += digits[0];
    if (n > 1) {
      out += '.';
      out.append(digits, 1, std::string::npos);
    }
    const int e = decpt - 1;
    out += 'e';
    out += e < 0 ? '-' : '+';
    const int ae = e < 0 ? -e : e;
    if (ae < 10) out += '0';
    out += std::to_string(ae);
    return out;
  }
  if (d == 0.0) {
    out += add_dot_0 ? "0.0" : "0";
    return out;
  }
  if (decpt <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-decpt), '0');
    out += digits;
  } else if (decpt < n) {
    out.append(digits, 0, static_cast<std::size_t>(decpt));
    out += '.';
    out.append(digits, static_cast<std::size_t>(decpt), std::string::npos);
  } else {
    out += digits;
    out.append(static_cast<std::size_t>(decpt - n), '0');
    if (add_dot_0) out += ".0";
  }
  return out;
}

}  // namespace detail

namespace {

/// Approximates Python's str.isprintable() for one code point (exact for ASCII and Latin-1;
/// outside that, the common invisible classes — separators, format controls, private use,
/// noncharacters — are escaped, but unassigned code points are not known).
bool is_printable(char32_t c) noexcept {
  if (c < 0x20 || c == 0x7F) return false;
  if (c < 0x7F) return true;
  if (c <= 0xA0 || c == 0xAD) return false;  // C1 controls, NBSP, soft hyphen
  if (c < 0x300) return true;
  if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
      (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB)) {
    return false;
  }
  if ((c >= 0xD800 && c <= 0xF8FF) || (c >= 0xF0000)) return false;  // surrogates, private use
  if ((c & 0xFFFE) == 0xFFFE) return false;                          // noncharacters
  if (c >= 0xFDD0 && c <= 0xFDEF) return false;
  if (c >= 0xE0000 && c <= 0xE0FFF) return c >= 0xE0100 && c <= 0xE01EF;  // tags; variation selectors print
  return true;
}

/// Decodes one code point from valid UTF-8 at s[i], advancing i.
char32_t next_code_point(std::string_view s, std::size_t& i) noexcept {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  if (i + len > s.size()) len = s.size() - i;
  char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

constexpr char kHex[] = "0123456789abcdef";

class ReprWriter {
 public:
  explicit ReprWriter(std::size_t max_chars) : max_(max_chars) {}

  [[nodiscard]] bool full() const noexcept { return out_.size() > max_; }

  void put(std::string_view s) { out_.append(s); }
  void put(char c) { out_.push_back(c); }

  void value(const Value& v) {
    if (full()) return;
    switch (v.type()) {
      case Type::kNone: put("None"); break;
      case Type::kBool: put(v.as_bool() ? "True" : "False"); break;
      case Type::kInt:
        if (v.is_int64()) {
          char buf[24];
          auto r = std::to_chars(buf, buf + sizeof buf, v.as_int64());
          put(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
        } else {
          put(v.as_big_int().to_string());
        }
        break;
      case Type::kFloat: put(detail::float_repr(v.as_double(), true, false)); break;
      case Type::kComplex: complex(v.as_complex()); break;
      case Type::kBytes: quoted(v.as_bytes().view(), true); break;
      case Type::kStr: quoted(v.as_str(), false); break;
      case Type::kTuple: {
        const auto& t = v.as_tuple();
        put('(');
        sequence(t);
        if (t.size() == 1) put(',');
        put(')');
        break;
      }
      case Type::kFrozenSet: {
        const auto& m = v.as_frozenset();
        if (m.empty()) {
          put("frozenset()");
        } else {
          put("frozenset({");
          sequence(m);
          put("})");
        }
        break;
      }
      case Type::kSlice: {
        const Slice& s = v.as_slice();
        put("slice(");
        value(s.start);
        put(", ");
        value(s.stop);
        put(", ");
        value(s.step);
        put(')');
        break;
      }
      case Type::kEllipsis: put("Ellipsis"); break;
      case Type::kNotImplemented: put("NotImplemented"); break;
      case Type::kObject: put(v.as_object()->repr()); break;
    }
  }

  std::string finish() && {
    if (out_.size() > max_) {
      const std::size_t keep = max_ >= 3 ? max_ - 3 : 0;
      out_.resize(keep);
      out_ += "...";
    }
    return std::move(out_);
  }

 private:
  void sequence(const Value::Tuple& items) {
    bool first = true;
    for (const Value& item : items) {
      if (full()) return;
      if (!first) put(", ");
      first = false;
      value(item);
    }
  }

  void complex(std::complex<double> c) {
    if (c.real() == 0.0 && !std::signbit(c.real())) {
      put(detail::float_repr(c.imag(), false, false));
      put('j');
      return;
    }
    put('(');
    put(detail::float_repr(c.real(), false, false));
    put(detail::float_repr(c.imag(), false, true));
    put("j)");
  }

  void hex_escape(char prefix, std::uint32_t cp, int width) {
    put('\\');
    put(prefix);
    for (int shift = (width - 1) * 4; shift >= 0; shift -= 4) put(kHex[(cp >> shift) & 0xF]);
  }

  /// Python's quoting: single quotes unless the text has ' and no ".
  void quoted(std::string_view s, bool is_bytes) {
    const bool has_single = s.find('\'') != std::string_view::npos;
    const bool has_double = s.find('"') != std::string_view::npos;
    const char quote = has_single && !has_double ? '"' : '\'';
    if (is_bytes) put('b');
    put(quote);
    std::size_t i = 0;
    while (i < s.size()) {
      if (full()) return;
      const auto c = static_cast<unsigned char>(s[i]);
      if (c < 0x80 || is_bytes) {
        ++i;
        if (c == '\\' || c == static_cast<unsigned char>(quote)) {
          put('\\');
          put(static_cast<char>(c));
        } else if (c == '\t') {
          put("\\t");
        } else if (c == '\n') {
          put("\\n");
        } else if (c == '\r') {
          put("\\r");
        } else if (c < 0x20 || c >= 0x7F) {
          hex_escape('x', c, 2);
        } else {
          put(static_cast<char>(c));
        }
        continue;
      }
      const std::size_t start = i;
      const char32_t cp = next_code_point(s, i);
      if (is_printable(cp)) {
        put(s.substr(start, i - start));
      } else if (cp < 0x100) {
        hex_escape('x', cp, 2);
      } else if (cp < 0x10000) {
        hex_escape('u', cp, 4);
      } else {
        hex_escape('U', cp, 8);
      }
    }
    put(quote);
  }

  std::size_t max_;
  std::string out_;
};

}  // namespace

std::string Value::repr(std::size_t max_chars) const {
  ReprWriter w(max_chars);
  w.value(*this);
  return std::move(w).finish();
}

}  // namespace tether::brine
