#pragma once
/// \file Value: one brine value, the immutable data RPyC passes by value.
///
/// The model mirrors the Python types brine can carry (wire spec §3): None, bool, int (any
/// size), float, complex, bytes, str, tuple, frozenset, slice, Ellipsis and NotImplemented.
/// Values are regular: copyable (deep copy), cheap to move (a moved-from Value is None),
/// comparable and hashable. They have no loop or thread affinity.

#include <complex>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "tether/base/bytes.hpp"
#include "tether/base/error.hpp"
#include "tether/base/export.hpp"
#include "tether/brine/big_int.hpp"

namespace tether::brine {

/// The kind of a Value. Both the int64 fast path and BigInt are kInt.
enum class Type : std::uint8_t {
  kNone,
  kBool,
  kInt,
  kFloat,
  kComplex,
  kBytes,
  kStr,
  kTuple,
  kFrozenSet,
  kSlice,
  kEllipsis,
  kNotImplemented,
  kObject,  ///< an upper-layer handle (see Object); never brine-encoded
};

/// The Python type name of `t` ("NoneType", "int", "str", "frozenset", "ellipsis", ...).
TETHER_API std::string_view type_name(Type t) noexcept;

/// Extension point for upper layers (the rpc layer's netrefs and exported-object handles):
/// a Value of Type::kObject holds a shared_ptr<const Object>. Brine cannot encode it —
/// dump() throws UsageError; the rpc layer boxes such values before encoding (§5). Objects
/// compare and hash by identity.
class TETHER_API Object {
 public:
  virtual ~Object();
  /// Text for Value::repr() (e.g. "<netref builtins.list 0x...>").
  [[nodiscard]] virtual std::string repr() const = 0;
};

/// An accessor was used on a Value of another type (Python's TypeError). Carries both types.
class TETHER_API ValueTypeError : public UsageError {
 public:
  ValueTypeError(Type expected, Type actual, const std::string& what)
      : UsageError(what), expected_(expected), actual_(actual) {}
  [[nodiscard]] Type expected() const noexcept { return expected_; }
  [[nodiscard]] Type actual() const noexcept { return actual_; }

 private:
  Type expected_;
  Type actual_;
};

/// An int does not fit the requested C++ integer type (Python's OverflowError).
class TETHER_API IntRangeError : public UsageError {
 public:
  explicit IntRangeError(const std::string& what) : UsageError(what) {}
};

class Value;
struct Slice;

namespace detail {
struct NoneRep {
  friend bool operator==(NoneRep, NoneRep) noexcept { return true; }
};
struct EllipsisRep {};
struct NotImplementedRep {};
/// A str's UTF-8 text (kept apart from Bytes so the variant tells them apart).
struct StrRep {
  std::string text;
};
struct FrozenSetRep {
  std::vector<Value> members;
};
/// Owns a Slice on the heap (Value is recursive); copies deeply. Never null except after
/// being moved from, which Value prevents from being observed.
class SliceBox {
 public:
  explicit SliceBox(std::unique_ptr<Slice> p) noexcept : p_(std::move(p)) {}
  SliceBox(const SliceBox& o);
  SliceBox& operator=(const SliceBox& o);
  SliceBox(SliceBox&&) noexcept = default;
  SliceBox& operator=(SliceBox&&) noexcept = default;
  ~SliceBox();
  [[nodiscard]] const Slice& get() const noexcept { return *p_; }

 private:
  std::unique_ptr<Slice> p_;
};
template <class T>
inline constexpr bool kIsCharType =
    std::is_same_v<T, char> || std::is_same_v<T, wchar_t> || std::is_same_v<T, char8_t> ||
    std::is_same_v<T, char16_t> || std::is_same_v<T, char32_t>;
}  // namespace detail

/// A brine value. See the file comment for the model; docs/brine.md for the Python mapping.
///
/// Construction: implicit from bool, integers (not char), floating point, std::complex,
/// const char* / std::string / std::string_view (str; the text must be valid UTF-8 or
/// UsageError is thrown), Bytes (bytes) and BigInt (int); factories for the rest.
/// Ints are canonical: an int that fits int64 is always held as int64.
class TETHER_API Value {
 public:
  using Tuple = std::vector<Value>;

