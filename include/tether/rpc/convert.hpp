#pragma once
/// \file Conversions between C++ types and Any, used by typed calls (Netref::call<R>, callattr<R>) and by
/// typed service bindings.
///
///   to_any(x)          C++ -> Any, synchronous (containers become tuples, by value)
///   from_any<T>(any)   Any -> C++, a Task: a Python list/dict/set/iterable arrives by
///                      reference and is pulled with further requests (__iter__ + BUFFITER,
///                      __getitem__), which needs the loop.
///
/// Supported: bool, every integer type (range-checked: OverflowError), float/double, std::string,
/// Bytes, brine::Value, Any, Netref, std::optional<T>, std::vector<T>, std::map / unordered_map,
/// std::tuple / std::pair. A mismatch throws TypeError naming the expected and actual types.

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/brine/value.hpp"
#include "tether/loop/task.hpp"
#include "tether/rpc/py_error.hpp"
// any.hpp includes this header at its end; including it here makes either order work.
#include "tether/rpc/any.hpp"

namespace tether {

class Any;
class Netref;
class Object;

namespace detail {

/// The proxy a local object forwards to (an object lent onward from another connection), or null.
TETHER_API const Netref* forwarded_netref(const Any& a) noexcept;

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_map : std::false_type {};
template <class K, class V, class C, class A>
struct is_map<std::map<K, V, C, A>> : std::true_type {};
template <class K, class V, class H, class E, class A>
struct is_map<std::unordered_map<K, V, H, E, A>> : std::true_type {};
template <class T>
struct is_tuple_like : std::false_type {};
template <class... T>
struct is_tuple_like<std::tuple<T...>> : std::true_type {};
template <class A, class B>
struct is_tuple_like<std::pair<A, B>> : std::true_type {};

/// Python-facing name of the C++ type T, for TypeError messages ("int", "str", "list[int]").
template <class T>
std::string py_type_name();

/// Throws TypeError("expected <want>, got <actual repr type>").
[[noreturn]] TETHER_API void conversion_error(const std::string& want, const Any& got);
[[noreturn]] TETHER_API void overflow_error(const std::string& want, const brine::Value& got);
}  // namespace detail

// Any must be complete for the templates below: this header is included at the end of any.hpp.
template <class T>
Task<T> from_any(Any a);

// ---- Extension point (added with the typed bindings: rpc/bind.hpp, rpc/class.hpp) ----------
/// Specialise Converter<T> to teach to_any / from_any a C++ type. A specialisation provides
///   static std::string py_name();        // Python-facing type name used in TypeError messages
///   static Any to_any(const T& x);        // C++ -> Any
///   static T from_any_now(const Any& a);  // Any -> C++, synchronous (throws PyError TypeError)
/// bind.hpp specialises it for std::function<R(A...)> (callbacks) and shared_ptr<Object
/// subclasses>; class.hpp for shared_ptr<T> of classes bound with tether::Class<T>. The
/// specialisation must be visible before the first conversion of its type (include the header
/// that declares it, or tether/tether.hpp).
template <class T>
struct Converter;
namespace detail {
template <class T>
concept HasConverter = requires(const Any& a) {
  Converter<T>::py_name();
  Converter<T>::from_any_now(a);
};
}  // namespace detail
// ---- end of extension point -----------------------------------------------------------------

namespace detail {

template <class T>
std::string py_type_name() {
  using U = std::remove_cvref_t<T>;
  if constexpr (HasConverter<U>) {  // extension point (see Converter)
    return Converter<U>::py_name();
  } else if constexpr (std::is_same_v<U, bool>) {
    return "bool";
  } else if constexpr (std::is_integral_v<U>) {
    return "int";
  } else if constexpr (std::is_floating_point_v<U>) {
    return "float";
  } else if constexpr (std::is_same_v<U, std::string>) {
    return "str";
  } else if constexpr (std::is_same_v<U, Bytes>) {
    return "bytes";
  } else if constexpr (is_optional<U>::value) {
    return "Optional[" + py_type_name<typename U::value_type>() + "]";
  } else if constexpr (is_vector<U>::value) {
    return "list[" + py_type_name<typename U::value_type>() + "]";
  } else if constexpr (is_map<U>::value) {
    return "dict[" + py_type_name<typename U::key_type>() + ", " + py_type_name<typename U::mapped_type>() +
           "]";
  } else if constexpr (is_tuple_like<U>::value) {
    return "tuple";
  } else if constexpr (std::is_same_v<U, Netref>) {
    return "object reference";
  } else {
    return "object";
  }
}

/// Synchronous part of the conversion: plain values only.
template <class T>
T value_as(const Any& a) {
  using U = std::remove_cvref_t<T>;
  if (!a.is_value()) conversion_error(py_type_name<U>(), a);
  const brine::Value& v = a.value();
  if constexpr (std::is_same_v<U, bool>) {
    if (!v.is_bool()) conversion_error("bool", a);
    return v.as_bool();
  } else if constexpr (std::is_integral_v<U>) {
    if (!v.is_int()) conversion_error("int", a);
    if (!v.is_int64()) {
      if constexpr (std::is_unsigned_v<U> && sizeof(U) == sizeof(std::uint64_t)) {
        // 2**63 .. 2**64-1 arrive as big ints (fix added with the typed bindings)
        if (auto u = v.as_big_int().to_uint64()) return static_cast<U>(*u);
      }
      overflow_error("int", v);
    }
    std::int64_t i = v.as_int64();
    if constexpr (std::is_unsigned_v<U>) {
      if (i < 0 || static_cast<std::uint64_t>(i) > std::numeric_limits<U>::max()) overflow_error("int", v);
    } else {
      if (i < std::numeric_limits<U>::min() || i > std::numeric_limits<U>::max()) overflow_error("int", v);
    }
    return static_cast<U>(i);
  } else if constexpr (std::is_floating_point_v<U>) {
    if (v.is_float()) return static_cast<U>(v.as_double());
    if (v.is_int())
      return static_cast<U>(v.is_int64() ? static_cast<double>(v.as_int64()) : v.as_big_int().to_double());
    conversion_error("float", a);
  } else if constexpr (std::is_same_v<U, std::string>) {
    if (!v.is_str()) conversion_error("str", a);
    return v.as_str();
  } else if constexpr (std::is_same_v<U, Bytes>) {
    if (!v.is_bytes()) conversion_error("bytes", a);
    return v.as_bytes();
  } else {
    static_assert(sizeof(U) == 0, "no conversion from Any to this type");
  }
}

TETHER_API Task<std::vector<Any>> sequence_items(Any a);
TETHER_API Task<std::vector<std::pair<Any, Any>>> mapping_items(Any a);

}  // namespace detail

namespace detail {
template <class Tup, std::size_t I = 0>
Task<void> fill_tuple(Tup& out, std::vector<Any>& items) {
  if constexpr (I < std::tuple_size_v<Tup>) {
    using E = std::tuple_element_t<I, Tup>;
    E e = co_await from_any<E>(std::move(items[I]));
    std::get<I>(out) = std::move(e);
    co_await fill_tuple<Tup, I + 1>(out, items);
  }
}
template <class Tup>
Task<Tup> tuple_from_items(std::vector<Any> items) {
  Tup out{};
  co_await fill_tuple<Tup>(out, items);
  co_return out;
}
}  // namespace detail

namespace detail {
/// A callable with one call signature: a lambda (capturing or not), a functor, a function
/// pointer or function. to_any lends it to the peer as a function (bind.hpp).
template <class U>
concept HasOneCallOperator = std::is_class_v<U> && requires { &U::operator(); };
template <class U>
concept IsFunctionOrPointer =
    std::is_function_v<U> || (std::is_pointer_v<U> && std::is_function_v<std::remove_pointer_t<U>>);
template <class U>
inline constexpr bool kAlwaysFalse = false;
/// Defined in bind.hpp (connection.hpp, service.hpp and class.hpp include it; a program that
/// lends a callable with only convert.hpp included gets an undefined reference to this).
template <class F>
std::shared_ptr<Object> make_callback_object(std::string name, F f);
}  // namespace detail

/// C++ -> Any. A callable becomes a function the peer can call (its signature deduced as for
/// Service::expose); a generic lambda cannot be (see the static_assert below).
template <class T>
Any to_any(T&& x) {
  using U = std::remove_cvref_t<T>;
  if constexpr (detail::HasConverter<U>) {  // extension point (see Converter)
    return Converter<U>::to_any(x);
  } else if constexpr (std::is_same_v<U, Any>) {
    return std::forward<T>(x);
  } else if constexpr (std::is_same_v<U, brine::Value> || std::is_same_v<U, Netref>) {
    return Any(std::forward<T>(x));
  } else if constexpr (std::is_convertible_v<U, std::shared_ptr<Object>>) {
    return Any(std::shared_ptr<Object>(std::forward<T>(x)));
  } else if constexpr (detail::is_optional<U>::value) {
    if (!x) return Any();
    return to_any(*std::forward<T>(x));
  } else if constexpr (detail::is_vector<U>::value && !std::is_same_v<U, std::vector<Any>>) {
    std::vector<Any> items;
    items.reserve(x.size());
    for (auto&& e : x) items.push_back(to_any(e));
    return Any::tuple(std::move(items));
  } else if constexpr (std::is_same_v<U, std::vector<Any>>) {
    return Any::tuple(std::forward<T>(x));
  } else if constexpr (detail::is_map<U>::value) {
    std::vector<Any> items;
    items.reserve(x.size());
    for (auto&& [k, v] : x) items.push_back(Any::tuple({to_any(k), to_any(v)}));
    return Any::tuple(std::move(items));
  } else if constexpr (detail::is_tuple_like<U>::value) {
    std::vector<Any> items;
    std::apply([&](auto&&... e) { (items.push_back(to_any(e)), ...); }, x);
    return Any::tuple(std::move(items));
  } else if constexpr (detail::HasOneCallOperator<U> || detail::IsFunctionOrPointer<std::decay_t<T>>) {
    return Any(detail::make_callback_object("function", std::decay_t<T>(std::forward<T>(x))));
  } else if constexpr (std::is_constructible_v<brine::Value, T&&>) {
    return Any(brine::Value(std::forward<T>(x)));
  } else {
    static_assert(detail::kAlwaysFalse<U>,
                  "tether::to_any: no conversion for this type. A generic lambda (auto parameters) "
                  "cannot be lent to the peer as a callable: give its parameters their types, or wrap "
                  "it in std::function<R(A...)>. Other types need a tether::Converter<T> "
                  "specialisation or a tether::Class<T> binding.");
    return Any();
  }
}

/// Any -> C++ (see the file comment).
template <class T>
Task<T> from_any(Any a) {
  using U = std::remove_cvref_t<T>;
  if constexpr (detail::HasConverter<U>) {  // extension point (see Converter)
    co_return Converter<U>::from_any_now(a);
  } else if constexpr (std::is_same_v<U, Any>) {
    co_return a;
  } else if constexpr (std::is_same_v<U, brine::Value>) {
    co_return a.value();
  } else if constexpr (std::is_same_v<U, Netref>) {
    // One of another connection's proxies that we lent the peer comes back as that proxy.
    if (a.is_local() && detail::forwarded_netref(a)) co_return *detail::forwarded_netref(a);
    if (!a.is_netref()) detail::conversion_error("object reference", a);
    co_return a.netref();
  } else if constexpr (detail::is_optional<U>::value) {
    if (a.is_none()) co_return U{};
    typename U::value_type inner = co_await from_any<typename U::value_type>(std::move(a));
    co_return U(std::move(inner));
  } else if constexpr (detail::is_vector<U>::value) {
    std::vector<Any> items = co_await detail::sequence_items(std::move(a));
    U out;
    out.reserve(items.size());
    for (auto& item : items) {
      typename U::value_type e = co_await from_any<typename U::value_type>(std::move(item));
      out.push_back(std::move(e));
    }
    co_return out;
  } else if constexpr (detail::is_map<U>::value) {
    std::vector<std::pair<Any, Any>> kv = co_await detail::mapping_items(std::move(a));
    U out;
    for (auto& p : kv) {
      typename U::key_type k = co_await from_any<typename U::key_type>(std::move(p.first));
      typename U::mapped_type v = co_await from_any<typename U::mapped_type>(std::move(p.second));
      out.emplace(std::move(k), std::move(v));
    }
    co_return out;
  } else if constexpr (detail::is_tuple_like<U>::value) {
    std::vector<Any> items = co_await detail::sequence_items(std::move(a));
    if (items.size() != std::tuple_size_v<U>) detail::conversion_error(detail::py_type_name<U>(), a);
    U out = co_await detail::tuple_from_items<U>(std::move(items));
    co_return out;
  } else {
    co_return detail::value_as<U>(a);
  }
}

namespace detail {
/// UsageError for Any::as<T>() of a value that needs requests to convert.
[[noreturn]] TETHER_API void remote_conversion_error(const Any& a, const std::string& target);
}  // namespace detail

template <class T>
T Any::as() const {
  using U = std::remove_cvref_t<T>;
  if constexpr (!std::is_same_v<U, Any> && !std::is_same_v<U, Netref>) {
    if (is_netref()) detail::remote_conversion_error(*this, detail::py_type_name<U>());
  }
  // from_any finishes without suspending unless it sends a request (a reference nested in a
  // tuple): run it here; if it would wait for the peer, cancel it and refuse.
  Task<U> t = from_any<U>(*this);
  detail::resume(t.handle());
  if (!t.done()) {
    t.reset();
    detail::remote_conversion_error(*this, detail::py_type_name<U>());
  }
  return t.take_result();
}

namespace detail {
/// Sends CALLATTR(self, name, args, kwargs) now; the reply is awaited under the connection's
/// sync_request_timeout (what Netref::callattr does, without its coroutine frame).
TETHER_API AsyncResult start_callattr(const Netref& self, std::string name, std::vector<Any> args,
                                      Kwargs kwargs);

/// The same with positional arguments that are plain values (kPlainArg), sent as one
/// (VALUE, tuple): no Any per argument, no vector. A large bytes argument may be moved out of
/// `args` (docs/rpc.md, "Large payloads").
TETHER_API AsyncResult start_callattr(const Netref& self, std::string_view name,
                                      std::span<brine::Value> args);

/// Arguments to_any turns into a plain brine::Value of their own (its last case): numbers,
/// text and bytes, unless a Converter says otherwise.
template <class A>
inline constexpr bool kPlainArg =
    !HasConverter<std::remove_cvref_t<A>> &&
    (std::is_arithmetic_v<std::remove_cvref_t<A>> || std::is_same_v<std::remove_cvref_t<A>, std::string> ||
     std::is_same_v<std::remove_cvref_t<A>, std::string_view> ||
     std::is_same_v<std::remove_cvref_t<A>, Bytes> || std::is_same_v<std::decay_t<A>, const char*>);

/// Results whose conversion never needs a round trip (from_any's synchronous cases).
template <class U>
inline constexpr bool kConvertsAtOnce =
    !HasConverter<U> &&
    (std::is_arithmetic_v<U> || std::is_same_v<U, std::string> || std::is_same_v<U, Bytes>);

template <class R>
Task<R> typed_callattr(AsyncResult pending) {
  Any result = co_await std::move(pending);
  if constexpr (std::is_same_v<R, Any>) {
    co_return result;
  } else if constexpr (kConvertsAtOnce<std::remove_cvref_t<R>>) {
    co_return value_as<R>(result);
  } else {
    R typed = co_await from_any<R>(std::move(result));
    co_return typed;
  }
}
}  // namespace detail

// Not a coroutine: the arguments are converted before it returns, so nothing dangles when
// the Task is awaited later.
namespace detail {
/// Sends CALL(self, args, kwargs) now; the reply is awaited under the sync_request_timeout.
TETHER_API AsyncResult start_call(const Netref& self, std::vector<Any> args, Kwargs kwargs);

/// True for one argument that is already the argument list (std::vector<Any>).
template <class... A>
inline constexpr bool kArgList = false;
template <class A>
inline constexpr bool kArgList<A> = std::is_same_v<std::remove_cvref_t<A>, std::vector<Any>>;

template <class... A>
std::vector<Any> argument_list(A&&... args) {
  if constexpr (kArgList<A...>) {
    return std::vector<Any>(std::forward<A>(args)...);
  } else {
    std::vector<Any> argv;
    argv.reserve(sizeof...(A));
    (argv.push_back(to_any(std::forward<A>(args))), ...);
    return argv;
  }
}
}  // namespace detail

template <class R, class... A>
Task<R> Netref::call(A&&... args) const {
  return detail::typed_callattr<R>(detail::start_call(*this, detail::argument_list(std::forward<A>(args)...), Kwargs{}));
}

template <class R, class... A>
Task<R> Netref::callattr(std::string name, A&&... args) const {
  if constexpr (sizeof...(A) > 0 && !detail::kArgList<A...> && (detail::kPlainArg<A> && ...)) {
    std::array<brine::Value, sizeof...(A)> argv{brine::Value(std::forward<A>(args))...};
    return detail::typed_callattr<R>(detail::start_callattr(*this, name, std::span<brine::Value>(argv)));
  } else {
    return detail::typed_callattr<R>(detail::start_callattr(
        *this, std::move(name), detail::argument_list(std::forward<A>(args)...), Kwargs{}));
  }
}

}  // namespace tether
