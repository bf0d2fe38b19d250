#pragma once
/// \file Typed bindings: any C++ callable as an RPC function.
///
///   NativeFunction f = tether::bind_function("add", [](std::int64_t a, std::int64_t b) { return a + b; },
///                                            tether::arg_names("a", "b"));
///   ObjectPtr fn = tether::make_function_object("add", add);   // exported as "builtins.function"
///
/// What a binding does for each call (on the connection's loop thread):
///  1. merges positional and keyword arguments with Python's rules (keywords need parameter
///     names, see arg_names; a parameter of type std::optional<T> may be omitted and is then
///     nullopt). Mismatches raise Python's TypeErrors: "add() missing 1 required positional
///     argument: 'b'", "add() got an unexpected keyword argument 'x'", "add() takes 2 positional
///     arguments but 3 were given", "add() got multiple values for argument 'a'";
///  2. converts every argument with from_any (convert.hpp). A failed conversion raises TypeError
///     (or OverflowError) naming the signature: "add(a: int, b: int) -> int: argument 2:
///     expected int, got str". Python lists and dicts arrive by reference and are pulled with
///     further requests before the call;
///  3. calls the callable: directly; awaiting it if it returns Task<R>; or, for the blocking
///     variant (bind_blocking_function), on the loop's worker pool (run_in_worker) — the
///     arguments are converted on the loop thread first and destroyed there afterwards;
///  4. converts the result with to_any (void -> None). Exceptions propagate to the dispatcher,
///     which maps them to Python exceptions (PyError, std::invalid_argument -> ValueError ...).
///
/// Supported signatures: free functions, function pointers, lambdas and function objects with
/// one non-template operator(), std::function. Parameters may be taken by value, const&, or
/// && (the converted value is moved in). std::string_view and const char* parameters receive
/// text (valid for the call only). Parameters of type CallContext& (or any T& with a
/// ContextParam<T> specialisation, e.g. tether::Session&) are supplied by tether and are not
/// part of the Python signature; they may appear anywhere. Generic lambdas (auto parameters)
/// cannot be bound: their signature cannot be deduced.
///
/// Callbacks. A parameter of type std::function<R(A...)> accepts a callable reference from the
/// peer (a Python function, a C++ callable passed by a tether client). Calling it performs a
/// *synchronous* remote call:
///  * a synchronous binding that takes such a parameter runs on a fiber (loop/fiber.hpp): a
///    stack of its own on the loop thread. Calling the callback suspends the fiber until the
///    reply arrives while the loop serves everything else — other connections, other calls on
///    this one, the peer's nested calls into this process (each on a fiber of its own). Waits
///    never nest: a held callback delays nobody else's reply, and a peer that vanishes makes
///    the pending callback throw Disconnected inside the binding, which then unwinds normally;
///  * callables this process hands to the peer (a std::function or lambda argument) also run
///    on fibers, so their bodies may make blocking calls back (SyncNetref, SyncConnection::callattr);
///  * in a blocking binding (bind_blocking_function, on the worker pool) the call is handed to
///    the loop and the worker thread blocks until the reply arrives (each level of nesting
///    holds a worker: ServerOptions::worker_threads bounds the depth);
///  * top-level blocking code (the loop not running) runs the loop until the reply arrives.
/// Calling it on the loop thread while the loop runs, outside a fiber (from a timer callback
/// or a coroutine), is refused with UsageError: that wait would nest the loop. In coroutines
/// take a Netref and `co_await cb.call(make_args(...))`. Once the connection is closed calling
/// it throws Disconnected. A std::function passed to the peer (argument or result) is exported
/// as a callable "builtins.function" object.
///
/// GCC 12 coroutine rules apply to async callables: capture-less coroutine lambdas only, one
/// co_await per statement, no braced lists inside co_await expressions (use make_args).

#include <array>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/fiber.hpp"
#include "tether/loop/runner.hpp"
#include "tether/loop/task.hpp"
#include "tether/loop/worker_pool.hpp"
#include "tether/rpc/any.hpp"
#include "tether/rpc/convert.hpp"
#include "tether/rpc/object.hpp"
#include "tether/rpc/py_error.hpp"

