#pragma once
/// \file Class<T>: expose a C++ class to the peer by reference.
///
///   tether::Service svc("StoreService");
///   svc.define_class<Store>("Store")                     // the service's class "tether.Store"
///       .method("get", &Store::get)                       // root.store.get(k) / exposed_get
///       .method("put", &Store::put, tether::arg_names("key", "value"))
///       .property("size", &Store::size)                   // read-only attribute
///       .property("limit", &Store::limit, &Store::set_limit)
///       .len(&Store::size)                                // len(obj)
///       .iter([](const Store& s) { return s.keys(); })    // for x in obj
///       .getitem(&Store::find)                            // obj[k]; nullopt -> KeyError
///       .contains(&Store::has);                           // k in obj
///   svc.expose_object("store", std::make_shared<Store>());  // exported as a "tether.Store"
///
/// Ownership. A class definition belongs to whoever defines it: a ClassSet (a Service has one:
/// Service::define_class, and so does ConnectionOptions::classes for connections made without
/// a service) or, for a Class<T> made on its own, the Class<T> handles themselves. There is no
/// process-wide registry: two services may define the same T differently, and each
/// connection sees the definitions of its own service only.
///
/// Which definition an object gets. Class<T>::wrap(obj) exports obj under that Class<T>.
/// Everywhere else — to_any(std::shared_ptr<T>), hence returning a shared_ptr<T> from a bound
/// function, passing one as an argument, expose_object — the C++ object travels unbound (a
/// detail::PendingInstance) until a connection sends it: the connection binds it then to the
/// definition of T in its ClassSet (ConnectionOptions::classes, which serve()/connect() set to
/// the service's). Sending an object whose T the connection's ClassSet does not define is a
/// UsageError naming T (the peer gets it as the failed call's exception). The dynamic type
/// does not matter: a shared_ptr<Derived> needs a definition of Derived.
///
/// Definitions change by publication: each builder call publishes a new immutable definition,
/// and an instance keeps the definition it was exported with. Define classes before serving.
/// ClassSet::define<T> again replaces T's class in that set only (instances exported afterwards
/// get the new one).
///
/// Names. Ordinary members are stored as "exposed_<name>", RPyC's convention, so the access
/// check (wire spec §12.2) resolves both `obj.get` and `obj.exposed_get` with the default
/// policy. Dunder names ("__len__", "__iter__", "__getitem__", "__contains__", "__call__",
/// any "__op__" given to method()) are stored as they are and advertised in INSPECT (§5.5), so
/// a stock Python client can call len(), iterate, index and call the object; dunders Python's
/// proxy handles itself (__repr__, __str__, __hash__, __eq__ ...) are not advertised (use
/// repr()/str(); __eq__ etc. are still served through CMP). In signatures and conversion
/// errors a shared_ptr<T> parameter is named by T's C++ name without namespaces.
///
/// Methods are typed bindings (bind.hpp): a member function pointer, or a callable whose first
/// parameter is the object (T&, const T&, T* or std::shared_ptr<T>), optionally followed by
/// CallContext& and then the Python parameters. They may return Task<R> (awaited); a
/// method_blocking() runs on the worker pool. Properties are synchronous: a getter (member
/// function, data member pointer or callable on const T&) and an optional setter (member
/// function, data member pointer or callable (T&, V)); setters accept only types converted
/// without requests (not Python lists/dicts), and a peer can set attributes only when the
/// connection's AccessPolicy has allow_setattr (RPyC's default refuses).
///
/// Identity: while an instance is exported under a class (on any connection), exporting the
/// same T* under that class again yields the same object, so the peer sees one id_pack.
/// Exported objects run on every connection's loop thread that holds them; the C++ object must
/// tolerate that (with ServeOptions::server.threads > 1 calls may arrive concurrently).

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeindex>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tether/base/error.hpp"
#include "tether/base/export.hpp"
#include "tether/rpc/any.hpp"
#include "tether/rpc/bind.hpp"
#include "tether/rpc/object.hpp"
#include "tether/rpc/py_error.hpp"

