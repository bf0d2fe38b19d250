#pragma once
/// \file Service: what a tether server (or a client, for its callbacks) exposes — RPyC's
/// rpyc.Service.
///
///   tether::Service calc("Calculator");
///   calc.expose("add", [](std::int64_t a, std::int64_t b) { return a + b; }, tether::arg_names("a", "b"));
///   calc.expose_async("slow", [](double s) -> tether::Task<void> { co_await tether::sleep_for_seconds(s);
///   }); calc.expose_blocking("digest", digest_file);          // runs on the worker pool
///   calc.expose_object("store", std::make_shared<Store>());  // a class bound with tether::Class
///   calc.on_connect([](tether::Session& s) { s.state() = Counter{}; });
///
/// Every connection gets its own root object (type name "tether.<Name>Service", nothing in its
/// INSPECT answer) exposing each member as "exposed_<name>", so a Python client reaches both
/// `root.add` and `root.exposed_add`, plus `get_service_name()` (the first alias upper-cased:
/// "CalcService" -> "CALC", "Calculator" -> "CALCULATOR") and `get_service_aliases()` as
/// rpyc.Service does. Setting or deleting attributes of the root is refused
/// (AttributeError; "access denied" when the policy lets the request reach the root).
///
/// Functions are typed bindings (rpc/bind.hpp): arguments and results are converted, keyword
/// arguments work when names are given, errors reach the peer as Python exceptions. A function
/// may take `tether::Session&` (and `tether::CallContext&`) parameters, supplied by tether.
///
/// Threads: a Service is a builder. serve()/Server and connect() take a snapshot of it, so
/// later changes do not affect running servers. With several server threads the exposed
/// functions and objects run concurrently on each thread's loop; Sessions are per connection
/// and live on one loop thread.

#include <any>
#include <exception>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "tether/base/error.hpp"
#include "tether/base/export.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task.hpp"
#include "tether/net/tls.hpp"
#include "tether/rpc/any.hpp"
#include "tether/rpc/bind.hpp"
#include "tether/rpc/class.hpp"
#include "tether/rpc/connection.hpp"
#include "tether/rpc/object.hpp"

namespace tether {

class Session;

/// Makes one connection's root object (Service::root): any tether::Object, typically a fresh
/// one per connection that keeps the connection's state. Called on the connection's loop
/// thread once the Session exists (peer(), state() and peer_certificate() are set; connection()
/// is still null), before on_connect.
using RootFactory = std::function<ObjectPtr(Session& session)>;

namespace detail {

/// One exposed member of a service.
struct ServiceMember {
  enum class Kind { kFunction, kObject, kValue, kProperty };
  Kind kind = Kind::kValue;
  NativeFunction fn;      ///< kFunction; kProperty: the getter (no arguments)
  NativeFunction setter;  ///< kProperty: one argument, the value; empty: read-only
  DocFn doc;              ///< kFunction: __doc__ (signature + doc string)
  Any value;              ///< kObject (a local object) or kValue
};

/// An immutable snapshot of a Service, shared by every connection that serves it.
struct ServiceDef {
  std::string name;
  std::vector<std::string> aliases;                           ///< upper-cased; the first is the service name
  std::string type_name;                                      ///< "tether.CalculatorService"
  std::string doc;                                            ///< the root's __doc__
  std::map<std::string, ServiceMember, std::less<>> members;  ///< by "exposed_<name>"
  std::function<void(Session&)> on_connect;
  std::function<void(Session&)> on_disconnect;
  std::function<std::any()> state_factory;
  RootFactory root;  ///< set: a custom root (Service::root) instead of the members' root
  ClassSet classes;  ///< the service's classes (define_class): its connections' ConnectionOptions::classes
};

}  // namespace detail

/// One connection's view of the service: per-connection state, the peer, the connection.
/// Created by serve()/Server and connect(); lives on the connection's loop thread. Handlers
/// reach it through a `tether::Session&` parameter.
class TETHER_API Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<const detail::ServiceDef> def, std::string peer, EventLoop& loop);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// The peer's address ("127.0.0.1:51234", "unix:/run/x.sock", "process:123:argv0" ...).
  [[nodiscard]] const std::string& peer() const noexcept { return peer_; }
  [[nodiscard]] EventLoop& loop() const noexcept { return loop_; }
  /// The connection while it is open (also during on_connect, and during on_disconnect on a
  /// server); null afterwards.
  [[nodiscard]] Connection* connection() const noexcept { return conn_; }
  /// The service's name (get_service_name()).
  [[nodiscard]] const std::string& service_name() const noexcept;
  /// Per-connection state: starts as what the service's state factory returns (empty if none).
  [[nodiscard]] std::any& state() noexcept { return state_; }
  /// The state as S; UsageError if it holds something else.
  template <class S>
  S& state_as() {
    if (S* p = std::any_cast<S>(&state_)) return *p;
    throw UsageError("tether::Session::state_as: the session state has another type");
  }
  /// The peer's TLS certificate: subject ("CN=client1,O=..."), SANs, and whether it was
  /// verified against the server's ca_file. present == false without TLS or when the client
  /// sent none. Set before on_connect runs, so on_connect can authorize by it (and refuse by
  /// throwing, see Service::on_connect).
  [[nodiscard]] const PeerCertificate& peer_certificate() const noexcept { return peer_cert_; }
  /// The peer's root object (one GETROOT per connection, then cached). A Python client's root
  /// is a VoidService unless it passed a service.
  Task<Netref> peer_root();

  /// The session serving the connection of `ctx` (null outside a service connection). Loop
  /// thread only.
  static Session* find(const CallContext& ctx) noexcept;

  // --- used by serve()/connect(), not by applications
  /// Binds the session to its connection (registers it for find()).
  void attach(Connection& conn);
  void set_peer_certificate(PeerCertificate cert) { peer_cert_ = std::move(cert); }
  /// Runs on_connect. False (and logged) if it threw; connect_error() then holds why.
  bool run_on_connect() noexcept;
  [[nodiscard]] const std::exception_ptr& connect_error() const noexcept { return connect_error_; }
  /// Runs on_disconnect once and detaches from the connection.
  void finish(bool connection_alive) noexcept;
  /// Calls into the service in progress, and the drain protocol used by Server::shutdown.
  void enter() noexcept { ++busy_; }
  void leave() noexcept;
  void begin_drain() noexcept;
  /// Draining and idle: no call into the service running (a custom root's connection: no
  /// request being served at all).
  [[nodiscard]] bool should_close() const noexcept;
  /// Wakes the server's per-connection task (connection closed, or drain progress).
  void wake() noexcept { wake_.set(); }
  Task<void> wait_wake();

 private:
  std::shared_ptr<const detail::ServiceDef> def_;
  std::string peer_;
  EventLoop& loop_;
  Connection* conn_ = nullptr;
  std::any state_;
  PeerCertificate peer_cert_;
  std::exception_ptr connect_error_;
  std::size_t busy_ = 0;
  bool draining_ = false;
  bool connected_ = false;
  bool finished_ = false;
  Event wake_;
};