namespace tether {

/// Python-visible parameter names of a binding (enables keyword arguments). Their number must
/// equal the number of Python parameters (UsageError otherwise).
struct ArgNames {
  std::vector<std::string> names;
};

/// tether::arg_names("a", "b")
template <class... S>
ArgNames arg_names(S&&... names) {
  ArgNames n;
  n.names.reserve(sizeof...(S));
  (n.names.emplace_back(std::forward<S>(names)), ...);
  return n;
}

/// A doc string for a bound function, method or service member: a Python peer's
/// `f.__doc__` (and help(f), IPython's `f?`) shows the signature in Python notation, a blank
/// line, then this text. `svc.expose("add", add, tether::arg_names("a", "b"), tether::doc("Adds."))`
struct Doc {
  std::string text;
};

inline Doc doc(std::string text) { return Doc{std::move(text)}; }

/// Parameters supplied by tether rather than the caller. Specialise with
///   static T& get(CallContext& ctx);
/// and a bound callable may take a `T&` parameter anywhere in its signature.
template <class T>
struct ContextParam;

template <>
struct ContextParam<CallContext> {
  static CallContext& get(CallContext& ctx) noexcept { return ctx; }
};

namespace detail {

// ------------------------------------------------------------------------ signature deduction

template <class... T>
struct TypeList {};

template <class R, class L>
struct Sig {
  using result = R;
  using params = L;
};

template <class M>
struct MemFnTraits;

#define TETHER_BIND_MEMFN_TRAITS(QUAL)      \
  template <class R, class C, class... P>   \
  struct MemFnTraits<R (C::*)(P...) QUAL> { \
    using cls = C;                          \
    using sig = Sig<R, TypeList<P...>>;     \
    static constexpr bool is_const = false; \
  };
#define TETHER_BIND_MEMFN_TRAITS_CONST(QUAL) \
  template <class R, class C, class... P>    \
  struct MemFnTraits<R (C::*)(P...) QUAL> {  \
    using cls = const C;                     \
    using sig = Sig<R, TypeList<P...>>;      \
    static constexpr bool is_const = true;   \
  };
TETHER_BIND_MEMFN_TRAITS()
TETHER_BIND_MEMFN_TRAITS(&)
TETHER_BIND_MEMFN_TRAITS(noexcept)
TETHER_BIND_MEMFN_TRAITS(&noexcept)
TETHER_BIND_MEMFN_TRAITS_CONST(const)
TETHER_BIND_MEMFN_TRAITS_CONST(const&)
TETHER_BIND_MEMFN_TRAITS_CONST(const noexcept)
TETHER_BIND_MEMFN_TRAITS_CONST(const& noexcept)
#undef TETHER_BIND_MEMFN_TRAITS
#undef TETHER_BIND_MEMFN_TRAITS_CONST

template <class F, class = void>
struct CallableTraits {
  static_assert(sizeof(F) == 0,
                "tether: cannot deduce the signature of this callable (generic lambda or overloaded "
                "operator()?)");
};
template <class R, class... P>
struct CallableTraits<R (*)(P...), void> {
  using sig = Sig<R, TypeList<P...>>;
};
template <class R, class... P>
struct CallableTraits<R (*)(P...) noexcept, void> {
  using sig = Sig<R, TypeList<P...>>;
};
template <class F>
struct CallableTraits<F, std::void_t<decltype(&F::operator())>> {
  using sig = typename MemFnTraits<decltype(&F::operator())>::sig;
};
// Member function pointers: the object is the first parameter.
template <class M>
struct CallableTraits<M, std::enable_if_t<std::is_member_function_pointer_v<M>>> {
  using Traits = MemFnTraits<M>;
  template <class S>
  struct WithSelf;
  template <class R, class... P>
  struct WithSelf<Sig<R, TypeList<P...>>> {
    using type = Sig<R, TypeList<typename Traits::cls&, P...>>;
  };
  using sig = typename WithSelf<typename Traits::sig>::type;
};

// ----------------------------------------------------------------------------- type helpers

template <class T>
struct IsTask : std::false_type {};
template <class T>
struct IsTask<Task<T>> : std::true_type {
  using value_type = T;
};

template <class R>
struct UnwrapTask {
  using type = R;
};
template <class T>
struct UnwrapTask<Task<T>> {
  using type = T;
};

template <class T>
struct IsSharedPtr : std::false_type {};
template <class T>
struct IsSharedPtr<std::shared_ptr<T>> : std::true_type {};

template <class T>
struct IsStdFunction : std::false_type {};
template <class R, class... A>
struct IsStdFunction<std::function<R(A...)>> : std::true_type {};

/// True for parameters supplied by tether (CallContext&, Session&, ...).
template <class P>
constexpr bool is_injected() {
  if constexpr (std::is_lvalue_reference_v<P>) {
    using U = std::remove_cvref_t<P>;
    return requires(CallContext & c) { ContextParam<U>::get(c); };
  } else {
    return false;
  }
}

/// What a converted argument is kept as until the call.
template <class P>
struct StorageOf {
  using U = std::remove_cvref_t<P>;
  using type = std::conditional_t<std::is_same_v<U, std::string_view> || std::is_same_v<U, const char*> ||
                                      std::is_same_v<U, char*>,
                                  std::string, U>;
};
template <class P>
using Storage = typename StorageOf<P>::type;

/// Placeholder slot for injected parameters.
struct Injected {};

template <class P>
using Slot = std::conditional_t<is_injected<P>(), Injected, Storage<P>>;

/// Conversions that need no request to the peer (done without a coroutine frame).
template <class S>
constexpr bool sync_convertible() {
  if constexpr (HasConverter<S>) {
    return true;
  } else if constexpr (is_optional<S>::value) {
    return sync_convertible<typename S::value_type>();
  } else {
    return std::is_same_v<S, bool> || std::is_integral_v<S> || std::is_floating_point_v<S> ||
           std::is_same_v<S, std::string> || std::is_same_v<S, Bytes> || std::is_same_v<S, brine::Value> ||
           std::is_same_v<S, Any> || std::is_same_v<S, Netref>;
  }
}

[[noreturn]] TETHER_API void plain_value_error(const Any& got);

template <class S>
S convert_now(const Any& a) {
  if constexpr (HasConverter<S>) {
    return Converter<S>::from_any_now(a);
  } else if constexpr (is_optional<S>::value) {
    if (a.is_none()) return S{};
    return S(convert_now<typename S::value_type>(a));
  } else if constexpr (std::is_same_v<S, Any>) {
    return a;
  } else if constexpr (std::is_same_v<S, brine::Value>) {
    if (!a.is_value()) plain_value_error(a);
    return a.value();
  } else if constexpr (std::is_same_v<S, Netref>) {
    // A proxy of another connection that the peer sent back to us arrives as the object we
    // lent it: the proxy it stands for.
    if (a.is_local() && a.object() && a.object()->forwards_to()) return *a.object()->forwards_to();
    if (!a.is_netref()) conversion_error("object reference", a);
    return a.netref();
  } else {
    return value_as<S>(a);
  }
}

/// Python-facing names for signatures.
template <class T>
std::string param_type_name() {
  using U = std::remove_cvref_t<T>;
  if constexpr (std::is_void_v<U>) {
    return "None";
  } else if constexpr (IsTask<U>::value) {
    return param_type_name<typename IsTask<U>::value_type>();
  } else if constexpr (std::is_same_v<U, std::string_view> || std::is_same_v<U, const char*> ||
                       std::is_same_v<U, char*>) {
    return "str";
  } else if constexpr (std::is_same_v<U, Any> || std::is_same_v<U, brine::Value>) {
    return "object";
  } else {
    return py_type_name<U>();
  }
}

using TypeNameFn = std::string (*)();

/// Everything about a binding's Python signature (names eagerly, type names on demand: a class
/// bound with tether::Class may be registered after the function).
struct TETHER_API SignatureInfo {
  std::string name;
  std::vector<std::string> names;  ///< Python parameter names ("arg1"... when not given)
  std::vector<TypeNameFn> types;
  std::vector<bool> required;
  TypeNameFn result = nullptr;
  bool has_names = false;