namespace tether {

/// An exported iterator ("tether.iterator"): __iter__ returns itself, __next__ the next item or
/// StopIteration (BUFFITER works too). Loop thread only.
class TETHER_API IteratorObject final : public Object {
 public:
  /// `next` returns the next item, or nullopt when exhausted.
  explicit IteratorObject(std::function<std::optional<Any>()> next) : next_(std::move(next)) {}
  [[nodiscard]] std::string type_name() const override { return "tether.iterator"; }
  [[nodiscard]] bool has_attr(std::string_view name) const override;
  Any get_attr(CallContext& ctx, std::string_view name) override;
  Task<Any> call_attr(CallContext& ctx, std::string_view name, std::vector<Any> args, Kwargs kwargs) override;
  [[nodiscard]] std::vector<std::string> attr_names() const override { return {"__iter__", "__next__"}; }
  [[nodiscard]] std::vector<std::string> inspect_names() const override { return {"__iter__", "__next__"}; }
  /// The next item; throws StopIteration at the end (and from then on).
  Any next();

 private:
  friend TETHER_API ObjectPtr make_iterator(std::function<std::optional<Any>()> next);
  std::function<std::optional<Any>()> next_;
  std::weak_ptr<IteratorObject> self_;
  bool done_ = false;
};

/// An exported iterator calling `next` for each item (nullopt ends it).
TETHER_API ObjectPtr make_iterator(std::function<std::optional<Any>()> next);
/// An exported iterator over `items`.
TETHER_API ObjectPtr make_iterator(std::vector<Any> items);

/// True for the names a Python proxy serves itself and ignores in an INSPECT answer (§5.5).
TETHER_API bool is_proxy_local_attr(std::string_view name) noexcept;

namespace detail {

/// UsageError naming the (demangled) C++ type that has no tether::Class binding.
[[noreturn]] TETHER_API void throw_unbound_class(const std::type_info& type);

template <class T>
struct ClassDef {
  using MethodFn = std::function<Task<Any>(CallContext&, std::shared_ptr<T>, std::vector<Any>, Kwargs)>;
  struct Member {
    MethodFn method;                             ///< set for methods
    std::function<Any(T&)> getter;               ///< set for properties
    std::function<void(T&, const Any&)> setter;  ///< optional, properties only
    DocFn doc;                                   ///< methods: __doc__ (signature + doc string)
  };
  std::string name;       ///< "Store"
  std::string type_name;  ///< "tether.Store"
  std::map<std::string, Member, std::less<>> members;
  std::function<std::string(const T&)> repr;
  std::function<std::string(const T&)> str;
  NativeFunction construct;  ///< init(): what calling the class object does
  std::string doc;           ///< the class's (and its instances') __doc__
};

template <class T>
class Instance;

/// The name of a C++ class as tether shows it: demangled, without namespaces ("Store").
TETHER_API std::string cpp_class_name(const std::type_info& type);

/// One class: T's current definition, the instances exported under it (one object per T* while
/// it lives: the peer sees one identity) and its class object. Shared by the Class<T> handles
/// and the ClassSets that hold it, and by its instances.
class TETHER_API ClassEntryBase {
 public:
  virtual ~ClassEntryBase();
  /// The exported object for the C++ object `p` of this class's type.
  virtual ObjectPtr wrap_erased(std::shared_ptr<void> p) = 0;
};

template <class T>
class ClassEntry final : public ClassEntryBase, public std::enable_shared_from_this<ClassEntry<T>> {
 public:
  std::shared_ptr<const ClassDef<T>> definition() const {
    std::lock_guard<std::mutex> lock(mu_);
    return def_;
  }
  void publish(std::shared_ptr<const ClassDef<T>> d) {
    std::lock_guard<std::mutex> lock(mu_);
    def_ = std::move(d);
  }
  ObjectPtr wrap(std::shared_ptr<T> p);
  ObjectPtr wrap_erased(std::shared_ptr<void> p) override { return wrap(std::static_pointer_cast<T>(std::move(p))); }
  ObjectPtr type_object();
  /// An instance is gone: forget it (unless `p` was exported again meanwhile).
  void forget(const T* p) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it != live_.end() && it->second.expired()) live_.erase(it);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const ClassDef<T>> def_;
  std::unordered_map<const T*, std::weak_ptr<Instance<T>>> live_;
  ObjectPtr type_;  ///< type_object(), made once
};

/// Display name of a member ("exposed_get" -> "get").
TETHER_API std::string_view member_display_name(std::string_view key) noexcept;
/// "cannot set attribute" style errors for properties.
[[noreturn]] TETHER_API void property_error(const std::string& where, const PyError& e);
/// Members advertised in INSPECT / listed by DIR, from the member keys.
TETHER_API std::vector<std::string> advertised_dunders(const std::vector<std::string>& keys);
TETHER_API std::vector<std::string> visible_names(const std::vector<std::string>& keys);

template <class T>
class Instance final : public Object {
 public:
  Instance(std::shared_ptr<T> ptr, std::shared_ptr<const ClassDef<T>> def, std::shared_ptr<ClassEntry<T>> entry)
      : ptr_(std::move(ptr)), def_(std::move(def)), entry_(std::move(entry)) {}
  ~Instance() override { entry_->forget(ptr_.get()); }
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  [[nodiscard]] const std::shared_ptr<T>& ptr() const noexcept { return ptr_; }
  [[nodiscard]] std::string type_name() const override { return def_->type_name; }
  [[nodiscard]] bool has_attr(std::string_view name) const override {
    return def_->members.contains(name) || name == "__doc__";
  }