  /// None.
  Value() noexcept = default;
  Value(std::nullptr_t) noexcept {}  // NOLINT: None
  /// True/False. Exactly bool: a pointer, a function pointer or a lambda (which converts to a
  /// function pointer, then to bool) does not become True behind the caller's back.
  template <class B>
    requires std::is_same_v<B, bool>
  Value(B b) noexcept : v_(b) {}  // NOLINT
  template <class I>
    requires(std::is_integral_v<I> && !std::is_same_v<I, bool> && !detail::kIsCharType<I>)
  Value(I i) {  // NOLINT
    constexpr bool kAlwaysFits = std::is_signed_v<I> || sizeof(I) < sizeof(std::int64_t);
    if (kAlwaysFits || static_cast<std::uint64_t>(i) <= static_cast<std::uint64_t>(INT64_MAX)) {
      v_.template emplace<std::int64_t>(static_cast<std::int64_t>(i));
    } else {
      v_.template emplace<BigInt>(BigInt::from_uint64(static_cast<std::uint64_t>(i)));
    }
  }
  template <std::floating_point F>
  Value(F f) noexcept : v_(static_cast<double>(f)) {}  // NOLINT
  Value(std::complex<double> c) noexcept : v_(c) {}    // NOLINT
  Value(BigInt i);                                     // NOLINT
  Value(const char* s);                                // NOLINT: str
  Value(std::string s);                                // NOLINT: str
  Value(std::string_view s);                           // NOLINT: str
  Value(Bytes b) noexcept : v_(std::move(b)) {}        // NOLINT: bytes
  /// Pointers other than const char* would silently become bool; refuse them.
  template <class T>
  Value(T*) = delete;

  Value(const Value&) = default;
  Value& operator=(const Value&) = default;
  /// The source is left None.
  Value(Value&& o) noexcept : v_(std::move(o.v_)) { o.v_.template emplace<detail::NoneRep>(); }
  Value& operator=(Value&& o) noexcept {
    if (this != &o) {
      v_ = std::move(o.v_);
      o.v_.template emplace<detail::NoneRep>();
    }
    return *this;
  }
  ~Value() = default;

  // ---- factories
  static Value none() noexcept { return {}; }
  static Value ellipsis() noexcept;
  static Value not_implemented() noexcept;
  static Value boolean(bool b) noexcept { return Value(b); }
  static Value integer(std::int64_t i) noexcept { return Value(i); }
  static Value integer(BigInt i) { return Value(std::move(i)); }
  static Value floating(double d) noexcept { return Value(d); }
  static Value complex(double real, double imag) noexcept { return Value(std::complex<double>(real, imag)); }
  /// bytes holding a copy of `s` / taking `b`.
  static Value bytes(std::string_view s) { return Value(Bytes(s)); }
  static Value bytes(Bytes b) noexcept { return Value(std::move(b)); }
  /// str from UTF-8 text; throws UsageError if `utf8` is not valid UTF-8.
  static Value str(std::string utf8) { return Value(std::move(utf8)); }
  static Value tuple(Tuple items) noexcept;
  static Value tuple(std::initializer_list<Value> items) { return tuple(Tuple(items)); }
  /// A tuple from its elements, each moved or converted in place (no initializer_list copy).
  template <class... A>
  static Value make_tuple(A&&... items) {
    Tuple t;
    t.reserve(sizeof...(A));
    (t.emplace_back(std::forward<A>(items)), ...);
    return tuple(std::move(t));
  }
  /// A frozenset. Duplicates (by Value equality) are dropped, keeping the first, so the
  /// remaining order is the given order. Throws UsageError for an unhashable member (a
  /// slice, or a tuple containing one), as Python would.
  static Value frozenset(Tuple members);
  static Value frozenset(std::initializer_list<Value> members) { return frozenset(Tuple(members)); }
  static Value slice(Value start, Value stop, Value step);
  /// An upper-layer handle (see Object); `obj` must not be null.
  static Value object(std::shared_ptr<const Object> obj);

  // ---- inspection
  [[nodiscard]] Type type() const noexcept;
  [[nodiscard]] bool is_none() const noexcept { return v_.index() == kNoneIdx; }
  [[nodiscard]] bool is_bool() const noexcept { return v_.index() == kBoolIdx; }
  [[nodiscard]] bool is_int() const noexcept { return v_.index() == kIntIdx || v_.index() == kBigIdx; }
  /// An int held as int64 (every int in int64's range is).
  [[nodiscard]] bool is_int64() const noexcept { return v_.index() == kIntIdx; }
  [[nodiscard]] bool is_big_int() const noexcept { return v_.index() == kBigIdx; }
  [[nodiscard]] bool is_float() const noexcept { return v_.index() == kFloatIdx; }
  [[nodiscard]] bool is_complex() const noexcept { return v_.index() == kComplexIdx; }
  [[nodiscard]] bool is_bytes() const noexcept { return v_.index() == kBytesIdx; }
  [[nodiscard]] bool is_str() const noexcept { return v_.index() == kStrIdx; }
  [[nodiscard]] bool is_tuple() const noexcept { return v_.index() == kTupleIdx; }
  [[nodiscard]] bool is_frozenset() const noexcept { return v_.index() == kFrozenSetIdx; }
  [[nodiscard]] bool is_slice() const noexcept { return v_.index() == kSliceIdx; }
  [[nodiscard]] bool is_ellipsis() const noexcept { return v_.index() == kEllipsisIdx; }
  [[nodiscard]] bool is_not_implemented() const noexcept { return v_.index() == kNotImplementedIdx; }
  [[nodiscard]] bool is_object() const noexcept { return v_.index() == kObjectIdx; }
  /// False iff an Object is reachable through tuples, frozensets or slices.
  [[nodiscard]] bool is_dumpable() const noexcept;

