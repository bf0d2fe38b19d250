// Decoding: a bounded recursive-descent reader over a span.
#include <fmt/format.h>

#include <cstring>

#include "brine/value_access.hpp"
#include "tether/base/endian.hpp"
#include "tether/brine/codec.hpp"
#include "tether/brine/reader.hpp"
#include "tether/brine/utf8.hpp"

namespace tether::brine {

namespace {

using VA = ValueAccess;

const char* tag_name(std::uint8_t t) noexcept {
  static constexpr const char* kNames[] = {"NONE",        "EMPTY_STR",
                                           "EMPTY_TUPLE", "TRUE",
                                           "FALSE",       "NOT_IMPLEMENTED",
                                           "ELLIPSIS",    "unused tag",
                                           "UNICODE",     "LONG (py2, unused)",
                                           "STR1",        "STR2",
                                           "STR3",        "STR4",
                                           "STR_L1",      "STR_L4",
                                           "TUP1",        "TUP2",
                                           "TUP3",        "TUP4",
                                           "TUP_L1",      "TUP_L4",
                                           "INT_L1",      "INT_L4",
                                           "FLOAT",       "SLICE",
                                           "FSET",        "COMPLEX"};
  if (t < sizeof kNames / sizeof kNames[0]) return kNames[t];
  if (t >= 0x20 && t <= 0xEF) return "IMM_INT";
  return "unused tag";
}

}  // namespace

// ------------------------------------------------------------------------------------- Reader

void Reader::count_value(std::size_t at, std::uint8_t t) {
  if (++values_ > limits_.max_total_values) {
    if (values_from_budget_) {
      fail(at, t,
           fmt::format("more than {} values: their decoded memory would exceed {} bytes (Limits::max_decoded_bytes)",
                       limits_.max_total_values, limits_.max_decoded_bytes));
    }
    fail(at, t,
         fmt::format("more than {} values in total (Limits::max_total_values)", limits_.max_total_values));
  }
}

void Reader::count_body(std::size_t n, std::size_t at, std::uint8_t t) {
  body_bytes_ += n;
  if (decoded_bytes() > limits_.max_decoded_bytes) {
    fail(at, t,
         fmt::format("decoded value would take more than {} bytes of memory (Limits::max_decoded_bytes)",
                     limits_.max_decoded_bytes));
  }
}

void Reader::read(Value& out, std::size_t depth) {
  if (p_ == end_) short_input(offset(), "a tag", 1, "value");
  const std::size_t at = offset();
  const std::uint8_t t = *p_++;
  count_value(at, t);
  VA::Rep& r = VA::rep(out);
  if (t >= 0x20 && t <= 0xEF) {
    r.emplace<VA::kIntIdx>(static_cast<std::int64_t>(t) - tag::kImmBias);
    return;
  }
  switch (t) {
    case tag::kNone: r.emplace<VA::kNoneIdx>(); return;
    case tag::kEmptyBytes: r.emplace<VA::kBytesIdx>(); return;
    case tag::kEmptyTuple: r.emplace<VA::kTupleIdx>(); return;
    case tag::kTrue: r.emplace<VA::kBoolIdx>(true); return;
    case tag::kFalse: r.emplace<VA::kBoolIdx>(false); return;
    case tag::kNotImplemented: r.emplace<VA::kNotImplementedIdx>(); return;
    case tag::kEllipsis: r.emplace<VA::kEllipsisIdx>(); return;
    case tag::kUnicode: out = VA::str_unchecked(std::string(str_body(at))); return;
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case tag::kBytesL1:
    case tag::kBytesL4: {
      std::string_view b = bytes_body(t, at);
      r.emplace<VA::kBytesIdx>(b.data(), b.size());
      return;
    }
    case 0x10:
    case 0x11:
    case 0x12:
    case 0x13:
      read_tuple(r.emplace<VA::kTupleIdx>(), static_cast<std::size_t>(t - tag::kTup1) + 1, depth, at, t);
      return;
    case tag::kTupL1: {
      const std::size_t n = take_u8(at, t);
      read_tuple(r.emplace<VA::kTupleIdx>(), n, depth, at, t);
      return;
    }
    case tag::kTupL4: {
      const std::size_t n = take_u32(at, t);
      read_tuple(r.emplace<VA::kTupleIdx>(), n, depth, at, t);
      return;
    }
    case tag::kIntL1:
    case tag::kIntL4: read_int(out, t, at); return;
    case tag::kFloat: {
      need(8, at, t, "an 8-byte double");
      r.emplace<VA::kFloatIdx>(take_double());
      return;
    }
    case tag::kComplex: {
      need(16, at, t, "two 8-byte doubles");
      const double re = take_double();
      const double im = take_double();
      r.emplace<VA::kComplexIdx>(re, im);
      return;
    }
    case tag::kSlice: read_slice(out, depth, at); return;
    case tag::kFrozenSet: read_frozenset(out, depth, at); return;
    default: fail(at, t, "unknown tag");
  }
}

std::optional<std::size_t> Reader::try_tuple_slow(std::size_t depth) {
  if (p_ == end_) return std::nullopt;
  const Mark m = mark();
  const std::size_t at = offset();
  const std::uint8_t t = *p_++;
  std::size_t n;
  if (t == tag::kEmptyTuple) {
    count_value(at, t);
    return 0;
  }
  if (t >= tag::kTup1 && t <= tag::kTup4) {
    count_value(at, t);
    n = static_cast<std::size_t>(t - tag::kTup1) + 1;
  } else if (t == tag::kTupL1) {
    count_value(at, t);
    n = take_u8(at, t);
  } else if (t == tag::kTupL4) {
    count_value(at, t);
    n = take_u32(at, t);
  } else {
    rewind(m);
    return std::nullopt;
  }
  check_tuple(n, depth, at, t);
  return n;
}

std::optional<std::int64_t> Reader::try_int64_slow() {
  if (p_ == end_) return std::nullopt;
  const std::uint8_t t = *p_;
  const bool immediate = t >= 0x20 && t <= 0xEF;
  if (!immediate && t != tag::kIntL1 && t != tag::kIntL4) return std::nullopt;
  if (t == tag::kIntL1 && remaining() >= 2 && values_ < limits_.max_total_values) {
    // INT_L1 holding up to 18 digits within the limits: parsed here, as read_int would.
    const std::size_t n = p_[1];
    const bool negative = n > 0 && remaining() > 2 && p_[2] == '-';
    const std::size_t digits = n - (negative ? 1 : 0);
    if (n <= limits_.max_int_digits + 1 && n <= remaining() - 2 && digits >= 1 && digits <= 18) {
      const std::uint8_t* d = p_ + 2 + (negative ? 1 : 0);
      // Unsigned: a non-digit makes `v` garbage (the result is then discarded) but never overflows.
      std::uint64_t v = 0;
      bool ok = true;
      for (std::size_t i = 0; i < digits; ++i) {
        const unsigned c = static_cast<unsigned>(d[i]) - '0';
        ok &= c <= 9;
        v = v * 10 + c;
      }
      if (ok) {
        p_ += 2 + n;
        ++values_;
        const auto value = static_cast<std::int64_t>(v);  // at most 18 digits: fits
        return negative ? -value : value;
      }
    }
  }
  // Everything else (and every error) through the full decoder.
  const Mark m = mark();
  Value v;
  read(v, 0);
  if (v.is_int64()) return v.as_int64();
  rewind(m);
  return std::nullopt;
}

std::optional<std::string_view> Reader::try_str() {
  if (p_ == end_ || *p_ != tag::kUnicode) return std::nullopt;
  const std::size_t at = offset();
  ++p_;
  count_value(at, tag::kUnicode);
  return str_body(at);
}

void Reader::expect_end() const {
  const std::size_t used = offset();
  const std::size_t size = static_cast<std::size_t>(real_end_ - begin_);
  if (used != size) {
    throw ProtocolError(fmt::format("brine: {} trailing byte{} after the value (which ends at offset {})",
                                    size - used, size - used == 1 ? "" : "s", used));
  }
}

void Reader::fail(std::size_t at, std::uint8_t t, std::string_view what) {
  throw ProtocolError(fmt::format("brine: {} (tag 0x{:02x} {} at offset {})", what, t, tag_name(t), at));
}

/// Input ended (or the max_total_bytes window ended) before `n` more bytes.
void Reader::short_input(std::size_t at, std::string_view what, std::size_t n, std::string_view of) const {
  if (static_cast<std::size_t>(real_end_ - p_) >= n) {
    throw ProtocolError(
        fmt::format("brine: value at offset {} is larger than {} bytes (Limits::max_total_bytes)", at,
                    limits_.max_total_bytes));
  }
  throw ProtocolError(fmt::format("brine: truncated {}: needs {} ({} byte{}) at offset {}, {} remain", of,
                                  what, n, n == 1 ? "" : "s", offset(), real_end_ - p_));
}

void Reader::need(std::size_t n, std::size_t at, std::uint8_t t, std::string_view what) const {
  if (remaining() < n) short_input(at, what, n, fmt::format("{} at offset {}", tag_name(t), at));
}

std::size_t Reader::take_u8(std::size_t at, std::uint8_t t) {
  need(1, at, t, "a 1-byte length");
  return *p_++;
}

std::size_t Reader::take_u32(std::size_t at, std::uint8_t t) {
  need(4, at, t, "a 4-byte length");
  const std::uint32_t n = load_be32(p_);
  p_ += 4;
  return n;
}

double Reader::take_double() noexcept {
  const std::uint64_t bits = load_be64(p_);
  p_ += 8;
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

/// The payload of a bytes tag (01, 0A–0F) whose tag byte has been consumed.
std::string_view Reader::bytes_body(std::uint8_t t, std::size_t at) {
  std::size_t n;
  if (t == tag::kEmptyBytes) return {};
  if (t >= tag::kBytes1 && t <= tag::kBytes4) {
    n = static_cast<std::size_t>(t - tag::kBytes1) + 1;
  } else if (t == tag::kBytesL1) {
    n = take_u8(at, t);
  } else {
    n = take_u32(at, t);
  }
  need(n, at, t, "its declared bytes");
  count_body(n, at, t);
  std::string_view b(reinterpret_cast<const char*>(p_), n);
  p_ += n;
  return b;
}

/// The text of a UNICODE value whose tag byte (at `at`) has been consumed, UTF-8 checked.
std::string_view Reader::str_body(std::size_t at) {
  need(1, at, tag::kUnicode, "a nested bytes value");
  const std::uint8_t inner = *p_;
  if (inner != tag::kEmptyBytes && (inner < tag::kBytes1 || inner > tag::kBytesL4)) {
    fail(at, tag::kUnicode,
         fmt::format("UNICODE must wrap a bytes value, found tag 0x{:02x} {}", inner, tag_name(inner)));
  }
  ++p_;
  std::string_view text = bytes_body(inner, offset() - 1);
  if (auto bad = find_invalid_utf8(text)) {
    fail(at, tag::kUnicode,
         fmt::format("invalid UTF-8 in str (byte 0x{:02x} at text offset {})",
                     static_cast<unsigned char>(text[*bad]), *bad));
  }
  return text;
}

void Reader::enter(std::size_t depth, std::size_t at, std::uint8_t t) const {
  if (depth + 1 > limits_.max_depth) {
    fail(at, t, fmt::format("containers nested deeper than {} (Limits::max_depth)", limits_.max_depth));
  }
}

void Reader::check_tuple(std::size_t n, std::size_t depth, std::size_t at, std::uint8_t t) const {
  enter(depth, at, t);
  if (n > limits_.max_container_len) {
    fail(at, t,
         fmt::format("{} elements, more than {} (Limits::max_container_len)", n, limits_.max_container_len));
  }
  // Every element takes at least one byte: refuse before reserving anything.
  if (n > remaining()) {
    short_input(at, fmt::format("{} elements", n), n, fmt::format("{} at offset {}", tag_name(t), at));
  }
  if (n > limits_.max_total_values - values_) {
    if (values_from_budget_) {
      fail(at, t,
           fmt::format("{} elements would take more than {} bytes of memory decoded (Limits::max_decoded_bytes)",
                       n, limits_.max_decoded_bytes));
    }
    fail(at, t,
         fmt::format("{} elements would exceed {} values in total (Limits::max_total_values)", n,
                     limits_.max_total_values));
  }
}

void Reader::read_tuple(Value::Tuple& items, std::size_t n, std::size_t depth, std::size_t at,
                        std::uint8_t t) {
  check_tuple(n, depth, at, t);
  items.reserve(n);
  for (std::size_t i = 0; i < n; ++i) read(items.emplace_back(), depth + 1);
}

void Reader::read_int(Value& out, std::uint8_t t, std::size_t at) {
  const std::size_t n = t == tag::kIntL1 ? take_u8(at, t) : take_u32(at, t);
  if (n > limits_.max_int_digits + 1) {
    fail(at, t,
         fmt::format("int of {} characters, more than {} digits (Limits::max_int_digits)", n,
                     limits_.max_int_digits));
  }
  need(n, at, t, "its declared digits");
  std::string_view text(reinterpret_cast<const char*>(p_), n);
  p_ += n;
  VA::Rep& r = VA::rep(out);
  // Fast path: up to 18 digits always fit int64.
  const bool negative = !text.empty() && text.front() == '-';
  const std::string_view digits = negative ? text.substr(1) : text;
  if (!digits.empty() && digits.size() <= 18) {
    std::int64_t v = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') fail(at, t, "int text is not -?[0-9]+");
      v = v * 10 + (c - '0');
    }
    r.emplace<VA::kIntIdx>(negative ? -v : v);
    return;
  }
  count_body(n, at, t);
  auto parsed = BigInt::parse(text, limits_.max_int_digits);
  if (!parsed) {
    switch (parsed.error()) {
      case IntParseError::kEmpty: fail(at, t, "int text has no digits");
      case IntParseError::kSyntax: fail(at, t, "int text is not -?[0-9]+");
      case IntParseError::kTooManyDigits:
        fail(at, t,
             fmt::format("int has more than {} digits (Limits::max_int_digits)", limits_.max_int_digits));
    }
  }
  out = Value(std::move(parsed).value());  // canonical: int64 when it fits
}
void Reader::read_slice(Value& out, std::size_t depth, std::size_t at) {
  enter(depth, at, tag::kSlice);
  Value inner;
  read(inner, depth + 1);
  if (!inner.is_tuple() || inner.as_tuple().size() != 3) {
    fail(at, tag::kSlice, fmt::format("SLICE must wrap a 3-tuple, found {}", inner.repr(80)));
  }
  Value::Tuple t = std::move(inner).take_tuple();
  out = Value::slice(std::move(t[0]), std::move(t[1]), std::move(t[2]));
}
void Reader::read_frozenset(Value& out, std::size_t depth, std::size_t at) {
  enter(depth, at, tag::kFrozenSet);
  Value inner;
  read(inner, depth + 1);
  if (!inner.is_tuple()) {
    fail(at, tag::kFrozenSet, fmt::format("FSET must wrap a tuple, found {}", inner.repr(80)));
  }
  Value::Tuple members = std::move(inner).take_tuple();
  for (const Value& m : members) {
    if (!detail::is_hashable(m)) {
      fail(at, tag::kFrozenSet, fmt::format("frozenset member {} is unhashable", m.repr(80)));
    }
  }
  detail::dedupe_members(members);
  out = VA::frozenset_unchecked(std::move(members));
}

LoadResult load_prefix(std::span<const std::uint8_t> data, const Limits& limits) {
  Reader d(data, limits);
  LoadResult r;
  d.read(r.value, 0);
  r.consumed = d.offset();
  return r;
}

Value load(std::span<const std::uint8_t> data, const Limits& limits) {
  Reader d(data, limits);
  Value v;
  d.read(v, 0);
  d.expect_end();
  return v;
}

}  // namespace tether::brine