  Any get_attr(CallContext& ctx, std::string_view name) override {
    if (name == "__doc__" && !def_->members.contains(name)) {
      return def_->doc.empty() ? Any() : Any(brine::Value(def_->doc));
    }
    const auto& m = member(name);
    if (m.method) {
      NativeFunction bound = [fn = m.method, self = ptr_](CallContext& c, std::vector<Any> args,
                                                          Kwargs kwargs) {
        return fn(c, self, std::move(args), std::move(kwargs));
      };
      const auto dot = def_->type_name.rfind('.');
      return Any(std::make_shared<FunctionObject>(
          def_->name + "." + std::string(member_display_name(name)), std::move(bound), "builtins.method", m.doc,
          dot == std::string::npos ? std::string("builtins") : def_->type_name.substr(0, dot)));
    }
    (void)ctx;
    return m.getter(*ptr_);
  }

  Task<Any> call_attr(CallContext& ctx, std::string_view name, std::vector<Any> args,
                      Kwargs kwargs) override {
    const auto& m = member(name);
    if (m.method) return m.method(ctx, ptr_, std::move(args), std::move(kwargs));
    return Object::call_attr(ctx, name, std::move(args), std::move(kwargs));
  }

  void set_attr(CallContext& ctx, std::string_view name, Any value) override {
    auto it = def_->members.find(name);
    if (it == def_->members.end() || !it->second.setter) {
      Object::set_attr(ctx, name, std::move(value));
      return;
    }
    it->second.setter(*ptr_, value);
  }

  Task<Any> call(CallContext& ctx, std::vector<Any> args, Kwargs kwargs) override {
    auto it = def_->members.find(std::string_view("__call__"));
    if (it == def_->members.end() || !it->second.method)
      return Object::call(ctx, std::move(args), std::move(kwargs));
    return it->second.method(ctx, ptr_, std::move(args), std::move(kwargs));
  }

  [[nodiscard]] std::string repr() const override { return def_->repr ? def_->repr(*ptr_) : Object::repr(); }
  [[nodiscard]] std::string str() const override {
    if (def_->str) return def_->str(*ptr_);
    return repr();
  }
  [[nodiscard]] std::vector<std::string> attr_names() const override { return visible_names(keys()); }
  [[nodiscard]] std::vector<std::string> inspect_names() const override { return advertised_dunders(keys()); }

 private:
  const typename ClassDef<T>::Member& member(std::string_view name) const {
    auto it = def_->members.find(name);
    if (it == def_->members.end()) throw attribute_error(name);
    return it->second;
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    k.reserve(def_->members.size());
    for (const auto& [name, m] : def_->members) k.push_back(name);
    return k;
  }

  std::shared_ptr<T> ptr_;
  std::shared_ptr<const ClassDef<T>> def_;
  std::shared_ptr<ClassEntry<T>> entry_;  // its identity table
};

template <class T>
ObjectPtr ClassEntry<T>::wrap(std::shared_ptr<T> p) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = live_[p.get()];
  std::shared_ptr<Instance<T>> out = slot.lock();
  if (!out) {
    out = std::make_shared<Instance<T>>(std::move(p), def_, this->shared_from_this());
    slot = out;
  }
  return out;
}

