#pragma once
/// \file BigInt: an arbitrary-precision integer for brine's unbounded Python ints.
///
/// Stored as a sign and base-10^9 limbs, so decimal text (the only form in which brine carries
/// integers outside −48…159) converts both ways in linear time. Arithmetic is deliberately
/// minimal: brine only moves integers, it does not compute with them.

#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/base/result.hpp"

namespace tether::brine {

/// Why BigInt::parse rejected its input.
enum class IntParseError {
  kEmpty,          ///< no digits at all ("" or "-")
  kSyntax,         ///< a character other than an optional leading '-' and ASCII digits
  kTooManyDigits,  ///< more decimal digits than the allowed maximum
};

/// Python's default limit on int <-> decimal text conversions (sys.int_info.default_max_str_digits).
inline constexpr std::size_t kDefaultMaxIntDigits = 4300;

/// An integer of any size. A regular value type with no thread affinity.
/// Invariant: no most-significant zero limbs; zero has no limbs and is never negative.
class TETHER_API BigInt {
 public:
  static constexpr std::uint32_t kLimbBase = 1'000'000'000;
  static constexpr std::size_t kLimbDigits = 9;

  /// Zero.
  BigInt() noexcept = default;
  explicit BigInt(std::int64_t v);
  static BigInt from_uint64(std::uint64_t v);

  /// Parses `-?[0-9]+` (leading zeros allowed, "-0" is zero). No '+', whitespace or '_':
  /// stock RPyC peers never send them. At most `max_digits` digits (leading zeros count, as
  /// in Python). Linear time.
  static Result<BigInt, IntParseError> parse(std::string_view text,
                                             std::size_t max_digits = kDefaultMaxIntDigits);

  [[nodiscard]] bool is_zero() const noexcept { return limbs_.empty(); }
  [[nodiscard]] bool is_negative() const noexcept { return negative_; }
  /// −1, 0 or 1.
  [[nodiscard]] int sign() const noexcept { return negative_ ? -1 : (limbs_.empty() ? 0 : 1); }

  [[nodiscard]] bool fits_int64() const noexcept { return to_int64().has_value(); }
  [[nodiscard]] std::optional<std::int64_t> to_int64() const noexcept;
  [[nodiscard]] std::optional<std::uint64_t> to_uint64() const noexcept;
  /// Nearest double (may be ±inf for huge values); not correctly rounded for > 2^53.
  [[nodiscard]] double to_double() const noexcept;

  /// Number of decimal digits of |*this| (1 for zero).
  [[nodiscard]] std::size_t digit_count() const noexcept;
  /// Length of to_string(): digit_count() plus one for a '-' sign.
  [[nodiscard]] std::size_t decimal_size() const noexcept { return digit_count() + (negative_ ? 1 : 0); }
  /// Writes exactly decimal_size() characters at `out` (no terminator). Linear time.
  void write_decimal(char* out) const noexcept;
  [[nodiscard]] std::string to_string() const;

  [[nodiscard]] BigInt operator-() const;
  [[nodiscard]] std::size_t hash() const noexcept;
  /// Little-endian base-10^9 limbs of the magnitude.
  [[nodiscard]] const std::vector<std::uint32_t>& limbs() const noexcept { return limbs_; }

  friend bool operator==(const BigInt& a, const BigInt& b) noexcept = default;
  friend TETHER_API std::strong_ordering operator<=>(const BigInt& a, const BigInt& b) noexcept;

 private:
  bool negative_ = false;
  std::vector<std::uint32_t> limbs_;
};

}  // namespace tether::brine