  // ---- accessors: throw ValueTypeError on the wrong type
  [[nodiscard]] bool as_bool() const;
  /// Throws IntRangeError for ints outside int64.
  [[nodiscard]] std::int64_t as_int64() const;
  /// Any int as a BigInt (copies).
  [[nodiscard]] BigInt as_big_int() const;
  [[nodiscard]] double as_double() const;
  [[nodiscard]] std::complex<double> as_complex() const;
  [[nodiscard]] const Bytes& as_bytes() const;
  /// The str's UTF-8 text.
  [[nodiscard]] const std::string& as_str() const;
  [[nodiscard]] const Tuple& as_tuple() const;
  /// Members in wire (or construction) order, without duplicates.
  [[nodiscard]] const Tuple& as_frozenset() const;
  [[nodiscard]] const Slice& as_slice() const;
  [[nodiscard]] const std::shared_ptr<const Object>& as_object() const;
  /// Moves the payload out (the Value becomes None); throw ValueTypeError on the wrong type.
  [[nodiscard]] Tuple take_tuple() &&;
  [[nodiscard]] Bytes take_bytes() &&;
  [[nodiscard]] std::string take_str() &&;

  /// Python-like repr text ("None", "(1, 'a', b'\\x00')", "frozenset({1, 2})", ...). Output
  /// longer than `max_chars` is cut and ends in "..." (for error messages). Non-ASCII str
  /// characters are escaped by an approximation of Python's isprintable().
  [[nodiscard]] std::string repr(std::size_t max_chars = SIZE_MAX) const;
  /// Consistent with operator==. Deterministic and not flooding-resistant: do not key
  /// unbounded tables on peer-chosen Values (tether's own decoder sorts instead of hashing).
  [[nodiscard]] std::size_t hash() const noexcept;

  /// Type-strict equality with Python semantics inside a type: True != 1, 1 != 1.0,
  /// b"a" != "a"; 0.0 == -0.0; a NaN equals a NaN with the same bits (so equality is
  /// reflexive); frozensets compare as sets (O(n log n), allocates for large ones); Objects
  /// by identity.
  friend TETHER_API bool operator==(const Value& a, const Value& b);

 private:
  friend class ValueAccess;  // the decoder's unchecked constructors (src/brine)

  struct UncheckedStr {};
  Value(UncheckedStr, std::string s) noexcept : v_(detail::StrRep{std::move(s)}) {}

  using Rep = std::variant<detail::NoneRep, bool, std::int64_t, BigInt, double, std::complex<double>, Bytes,
                           detail::StrRep, Tuple, detail::FrozenSetRep, detail::SliceBox, detail::EllipsisRep,
                           detail::NotImplementedRep, std::shared_ptr<const Object>>;
  static constexpr std::size_t kNoneIdx = 0, kBoolIdx = 1, kIntIdx = 2, kBigIdx = 3, kFloatIdx = 4,
                               kComplexIdx = 5, kBytesIdx = 6, kStrIdx = 7, kTupleIdx = 8, kFrozenSetIdx = 9,
                               kSliceIdx = 10, kEllipsisIdx = 11, kNotImplementedIdx = 12, kObjectIdx = 13;

  [[noreturn]] void type_mismatch(Type expected) const;

  Rep v_;
};

/// slice(start, stop, step); any Values (Python allows slice("a", b"b", (1,))).
struct Slice {
  Value start;
  Value stop;
  Value step;
  friend bool operator==(const Slice&, const Slice&) = default;
};

inline detail::SliceBox::SliceBox(const SliceBox& o) : p_(std::make_unique<Slice>(*o.p_)) {}
inline detail::SliceBox& detail::SliceBox::operator=(const SliceBox& o) {
  if (this != &o) p_ = std::make_unique<Slice>(*o.p_);
  return *this;
}
inline detail::SliceBox::~SliceBox() = default;

/// Writes v.repr() (gtest and logging).
TETHER_API std::ostream& operator<<(std::ostream& os, const Value& v);

}  // namespace tether::brine

template <>
struct std::hash<tether::brine::Value> {
  std::size_t operator()(const tether::brine::Value& v) const noexcept { return v.hash(); }
};