template <class T>
ObjectPtr ClassEntry<T>::type_object() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!type_) {
    // The definition is looked up at each call: init() bound later still counts. The class
    // object is the entry's own: it refers back to it weakly.
    std::weak_ptr<ClassEntry<T>> weak = this->weak_from_this();
    NativeFunction construct = [weak](CallContext& ctx, std::vector<Any> args, Kwargs kwargs) -> Task<Any> {
      std::shared_ptr<ClassEntry<T>> entry = weak.lock();
      if (!entry) throw PyError("TypeError", "the class is no longer defined");
      std::shared_ptr<const ClassDef<T>> def = entry->definition();
      if (!def->construct) throw PyError("TypeError", "cannot create '" + def->type_name + "' instances");
      Any made = co_await def->construct(ctx, std::move(args), std::move(kwargs));  // def lives here
      co_return made;
    };
    type_ = std::make_shared<TypeObject>(def_->type_name, std::move(construct), def_->doc);
  }
  return type_;
}

class PendingInstance;
/// Whether `obj` is a PendingInstance (cheaper than a dynamic_cast: the class is final).
TETHER_API bool is_pending_instance(const Object& obj) noexcept;

/// What to_any(std::shared_ptr<T>) makes of an object of a class type: the C++ object, not yet
/// tied to a definition. A connection binds it to its ClassSet's class for T when it sends it
/// (see the file comment); from_any gives the C++ object back.
class TETHER_API PendingInstance final : public Object {
 public:
  PendingInstance(std::shared_ptr<void> ptr, const std::type_info& type) noexcept
      : ptr_(std::move(ptr)), type_(type) {}
  /// The C++ type's name (the object has no Python type name until it is bound).
  [[nodiscard]] std::string type_name() const override { return cpp_class_name(type_); }
  [[nodiscard]] const std::shared_ptr<void>& ptr() const noexcept { return ptr_; }
  [[nodiscard]] const std::type_info& type() const noexcept { return type_; }

 private:
  std::shared_ptr<void> ptr_;
  const std::type_info& type_;
};

/// Converts the object as a method's self parameter expects it.
template <class S0, class T>
decltype(auto) self_as(const std::shared_ptr<T>& sp) {
  using U = std::remove_cvref_t<S0>;
  if constexpr (IsSharedPtr<U>::value) {
    return U(sp);
  } else if constexpr (std::is_pointer_v<U>) {
    return static_cast<U>(sp.get());
  } else {
    return static_cast<std::remove_reference_t<S0>&>(*sp);
  }
}

template <class L>
struct FirstParam;
template <class S0, class... P>
struct FirstParam<TypeList<S0, P...>> {
  using type = S0;
};
template <class L>
struct LastParam;
template <class P0>
struct LastParam<TypeList<P0>> {
  using type = P0;
};
template <class P0, class P1, class... P>
struct LastParam<TypeList<P0, P1, P...>> {
  using type = typename LastParam<TypeList<P1, P...>>::type;
};

template <class F>
using ParamsOf = typename CallableTraits<F>::sig::params;
template <class F>
using ResultOf = typename CallableTraits<F>::sig::result;

/// __getitem__ wrapper: a std::optional result that is empty raises KeyError (IndexError for
/// integer keys).
template <class T, class F, class S0, class K, class R>
struct GetItem {
  F f;
  std::string type;
  using Out = std::conditional_t<is_optional<std::remove_cvref_t<R>>::value,
                                 typename std::remove_cvref_t<R>::value_type, std::remove_cvref_t<R>>;
  Out operator()(std::shared_ptr<T> self, K key) const {
    if constexpr (is_optional<std::remove_cvref_t<R>>::value) {
      auto r = std::invoke(f, self_as<S0>(self), key);
      if (!r) {
        if constexpr (std::is_integral_v<std::remove_cvref_t<K>> &&
                      !std::is_same_v<std::remove_cvref_t<K>, bool>) {
          throw PyError("IndexError", type + " index out of range");
        } else {
          Any k = to_any(key);
          brine::Value kv = k.is_value() ? k.value() : brine::Value(k.repr());
          throw PyError("builtins", "KeyError", {std::move(kv)});
        }
      }
      return std::move(*r);
    } else {
      return std::invoke(f, self_as<S0>(self), key);
    }
  }
};

/// A callable returning std::optional<X> (an iteration generator).
template <class R>
concept IsGenerator = requires(R& g) {
  g();
  requires is_optional<std::remove_cvref_t<decltype(g())>>::value;
};

