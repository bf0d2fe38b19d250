#pragma once
/// \file Python literals for the command line: a small, strict parser and its repr.
///
///   auto lit = tether::tools::parse_literal("{'a': [1, 2.5, b'\\x00'], 'b': None}");
///   if (!lit) fmt::print(stderr, "{}\n", lit.error().to_string());   // "column 7: ..."
///
/// Accepted (Python 3 syntax unless noted): None, True, False, Ellipsis / `...`; ints of any
/// size in decimal, 0x, 0o and 0b forms (underscores between digits, at most 4300 decimal
/// digits); floats (also `inf` and `nan`, which is how Python prints them, and
/// `float('inf')`); imaginary and complex numbers (`2j`, `(1+2j)`); unary `-`/`+` on numbers;
/// str and bytes literals with the r/b/u prefixes, triple quotes, every escape of Python
/// except `\N{...}`, and adjacent literals concatenated; tuples, lists, dicts, sets, `set()`
/// and `frozenset(...)`. Dict keys and set members must be hashable (no list, dict or set).
/// Nothing is evaluated: names other than the ones above are errors.
///
/// No dependence on the CLI or on any I/O: pure functions, no thread affinity. The parser is
/// fuzzed (fuzz/literal_fuzz.cpp); it never recurses deeper than LiteralLimits::max_depth.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tether/base/result.hpp"
#include "tether/brine/value.hpp"

namespace tether::tools {

/// One parsed literal. Scalars, and frozensets, are brine Values; containers that brine cannot
/// carry by value (list, dict, set) are kept as trees, as are tuples (which may hold them).
struct Literal {
  enum class Kind { kValue, kTuple, kList, kDict, kSet };
  Kind kind = Kind::kValue;
  /// kValue only.
  brine::Value value;
  /// kTuple, kList, kSet: the elements in order. kDict: key, value, key, value ... in order.
  std::vector<Literal> items;

  static Literal of(brine::Value v) {
    Literal l;
    l.value = std::move(v);
    return l;
  }
  friend bool operator==(const Literal& a, const Literal& b) = default;
};

/// Why parsing failed: where (1-based column, counted in characters) and what.
struct LiteralError {
  std::size_t column = 1;
  std::string message;
  /// "column N: message".
  [[nodiscard]] std::string to_string() const;
};

struct LiteralLimits {
  /// Deepest nesting of brackets.
  std::size_t max_depth = 64;
  /// Most decimal digits of an int (Python's default int/str limit).
  std::size_t max_int_digits = 4300;
};

/// Parses exactly one literal; surrounding whitespace is allowed, anything else after it is an
/// error.
[[nodiscard]] Result<Literal, LiteralError> parse_literal(std::string_view text,
                                                          const LiteralLimits& limits = LiteralLimits());

/// Python's repr of the literal ("[1, 'a']", "{1: 2}", "set()", "(1,)" ...); parse_literal of
/// the result gives back an equal literal.
[[nodiscard]] std::string literal_repr(const Literal& lit);

/// The literal as one brine value, when it holds no list, dict or set (tuples are converted).
[[nodiscard]] std::optional<brine::Value> literal_to_value(const Literal& lit);

/// A brine value as a Literal (tuples become kTuple trees).
[[nodiscard]] Literal literal_from_value(const brine::Value& v);

}  // namespace tether::tools
