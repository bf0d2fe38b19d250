#pragma once
/// \file Brine encoding and decoding (wire spec §3), byte-identical to RPyC 5.3's brine.
///
/// Pure functions on memory: no I/O, no loop, no thread affinity. Decoding is bounded by
/// Limits and throws ProtocolError (naming the tag and offset) on anything malformed or over
/// a limit; it never allocates more than the remaining input can justify and never recurses
/// deeper than Limits::max_depth.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "tether/base/buffer.hpp"
#include "tether/base/bytes.hpp"
#include "tether/base/export.hpp"
#include "tether/brine/big_int.hpp"
#include "tether/brine/value.hpp"

namespace tether::brine {

/// The tag bytes (wire spec §3.1).
namespace tag {
inline constexpr std::uint8_t kNone = 0x00;
inline constexpr std::uint8_t kEmptyBytes = 0x01;  // brine's TAG_EMPTY_STR
inline constexpr std::uint8_t kEmptyTuple = 0x02;
inline constexpr std::uint8_t kTrue = 0x03;
inline constexpr std::uint8_t kFalse = 0x04;
inline constexpr std::uint8_t kNotImplemented = 0x05;
inline constexpr std::uint8_t kEllipsis = 0x06;
inline constexpr std::uint8_t kUnicode = 0x08;
inline constexpr std::uint8_t kBytes1 = 0x0A;  // ..kBytes4 = 0x0D: 1-4 raw bytes follow
inline constexpr std::uint8_t kBytes4 = 0x0D;
inline constexpr std::uint8_t kBytesL1 = 0x0E;
inline constexpr std::uint8_t kBytesL4 = 0x0F;
inline constexpr std::uint8_t kTup1 = 0x10;  // ..kTup4 = 0x13: 1-4 values follow
inline constexpr std::uint8_t kTup4 = 0x13;
inline constexpr std::uint8_t kTupL1 = 0x14;
inline constexpr std::uint8_t kTupL4 = 0x15;
inline constexpr std::uint8_t kIntL1 = 0x16;
inline constexpr std::uint8_t kIntL4 = 0x17;
inline constexpr std::uint8_t kFloat = 0x18;
inline constexpr std::uint8_t kSlice = 0x19;
inline constexpr std::uint8_t kFrozenSet = 0x1A;
inline constexpr std::uint8_t kComplex = 0x1B;
/// Immediate ints: tag = value + kImmBias for kImmMin ≤ value ≤ kImmMax (tags 0x20..0xEF).
inline constexpr int kImmBias = 0x50;
inline constexpr int kImmMin = -48;
inline constexpr int kImmMax = 159;
}  // namespace tag

/// Bounds on what load() accepts. Python's brine has none; every one of these is a defence
/// against hostile peers. Violations throw ProtocolError.
struct Limits {
  /// Maximum nesting of containers (tuple, frozenset, slice); the outermost is level 1.
  std::size_t max_depth = 64;
  /// Maximum elements in one tuple or frozenset.
  std::size_t max_container_len = std::size_t{1} << 22;
  /// Maximum values decoded in total (every scalar and container counts one).
  std::size_t max_total_values = std::size_t{1} << 22;
  /// Maximum encoded size of one value, in bytes.
  std::size_t max_total_bytes = std::size_t{1} << 30;
  /// Maximum decimal digits of an int (Python's default int/str conversion limit).
  std::size_t max_int_digits = kDefaultMaxIntDigits;
  /// Memory budget of one decoded value, counted while decoding: every scalar and container
  /// costs kDecodedValueCost bytes, every str, bytes and int body its length on top. A few
  /// bytes that expand into much memory (a compressed 4 KB frame holding a tuple of millions
  /// of small ints) stop here instead of costing hundreds of MiB. The default leaves room for
  /// a bytes value as large as the channel's 64 MiB payload limit plus 16 MiB of structure
  /// (262 144 values). What decoding holds at most is about twice the budget.
  std::size_t max_decoded_bytes = std::size_t{80} << 20;
};

/// What each decoded scalar or container counts against Limits::max_decoded_bytes: the size
/// of a value node (Value, or the rpc layer's Any) with its share of the container around it.
inline constexpr std::size_t kDecodedValueCost = 64;

/// Exact size of v's encoding. Throws UsageError if v is not dumpable (holds an Object) or a
/// length does not fit brine's u32 fields.
TETHER_API std::size_t encoded_size(const Value& v);
/// Writes v's encoding at `out`, which must have room for encoded_size(v) bytes; returns the
/// end of what was written. Same exceptions as encoded_size, thrown before writing anything
/// only if encoded_size was called first (dump/dump_into always do).
TETHER_API std::uint8_t* encode(const Value& v, std::uint8_t* out);

/// RPyC 5.3 brine.dump(v).
TETHER_API Bytes dump(const Value& v);
/// Appends dump(v) to `out` with one size computation and at most one reallocation.
TETHER_API void dump_into(const Value& v, std::string& out);
/// Appends dump(v) to the readable bytes of `out` (leaving its head-room intact).
TETHER_API void dump_into(const Value& v, Buffer& out);
/// Appends the header of a tuple of n items; the caller then appends exactly n encoded items
/// (with dump_into or more headers). Encodes a tuple whose items live elsewhere without
/// building it: the bytes are those dump() gives for the whole tuple. Throws UsageError if n
/// does not fit brine's u32 length.
TETHER_API void dump_tuple_header_slow(std::size_t n, Buffer& out);
inline void dump_tuple_header(std::size_t n, Buffer& out) {
  if (n >= 1 && n <= 4) {
    const auto t = static_cast<std::uint8_t>(tag::kTup1 + n - 1);
    out.append(&t, 1);
  } else {
    dump_tuple_header_slow(n, out);
  }
}
/// Leaves without a Value: the bytes dump_into(Value(i)), dump_into(Value(utf8)) and
/// dump_into(Value()) give. `utf8` must be valid UTF-8 (not checked here).
TETHER_API void dump_int_slow(std::int64_t i, Buffer& out);
inline void dump_int(std::int64_t i, Buffer& out) {
  if (i >= tag::kImmMin && i <= tag::kImmMax) {
    const auto t = static_cast<std::uint8_t>(i + tag::kImmBias);
    out.append(&t, 1);
  } else {
    dump_int_slow(i, out);
  }
}
TETHER_API void dump_str(std::string_view utf8, Buffer& out);
TETHER_API void dump_none(Buffer& out);

/// The result of load_prefix: the value and how many input bytes it used.
struct LoadResult {
  Value value;
  std::size_t consumed = 0;
};

/// Decodes exactly one value occupying all of `data`; trailing bytes are a ProtocolError.
/// `data` is only read during the call (bytes and str payloads are copied into the Value).
TETHER_API Value load(std::span<const std::uint8_t> data, const Limits& limits = {});
inline Value load(std::string_view data, const Limits& limits = {}) {
  return load(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()),
              limits);
}
inline Value load(const Bytes& data, const Limits& limits = {}) { return load(data.span(), limits); }

/// Decodes one value from the start of `data` and reports how many bytes it used; trailing
/// bytes are left alone (Python's behaviour).
TETHER_API LoadResult load_prefix(std::span<const std::uint8_t> data, const Limits& limits = {});

}  // namespace tether::brine