template <class T, class F, class S0>
struct IterFactory {
  F f;
  ObjectPtr operator()(std::shared_ptr<T> self) const {
    using R = std::remove_cvref_t<decltype(std::invoke(f, self_as<S0>(self)))>;
    if constexpr (IsGenerator<R>) {
      // A generator: keeps the object alive while the peer iterates.
      R gen = std::invoke(f, self_as<S0>(self));
      return make_iterator([gen = std::move(gen), self]() mutable -> std::optional<Any> {
        auto item = gen();
        if (!item) return std::nullopt;
        return to_any(std::move(*item));
      });
    } else {
      std::vector<Any> items;
      for (auto&& e : std::invoke(f, self_as<S0>(self))) items.push_back(to_any(e));
      return make_iterator(std::move(items));
    }
  }
};

}  // namespace detail

template <class T>
class Class {
  static_assert(!std::is_const_v<T> && std::is_class_v<T>, "tether::Class<T>: T must be a non-const class");

 public:
  using Def = detail::ClassDef<T>;

  /// A new class for T under the Python type name "<module>.<name>" (e.g. "tether.Store"; an
  /// empty module gives just `name`), owned by this handle and its copies (and by the ClassSets
  /// it is added to: ClassSet::add). ClassSet::define / Service::define_class make one in a set.
  explicit Class(std::string name, std::string module = "tether")
      : entry_(std::make_shared<detail::ClassEntry<T>>()), name_(name) {
    auto d = std::make_shared<Def>();
    d->type_name = module.empty() ? name : module + "." + name;
    d->name = std::move(name);
    entry_->publish(std::move(d));
  }

  /// A method (see the file comment). Dunder names are stored raw and advertised in INSPECT.
  /// `doc` (tether::doc("...")) follows the signature in the method's __doc__ on the peer.
  template <class F>
  Class& method(std::string name, F f, ArgNames names = ArgNames(), Doc doc = Doc()) {
    return add_method<detail::CallMode::kDirect>(std::move(name), std::move(f), std::move(names),
                                                 std::move(doc.text));
  }
  template <class F>
  Class& method(std::string name, F f, Doc doc) {
    return method(std::move(name), std::move(f), ArgNames(), std::move(doc));
  }
  /// A method that runs on the worker pool (it must not take CallContext&).
  template <class F>
  Class& method_blocking(std::string name, F f, ArgNames names = ArgNames(), Doc doc = Doc()) {
    return add_method<detail::CallMode::kBlocking>(std::move(name), std::move(f), std::move(names),
                                                   std::move(doc.text));
  }
  template <class F>
  Class& method_blocking(std::string name, F f, Doc doc) {
    return method_blocking(std::move(name), std::move(f), ArgNames(), std::move(doc));
  }
  /// The class's __doc__ (on the class object and its instances), as a Python docstring.
  Class& doc(std::string text) {
    return update([&](Def& d) { d.doc = std::move(text); });
  }

  /// A read-only attribute.
  template <class G>
  Class& property(std::string name, G getter) {
    typename Def::Member m;
    m.getter = [g = std::move(getter)](T& obj) -> Any { return to_any(std::invoke(g, obj)); };
    return add_member(key_of(name), std::move(m));
  }
  /// A read-write attribute (the peer's SETATTR needs AccessPolicy::allow_setattr).
  template <class G, class S>
  Class& property(std::string name, G getter, S setter) {
    typename Def::Member m;
    m.getter = [g = std::move(getter)](T& obj) -> Any { return to_any(std::invoke(g, obj)); };
    m.setter = make_setter(name_ + "." + name, std::move(setter));
    return add_member(key_of(name), std::move(m));
  }

