// Encoding: one pass to size the output exactly, one pass to write it through a raw pointer.
#include <fmt/format.h>

#include <array>
#include <cstring>

#include "brine/value_access.hpp"
#include "tether/base/endian.hpp"
#include "tether/brine/codec.hpp"

namespace tether::brine {

namespace {

using VA = ValueAccess;

constexpr std::uint64_t kU32Max = 0xFFFFFFFFull;

unsigned decimal_digits(std::uint64_t v) noexcept {
  unsigned n = 1;
  while (v >= 10000) {
    v /= 10000;
    n += 4;
  }
  if (v >= 1000) return n + 3;
  if (v >= 100) return n + 2;
  if (v >= 10) return n + 1;
  return n;
}

std::uint64_t magnitude(std::int64_t i) noexcept {
  return i < 0 ? ~static_cast<std::uint64_t>(i) + 1 : static_cast<std::uint64_t>(i);
}

constexpr auto kDigitPairs = [] {
  std::array<std::uint8_t, 200> t{};
  for (std::size_t i = 0; i < 100; ++i) {
    t[2 * i] = static_cast<std::uint8_t>('0' + i / 10);
    t[2 * i + 1] = static_cast<std::uint8_t>('0' + i % 10);
  }
  return t;
}();

bool is_immediate(std::int64_t i) noexcept { return i >= tag::kImmMin && i <= tag::kImmMax; }

void check_u32(std::size_t n, const char* what) {
  if (n > kU32Max) {
    throw UsageError(fmt::format("brine cannot encode a {} of length {} (the limit is 2^32-1)", what, n));
  }
}

std::size_t bytes_size(std::size_t n) {
  if (n <= 4) return 1 + n;
  if (n < 256) return 2 + n;
  check_u32(n, "bytes/str");
  return 5 + n;
}

std::size_t tuple_header_size(std::size_t n) {
  if (n <= 4) return 1;
  if (n < 256) return 2;
  check_u32(n, "tuple");
  return 5;
}

std::size_t size_of(const Value& v);

std::size_t seq_size(const Value::Tuple& items) {
  std::size_t n = tuple_header_size(items.size());
  for (const Value& item : items) n += size_of(item);
  return n;
}

std::size_t size_of(const Value& v) {
  const VA::Rep& r = VA::rep(v);
  switch (r.index()) {
    case VA::kNoneIdx:
    case VA::kBoolIdx:
    case VA::kEllipsisIdx:
    case VA::kNotImplementedIdx: return 1;
    case VA::kIntIdx: {
      const std::int64_t i = std::get<VA::kIntIdx>(r);
      if (is_immediate(i)) return 1;
      return 2 + decimal_digits(magnitude(i)) + (i < 0 ? 1 : 0);
    }
    case VA::kBigIdx: {
      const std::size_t n = std::get<VA::kBigIdx>(r).decimal_size();
      if (n < 256) return 2 + n;
      check_u32(n, "int");
      return 5 + n;
    }
    case VA::kFloatIdx: return 9;
    case VA::kComplexIdx: return 17;
    case VA::kBytesIdx: return bytes_size(std::get<VA::kBytesIdx>(r).size());
    case VA::kStrIdx: return 1 + bytes_size(std::get<VA::kStrIdx>(r).text.size());
    case VA::kTupleIdx: return seq_size(std::get<VA::kTupleIdx>(r));
    case VA::kFrozenSetIdx: return 1 + seq_size(std::get<VA::kFrozenSetIdx>(r).members);
    case VA::kSliceIdx: {
      const Slice& s = std::get<VA::kSliceIdx>(r).get();
      return 2 + size_of(s.start) + size_of(s.stop) + size_of(s.step);
    }
    case VA::kObjectIdx:
      throw UsageError("brine cannot encode " + v.repr(200) +
                       ": object references must be boxed by the rpc layer first");
  }
  return 0;
}

std::uint8_t* put_bytes(const void* data, std::size_t n, std::uint8_t* out) noexcept {
  if (n == 0) {
    *out++ = tag::kEmptyBytes;
    return out;
  }
  if (n <= 4) {
    *out++ = static_cast<std::uint8_t>(tag::kBytes1 + n - 1);
  } else if (n < 256) {
    *out++ = tag::kBytesL1;
    *out++ = static_cast<std::uint8_t>(n);
  } else {
    *out++ = tag::kBytesL4;
    store_be32(out, static_cast<std::uint32_t>(n));
    out += 4;
  }
  std::memcpy(out, data, n);
  return out + n;
}

std::uint8_t* put_tuple_header(std::size_t n, std::uint8_t* out) noexcept {
  if (n == 0) {
    *out++ = tag::kEmptyTuple;
  } else if (n <= 4) {
    *out++ = static_cast<std::uint8_t>(tag::kTup1 + n - 1);
  } else if (n < 256) {
    *out++ = tag::kTupL1;
    *out++ = static_cast<std::uint8_t>(n);
  } else {
    *out++ = tag::kTupL4;
    store_be32(out, static_cast<std::uint32_t>(n));
    out += 4;
  }
  return out;
}

std::uint8_t* put_int64(std::int64_t i, std::uint8_t* out) noexcept {
  if (is_immediate(i)) {
    *out++ = static_cast<std::uint8_t>(i + tag::kImmBias);
    return out;
  }
  std::uint64_t m = magnitude(i);
  const unsigned digits = decimal_digits(m);
  const unsigned len = digits + (i < 0 ? 1 : 0);
  *out++ = tag::kIntL1;
  *out++ = static_cast<std::uint8_t>(len);
  if (i < 0) *out = '-';
  std::uint8_t* end = out + len;
  std::uint8_t* p = end;
  // Two digits per division.
  while (m >= 100) {
    const std::size_t pair = static_cast<std::size_t>(m % 100) * 2;
    m /= 100;
    *--p = kDigitPairs[pair + 1];
    *--p = kDigitPairs[pair];
  }
  if (m >= 10) {
    const std::size_t pair = static_cast<std::size_t>(m) * 2;
    *--p = kDigitPairs[pair + 1];
    *--p = kDigitPairs[pair];
  } else {
    *--p = static_cast<std::uint8_t>('0' + m);
  }
  return end;
}

std::uint8_t* put_double(std::uint8_t tag_byte, double d, std::uint8_t* out) noexcept {
  *out++ = tag_byte;
  std::uint64_t bits;
  std::memcpy(&bits, &d, 8);
  store_be64(out, bits);
  return out + 8;
}

std::uint8_t* put(const Value& v, std::uint8_t* out) {
  const VA::Rep& r = VA::rep(v);
  switch (r.index()) {
    case VA::kNoneIdx: *out++ = tag::kNone; return out;
    case VA::kBoolIdx: *out++ = std::get<VA::kBoolIdx>(r) ? tag::kTrue : tag::kFalse; return out;
    case VA::kEllipsisIdx: *out++ = tag::kEllipsis; return out;
    case VA::kNotImplementedIdx: *out++ = tag::kNotImplemented; return out;
    case VA::kIntIdx: return put_int64(std::get<VA::kIntIdx>(r), out);
    case VA::kBigIdx: {
      const BigInt& b = std::get<VA::kBigIdx>(r);
      const std::size_t n = b.decimal_size();
      if (n < 256) {
        *out++ = tag::kIntL1;
        *out++ = static_cast<std::uint8_t>(n);
      } else {
        *out++ = tag::kIntL4;
        store_be32(out, static_cast<std::uint32_t>(n));
        out += 4;
      }
      b.write_decimal(reinterpret_cast<char*>(out));
      return out + n;
    }
    case VA::kFloatIdx: return put_double(tag::kFloat, std::get<VA::kFloatIdx>(r), out);
    case VA::kComplexIdx: {
      const auto c = std::get<VA::kComplexIdx>(r);
      out = put_double(tag::kComplex, c.real(), out);
      std::uint64_t bits;
      const double imag = c.imag();
      std::memcpy(&bits, &imag, 8);
      store_be64(out, bits);
      return out + 8;
    }
    case VA::kBytesIdx: {
      const Bytes& b = std::get<VA::kBytesIdx>(r);
      return put_bytes(b.data(), b.size(), out);
    }
    case VA::kStrIdx: {
      const std::string& s = std::get<VA::kStrIdx>(r).text;
      *out++ = tag::kUnicode;
      return put_bytes(s.data(), s.size(), out);
    }
    case VA::kTupleIdx: {
      const Value::Tuple& t = std::get<VA::kTupleIdx>(r);
      out = put_tuple_header(t.size(), out);
      for (const Value& item : t) out = put(item, out);
      return out;
    }
    case VA::kFrozenSetIdx: {
      const Value::Tuple& m = std::get<VA::kFrozenSetIdx>(r).members;
      *out++ = tag::kFrozenSet;
      out = put_tuple_header(m.size(), out);
      for (const Value& item : m) out = put(item, out);
      return out;
    }
    case VA::kSliceIdx: {
      const Slice& s = std::get<VA::kSliceIdx>(r).get();
      *out++ = tag::kSlice;
      *out++ = static_cast<std::uint8_t>(tag::kTup1 + 2);
      out = put(s.start, out);
      out = put(s.stop, out);
      return put(s.step, out);
    }
    case VA::kObjectIdx: size_of(v);  // throws the explanatory UsageError
  }
  return out;
}

}  // namespace

std::size_t encoded_size(const Value& v) { return size_of(v); }

std::uint8_t* encode(const Value& v, std::uint8_t* out) { return put(v, out); }

Bytes dump(const Value& v) {
  std::string s;
  dump_into(v, s);
  return Bytes(std::move(s));
}

void dump_into(const Value& v, std::string& out) {
  const std::size_t n = size_of(v);
  const std::size_t old = out.size();
  out.resize(old + n);
  put(v, reinterpret_cast<std::uint8_t*>(out.data() + old));
}

void dump_into(const Value& v, Buffer& out) {
  const std::size_t n = size_of(v);
  out.ensure_writable(n);
  put(v, out.begin_write());
  out.has_written(n);
}

void dump_int_slow(std::int64_t i, Buffer& out) {
  // At most INT_L1 + length + sign + 19 digits.
  out.ensure_writable(22);
  std::uint8_t* begin = out.begin_write();
  out.has_written(static_cast<std::size_t>(put_int64(i, begin) - begin));
}

void dump_str(std::string_view utf8, Buffer& out) {
  const std::size_t n = 1 + bytes_size(utf8.size());
  out.ensure_writable(n);
  std::uint8_t* p = out.begin_write();
  *p++ = tag::kUnicode;
  put_bytes(utf8.data(), utf8.size(), p);
  out.has_written(n);
}

void dump_none(Buffer& out) {
  constexpr std::uint8_t kNone = tag::kNone;
  out.append(&kNone, 1);
}

void dump_tuple_header_slow(std::size_t n, Buffer& out) {
  const std::size_t size = tuple_header_size(n);
  out.ensure_writable(size);
  put_tuple_header(n, out.begin_write());
  out.has_written(size);
}

}  // namespace tether::brine