  /// "add(a: int, b: int) -> int"
  [[nodiscard]] std::string text() const;
};

/// Python's argument binding: returns one slot per parameter (None for omitted optional ones).
TETHER_API std::vector<Any> merge_arguments(const SignatureInfo& info, std::vector<Any>&& args,
                                            Kwargs&& kwargs);

/// __doc__ of a binding: "add(a: int, b: int) -> int", then a blank line and `text` when it is
/// not empty. A qualified binding name ("Store.get") is shown by its last part, as Python does.
TETHER_API std::string compose_doc(const SignatureInfo& info, std::string_view text);

/// Rethrows a conversion error of argument `index` (0-based) with the signature in front.
[[noreturn]] TETHER_API void argument_error(const SignatureInfo& info, std::size_t index, const PyError& e);

/// Checks/installs parameter names; UsageError if the count is wrong.
TETHER_API void apply_names(SignatureInfo& info, ArgNames names);

// ------------------------------------------------------------------------------ the binder

/// kDirect: on the loop thread's own stack, or on a fiber when the callable takes a peer's
/// callback (a std::function parameter); kFiber: always on a fiber (callbacks we export, whose
/// bodies may make blocking calls); kBlocking: on the worker pool.
enum class CallMode { kDirect, kFiber, kBlocking };

template <class S>
constexpr bool is_callback_param() {
  if constexpr (IsStdFunction<S>::value) {
    return true;
  } else if constexpr (is_optional<S>::value) {
    return is_callback_param<typename S::value_type>();
  } else {
    return false;
  }
}

template <class P>
decltype(auto) pass_arg(Storage<P>& s) {
  using U = std::remove_cvref_t<P>;
  if constexpr (std::is_same_v<U, std::string_view>) {
    return std::string_view(s);
  } else if constexpr (std::is_same_v<U, const char*> || std::is_same_v<U, char*>) {
    return static_cast<U>(s.data());
  } else if constexpr (std::is_lvalue_reference_v<P>) {
    return static_cast<Storage<P>&>(s);
  } else {
    return static_cast<Storage<P>&&>(s);
  }
}

/// Binds F (with optional leading self parameter of class T) to Python calls.
/// T = void for free functions.
template <class F, class T, CallMode M, class R, class SelfP, class... P>
class Binder {
 public:
  using Fn = F;
  using Result = R;
  using Value = typename UnwrapTask<R>::type;
  static constexpr bool kReturnsTask = IsTask<R>::value;
  static constexpr bool kHasSelf = !std::is_void_v<T>;
  /// Takes a peer's callback: calling it waits for the peer, so a synchronous callable runs on
  /// a fiber (fiber.hpp), where that wait does not nest the loop.
  static constexpr bool kTakesCallback = (is_callback_param<Storage<P>>() || ...);
  static constexpr CallMode kMode =
      M == CallMode::kDirect && kTakesCallback && !kReturnsTask ? CallMode::kFiber : M;
  static constexpr std::size_t kN = sizeof...(P);
  static constexpr std::array<bool, kN + 1> kInjected = {is_injected<P>()..., false};
  static constexpr std::array<bool, kN + 1> kAsync = {
      (!is_injected<P>() && !sync_convertible<Storage<P>>())..., false};
  using Values = std::tuple<Slot<P>...>;
  using SelfPtr = std::conditional_t<kHasSelf, std::shared_ptr<std::remove_const_t<T>>, std::nullptr_t>;