  /// len(obj): f(const T&) -> integer.
  template <class F>
  Class& len(F f) {
    return method("__len__", std::move(f));
  }
  /// obj[key]: f(T&, K) -> V; a std::optional<V> result that is empty raises KeyError
  /// (IndexError for integer keys). Throw PyError for other errors.
  template <class F>
  Class& getitem(F f) {
    using Params = detail::ParamsOf<F>;
    using S0 = typename detail::FirstParam<Params>::type;
    using K = typename detail::LastParam<Params>::type;
    using W = detail::GetItem<T, F, S0, K, detail::ResultOf<F>>;
    return method("__getitem__", W{std::move(f), name_});
  }
  /// obj[key] = value: f(T&, K, V).
  template <class F>
  Class& setitem(F f) {
    return method("__setitem__", std::move(f));
  }
  /// del obj[key]: f(T&, K).
  template <class F>
  Class& delitem(F f) {
    return method("__delitem__", std::move(f));
  }
  /// key in obj: f(const T&, K) -> bool.
  template <class F>
  Class& contains(F f) {
    return method("__contains__", std::move(f));
  }
  /// iter(obj): f(T&) returns either a range (copied into the iterator when iteration
  /// starts) or a generator, a callable returning std::optional<X> (nullopt ends it) that is
  /// called as the peer iterates.
  template <class F>
  Class& iter(F f) {
    using S0 = typename detail::FirstParam<detail::ParamsOf<F>>::type;
    return method("__iter__", detail::IterFactory<T, F, S0>{std::move(f)});
  }
  /// obj(...): the object itself is callable.
  template <class F>
  Class& call(F f, ArgNames names = ArgNames()) {
    return method("__call__", std::move(f), std::move(names));
  }
  /// repr(obj) / str(obj) on the peer.
  Class& repr(std::function<std::string(const T&)> f) {
    return update([&](Def& d) { d.repr = std::move(f); });
  }
  Class& str(std::function<std::string(const T&)> f) {
    return update([&](Def& d) { d.str = std::move(f); });
  }

  /// A constructor: calling the class object on the peer (Python's `c.root.Counter(5)`) calls
  /// `f` with the peer's arguments, converted as for any binding; `f` returns std::shared_ptr<T>,
  /// which the peer gets as an instance.
  template <class F>
  Class& init(F f, ArgNames names = ArgNames()) {
    static_assert(std::is_same_v<std::remove_cvref_t<detail::ResultOf<F>>, std::shared_ptr<T>>,
                  "Class<T>::init: the constructor function must return std::shared_ptr<T>");
    NativeFunction fn = bind_function(name_, std::move(f), std::move(names));
    return update([&](Def& d) { d.construct = std::move(fn); });
  }

  /// `obj` exported under this class (the same object for the same T* while it lives).
  [[nodiscard]] ObjectPtr wrap(std::shared_ptr<T> obj) const { return entry_->wrap(std::move(obj)); }

  /// The class itself, as an object for the peer (expose it, return it, pass it): a
  /// TypeObject named like the instances, so that a Python peer's isinstance(obj, cls) holds
  /// for them; calling it calls init()'s function (TypeError without one). One object per
  /// class: the peer sees one identity.
  [[nodiscard]] ObjectPtr type_object() const { return entry_->type_object(); }

  /// The definition as it stands (immutable; each builder call publishes a new one).
  [[nodiscard]] std::shared_ptr<const Def> definition() const { return entry_->definition(); }
  /// The shared class state (ClassSet keeps it).
  [[nodiscard]] const std::shared_ptr<detail::ClassEntry<T>>& entry() const noexcept { return entry_; }

 private:
  static std::string key_of(const std::string& name) {
    if (name.size() > 4 && name.starts_with("__") && name.ends_with("__")) return name;
    return "exposed_" + name;
  }

  template <detail::CallMode M, class F>
  Class& add_method(std::string name, F f, ArgNames names, std::string doc) {
    using B = detail::BinderFor<F, T, M>;
    auto b = std::make_shared<const B>(name_ + "." + name, std::move(f), std::move(names));
    typename Def::Member m;
    m.method = [b](CallContext& ctx, std::shared_ptr<T> self, std::vector<Any> args, Kwargs kwargs) {
      return detail::run_binding<B>(b, ctx, std::move(self), std::move(args), std::move(kwargs));
    };
    m.doc = [b, doc = std::move(doc)]() { return detail::compose_doc(b->info(), doc); };
    return add_member(key_of(name), std::move(m));
  }

