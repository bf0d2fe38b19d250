#pragma once
/// \file Any and Netref: the values the RPC layer moves.
///
/// An `Any` is what a remote call takes and returns: a plain brine value (passed by value),
/// a tuple some of whose members are references, a local C++ object exported to the peer
/// (passed by reference), or a Netref to an object that lives in the peer.
///
/// A `Netref` is a handle to a remote object. Copies share one proxy; when the last copy goes
/// away a DEL is queued for the peer (never sent from the destructor itself). A Netref that
/// outlives its connection fails every operation with Disconnected("connection closed").
/// Netrefs are bound to their connection's loop thread.

#include <coroutine>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/brine/value.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task.hpp"

namespace tether {

class Object;
class Any;
class AsyncResult;

namespace rpc::detail {
class ConnectionCore;
class MessageWriter;
class MessageDecoder;
struct NetrefState;
struct PendingCall;
}  // namespace rpc::detail

/// Keyword arguments in call order: (name, value) pairs.
using Kwargs = std::vector<std::pair<std::string, Any>>;

class TETHER_API Netref {
 public:
  Netref() noexcept = default;
  explicit Netref(std::shared_ptr<rpc::detail::NetrefState> s) noexcept : s_(std::move(s)) {}

  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(s_); }
  /// The peer's name for the object's type, e.g. "builtins.list" or "__main__.Store".
  [[nodiscard]] const std::string& type_name() const;
  /// (type name, class id, instance id) as the owner sent it.
  [[nodiscard]] const brine::Value& id_pack() const;
  /// False once the connection is closed.
  [[nodiscard]] bool connected() const noexcept;
  /// True when both refer to the same remote object (same id_pack, same connection).
  [[nodiscard]] bool same_object(const Netref& other) const noexcept;

  // Attribute access (GETATTR/SETATTR/DELATTR): subject to the peer's access policy.
  Task<Any> getattr(std::string name) const;
  Task<Netref> attr(std::string name) const;  ///< getattr that must return a reference
  Task<void> setattr(std::string name, Any value) const;
  Task<void> delattr(std::string name) const;

  // Calls: one round trip each. callattr is GETATTR + CALL in one request (CALLATTR).
  // (Overloads rather than default arguments: Any is incomplete here, and clang instantiates a
  // defaulted std::vector<Any>{} where it is written.)
  Task<Any> call() const;
  Task<Any> call(std::vector<Any> args) const;
  Task<Any> call(std::vector<Any> args, Kwargs kwargs) const;
  Task<Any> callattr(std::string name) const;
  Task<Any> callattr(std::string name, std::vector<Any> args) const;
  Task<Any> callattr(std::string name, std::vector<Any> args, Kwargs kwargs) const;
  /// Pipelined forms: the request is queued at once; the result is awaited later.
  AsyncResult call_async() const;
  AsyncResult call_async(std::vector<Any> args) const;
  AsyncResult call_async(std::vector<Any> args, Kwargs kwargs) const;
  AsyncResult callattr_async(std::string name) const;
  AsyncResult callattr_async(std::string name, std::vector<Any> args) const;
  AsyncResult callattr_async(std::string name, std::vector<Any> args, Kwargs kwargs) const;

  // Protocol operations.
  Task<std::string> str() const;
  Task<std::string> repr() const;
  Task<std::int64_t> hash() const;
  Task<std::vector<std::string>> dir() const;
  /// CMP with op "__eq__", "__ne__", "__lt__", "__le__", "__gt__" or "__ge__".
  Task<Any> compare(Any other, std::string op) const;
  Task<bool> equals(Any other) const;

  // Python's data model through safe dunders (CALLATTR).
  Task<std::int64_t> len() const;
  Task<Any> getitem(Any key) const;
  Task<void> setitem(Any key, Any value) const;
  Task<void> delitem(Any key) const;
  Task<bool> contains(Any item) const;
  /// Python truth: __bool__, else __len__ != 0, else true.
  Task<bool> truth() const;
  /// iter(obj) on the peer.
  Task<Netref> iter() const;
  /// next(it): the next item, or nullopt at StopIteration.
  Task<std::optional<Any>> next() const;
  /// Every item of an iterable: __iter__ then BUFFITER in batches of `batch` (RPyC's buffiter).
  Task<std::vector<Any>> to_list(std::size_t batch = 128) const;
  /// INSPECT: the dunders the object's owner advertises for it (RPyC's method list).
  Task<std::vector<std::string>> inspect() const;
  /// INSTANCECHECK: is the object named by `other_id_pack` an instance of this (a class)?
  Task<bool> instance_check(brine::Value other_id_pack) const;
  /// `with obj:` — __enter__ / CTXEXIT.
  Task<Any> enter() const;
  Task<Any> exit(Any exc_value) const;
  /// isinstance check by type name, without a round trip ("builtins.list", "list").
  [[nodiscard]] bool is_instance_of(std::string_view type_name) const;

  /// Typed call of the object itself (CALL): co_await fn.call<std::int64_t>(1, 2). Arguments
  /// convert with to_any (a C++ callable becomes a callable the peer can call back); one
  /// std::vector<Any> argument is the argument list itself. The result converts to R.
  template <class R = Any, class... A>
  Task<R> call(A&&... args) const;
  /// Typed call of a method by name, in one request (CALLATTR):
  /// co_await root.callattr<std::int64_t>("add", 1, 2). Arguments as for call<R>.
  template <class R = Any, class... A>
  Task<R> callattr(std::string name, A&&... args) const;