  static_assert(M != CallMode::kBlocking || !kReturnsTask, "a blocking binding cannot return a Task");
  static_assert(M != CallMode::kFiber || !kReturnsTask, "a coroutine needs no fiber: it awaits");
  static_assert(M != CallMode::kBlocking || ((!is_injected<P>()) && ...),
                "a blocking binding runs off the loop thread and cannot take CallContext/Session parameters");

  static constexpr std::array<std::size_t, kN + 1> py_index() {
    std::array<std::size_t, kN + 1> out{};
    std::size_t n = 0;
    for (std::size_t i = 0; i < kN; ++i) {
      out[i] = n;
      if (!kInjected[i]) ++n;
    }
    out[kN] = n;
    return out;
  }
  static constexpr std::array<std::size_t, kN + 1> kPyIndex = py_index();
  static constexpr std::size_t kPyCount = kPyIndex[kN];

  static constexpr std::size_t next_async(std::size_t from) {
    for (std::size_t i = from; i < kN; ++i) {
      if (kAsync[i]) return i;
    }
    return kN;
  }
  static constexpr std::size_t kFirstAsync = next_async(0);

  Binder(std::string name, F f, ArgNames names) : fn_(std::move(f)) {
    info_.name = std::move(name);
    info_.result = &param_type_name<R>;
    (add_param<P>(), ...);
    apply_names(info_, std::move(names));
  }

  [[nodiscard]] const SignatureInfo& info() const noexcept { return info_; }

  void convert_sync(Values& v, std::vector<Any>& slots) const {
    convert_sync_each(v, slots, std::make_index_sequence<kN>{});
  }

