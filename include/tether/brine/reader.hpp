#pragma once
/// \file brine::Reader: the decoder behind load(), open for callers that take a message apart
/// as they read it (the rpc layer reads its envelopes and boxed arguments this way, without
/// building the intermediate tuples as Values).
///
/// A Reader walks one span from the front. read() decodes the next value in full; the try_
/// methods take the next value only if it has the asked-for shape (otherwise they consume
/// nothing and return nullopt). Every value taken, by either kind of call, counts against the
/// same Limits in the same way load() counts it, so a caller that walks a whole value with a
/// mix of calls sees exactly the errors load() would throw for the same bytes, at the same
/// point. Errors are ProtocolError, as in load(). No loop or thread affinity; the span must
/// outlive the Reader and every string_view a try_str() returned.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

#include "tether/base/export.hpp"
#include "tether/brine/codec.hpp"
#include "tether/brine/value.hpp"

namespace tether::brine {

class TETHER_API Reader {
 public:
  Reader(std::span<const std::uint8_t> data, const Limits& limits) noexcept
      : begin_(data.data()),
        p_(data.data()),
        end_(data.data() + std::min(data.size(), limits.max_total_bytes)),
        real_end_(data.data() + data.size()),
        limits_(limits) {
    // The decoded-memory budget bounds the number of values too: folded into the values
    // limit, the hot paths check one number.
    const std::size_t by_budget = limits.max_decoded_bytes / kDecodedValueCost;
    if (by_budget < limits_.max_total_values) {
      limits_.max_total_values = by_budget;
      values_from_budget_ = true;
    }
  }

  /// Decodes the next value (at nesting `depth`: 0 for a top-level value, n + 1 for the items
  /// of a tuple read at depth n).
  void read(Value& out, std::size_t depth);
  Value read(std::size_t depth) {
    Value v;
    read(v, depth);
    return v;
  }

  /// If the next value is a tuple (of any length, the empty one included): consumes its header
  /// and returns its length; the caller then reads exactly that many values at depth + 1.
  /// Depth, length and total-value limits are checked as read() checks them.
  std::optional<std::size_t> try_tuple(std::size_t depth) {
    if (p_ != end_ && *p_ >= tag::kTup1 && *p_ <= tag::kTup4 && values_ < limits_.max_total_values) {
      // Inline fast path: TUP1..TUP4 (the check_tuple conditions are spelled out here).
      const std::size_t n = static_cast<std::size_t>(*p_ - tag::kTup1) + 1;
      if (depth + 1 <= limits_.max_depth && n <= limits_.max_container_len && n < remaining() &&
          n <= limits_.max_total_values - values_ - 1) {
        ++p_;
        ++values_;
        return n;
      }
    }
    return try_tuple_slow(depth);
  }
  /// If the next value is an int that fits int64: consumes it and returns it.
  std::optional<std::int64_t> try_int64() {
    if (p_ != end_ && *p_ >= 0x20 && *p_ <= 0xEF && values_ < limits_.max_total_values) {
      ++values_;
      return static_cast<std::int64_t>(*p_++) - tag::kImmBias;
    }
    return try_int64_slow();
  }
  /// If the next value is a str: consumes it and returns its text (validated UTF-8), a view
  /// into the input.
  std::optional<std::string_view> try_str();