/// `tether::Session&` parameters of bound functions.
template <>
struct ContextParam<Session> {
  TETHER_API static Session& get(CallContext& ctx);
};

class TETHER_API Service {
 public:
  /// `aliases` empty: RPyC's rule, the name without a "Service" suffix, upper-cased.
  explicit Service(std::string name, std::vector<std::string> aliases = std::vector<std::string>());
  Service(const Service& other);
  Service& operator=(const Service& other);
  Service(Service&&) noexcept = default;
  Service& operator=(Service&&) noexcept = default;
  ~Service();

  [[nodiscard]] const std::string& name() const noexcept;
  /// get_service_name(): the first alias.
  [[nodiscard]] const std::string& service_name() const noexcept;
  [[nodiscard]] const std::vector<std::string>& aliases() const noexcept;
  /// The root object's type name, "tether.<Name>Service".
  [[nodiscard]] const std::string& type_name() const noexcept;

  /// A function called on the loop thread (a Task result is awaited). See rpc/bind.hpp.
  /// `doc` (tether::doc("...")) follows the signature in the function's __doc__ on the peer.
  template <class F>
  Service& expose(std::string name, F f, ArgNames names = ArgNames(), Doc doc = Doc()) {
    auto d = detail::bind_documented<detail::CallMode::kDirect>(name, std::move(f), std::move(names),
                                                                std::move(doc.text));
    return expose_native(std::move(name), std::move(d.fn), std::move(d.doc));
  }
  template <class F>
  Service& expose(std::string name, F f, Doc doc) {
    return expose(std::move(name), std::move(f), ArgNames(), std::move(doc));
  }
  /// A coroutine function (returns Task<R>); the same as expose(), checked.
  template <class F>
  Service& expose_async(std::string name, F f, ArgNames names = ArgNames(), Doc doc = Doc()) {
    static_assert(detail::IsTask<std::remove_cvref_t<detail::ResultOf<F>>>::value,
                  "expose_async: the callable must return tether::Task<R>");
    return expose(std::move(name), std::move(f), std::move(names), std::move(doc));
  }
  template <class F>
  Service& expose_async(std::string name, F f, Doc doc) {
    return expose_async(std::move(name), std::move(f), ArgNames(), std::move(doc));
  }
  /// A function run on the loop's worker pool (blocking work); arguments are converted on the
  /// loop thread first. It cannot take Session&/CallContext&.
  template <class F>
  Service& expose_blocking(std::string name, F f, ArgNames names = ArgNames(), Doc doc = Doc()) {
    auto d = detail::bind_documented<detail::CallMode::kBlocking>(name, std::move(f), std::move(names),
                                                                  std::move(doc.text));
    return expose_native(std::move(name), std::move(d.fn), std::move(d.doc));
  }
  template <class F>
  Service& expose_blocking(std::string name, F f, Doc doc) {
    return expose_blocking(std::move(name), std::move(f), ArgNames(), std::move(doc));
  }
  /// An untyped function (Anys in, Any out); `doc` makes its __doc__ (none when empty).
  Service& expose_native(std::string name, NativeFunction fn, DocFn doc = DocFn());
  /// The root object's __doc__ (Python's `c.root.__doc__`, help(c.root)): a Python service
  /// class's docstring.
  Service& doc(std::string text);
  /// A computed attribute: `root.name` on the peer calls `getter` (a function of no Python
  /// arguments; it may take Session&/CallContext&, return Task<R> and throw, e.g.
  /// PyError("ValueError", ...), which the peer gets as raised). Read-only.
  template <class G>
  Service& property(std::string name, G getter) {
    return expose_property(name, bind_function(name, std::move(getter)), NativeFunction());
  }
  /// A computed read-write attribute: `root.name = v` calls `setter(v)` (a function of one
  /// Python argument). The peer may set it only where the connection's AccessPolicy has
  /// allow_setattr (RPyC's default refuses).
  template <class G, class S>
  Service& property(std::string name, G getter, S setter) {
    NativeFunction get = bind_function(name, std::move(getter));
    NativeFunction set = bind_function(name, std::move(setter));
    return expose_property(std::move(name), std::move(get), std::move(set));
  }
  Service& expose_property(std::string name, NativeFunction getter, NativeFunction setter);
  /// A class of this service for the C++ type T (rpc/class.hpp), named "<module>.<name>" for
  /// the peer: every T this service's connections send (a shared_ptr<T> a function returns or
  /// an argument of a call to the peer, an expose_object) is exported as an instance of it.
  /// Configure it through the handle returned (.method(), .property() ...). Replaces the
  /// service's earlier class for T; other services, even copies of this one, keep theirs.
  template <class T>
  Class<T> define_class(std::string name, std::string module = "tether") {
    return def_->classes.define<T>(std::move(name), std::move(module));
  }
  /// Adds an existing class (shared with every other set or service that holds it).
  template <class T>
  Service& add_class(const Class<T>& c) {
    def_->classes.add(c);
    return *this;
  }
  /// The service's classes.
  [[nodiscard]] const ClassSet& classes() const noexcept;
  /// An object shared by every connection (exported by reference).
  Service& expose_object(std::string name, ObjectPtr obj);
  /// An instance of a class of this service (define_class; bound to it when the service is
  /// served or connected: a T without a class is a UsageError then), or an Object subclass.
  template <class T>
  Service& expose_object(std::string name, std::shared_ptr<T> obj) {
    return expose_any(std::move(name), to_any(std::move(obj)), true);
  }
  /// A plain value (e.g. a version string or a tuple of settings); Netrefs are refused.
  Service& expose_value(std::string name, Any value);