  template <std::size_t I>
  Task<void> convert_async(Values& v, std::vector<Any>& slots) const {
    using S = Storage<std::tuple_element_t<I, std::tuple<P...>>>;
    try {
      S converted = co_await from_any<S>(std::move(slots[kPyIndex[I]]));
      std::get<I>(v) = std::move(converted);
    } catch (const PyError& e) {
      argument_error(info_, kPyIndex[I], e);
    }
    if constexpr (next_async(I + 1) < kN) {
      co_await convert_async<next_async(I + 1)>(v, slots);
    }
  }

  /// Calls the callable with converted values (and self / injected parameters).
  decltype(auto) invoke(CallContext* ctx, SelfPtr& self, Values& v) const {
    return invoke_each(ctx, self, v, std::make_index_sequence<kN>{});
  }

 private:
  template <class Q>
  void add_param() {
    if constexpr (!is_injected<Q>()) {
      info_.types.push_back(&param_type_name<Q>);
      info_.required.push_back(!is_optional<Storage<Q>>::value);
    }
  }

  template <std::size_t... I>
  void convert_sync_each(Values& v, std::vector<Any>& slots, std::index_sequence<I...>) const {
    (convert_sync_one<I>(v, slots), ...);
  }

  template <std::size_t I>
  void convert_sync_one(Values& v, std::vector<Any>& slots) const {
    if constexpr (!kInjected[I] && !kAsync[I]) {
      using S = Storage<std::tuple_element_t<I, std::tuple<P...>>>;
      try {
        std::get<I>(v) = convert_now<S>(slots[kPyIndex[I]]);
      } catch (const PyError& e) {
        argument_error(info_, kPyIndex[I], e);
      }
    }
  }

  template <std::size_t I>
  decltype(auto) arg(CallContext* ctx, Values& v) const {
    using Q = std::tuple_element_t<I, std::tuple<P...>>;
    if constexpr (kInjected[I]) {
      return ContextParam<std::remove_cvref_t<Q>>::get(*ctx);
    } else {
      return pass_arg<Q>(std::get<I>(v));
    }
  }

  static decltype(auto) self_arg(SelfPtr& self) {
    using U = std::remove_cvref_t<SelfP>;
    if constexpr (IsSharedPtr<U>::value) {
      return U(self);
    } else if constexpr (std::is_pointer_v<U>) {
      return static_cast<U>(self.get());
    } else {
      return static_cast<std::remove_reference_t<SelfP>&>(*self);
    }
  }

  template <std::size_t... I>
  decltype(auto) invoke_each(CallContext* ctx, SelfPtr& self, Values& v, std::index_sequence<I...>) const {
    if constexpr (kHasSelf) {
      return std::invoke(fn_, self_arg(self), arg<I>(ctx, v)...);
    } else {
      (void)self;
      return std::invoke(fn_, arg<I>(ctx, v)...);
    }
  }

  SignatureInfo info_;
  mutable F fn_;
};

template <class F, class T, CallMode M, class S>
struct BinderFromSig;

// Free functions: every parameter is a Python (or injected) parameter.
template <class F, CallMode M, class R, class... P>
struct BinderFromSig<F, void, M, Sig<R, TypeList<P...>>> {
  using type = Binder<F, void, M, R, void, P...>;
};
// Methods: the first parameter is the object.
template <class F, class T, CallMode M, class R, class S0, class... P>
  requires(!std::is_void_v<T>)
struct BinderFromSig<F, T, M, Sig<R, TypeList<S0, P...>>> {
  using type = Binder<F, T, M, R, S0, P...>;
};

template <class F, class T, CallMode M>
using BinderFor = typename BinderFromSig<F, T, M, typename CallableTraits<F>::sig>::type;

/// Owns blocking-call state; destroyed on the loop thread even when the worker drops it last.
template <class B>
struct BlockingJob {
  std::shared_ptr<const B> binder;
  typename B::SelfPtr self;
  typename B::Values values;
};

template <class B>
std::shared_ptr<BlockingJob<B>> make_blocking_job(EventLoop& loop, std::shared_ptr<const B> b,
                                                  typename B::SelfPtr self, typename B::Values values) {
  auto* job = new BlockingJob<B>{std::move(b), std::move(self), std::move(values)};
  return std::shared_ptr<BlockingJob<B>>(job, [lp = &loop](BlockingJob<B>* j) {
    if (lp->in_loop_thread()) {
      delete j;
    } else {
      lp->post([owned = std::unique_ptr<BlockingJob<B>>(j)]() {});
    }
  });
}

/// A call run on a fiber, with everything it uses (the connection is kept alive too: a binding
/// may use its CallContext after a callback failed because the connection closed).
template <class B>
struct FiberJob {
  using V = typename B::Value;
  std::shared_ptr<const B> binder;
  typename B::SelfPtr self;
  typename B::Values values;
  CallContext ctx;
  std::shared_ptr<void> keep_alive;
  std::optional<std::conditional_t<std::is_void_v<V>, int, std::decay_t<V>>> result;
  std::exception_ptr error;