  [[nodiscard]] const std::shared_ptr<rpc::detail::NetrefState>& state() const noexcept { return s_; }

 private:
  std::shared_ptr<rpc::detail::NetrefState> s_;
};

class TETHER_API Any {
 public:
  enum class Kind { kValue, kTuple, kLocal, kRemote };

  Any() = default;                           ///< None
  Any(brine::Value v) : v_(std::move(v)) {}  // NOLINT(google-explicit-constructor)
  template <class T>
    requires std::is_constructible_v<brine::Value, T&&> &&
        (!std::is_same_v<std::decay_t<T>, Any>)&&(!std::is_same_v<std::decay_t<T>, brine::Value>)Any(T&& v)
        : v_(brine::Value(std::forward<T>(v))) {}             // NOLINT(google-explicit-constructor)
    Any(std::shared_ptr<Object> obj) : v_(std::move(obj)) {}  // NOLINT(google-explicit-constructor)
    Any(Netref ref) : v_(std::move(ref)) {}                   // NOLINT(google-explicit-constructor)

    /// A tuple; collapses to a plain brine tuple when every member is a plain value.
    static Any tuple(std::vector<Any> items);

    [[nodiscard]] Kind kind() const noexcept { return static_cast<Kind>(v_.index()); }
    [[nodiscard]] bool is_value() const noexcept { return v_.index() == 0; }
    [[nodiscard]] bool is_none() const noexcept;
    [[nodiscard]] bool is_tuple() const noexcept;  ///< plain or reference-carrying tuple
    [[nodiscard]] bool is_local() const noexcept { return v_.index() == 2; }
    [[nodiscard]] bool is_netref() const noexcept { return v_.index() == 3; }

    /// The plain value; throws TypeError-like UsageError for references.
    [[nodiscard]] const brine::Value& value() const;
    /// Members of a tuple (plain or not), as Anys.
    [[nodiscard]] std::vector<Any> items() const;
    /// items() that moves the members out (the Any becomes None).
    [[nodiscard]] std::vector<Any> take_items() &&;
    [[nodiscard]] const std::shared_ptr<Object>& object() const;
    [[nodiscard]] const Netref& netref() const;

    /// The value as T, converted here and now (as from_any<T> does, without a request):
    /// `std::int64_t n = result.as<std::int64_t>()`. A remote object (a Python list arrives by
    /// reference) needs requests to convert: UsageError, naming what to use instead. Defined in
    /// rpc/convert.hpp.
    template <class T>
    [[nodiscard]] T as() const;

    /// Python-like repr for messages ("<netref builtins.list>" for references).
    [[nodiscard]] std::string repr() const;

   private:
    friend class rpc::detail::MessageWriter;
    friend class rpc::detail::MessageDecoder;
    std::variant<brine::Value, std::vector<Any>, std::shared_ptr<Object>, Netref> v_;
};

/// Builds an argument vector. Use it instead of a braced list inside coroutines: g++ 12
/// miscompiles braced initializer lists in co_await expressions.
template <class... A>
std::vector<Any> make_args(A&&... a) {
  std::vector<Any> v;
  v.reserve(sizeof...(A));
  (v.emplace_back(std::forward<A>(a)), ...);
  return v;
}

/// The pending result of an asynchronous request (RPyC's AsyncResult). Copies share state.
/// Awaiting it yields the value or throws the remote exception / Timeout / Disconnected.
class TETHER_API AsyncResult {
 public:
  AsyncResult() = default;
  explicit AsyncResult(std::shared_ptr<rpc::detail::PendingCall> p) : p_(std::move(p)) {}

  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(p_); }
  [[nodiscard]] bool ready() const noexcept;
  [[nodiscard]] bool has_error() const noexcept;
  [[nodiscard]] bool expired() const noexcept;
  /// The value of a ready result (rethrows its error; UsageError if not ready).
  [[nodiscard]] const Any& value() const;
  /// Waits until ready (or expired) and returns the value.
  Task<Any> wait() const;
  class Awaiter;
  /// `co_await r` waits like wait() without a coroutine frame of its own. Awaiting an rvalue
  /// (`co_await std::move(r)`, or a temporary) moves the value out when nothing else shares
  /// the result, instead of copying it.
  Awaiter operator co_await() const&;
  Awaiter operator co_await() &&;
  /// fn runs on the loop thread once the result is ready (at once if it already is).
  void add_callback(std::function<void(const AsyncResult&)> fn) const;
  /// After d the result expires: waiters get Timeout and a late reply is dropped.
  void set_expiry(Duration d) const;
  [[nodiscard]] std::uint64_t seq() const noexcept;

 private:
  std::shared_ptr<rpc::detail::PendingCall> p_;
};

class TETHER_API AsyncResult::Awaiter {
 public:
  explicit Awaiter(std::shared_ptr<rpc::detail::PendingCall> p) noexcept : p_(std::move(p)) {}
  Awaiter(const Awaiter&) = delete;
  Awaiter& operator=(const Awaiter&) = delete;
  ~Awaiter();
  [[nodiscard]] bool await_ready() const;
  void await_suspend(std::coroutine_handle<> h);
  Any await_resume();

 private:
  std::shared_ptr<rpc::detail::PendingCall> p_;
  detail::WaitList::Node node_;
  bool resumed_ = false;
};

}  // namespace tether

// Typed conversions (to_any / from_any) and Netref::call<R> / callattr<R>.
#include "tether/rpc/convert.hpp"