  template <class S>
  static std::function<void(T&, const Any&)> make_setter(std::string where, S s) {
    if constexpr (std::is_member_object_pointer_v<S>) {
      using V = std::remove_cvref_t<decltype(std::declval<T&>().*s)>;
      static_assert(detail::sync_convertible<V>(), "property setters take types converted without requests");
      return [s, where](T& obj, const Any& a) {
        try {
          obj.*s = detail::convert_now<V>(a);
        } catch (const PyError& e) {
          detail::property_error(where, e);
        }
      };
    } else {
      using V = detail::Storage<typename detail::LastParam<detail::ParamsOf<S>>::type>;
      static_assert(detail::sync_convertible<V>(), "property setters take types converted without requests");
      return [s = std::move(s), where](T& obj, const Any& a) {
        V v{};
        try {
          v = detail::convert_now<V>(a);
        } catch (const PyError& e) {
          detail::property_error(where, e);
        }
        std::invoke(s, obj, std::move(v));
      };
    }
  }

  Class& add_member(std::string key, typename Def::Member m) {
    return update([&](Def& d) { d.members[std::move(key)] = std::move(m); });
  }

  template <class Fn>
  Class& update(Fn&& fn) {
    // From the class's current definition: every handle of the class builds on the others.
    auto next = std::make_shared<Def>(*entry_->definition());
    fn(*next);
    entry_->publish(std::move(next));
    return *this;
  }

  std::shared_ptr<detail::ClassEntry<T>> entry_;
  std::string name_;  ///< "Store": names bindings in messages
};

/// The classes a Service (Service::define_class) or a connection (ConnectionOptions::classes)
/// knows, at most one per C++ type: what the objects made by to_any(std::shared_ptr<T>) are
/// bound to when a connection sends them (see the file comment). A value: copying a set copies
/// its table, whose classes the copies then share until one of them defines T again. Define
/// classes before connections use the set (it is read by their loop threads, unlocked).
class TETHER_API ClassSet {
 public:
  /// A new class for T in this set (replacing the set's earlier one for T), under the Python
  /// type name "<module>.<name>": configure it through the handle returned.
  template <class T>
  Class<T> define(std::string name, std::string module = "tether") {
    Class<T> c(std::move(name), std::move(module));
    add(c);
    return c;
  }
  /// Puts an existing class in this set (replacing the set's earlier one for T): sets that add
  /// the same Class<T> share it.
  template <class T>
  ClassSet& add(const Class<T>& c) {
    entries_[std::type_index(typeid(T))] = c.entry();
    return *this;
  }
  /// Whether the set has a class for T.
  template <class T>
  [[nodiscard]] bool contains() const {
    return entries_.contains(std::type_index(typeid(T)));
  }
  /// `obj` exported under this set's class for T. UsageError (naming T) without one.
  template <class T>
  [[nodiscard]] ObjectPtr wrap(std::shared_ptr<T> obj) const {
    return entry_for(typeid(T)).wrap_erased(std::static_pointer_cast<void>(std::const_pointer_cast<std::remove_const_t<T>>(obj)));
  }
  /// What a connection sends for `obj`: a detail::PendingInstance bound to this set's class
  /// for its type (UsageError naming the type without one); any other object as it is.
  [[nodiscard]] ObjectPtr bind(const ObjectPtr& obj) const;
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

 private:
  detail::ClassEntryBase& entry_for(const std::type_info& type) const;

  std::unordered_map<std::type_index, std::shared_ptr<detail::ClassEntryBase>> entries_;
};

/// shared_ptr<T> of a class bound with Class<T>: exported by reference (see the file
/// comment); from_any gets the C++ object back from this process's own reference.
template <class T>
  requires(std::is_class_v<T> && !std::is_base_of_v<Object, std::remove_const_t<T>>)
struct Converter<std::shared_ptr<T>> {
  using U = std::remove_const_t<T>;
  static std::string py_name() { return detail::cpp_class_name(typeid(U)); }
  /// Unbound until a connection sends it (see the file comment).
  static Any to_any(const std::shared_ptr<T>& p) {
    if (!p) return Any();
    return Any(std::make_shared<detail::PendingInstance>(std::const_pointer_cast<U>(p), typeid(U)));
  }
  static std::shared_ptr<T> from_any_now(const Any& a) {
    if (a.is_none()) return nullptr;
    if (a.is_local()) {
      if (auto inst = std::dynamic_pointer_cast<detail::Instance<U>>(a.object())) return inst->ptr();
      if (auto pending = std::dynamic_pointer_cast<detail::PendingInstance>(a.object());
          pending && pending->type() == typeid(U)) {
        return std::static_pointer_cast<U>(pending->ptr());
      }
    }
    detail::conversion_error(py_name(), a);
  }
};

}  // namespace tether