  FiberJob(std::shared_ptr<const B> b, typename B::SelfPtr s, typename B::Values v, CallContext& c)
      : binder(std::move(b)), self(std::move(s)), values(std::move(v)), ctx(c), keep_alive(c.keep_alive()) {}

  void run() noexcept {
    try {
      if constexpr (std::is_void_v<V>) {
        binder->invoke(&ctx, self, values);
      } else {
        result.emplace(binder->invoke(&ctx, self, values));
      }
    } catch (...) {
      error = std::current_exception();
    }
  }
};

template <class B>
Any result_to_any(typename B::Value&& v) {
  return to_any(std::move(v));
}

/// The body of every bound call (a named coroutine: GCC 12 rules).
template <class B>
Task<Any> run_binding(std::shared_ptr<const B> b, CallContext& ctx, typename B::SelfPtr self,
                      std::vector<Any> args, Kwargs kwargs) {
  std::vector<Any> slots = merge_arguments(b->info(), std::move(args), std::move(kwargs));
  typename B::Values values{};
  b->convert_sync(values, slots);
  if constexpr (B::kFirstAsync < B::kN) {
    co_await b->template convert_async<B::kFirstAsync>(values, slots);
  }
  slots.clear();
  using V = typename B::Value;
  if constexpr (B::kMode == CallMode::kBlocking) {
    auto job = make_blocking_job<B>(ctx.loop(), b, std::move(self), std::move(values));
    auto work = [job]() -> std::decay_t<V> {
      if constexpr (std::is_void_v<V>) {
        job->binder->invoke(nullptr, job->self, job->values);
      } else {
        return job->binder->invoke(nullptr, job->self, job->values);
      }
    };
    if constexpr (std::is_void_v<V>) {
      co_await run_in_worker(std::move(work));
      co_return Any();
    } else {
      std::decay_t<V> r = co_await run_in_worker(std::move(work));
      co_return to_any(std::move(r));
    }
  } else if constexpr (B::kMode == CallMode::kFiber) {
    // The fiber owns all it uses: if this frame is destroyed (the connection closed) while the
    // fiber waits for the peer, the fiber runs on until its wait fails, then ends by itself.
    auto job = std::make_shared<FiberJob<B>>(std::move(b), std::move(self), std::move(values), ctx);
    UniqueFunction<void()> body = [job]() { job->run(); };  // not inside co_await (GCC 12)
    co_await run_on_fiber(ctx.loop(), std::move(body));
    if (job->error) std::rethrow_exception(job->error);
    if constexpr (std::is_void_v<V>) {
      co_return Any();
    } else {
      co_return to_any(std::move(*job->result));
    }
  } else if constexpr (B::kReturnsTask) {
    if constexpr (std::is_void_v<V>) {
      co_await b->invoke(&ctx, self, values);
      co_return Any();
    } else {
      V r = co_await b->invoke(&ctx, self, values);
      co_return to_any(std::move(r));
    }
  } else {
    if constexpr (std::is_void_v<V>) {
      b->invoke(&ctx, self, values);
      co_return Any();
    } else {
      co_return to_any(b->invoke(&ctx, self, values));
    }
  }
}

// --------------------------------------------------------------------- remote callbacks

/// A peer's callable held by a std::function; released on its loop thread.
struct TETHER_API RemoteCallableState {
  Netref ref;
  EventLoop* loop = nullptr;
  RemoteCallableState(Netref r, EventLoop* l) : ref(std::move(r)), loop(l) {}
  RemoteCallableState(const RemoteCallableState&) = delete;
  RemoteCallableState& operator=(const RemoteCallableState&) = delete;
  ~RemoteCallableState();
};

[[noreturn]] TETHER_API void throw_nested_callback_call();

/// Starts `task` on `loop` without an owner (it destroys itself when done). Loop thread only.
TETHER_API void spawn_detached(EventLoop& loop, Task<void> task);

template <class R>
Task<R> remote_call_task(Netref ref, std::vector<Any> argv) {
  Any r = co_await ref.call(std::move(argv));
  if constexpr (std::is_void_v<R>) {
    co_return;
  } else if constexpr (std::is_same_v<R, Any>) {
    co_return r;
  } else {
    R typed = co_await from_any<R>(std::move(r));
    co_return typed;
  }
}

template <class R>
Task<void> deliver_remote_call(std::shared_ptr<RemoteCallableState> st, std::shared_ptr<std::promise<R>> done,
                               std::vector<Any> argv) {
  try {
    if constexpr (std::is_void_v<R>) {
      co_await remote_call_task<void>(st->ref, std::move(argv));
      done->set_value();
    } else {
      R r = co_await remote_call_task<R>(st->ref, std::move(argv));
      done->set_value(std::move(r));
    }
  } catch (...) {
    done->set_exception(std::current_exception());
  }
}

template <class R>
R call_remote_blocking(const std::shared_ptr<RemoteCallableState>& st, std::vector<Any> argv) {
  EventLoop& loop = *st->loop;
  if (loop.in_loop_thread()) {
    // On a fiber (a binding that took this callback, or a callback we exported) the wait
    // suspends the fiber; outside the loop (top-level blocking code) it runs the loop. Inside
    // the running loop on its own stack it would nest the loop under frames that may be
    // destroyed meanwhile: refused.
    if (loop.running() && !on_fiber_of(loop)) throw_nested_callback_call();
    return loop.run_until_complete(remote_call_task<R>(st->ref, std::move(argv)));
  }
  auto done = std::make_shared<std::promise<R>>();
  std::future<R> result = done->get_future();
  loop.post([st, done, argv = std::move(argv), lp = &loop]() mutable {
    spawn_detached(*lp, deliver_remote_call<R>(st, done, std::move(argv)));
  });
  return result.get();
}

template <class R, class... A>
struct RemoteCallable {
  std::shared_ptr<RemoteCallableState> state;
  R operator()(A... a) const {
    std::vector<Any> argv;
    argv.reserve(sizeof...(A));
    (argv.push_back(to_any(std::forward<A>(a))), ...);
    return call_remote_blocking<R>(state, std::move(argv));
  }
};

/// A binding and its documentation (see Doc).
struct DocumentedFunction {
  NativeFunction fn;
  DocFn doc;
};

/// The binding of `f` in mode M, with its __doc__ (signature + `text`).
template <CallMode M, class F>
DocumentedFunction bind_documented(std::string name, F f, ArgNames names, std::string text) {
  using B = BinderFor<F, void, M>;
  auto b = std::make_shared<const B>(std::move(name), std::move(f), std::move(names));
  DocFn doc = [b, text = std::move(text)]() { return compose_doc(b->info(), text); };
  NativeFunction fn = [b](CallContext& ctx, std::vector<Any> args, Kwargs kwargs) {
    return run_binding<B>(b, ctx, nullptr, std::move(args), std::move(kwargs));
  };
  return DocumentedFunction{std::move(fn), std::move(doc)};
}

}  // namespace detail

// ------------------------------------------------------------------------------ public API

/// A NativeFunction calling `f` on the loop thread (awaiting it if it returns Task<R>).
/// `name` is used in error messages; `names` enables keyword arguments.
template <class F>
NativeFunction bind_function(std::string name, F f, ArgNames names = ArgNames()) {
  return detail::bind_documented<detail::CallMode::kDirect>(std::move(name), std::move(f), std::move(names), {}).fn;
}

/// As bind_function, but `f` runs on the loop's worker pool (EventLoop::workers()): for
/// functions that block (file I/O, CPU-heavy work). Arguments are converted on the loop thread
/// before, the result after. `f` must be safe to run on any worker thread; it cannot take
/// CallContext& and must not touch loop-bound objects, except that std::function callbacks it
/// receives may be called (each call blocks the worker until the peer answers).
template <class F>
NativeFunction bind_blocking_function(std::string name, F f, ArgNames names = ArgNames()) {
  return detail::bind_documented<detail::CallMode::kBlocking>(std::move(name), std::move(f), std::move(names), {})
      .fn;
}

/// A NativeFunction calling the member function `m` of `obj` (kept alive by the binding).
template <class C, class M>
  requires std::is_member_function_pointer_v<M> NativeFunction bind_method(std::string name,
                                                                           std::shared_ptr<C> obj, M m,
                                                                           ArgNames names = ArgNames()) {
    using B = detail::BinderFor<M, C, detail::CallMode::kDirect>;
    auto b = std::make_shared<const B>(std::move(name), m, std::move(names));
    return [b, obj = std::move(obj)](CallContext& ctx, std::vector<Any> args, Kwargs kwargs) {
      return detail::run_binding<B>(b, ctx, obj, std::move(args), std::move(kwargs));
    };
  }

/// An exported callable object for `f` ("builtins.function": a Python peer calls it without an
/// INSPECT round trip).
template <class F>
ObjectPtr make_function_object(std::string name, F f, ArgNames names = ArgNames(), Doc doc = Doc()) {
  auto d = detail::bind_documented<detail::CallMode::kDirect>(name, std::move(f), std::move(names),
                                                              std::move(doc.text));
  return std::make_shared<FunctionObject>(std::move(name), std::move(d.fn), "builtins.function", std::move(d.doc));
}
template <class F>
ObjectPtr make_function_object(std::string name, F f, Doc doc) {
  return make_function_object(std::move(name), std::move(f), ArgNames(), std::move(doc));
}

namespace detail {
/// make_function_object for a callable we hand to the peer as a callback: its body may make
/// blocking calls to the peer, so it runs on a fiber (a coroutine needs none).
template <class F>
std::shared_ptr<Object> make_callback_object(std::string name, F f) {
  using Sig = typename CallableTraits<F>::sig;
  constexpr CallMode kMode = IsTask<typename Sig::result>::value ? CallMode::kDirect : CallMode::kFiber;
  using B = BinderFor<F, void, kMode>;
  auto b = std::make_shared<const B>(name, std::move(f), ArgNames());
  NativeFunction nf = [b](CallContext& ctx, std::vector<Any> args, Kwargs kwargs) {
    return run_binding<B>(b, ctx, nullptr, std::move(args), std::move(kwargs));
  };
  DocFn doc = [b]() { return compose_doc(b->info(), {}); };
  return std::make_shared<FunctionObject>(std::move(name), std::move(nf), "builtins.function", std::move(doc));
}
}  // namespace detail

// ------------------------------------------------------------------------ conversions

/// std::function callbacks: from a peer's callable (see the file comment); to an exported
/// "builtins.function". An empty std::function travels as None and None arrives as an empty one.
template <class R, class... A>
struct Converter<std::function<R(A...)>> {
  static std::string py_name() { return "callable"; }
  static Any to_any(const std::function<R(A...)>& f) {
    if (!f) return Any();
    return Any(detail::make_callback_object("function", f));
  }
  static std::function<R(A...)> from_any_now(const Any& a) {
    if (a.is_none()) return {};
    if (!a.is_netref()) detail::conversion_error("callable", a);
    EventLoop* loop = EventLoop::current();
    if (!loop) throw UsageError("a callback parameter must be converted on its connection's loop thread");
    auto st = std::make_shared<detail::RemoteCallableState>(a.netref(), loop);
    return detail::RemoteCallable<R, A...>{std::move(st)};
  }
};

/// shared_ptr to an Object subclass: exported by reference; from_any accepts only this
/// process's own objects (a LOCAL_REF coming back) of the right dynamic type.
template <class T>
  requires std::is_base_of_v<Object, std::remove_const_t<T>>
struct Converter<std::shared_ptr<T>> {
  static std::string py_name() { return "object"; }
  static Any to_any(const std::shared_ptr<T>& p) {
    if (!p) return Any();
    return Any(std::const_pointer_cast<Object>(std::static_pointer_cast<const Object>(p)));
  }
  static std::shared_ptr<T> from_any_now(const Any& a) {
    if (a.is_none()) return nullptr;
    if (a.is_local()) {
      if (auto p = std::dynamic_pointer_cast<std::remove_const_t<T>>(a.object())) return p;
    }
    detail::conversion_error("a local object", a);
  }
};

}  // namespace tether
