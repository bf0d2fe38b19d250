#include "literal.hpp"

#include <charconv>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <utility>

#include "literal_scan.hpp"
#include "tether/brine/big_int.hpp"
#include "tether/brine/utf8.hpp"

namespace tether::tools {

std::string LiteralError::to_string() const { return "column " + std::to_string(column) + ": " + message; }

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool is_ident_char(char c) { return is_ident_start(c) || is_digit(c); }

/// True when a NaN is anywhere in the literal. Each `nan` in the text is a float object of its
/// own, and Python compares such objects unequal, so a set never merges two of them (or two
/// tuples holding them): a set literal keeps every member that holds a NaN.
bool holds_nan(const Literal& l) {
  if (l.kind == Literal::Kind::kValue) {
    if (l.value.is_float()) return std::isnan(l.value.as_double());
    if (l.value.is_complex()) {
      const std::complex<double> c = l.value.as_complex();
      return std::isnan(c.real()) || std::isnan(c.imag());
    }
    return false;
  }
  for (const auto& item : l.items) {
    if (holds_nan(item)) return true;
  }
  return false;
}

/// Digits (0-9 / a-f) in `base` to decimal text, through base-10^9 limbs: for big 0x/0o/0b ints.
std::string to_decimal(std::string_view digits, int base) {
  std::vector<std::uint32_t> limbs;  // little-endian, base 10^9
  for (char c : digits) {
    std::uint64_t carry = static_cast<std::uint64_t>(detail::digit_value(c));
    for (auto& limb : limbs) {
      const std::uint64_t v = static_cast<std::uint64_t>(limb) * static_cast<std::uint64_t>(base) + carry;
      limb = static_cast<std::uint32_t>(v % 1'000'000'000u);
      carry = v / 1'000'000'000u;
    }
    while (carry != 0) {
      limbs.push_back(static_cast<std::uint32_t>(carry % 1'000'000'000u));
      carry /= 1'000'000'000u;
    }
  }
  if (limbs.empty()) return "0";
  std::string out = std::to_string(limbs.back());
  for (std::size_t i = limbs.size() - 1; i-- > 0;) {
    std::string part = std::to_string(limbs[i]);
    out.append(9 - part.size(), '0');
    out += part;
  }
  return out;
}

bool hashable(const Literal& l) {
  switch (l.kind) {
    case Literal::Kind::kValue: return !l.value.is_slice();
    case Literal::Kind::kTuple:
      for (const auto& i : l.items) {
        if (!hashable(i)) return false;
      }
      return true;
    default: return false;
  }
}

const char* kind_name(const Literal& l) {
  switch (l.kind) {
    case Literal::Kind::kList: return "list";
    case Literal::Kind::kDict: return "dict";
    case Literal::Kind::kSet: return "set";
    case Literal::Kind::kTuple: return "tuple";
    default: return "value";
  }
}

/// A parsed number before signs are applied.
struct Number {
  enum class Kind { kInt, kFloat, kImag } kind = Kind::kInt;
  std::string int_text;  // decimal digits (kInt)
  double real = 0;       // kFloat / kImag
};

class Parser {
 public:
  Parser(std::string_view text, const LiteralLimits& limits) : s_(text), limits_(limits) {}

  Literal parse_all() {
    skip_ws();
    Literal l = parse_expr(0);
    skip_ws();
    if (pos_ < s_.size()) fail(pos_, "unexpected " + describe(pos_) + " after the literal");
    return l;
  }

 private:
  [[noreturn]] void fail(std::size_t pos, std::string message) {
    throw detail::LiteralFailure{pos, std::move(message)};
  }

  /// The character at `pos` in quotes, or "end of input".
  std::string describe(std::size_t pos) const {
    if (pos >= s_.size()) return "end of input";
    return "'" + raw_char(pos) + "'";
  }

  std::string raw_char(std::size_t pos) const {
    const unsigned char c = static_cast<unsigned char>(s_[pos]);
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      return buf;
    }
    std::size_t n = 1;
    while (pos + n < s_.size() && (static_cast<unsigned char>(s_[pos + n]) & 0xC0) == 0x80 && n < 4) ++n;
    return std::string(s_.substr(pos, n));
  }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek(std::size_t ahead = 0) const { return pos_ + ahead < s_.size() ? s_[pos_ + ahead] : '\0'; }

  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  void expect(char c, const char* what) {
    skip_ws();
    if (peek() != c || at_end()) fail(pos_, std::string("expected ") + what + ", found " + describe(pos_));
    ++pos_;
  }

  // expr := ['+'|'-']* atom [('+'|'-') imaginary]   (the binary part only for complex numbers)
  Literal parse_expr(std::size_t depth) {
    skip_ws();
    const std::size_t start = pos_;
    bool negative = false;
    bool signed_ = false;
    while (peek() == '-' || peek() == '+') {
      if (peek() == '-') negative = !negative;
      signed_ = true;
      ++pos_;
      skip_ws();
    }
    if (signed_ && !starts_number()) fail(pos_, "a sign must be followed by a number");
    if (!starts_number()) return parse_atom(depth);

    Number a = parse_number();
    skip_ws();
    if ((peek() == '+' || peek() == '-') && a.kind != Number::Kind::kImag) {
      // A complex number written as real +/- imaginary.
      const std::size_t op_pos = pos_;
      const bool minus = peek() == '-';
      ++pos_;
      skip_ws();
      if (!starts_number())
        fail(pos_, "expected an imaginary number after '" + std::string(1, minus ? '-' : '+') + "'");
      Number b = parse_number();
      if (b.kind != Number::Kind::kImag)
        fail(op_pos, "only a real and an imaginary number can be added (no arithmetic)");
      double re = real_of(a, start);
      // Python negates an int before it becomes the real part: -0 is 0, never -0.0.
      if (negative) re = (a.kind == Number::Kind::kInt && re == 0) ? 0.0 : -re;
      return Literal::of(brine::Value::complex(re, minus ? -b.real : b.real));
    }
    switch (a.kind) {
      case Number::Kind::kImag:
        return Literal::of(brine::Value::complex(negative ? -0.0 : 0.0, negative ? -a.real : a.real));
      case Number::Kind::kFloat: return Literal::of(brine::Value(negative ? -a.real : a.real));
      case Number::Kind::kInt: {
        std::string text = a.int_text;
        if (negative) text.insert(text.begin(), '-');
        auto big = brine::BigInt::parse(text, limits_.max_int_digits + 1);
        if (!big) fail(start, "malformed integer");
        if (auto small = big.value().to_int64()) return Literal::of(brine::Value(*small));
        return Literal::of(brine::Value(std::move(big).value()));
      }
    }
    fail(start, "malformed number");
  }

  double real_of(const Number& n, std::size_t pos) {
    if (n.kind == Number::Kind::kFloat) return n.real;
    auto big = brine::BigInt::parse(n.int_text, limits_.max_int_digits + 1);
    if (!big) fail(pos, "malformed integer");
    const double d = big.value().to_double();
    if (std::isinf(d)) fail(pos, "int too large to convert to float");
    return d;
  }

  bool starts_number() const {
    const char c = peek();
    if (at_end()) return false;
    if (is_digit(c)) return true;
    if (c == '.' && is_digit(peek(1))) return true;
    return word_is("inf") || word_is("nan") || word_is("infj") || word_is("nanj");
  }

  bool word_is(std::string_view w) const {
    if (s_.substr(pos_, w.size()) != w) return false;
    return pos_ + w.size() >= s_.size() || !is_ident_char(s_[pos_ + w.size()]);
  }

  Number parse_number() {
    const std::size_t start = pos_;
    Number n;
    for (std::string_view w : {"infj", "nanj", "inf", "nan"}) {
      if (word_is(w)) {
        pos_ += w.size();
        n.real =
            w[0] == 'i' ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
        n.kind = w.size() == 4 ? Number::Kind::kImag : Number::Kind::kFloat;
        return n;
      }
    }
    if (peek() == '0' && (peek(1) == 'x' || peek(1) == 'X' || peek(1) == 'o' || peek(1) == 'O' ||
                          peek(1) == 'b' || peek(1) == 'B')) {
      const char p = static_cast<char>(peek(1) | 0x20);
      const int base = p == 'x' ? 16 : p == 'o' ? 8 : 2;
      pos_ += 2;
      std::string digits = read_digits(base, true);
      if (digits.empty()) fail(pos_, std::string("expected digits after 0") + p);
      check_number_end();
      if (digits.size() * 4 > limits_.max_int_digits * 4) fail(start, "integer literal too long");
      n.int_text = to_decimal(digits, base);
      if (n.int_text.size() > limits_.max_int_digits) fail(start, "integer literal too long");
      return n;
    }
    std::string text = read_digits(10, false);
    bool is_float = false;
    if (peek() == '.') {
      is_float = true;
      text += '.';
      ++pos_;
      if (is_digit(peek())) text += read_digits(10, false);
    }
    if (peek() == 'e' || peek() == 'E') {
      const std::size_t e_pos = pos_;
      std::string exp = "e";
      ++pos_;
      if (peek() == '+' || peek() == '-') exp += s_[pos_++];
      if (!is_digit(peek())) fail(e_pos, "malformed exponent");
      exp += read_digits(10, false);
      text += exp;
      is_float = true;
    }
    if (peek() == 'j' || peek() == 'J') {
      ++pos_;
      check_number_end();
      n.kind = Number::Kind::kImag;
      n.real = to_double(text, start);
      return n;
    }
    check_number_end();
    if (is_float) {
      n.kind = Number::Kind::kFloat;
      n.real = to_double(text, start);
      return n;
    }
    // Python refuses leading zeros in non-zero decimal ints ("010").
    if (text.size() > 1 && text[0] == '0' && text.find_first_not_of('0') != std::string::npos) {
      fail(start, "leading zeros in a decimal integer are not allowed (use 0o for octal)");
    }
    if (text.size() > limits_.max_int_digits) {
      fail(start, "integer literal has more than " + std::to_string(limits_.max_int_digits) + " digits");
    }
    n.int_text = std::move(text);
    return n;
  }

  double to_double(const std::string& text, std::size_t pos) {
    double d = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
    if (ec == std::errc::result_out_of_range) {
      // Overflow is inf in Python; underflow is 0.
      const auto e = text.find_first_of("eE");
      return (e != std::string::npos && text.size() > e + 1 && text[e + 1] == '-')
                 ? 0.0
                 : std::numeric_limits<double>::infinity();
    }
    if (ec != std::errc() || end != text.data() + text.size()) fail(pos, "malformed float");
    return d;
  }

  /// Digits of `base` with single underscores between them.
  std::string read_digits(int base, bool allow_leading_underscore) {
    std::string out;
    bool last_underscore = false;
    while (!at_end()) {
      const char c = peek();
      if (c == '_') {
        if ((out.empty() && !allow_leading_underscore) || last_underscore)
          fail(pos_, "misplaced '_' in a number");
        last_underscore = true;
        ++pos_;
        continue;
      }
      if (detail::digit_value(c) >= base || (base <= 10 && !is_digit(c))) break;
      out += c;
      last_underscore = false;
      ++pos_;
    }
    if (last_underscore) fail(pos_ - 1, "misplaced '_' in a number");
    return out;
  }

  void check_number_end() {
    if (!at_end() && (is_ident_char(peek()) || peek() == '.'))
      fail(pos_, "invalid character " + describe(pos_) + " in a number");
  }

  Literal parse_atom(std::size_t depth) {
    skip_ws();
    if (at_end()) fail(pos_, "expected a value, found end of input");
    if (depth >= limits_.max_depth) fail(pos_, "nesting deeper than " + std::to_string(limits_.max_depth));
    const char c = peek();
    const std::size_t start = pos_;
    if (c == '(') {
      ++pos_;
      std::vector<Literal> items;
      bool comma = false;
      skip_ws();
      while (peek() != ')') {
        if (at_end()) fail(pos_, "expected ')', found end of input");
        items.push_back(parse_expr(depth + 1));
        skip_ws();
        if (peek() == ',') {
          comma = true;
          ++pos_;
          skip_ws();
        } else if (peek() != ')') {
          fail(pos_, "expected ',' or ')', found " + describe(pos_));
        }
      }
      ++pos_;
      if (items.size() == 1 && !comma) return std::move(items[0]);  // (x) is x
      Literal t;
      t.kind = Literal::Kind::kTuple;
      t.items = std::move(items);
      return t;
    }
    if (c == '[') {
      ++pos_;
      Literal l;
      l.kind = Literal::Kind::kList;
      l.items = parse_sequence(']', depth, false);
      return l;
    }
    if (c == '{') return parse_brace(depth);
    if (c == '\'' || c == '"') return parse_strings();
    if (c == '.' && s_.substr(pos_, 3) == "...") {
      pos_ += 3;
      return Literal::of(brine::Value::ellipsis());
    }
    if (is_ident_start(c)) {
      // A string prefix?
      std::size_t n = 0;
      while (n < 2 && is_ident_char(peek(n))) ++n;
      for (std::size_t len = 1; len <= 2; ++len) {
        if (peek(len) == '\'' || peek(len) == '"') {
          std::string prefix(s_.substr(pos_, len));
          for (auto& ch : prefix) ch = static_cast<char>(ch | 0x20);
          if (prefix == "r" || prefix == "b" || prefix == "u" || prefix == "rb" || prefix == "br")
            return parse_strings();
          if (len == n) break;
        }
      }
      std::size_t end = pos_;
      while (end < s_.size() && is_ident_char(s_[end])) ++end;
      const std::string_view word = s_.substr(pos_, end - pos_);
      pos_ = end;
      if (word == "None") return Literal::of(brine::Value());
      if (word == "True") return Literal::of(brine::Value(true));
      if (word == "False") return Literal::of(brine::Value(false));
      if (word == "Ellipsis") return Literal::of(brine::Value::ellipsis());
      if (word == "NotImplemented") return Literal::of(brine::Value::not_implemented());
      if (word == "set") {
        expect('(', "'(' after set");
        expect(')', "')' (only set() is accepted; write {1, 2} for a set with members)");
        Literal l;
        l.kind = Literal::Kind::kSet;
        return l;
      }
      if (word == "frozenset") {
        expect('(', "'(' after frozenset");
        skip_ws();
        brine::Value::Tuple members;
        if (peek() != ')') {
          const std::size_t arg_pos = pos_;
          Literal inner = parse_expr(depth + 1);
          if (inner.kind != Literal::Kind::kSet && inner.kind != Literal::Kind::kList &&
              inner.kind != Literal::Kind::kTuple) {
            fail(arg_pos, "frozenset() takes a set, list or tuple literal");
          }
          for (auto& m : inner.items) {
            if (!hashable(m))
              fail(arg_pos, std::string("unhashable type in frozenset: '") + kind_name(m) + "'");
            members.push_back(*literal_to_value(m));
          }
        }
        expect(')', "')'");
        return Literal::of(brine::Value::frozenset(std::move(members)));
      }
      if (word == "float") {
        expect('(', "'(' after float");
        skip_ws();
        const std::size_t arg_pos = pos_;
        if (peek() != '\'' && peek() != '"') fail(arg_pos, "float() takes a string such as 'inf' or 'nan'");
        Literal arg = parse_strings();
        if (!arg.value.is_str()) fail(arg_pos, "float() takes a str, not bytes");
        expect(')', "')'");
        std::string t = arg.value.as_str();
        for (auto& ch : t) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch | 0x20 : ch);
        const auto trim = t.find_first_not_of(" \t");
        t = trim == std::string::npos ? "" : t.substr(trim, t.find_last_not_of(" \t") - trim + 1);
        bool neg = false;
        std::string_view body = t;
        if (!body.empty() && (body[0] == '-' || body[0] == '+')) {
          neg = body[0] == '-';
          body.remove_prefix(1);
        }
        double d = 0;
        if (body == "inf" || body == "infinity") {
          d = std::numeric_limits<double>::infinity();
        } else if (body == "nan") {
          d = std::numeric_limits<double>::quiet_NaN();
        } else {
          auto [end2, ec] = std::from_chars(body.data(), body.data() + body.size(), d);
          if (body.empty() || ec != std::errc() || end2 != body.data() + body.size()) {
            fail(arg_pos, "could not convert string to float: " + arg.value.repr());
          }
        }
        return Literal::of(brine::Value(neg ? -d : d));
      }
      fail(start, "unknown name '" + std::string(word) +
                      "' (strings need quotes; only literals are accepted, nothing is evaluated)");
    }
    fail(start, "unexpected " + describe(start));
  }

  std::vector<Literal> parse_sequence(char close, std::size_t depth, bool need_hashable) {
    std::vector<Literal> items;
    skip_ws();
    while (peek() != close || at_end()) {
      if (at_end()) fail(pos_, std::string("expected '") + close + "', found end of input");
      const std::size_t item_pos = pos_;
      items.push_back(parse_expr(depth + 1));
      if (need_hashable && !hashable(items.back())) {
        fail(item_pos, std::string("unhashable type: '") + kind_name(items.back()) + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        skip_ws();
      } else if (peek() != close) {
        fail(pos_, std::string("expected ',' or '") + close + "', found " + describe(pos_));
      }
    }
    ++pos_;
    return items;
  }

  Literal parse_brace(std::size_t depth) {
    ++pos_;  // '{'
    skip_ws();
    Literal out;
    if (peek() == '}') {
      ++pos_;
      out.kind = Literal::Kind::kDict;
      return out;
    }
    const std::size_t first_pos = pos_;
    Literal first = parse_expr(depth + 1);
    if (!hashable(first)) fail(first_pos, std::string("unhashable type: '") + kind_name(first) + "'");
    skip_ws();
    if (peek() == ':') {
      out.kind = Literal::Kind::kDict;
      ++pos_;
      out.items.push_back(std::move(first));
      out.items.push_back(parse_expr(depth + 1));
      skip_ws();
      while (peek() == ',') {
        ++pos_;
        skip_ws();
        if (peek() == '}') break;
        const std::size_t key_pos = pos_;
        Literal key = parse_expr(depth + 1);
        if (!hashable(key)) fail(key_pos, std::string("unhashable type: '") + kind_name(key) + "'");
        expect(':', "':' in a dict");
        Literal value = parse_expr(depth + 1);
        // Python keeps the first key position and the last value.
        bool replaced = false;
        for (std::size_t i = 0; i < out.items.size(); i += 2) {
          if (out.items[i] == key) {
            out.items[i + 1] = std::move(value);
            replaced = true;
            break;
          }
        }
        if (!replaced) {
          out.items.push_back(std::move(key));
          out.items.push_back(std::move(value));
        }
        skip_ws();
      }
      expect('}', "',' or '}'");
      return out;
    }
    out.kind = Literal::Kind::kSet;
    std::vector<Literal> members;
    members.push_back(std::move(first));
    if (peek() == ',') {
      ++pos_;
      std::vector<Literal> rest = parse_sequence('}', depth, true);
      for (auto& r : rest) members.push_back(std::move(r));
    } else {
      expect('}', "',', ':' or '}'");
    }
    for (auto& m : members) {
      bool dup = false;
      for (const auto& have : out.items) {
        if (have == m && !holds_nan(m)) dup = true;
      }
      if (!dup) out.items.push_back(std::move(m));
    }
    return out;
  }

  // One or more adjacent string literals (all str or all bytes).
  Literal parse_strings() {
    const std::size_t start = pos_;
    std::string acc;
    int kind = -1;  // 0 str, 1 bytes
    for (;;) {
      skip_ws();
      const std::size_t lit_pos = pos_;
      bool raw = false;
      bool bytes = false;
      while (!at_end() && peek() != '\'' && peek() != '"') {
        const char p = static_cast<char>(peek() | 0x20);
        if (p == 'r') {
          raw = true;
        } else if (p == 'b') {
          bytes = true;
        } else if (p != 'u') {
          break;
        }
        ++pos_;
      }
      if (peek() != '\'' && peek() != '"') {
        pos_ = lit_pos;
        break;
      }
      if (kind != -1 && kind != (bytes ? 1 : 0)) fail(lit_pos, "cannot mix bytes and str literals");
      kind = bytes ? 1 : 0;
      read_string(acc, raw, bytes);
      skip_ws();
      if (at_end() || !(peek() == '\'' || peek() == '"' || is_prefix_start())) break;
    }
    if (kind == 1) return Literal::of(brine::Value::bytes(acc));
    if (!brine::is_valid_utf8(acc)) fail(start, "string is not valid UTF-8");
    return Literal::of(brine::Value::str(std::move(acc)));
  }

  bool is_prefix_start() const {
    for (std::size_t len = 1; len <= 2; ++len) {
      if (peek(len) == '\'' || peek(len) == '"') {
        std::string prefix(s_.substr(pos_, len));
        for (auto& ch : prefix) ch = static_cast<char>(ch | 0x20);
        return prefix == "r" || prefix == "b" || prefix == "u" || prefix == "rb" || prefix == "br";
      }
    }
    return false;
  }

  void read_string(std::string& out, bool raw, bool bytes) { detail::scan_string(s_, pos_, raw, bytes, out); }

  std::string_view s_;
  LiteralLimits limits_;
  std::size_t pos_ = 0;
};

std::size_t column_of(std::string_view text, std::size_t pos) {
  std::size_t col = 1;
  for (std::size_t i = 0; i < pos && i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++col;
  }
  return col;
}

}  // namespace

Result<Literal, LiteralError> parse_literal(std::string_view text, const LiteralLimits& limits) {
  Parser p(text, limits);
  try {
    return p.parse_all();
  } catch (const detail::LiteralFailure& f) {
    return Unexpected(LiteralError{column_of(text, f.pos), f.message});
  } catch (const Error& e) {
    // A Value constructor refused something (it should not happen: the parser checks first).
    return Unexpected(LiteralError{1, e.what()});
  }
}

}  // namespace tether::tools