  /// What the limits see of an encoded value: for try_encoded().
  struct Shape {
    std::size_t values = 1;       ///< values in all, tuples and leaves
    std::size_t levels = 0;       ///< tuples nested this deep (0: a leaf)
    std::size_t widest = 0;       ///< length of the longest tuple
    std::size_t longest_int = 0;  ///< characters of the longest INT_L1/L4 text (sign included)
  };
  /// If the next bytes are exactly `encoded` — a value as dump() writes it, whose limits-wise
  /// shape is `shape`, holding no str/bytes/frozenset the limits could refuse — consumes them
  /// as read(depth) would (same accounting) and returns true; otherwise consumes nothing. For
  /// values a peer sends back byte for byte (the rpc layer's id_packs): a memcmp, not a parse.
  bool try_encoded(std::span<const std::uint8_t> encoded, const Shape& shape, std::size_t depth) noexcept {
    if (encoded.empty() || encoded.size() > remaining() ||
        shape.values > limits_.max_total_values - values_ || depth + shape.levels > limits_.max_depth ||
        shape.widest > limits_.max_container_len || shape.longest_int > limits_.max_int_digits + 1 ||
        std::memcmp(p_, encoded.data(), encoded.size()) != 0) {
      return false;
    }
    p_ += encoded.size();
    values_ += shape.values;
    return true;
  }

  /// A position to come back to: rewinding undoes the reads since, limits accounting included.
  struct Mark {
    const std::uint8_t* p;
    std::size_t values;
    std::size_t body_bytes;
  };
  [[nodiscard]] Mark mark() const noexcept { return {p_, values_, body_bytes_}; }
  void rewind(Mark m) noexcept {
    p_ = m.p;
    values_ = m.values;
    body_bytes_ = m.body_bytes;
  }
  /// What the values decoded so far count against Limits::max_decoded_bytes.
  [[nodiscard]] std::size_t decoded_bytes() const noexcept { return values_ * kDecodedValueCost + body_bytes_; }

  [[nodiscard]] bool at_end() const noexcept { return p_ == real_end_; }
  [[nodiscard]] std::size_t offset() const noexcept { return static_cast<std::size_t>(p_ - begin_); }
  /// The bytes read since `m`.
  [[nodiscard]] std::span<const std::uint8_t> since(Mark m) const noexcept {
    return {m.p, static_cast<std::size_t>(p_ - m.p)};
  }
  /// Throws load()'s trailing-bytes error unless the whole input has been read.
  void expect_end() const;

 private:
  [[nodiscard]] std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }
  std::optional<std::size_t> try_tuple_slow(std::size_t depth);
  std::optional<std::int64_t> try_int64_slow();
  [[noreturn]] static void fail(std::size_t at, std::uint8_t t, std::string_view what);
  [[noreturn]] void short_input(std::size_t at, std::string_view what, std::size_t n,
                                std::string_view of) const;
  void need(std::size_t n, std::size_t at, std::uint8_t t, std::string_view what) const;
  void count_value(std::size_t at, std::uint8_t t);
  std::size_t take_u8(std::size_t at, std::uint8_t t);
  std::size_t take_u32(std::size_t at, std::uint8_t t);
  double take_double() noexcept;
  std::string_view bytes_body(std::uint8_t t, std::size_t at);
  std::string_view str_body(std::size_t at);
  void enter(std::size_t depth, std::size_t at, std::uint8_t t) const;
  void check_tuple(std::size_t n, std::size_t depth, std::size_t at, std::uint8_t t) const;
  void read_tuple(Value::Tuple& items, std::size_t n, std::size_t depth, std::size_t at, std::uint8_t t);
  void read_int(Value& out, std::uint8_t t, std::size_t at);
  void read_slice(Value& out, std::size_t depth, std::size_t at);
  void read_frozenset(Value& out, std::size_t depth, std::size_t at);

  const std::uint8_t* begin_;
  const std::uint8_t* p_;
  const std::uint8_t* end_;       // end of the window max_total_bytes allows
  const std::uint8_t* real_end_;  // end of the input
  /// Counts a str/bytes/int body of n bytes against the decoded-memory budget.
  void count_body(std::size_t n, std::size_t at, std::uint8_t t);

  Limits limits_;                 // a copy: callers pass temporaries
  std::size_t values_ = 0;
  std::size_t body_bytes_ = 0;     // str, bytes and int bodies decoded
  bool values_from_budget_ = false;  // limits_.max_total_values was lowered by the budget
};

}  // namespace tether::brine
