#include "tether/brine/value.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
#include <ostream>

#include "brine/value_access.hpp"
#include "tether/brine/utf8.hpp"

namespace tether::brine {

std::string_view type_name(Type t) noexcept {
  switch (t) {
    case Type::kNone: return "NoneType";
    case Type::kBool: return "bool";
    case Type::kInt: return "int";
    case Type::kFloat: return "float";
    case Type::kComplex: return "complex";
    case Type::kBytes: return "bytes";
    case Type::kStr: return "str";
    case Type::kTuple: return "tuple";
    case Type::kFrozenSet: return "frozenset";
    case Type::kSlice: return "slice";
    case Type::kEllipsis: return "ellipsis";
    case Type::kNotImplemented: return "NotImplementedType";
    case Type::kObject: return "object";
  }
  return "?";
}

Object::~Object() = default;

namespace {

std::string checked_utf8(std::string s) {
  if (auto bad = find_invalid_utf8(s)) {
    throw UsageError(fmt::format("brine str: text is not valid UTF-8 (byte 0x{:02x} at offset {})",
                                 static_cast<unsigned char>(s[*bad]), *bad));
  }
  return s;
}

std::uint64_t mix(std::uint64_t h, std::uint64_t v) noexcept {
  // boost-style combine with a 64-bit golden-ratio constant.
  return h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
}

std::uint64_t double_key(double d) noexcept {
  if (d == 0.0) d = 0.0;  // -0.0 == 0.0: same hash
  return std::bit_cast<std::uint64_t>(d);
}

bool double_eq(double a, double b) noexcept {
  return a == b || std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b);
}

/// Set equality of two duplicate-free member lists. Sorting (not hashing) keeps the worst case
/// at O(n log n) whatever a hostile peer chooses as members.
bool same_members(const Value::Tuple& a, const Value::Tuple& b) {
  if (a.size() != b.size()) return false;
  if (a.size() <= 8) {
    for (const Value& x : a) {
      bool found = false;
      for (const Value& y : b) {
        if (x == y) {
          found = true;
          break;
        }
      }
      if (!found) return false;
    }
    return true;
  }
  const auto sa = detail::sorted_members(a);
  const auto sb = detail::sorted_members(b);
  for (std::size_t i = 0; i < sa.size(); ++i) {
    if (detail::total_order(*sa[i], *sb[i]) != 0) return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------- construction

Value::Value(BigInt i) {
  if (auto small = i.to_int64()) {
    v_.emplace<kIntIdx>(*small);
  } else {
    v_.emplace<kBigIdx>(std::move(i));
  }
}

Value::Value(const char* s) : v_(detail::StrRep{checked_utf8(std::string(s))}) {}
Value::Value(std::string s) : v_(detail::StrRep{checked_utf8(std::move(s))}) {}
Value::Value(std::string_view s) : v_(detail::StrRep{checked_utf8(std::string(s))}) {}

Value Value::ellipsis() noexcept {
  Value v;
  v.v_.emplace<kEllipsisIdx>();
  return v;
}

Value Value::not_implemented() noexcept {
  Value v;
  v.v_.emplace<kNotImplementedIdx>();
  return v;
}

Value Value::tuple(Tuple items) noexcept {
  Value v;
  v.v_.emplace<kTupleIdx>(std::move(items));
  return v;
}

Value Value::frozenset(Tuple members) {
  for (const Value& m : members) {
    if (!detail::is_hashable(m)) {
      throw UsageError("brine frozenset: member " + m.repr(200) + " is unhashable");
    }
  }
  detail::dedupe_members(members);
  return ValueAccess::frozenset_unchecked(std::move(members));
}

Value ValueAccess::frozenset_unchecked(Value::Tuple members) {
  Value v;
  v.v_.emplace<Value::kFrozenSetIdx>(detail::FrozenSetRep{std::move(members)});
  return v;
}

Value Value::slice(Value start, Value stop, Value step) {
  Value v;
  v.v_.emplace<kSliceIdx>(std::make_unique<Slice>(Slice{std::move(start), std::move(stop), std::move(step)}));
  return v;
}

Value Value::object(std::shared_ptr<const Object> obj) {
  if (!obj) throw UsageError("brine::Value::object: null Object");
  Value v;
  v.v_.emplace<kObjectIdx>(std::move(obj));
  return v;
}

namespace detail {

namespace {
std::uint64_t double_order_key(double d) noexcept {
  if (d == 0.0) d = 0.0;  // -0.0 == 0.0
  return std::bit_cast<std::uint64_t>(d);
}
template <class T>
int cmp3(const T& a, const T& b) noexcept {
  return a < b ? -1 : (b < a ? 1 : 0);
}
}  // namespace

std::vector<const Value*> sorted_members(const Value::Tuple& members) {
  std::vector<const Value*> out;
  out.reserve(members.size());
  for (const Value& m : members) out.push_back(&m);
  std::sort(out.begin(), out.end(), [](const Value* x, const Value* y) { return total_order(*x, *y) < 0; });
  return out;
}

int total_order(const Value& a, const Value& b) {
  const auto& ra = ValueAccess::rep(a);
  const auto& rb = ValueAccess::rep(b);
  if (ra.index() != rb.index()) return cmp3(ra.index(), rb.index());
  switch (ra.index()) {
    case ValueAccess::kBoolIdx:
      return cmp3(std::get<ValueAccess::kBoolIdx>(ra), std::get<ValueAccess::kBoolIdx>(rb));
    case ValueAccess::kIntIdx:
      return cmp3(std::get<ValueAccess::kIntIdx>(ra), std::get<ValueAccess::kIntIdx>(rb));
    case ValueAccess::kBigIdx:
      return cmp3(std::get<ValueAccess::kBigIdx>(ra), std::get<ValueAccess::kBigIdx>(rb));
    case ValueAccess::kFloatIdx:
      return cmp3(double_order_key(std::get<ValueAccess::kFloatIdx>(ra)),
                  double_order_key(std::get<ValueAccess::kFloatIdx>(rb)));
    case ValueAccess::kComplexIdx: {
      const auto x = std::get<ValueAccess::kComplexIdx>(ra);
      const auto y = std::get<ValueAccess::kComplexIdx>(rb);
      if (int c = cmp3(double_order_key(x.real()), double_order_key(y.real()))) return c;
      return cmp3(double_order_key(x.imag()), double_order_key(y.imag()));
    }
    case ValueAccess::kBytesIdx:
      return cmp3(std::get<ValueAccess::kBytesIdx>(ra).view(), std::get<ValueAccess::kBytesIdx>(rb).view());
    case ValueAccess::kStrIdx:
      return cmp3(std::get<ValueAccess::kStrIdx>(ra).text, std::get<ValueAccess::kStrIdx>(rb).text);
    case ValueAccess::kTupleIdx: {
      const auto& x = std::get<ValueAccess::kTupleIdx>(ra);
      const auto& y = std::get<ValueAccess::kTupleIdx>(rb);
      for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
        if (int c = total_order(x[i], y[i])) return c;
      }
      return cmp3(x.size(), y.size());
    }
    case ValueAccess::kFrozenSetIdx: {
      // Order-independent: compare the sorted member lists.
      const auto& x = std::get<ValueAccess::kFrozenSetIdx>(ra).members;
      const auto& y = std::get<ValueAccess::kFrozenSetIdx>(rb).members;
      if (x.size() != y.size()) return cmp3(x.size(), y.size());
      const auto sx = sorted_members(x);
      const auto sy = sorted_members(y);
      for (std::size_t i = 0; i < sx.size(); ++i) {
        if (int c = total_order(*sx[i], *sy[i])) return c;
      }
      return 0;
    }
    case ValueAccess::kSliceIdx: {
      const Slice& x = std::get<ValueAccess::kSliceIdx>(ra).get();
      const Slice& y = std::get<ValueAccess::kSliceIdx>(rb).get();
      if (int c = total_order(x.start, y.start)) return c;
      if (int c = total_order(x.stop, y.stop)) return c;
      return total_order(x.step, y.step);
    }
    case ValueAccess::kObjectIdx:
      return cmp3(reinterpret_cast<std::uintptr_t>(std::get<ValueAccess::kObjectIdx>(ra).get()),
                  reinterpret_cast<std::uintptr_t>(std::get<ValueAccess::kObjectIdx>(rb).get()));
    default: return 0;  // None, Ellipsis, NotImplemented
  }
}

bool is_hashable(const Value& v) noexcept {
  if (v.is_slice()) return false;
  if (v.is_tuple()) {
    for (const Value& m : v.as_tuple()) {
      if (!is_hashable(m)) return false;
    }
  }
  return true;
}

void dedupe_members(Value::Tuple& members) {
  if (members.size() < 2) return;
  std::size_t out = 0;
  if (members.size() <= 8) {
    for (std::size_t i = 0; i < members.size(); ++i) {
      bool dup = false;
      for (std::size_t j = 0; j < out; ++j) {
        if (members[j] == members[i]) {
          dup = true;
          break;
        }
      }
      if (!dup) {
        if (out != i) members[out] = std::move(members[i]);
        ++out;
      }
    }
  } else {
    // Stable sort of indices by value: each run of equal values starts with its first
    // occurrence, which is the one kept. O(n log n) comparisons in the worst case.
    std::vector<std::size_t> idx(members.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    std::stable_sort(idx.begin(), idx.end(),
                     [&](std::size_t x, std::size_t y) { return total_order(members[x], members[y]) < 0; });
    std::vector<bool> keep(members.size(), false);
    for (std::size_t k = 0; k < idx.size(); ++k) {
      if (k == 0 || total_order(members[idx[k - 1]], members[idx[k]]) != 0) keep[idx[k]] = true;
    }
    for (std::size_t i = 0; i < members.size(); ++i) {
      if (!keep[i]) continue;
      if (out != i) members[out] = std::move(members[i]);
      ++out;
    }
  }
  members.resize(out);
}

}  // namespace detail

// ---------------------------------------------------------------- inspection

Type Value::type() const noexcept {
  static constexpr Type kByIndex[] = {Type::kNone,           Type::kBool,      Type::kInt,   Type::kInt,
                                      Type::kFloat,          Type::kComplex,   Type::kBytes, Type::kStr,
                                      Type::kTuple,          Type::kFrozenSet, Type::kSlice, Type::kEllipsis,
                                      Type::kNotImplemented, Type::kObject};
  return kByIndex[v_.index()];
}

bool Value::is_dumpable() const noexcept {
  switch (v_.index()) {
    case kObjectIdx: return false;
    case kTupleIdx:
      for (const Value& m : std::get<kTupleIdx>(v_)) {
        if (!m.is_dumpable()) return false;
      }
      return true;
    case kFrozenSetIdx:
      for (const Value& m : std::get<kFrozenSetIdx>(v_).members) {
        if (!m.is_dumpable()) return false;
      }
      return true;
    case kSliceIdx: {
      const Slice& s = std::get<kSliceIdx>(v_).get();
      return s.start.is_dumpable() && s.stop.is_dumpable() && s.step.is_dumpable();
    }
    default: return true;
  }
}

void Value::type_mismatch(Type expected) const {
  throw ValueTypeError(
      expected, type(),
      fmt::format("expected {}, got {} ({})", type_name(expected), type_name(type()), repr(80)));
}

bool Value::as_bool() const {
  if (!is_bool()) type_mismatch(Type::kBool);
  return std::get<kBoolIdx>(v_);
}

std::int64_t Value::as_int64() const {
  if (v_.index() == kIntIdx) return std::get<kIntIdx>(v_);
  if (v_.index() == kBigIdx) throw IntRangeError("int " + repr(80) + " does not fit in 64 bits");
  type_mismatch(Type::kInt);
}

BigInt Value::as_big_int() const {
  if (v_.index() == kIntIdx) return BigInt(std::get<kIntIdx>(v_));
  if (v_.index() == kBigIdx) return std::get<kBigIdx>(v_);
  type_mismatch(Type::kInt);
}

double Value::as_double() const {
  if (!is_float()) type_mismatch(Type::kFloat);
  return std::get<kFloatIdx>(v_);
}

std::complex<double> Value::as_complex() const {
  if (!is_complex()) type_mismatch(Type::kComplex);
  return std::get<kComplexIdx>(v_);
}

const Bytes& Value::as_bytes() const {
  if (!is_bytes()) type_mismatch(Type::kBytes);
  return std::get<kBytesIdx>(v_);
}

const std::string& Value::as_str() const {
  if (!is_str()) type_mismatch(Type::kStr);
  return std::get<kStrIdx>(v_).text;
}

const Value::Tuple& Value::as_tuple() const {
  if (!is_tuple()) type_mismatch(Type::kTuple);
  return std::get<kTupleIdx>(v_);
}

const Value::Tuple& Value::as_frozenset() const {
  if (!is_frozenset()) type_mismatch(Type::kFrozenSet);
  return std::get<kFrozenSetIdx>(v_).members;
}

const Slice& Value::as_slice() const {
  if (!is_slice()) type_mismatch(Type::kSlice);
  return std::get<kSliceIdx>(v_).get();
}

const std::shared_ptr<const Object>& Value::as_object() const {
  if (!is_object()) type_mismatch(Type::kObject);
  return std::get<kObjectIdx>(v_);
}

Value::Tuple Value::take_tuple() && {
  if (!is_tuple()) type_mismatch(Type::kTuple);
  Tuple t = std::move(std::get<kTupleIdx>(v_));
  v_.emplace<kNoneIdx>();
  return t;
}

Bytes Value::take_bytes() && {
  if (!is_bytes()) type_mismatch(Type::kBytes);
  Bytes b = std::move(std::get<kBytesIdx>(v_));
  v_.emplace<kNoneIdx>();
  return b;
}

std::string Value::take_str() && {
  if (!is_str()) type_mismatch(Type::kStr);
  std::string s = std::move(std::get<kStrIdx>(v_).text);
  v_.emplace<kNoneIdx>();
  return s;
}

// ---------------------------------------------------------------- equality and hash

bool operator==(const Value& a, const Value& b) {
  const std::size_t i = a.v_.index();
  if (i != b.v_.index()) return false;
  switch (i) {
    case Value::kNoneIdx:
    case Value::kEllipsisIdx:
    case Value::kNotImplementedIdx: return true;
    case Value::kBoolIdx: return std::get<Value::kBoolIdx>(a.v_) == std::get<Value::kBoolIdx>(b.v_);
    case Value::kIntIdx: return std::get<Value::kIntIdx>(a.v_) == std::get<Value::kIntIdx>(b.v_);
    case Value::kBigIdx: return std::get<Value::kBigIdx>(a.v_) == std::get<Value::kBigIdx>(b.v_);
    case Value::kFloatIdx:
      return double_eq(std::get<Value::kFloatIdx>(a.v_), std::get<Value::kFloatIdx>(b.v_));
    case Value::kComplexIdx: {
      auto x = std::get<Value::kComplexIdx>(a.v_);
      auto y = std::get<Value::kComplexIdx>(b.v_);
      return double_eq(x.real(), y.real()) && double_eq(x.imag(), y.imag());
    }
    case Value::kBytesIdx: return std::get<Value::kBytesIdx>(a.v_) == std::get<Value::kBytesIdx>(b.v_);
    case Value::kStrIdx: return std::get<Value::kStrIdx>(a.v_).text == std::get<Value::kStrIdx>(b.v_).text;
    case Value::kTupleIdx: return std::get<Value::kTupleIdx>(a.v_) == std::get<Value::kTupleIdx>(b.v_);
    case Value::kFrozenSetIdx:
      return same_members(std::get<Value::kFrozenSetIdx>(a.v_).members,
                          std::get<Value::kFrozenSetIdx>(b.v_).members);
    case Value::kSliceIdx:
      return std::get<Value::kSliceIdx>(a.v_).get() == std::get<Value::kSliceIdx>(b.v_).get();
    case Value::kObjectIdx: return std::get<Value::kObjectIdx>(a.v_) == std::get<Value::kObjectIdx>(b.v_);
  }
  return false;
}

std::size_t Value::hash() const noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull + v_.index();
  switch (v_.index()) {
    case kNoneIdx:
    case kEllipsisIdx:
    case kNotImplementedIdx: break;
    case kBoolIdx: h = mix(h, std::get<kBoolIdx>(v_) ? 1 : 0); break;
    case kIntIdx: h = mix(h, static_cast<std::uint64_t>(std::get<kIntIdx>(v_))); break;
    case kBigIdx: h = mix(h, std::get<kBigIdx>(v_).hash()); break;
    case kFloatIdx: h = mix(h, double_key(std::get<kFloatIdx>(v_))); break;
    case kComplexIdx:
      h = mix(h, double_key(std::get<kComplexIdx>(v_).real()));
      h = mix(h, double_key(std::get<kComplexIdx>(v_).imag()));
      break;
    case kBytesIdx: h = mix(h, std::hash<std::string_view>{}(std::get<kBytesIdx>(v_).view())); break;
    case kStrIdx: h = mix(h, std::hash<std::string_view>{}(std::get<kStrIdx>(v_).text)); break;
    case kTupleIdx:
      for (const Value& m : std::get<kTupleIdx>(v_)) h = mix(h, m.hash());
      break;
    case kFrozenSetIdx: {
      // Order-independent: sum of member hashes, each scrambled.
      std::uint64_t sum = 0;
      for (const Value& m : std::get<kFrozenSetIdx>(v_).members) sum += mix(0x51ed27, m.hash());
      h = mix(h, sum);
      break;
    }
    case kSliceIdx: {
      const Slice& s = std::get<kSliceIdx>(v_).get();
      h = mix(mix(mix(h, s.start.hash()), s.stop.hash()), s.step.hash());
      break;
    }
    case kObjectIdx: h = mix(h, reinterpret_cast<std::uintptr_t>(std::get<kObjectIdx>(v_).get())); break;
  }
  return static_cast<std::size_t>(h);
}

std::ostream& operator<<(std::ostream& os, const Value& v) { return os << v.repr(4096); }

}  // namespace tether::brine