  /// Runs when a connection starts (before its first request is served) / after it closed.
  /// Loop thread of the connection. An exception from on_connect refuses the client: on a
  /// server its first request is answered with the exception -- a PyError as thrown (e.g.
  /// PyError("PermissionError", "client1 may not connect")), anything else as
  /// PermissionError("connection refused by the service") -- then the connection closes
  /// (on_disconnect is not called). A client that sends nothing is dropped after 10 s.
  Service& on_connect(std::function<void(Session&)> fn);
  Service& on_disconnect(std::function<void(Session&)> fn);
  /// A custom root: each connection's root object is what `factory` returns — any
  /// tether::Object (rpc/object.hpp) — instead of the root made from this service's members,
  /// which it replaces (expose()d members, get_service_name and get_service_aliases are then
  /// not served unless the object answers them itself). Everything else of the service
  /// applies to it: on_connect/on_disconnect, the Session (a `Session&` parameter of bindings
  /// the object calls, Session::find(ctx)), the state factory, the classes, the name and
  /// aliases (ServerInfo, registry announcements). On a server, an exception from the factory
  /// refuses the client as one from on_connect does. A graceful shutdown closes such a
  /// connection once no request is being served on it (Connection::serving()).
  Service& root(RootFactory factory);
  /// The same `shared_root` for every connection (shared by all connections and loop threads).
  Service& root(ObjectPtr shared_root);
  /// Initial per-connection state (Session::state()).
  Service& state_factory(std::function<std::any()> fn);
  /// Per-connection state default-constructed as S.
  template <class S>
  Service& with_state() {
    return state_factory([] { return std::any(S{}); });
  }

  /// An immutable snapshot (what servers and connections use). Objects given to
  /// expose_object are bound to the service's classes here (UsageError for a C++ type the
  /// service has no class for). The classes themselves are shared with the snapshot.
  [[nodiscard]] std::shared_ptr<const detail::ServiceDef> snapshot() const;

 private:
  Service& expose_any(std::string name, Any value, bool object);

  std::shared_ptr<detail::ServiceDef> def_;
};

/// The root object of one connection serving `def` (used by serve()/connect()): the custom
/// root's factory's (Service::root), else the root made from the service's members. Members
/// answer under `exposed_prefix` (the connection's AccessPolicy::exposed_prefix), so that a
/// custom prefix reaches them ("api_add") and the default one ("exposed_add") then does not.
TETHER_API ObjectPtr make_service_root(std::shared_ptr<const detail::ServiceDef> def,
                                       std::shared_ptr<Session> session,
                                       std::string exposed_prefix = "exposed_");

}  // namespace tether
