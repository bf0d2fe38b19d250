#include "tether/brine/big_int.hpp"

#include <algorithm>
#include <cmath>

namespace tether::brine {

namespace {

constexpr std::uint32_t kPow10[10] = {1,      10,      100,      1000,      10000,
                                      100000, 1000000, 10000000, 100000000, 1000000000};

unsigned digits_of(std::uint32_t v) noexcept {
  unsigned n = 1;
  while (n < 10 && v >= kPow10[n]) ++n;
  return n;
}

void set_magnitude(std::vector<std::uint32_t>& limbs, std::uint64_t mag) {
  while (mag != 0) {
    limbs.push_back(static_cast<std::uint32_t>(mag % BigInt::kLimbBase));
    mag /= BigInt::kLimbBase;
  }
}

/// |value| as uint64 if it fits.
std::optional<std::uint64_t> magnitude_u64(const std::vector<std::uint32_t>& limbs) noexcept {
  if (limbs.size() > 3) return std::nullopt;
  std::uint64_t m = 0;
  for (std::size_t i = limbs.size(); i-- > 0;) {
    if (m > (UINT64_MAX - limbs[i]) / BigInt::kLimbBase) return std::nullopt;
    m = m * BigInt::kLimbBase + limbs[i];
  }
  return m;
}

}  // namespace

BigInt::BigInt(std::int64_t v) {
  negative_ = v < 0;
  std::uint64_t mag = negative_ ? (~static_cast<std::uint64_t>(v) + 1) : static_cast<std::uint64_t>(v);
  set_magnitude(limbs_, mag);
}

BigInt BigInt::from_uint64(std::uint64_t v) {
  BigInt r;
  set_magnitude(r.limbs_, v);
  return r;
}

Result<BigInt, IntParseError> BigInt::parse(std::string_view text, std::size_t max_digits) {
  bool negative = false;
  if (!text.empty() && text.front() == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  if (text.empty()) return Unexpected(IntParseError::kEmpty);
  for (char c : text) {
    if (c < '0' || c > '9') return Unexpected(IntParseError::kSyntax);
  }
  if (text.size() > max_digits) return Unexpected(IntParseError::kTooManyDigits);
  // Skip leading zeros so that the limb vector has no zero top limb.
  std::size_t first = 0;
  while (first < text.size() && text[first] == '0') ++first;
  text.remove_prefix(first);
  BigInt r;
  r.limbs_.reserve((text.size() + kLimbDigits - 1) / kLimbDigits);
  // Chunks of 9 digits from the right: the least significant limb first.
  std::size_t end = text.size();
  while (end > 0) {
    std::size_t begin = end > kLimbDigits ? end - kLimbDigits : 0;
    std::uint32_t limb = 0;
    for (std::size_t i = begin; i < end; ++i) limb = limb * 10 + static_cast<std::uint32_t>(text[i] - '0');
    r.limbs_.push_back(limb);
    end = begin;
  }
  r.negative_ = negative && !r.limbs_.empty();
  return r;
}

std::optional<std::int64_t> BigInt::to_int64() const noexcept {
  auto mag = magnitude_u64(limbs_);
  if (!mag) return std::nullopt;
  if (negative_) {
    if (*mag > static_cast<std::uint64_t>(INT64_MAX) + 1) return std::nullopt;
    return static_cast<std::int64_t>(~*mag + 1);
  }
  if (*mag > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<std::int64_t>(*mag);
}

std::optional<std::uint64_t> BigInt::to_uint64() const noexcept {
  if (negative_) return std::nullopt;
  return magnitude_u64(limbs_);
}

double BigInt::to_double() const noexcept {
  double r = 0;
  for (std::size_t i = limbs_.size(); i-- > 0;) r = r * kLimbBase + limbs_[i];
  return negative_ ? -r : r;
}

std::size_t BigInt::digit_count() const noexcept {
  if (limbs_.empty()) return 1;
  return (limbs_.size() - 1) * kLimbDigits + digits_of(limbs_.back());
}

void BigInt::write_decimal(char* out) const noexcept {
  if (negative_) *out++ = '-';
  if (limbs_.empty()) {
    *out = '0';
    return;
  }
  // Top limb without padding, the rest zero-padded to 9 digits.
  std::uint32_t top = limbs_.back();
  unsigned n = digits_of(top);
  for (unsigned i = n; i-- > 0;) {
    out[i] = static_cast<char>('0' + top % 10);
    top /= 10;
  }
  out += n;
  for (std::size_t li = limbs_.size() - 1; li-- > 0;) {
    std::uint32_t limb = limbs_[li];
    for (std::size_t i = kLimbDigits; i-- > 0;) {
      out[i] = static_cast<char>('0' + limb % 10);
      limb /= 10;
    }
    out += kLimbDigits;
  }
}

std::string BigInt::to_string() const {
  std::string s(decimal_size(), '\0');
  write_decimal(s.data());
  return s;
}

BigInt BigInt::operator-() const {
  BigInt r = *this;
  r.negative_ = !r.negative_ && !r.limbs_.empty();
  return r;
}

std::size_t BigInt::hash() const noexcept {
  // FNV-1a over the limbs and the sign.
  std::uint64_t h = 1469598103934665603ull ^ (negative_ ? 0x9e3779b97f4a7c15ull : 0);
  for (std::uint32_t limb : limbs_) {
    h ^= limb;
    h *= 1099511628211ull;
  }
  return static_cast<std::size_t>(h);
}

std::strong_ordering operator<=>(const BigInt& a, const BigInt& b) noexcept {
  if (a.negative_ != b.negative_) {
    return a.negative_ ? std::strong_ordering::less : std::strong_ordering::greater;
  }
  // Same sign: compare magnitudes, reversed for negatives.
  std::strong_ordering mag = std::strong_ordering::equal;
  if (a.limbs_.size() != b.limbs_.size()) {
    mag = a.limbs_.size() <=> b.limbs_.size();
  } else {
    for (std::size_t i = a.limbs_.size(); i-- > 0;) {
      if (a.limbs_[i] != b.limbs_[i]) {
        mag = a.limbs_[i] <=> b.limbs_[i];
        break;
      }
    }
  }
  if (!a.negative_) return mag;
  if (mag == std::strong_ordering::less) return std::strong_ordering::greater;
  if (mag == std::strong_ordering::greater) return std::strong_ordering::less;
  return mag;
}

}  // namespace tether::brine
