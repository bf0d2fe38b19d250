#include "tether/service/service.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <unordered_map>

#include "tether/base/log.hpp"
#include "tether/rpc/py_error.hpp"

namespace tether {

namespace {

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

std::string without_service_suffix(const std::string& name) {
  constexpr std::string_view kSuffix = "Service";
  if (name.size() > kSuffix.size() && name.ends_with(kSuffix))
    return name.substr(0, name.size() - kSuffix.size());
  return name;
}

std::string exposed_key(std::string_view name) { return "exposed_" + std::string(name); }

}  // namespace

// ------------------------------------------------------------------------------- Service

Service::Service(std::string name, std::vector<std::string> aliases)
    : def_(std::make_shared<detail::ServiceDef>()) {
  if (name.empty()) throw UsageError("tether::Service needs a name");
  def_->name = std::move(name);
  if (aliases.empty()) aliases.push_back(without_service_suffix(def_->name));
  for (auto& a : aliases) def_->aliases.push_back(upper(std::move(a)));
  def_->type_name = "tether." + (def_->name.ends_with("Service") ? def_->name : def_->name + "Service");
  // rpyc.Service's own exposed methods (wire spec §8.3).
  std::string service_name = def_->aliases.front();
  std::vector<std::string> all_aliases = def_->aliases;
  expose("get_service_name", [service_name]() { return service_name; });
  expose("get_service_aliases", [all_aliases]() { return all_aliases; });
}

Service::Service(const Service& other) : def_(std::make_shared<detail::ServiceDef>(*other.def_)) {}

Service& Service::operator=(const Service& other) {
  if (this != &other) def_ = std::make_shared<detail::ServiceDef>(*other.def_);
  return *this;
}

Service::~Service() = default;

const std::string& Service::name() const noexcept { return def_->name; }
const std::string& Service::service_name() const noexcept { return def_->aliases.front(); }
const std::vector<std::string>& Service::aliases() const noexcept { return def_->aliases; }
const std::string& Service::type_name() const noexcept { return def_->type_name; }

Service& Service::expose_native(std::string name, NativeFunction fn, DocFn doc) {
  if (!fn) throw UsageError("tether::Service::expose: empty function for '" + name + "'");
  detail::ServiceMember m;
  m.kind = detail::ServiceMember::Kind::kFunction;
  m.fn = std::move(fn);
  m.doc = std::move(doc);
  def_->members[exposed_key(name)] = std::move(m);
  return *this;
}

Service& Service::expose_property(std::string name, NativeFunction getter, NativeFunction setter) {
  if (!getter) throw UsageError("tether::Service::property: empty getter for '" + name + "'");
  detail::ServiceMember m;
  m.kind = detail::ServiceMember::Kind::kProperty;
  m.fn = std::move(getter);
  m.setter = std::move(setter);
  def_->members[exposed_key(name)] = std::move(m);
  return *this;
}

Service& Service::expose_object(std::string name, ObjectPtr obj) {
  if (!obj) throw UsageError("tether::Service::expose_object: null object for '" + name + "'");
  return expose_any(std::move(name), Any(std::move(obj)), true);
}

Service& Service::expose_value(std::string name, Any value) {
  return expose_any(std::move(name), std::move(value), false);
}

Service& Service::expose_any(std::string name, Any value, bool object) {
  if (value.is_netref()) {
    throw UsageError("tether::Service: '" + name +
                     "' is a Netref; a service can only expose its own objects");
  }
  detail::ServiceMember m;
  m.kind = (object && value.is_local()) ? detail::ServiceMember::Kind::kObject
                                        : detail::ServiceMember::Kind::kValue;
  m.value = std::move(value);
  def_->members[exposed_key(name)] = std::move(m);
  return *this;
}

Service& Service::on_connect(std::function<void(Session&)> fn) {
  def_->on_connect = std::move(fn);
  return *this;
}

Service& Service::on_disconnect(std::function<void(Session&)> fn) {
  def_->on_disconnect = std::move(fn);
  return *this;
}

Service& Service::doc(std::string text) {
  def_->doc = std::move(text);
  return *this;
}

Service& Service::root(RootFactory factory) {
  if (!factory) throw UsageError("tether::Service::root: empty factory");
  def_->root = std::move(factory);
  return *this;
}

Service& Service::root(ObjectPtr shared_root) {
  if (!shared_root) throw UsageError("tether::Service::root: null object");
  return root([shared_root](Session&) { return shared_root; });
}

Service& Service::state_factory(std::function<std::any()> fn) {
  def_->state_factory = std::move(fn);
  return *this;
}

const ClassSet& Service::classes() const noexcept { return def_->classes; }

std::shared_ptr<const detail::ServiceDef> Service::snapshot() const {
  auto snap = std::make_shared<detail::ServiceDef>(*def_);
  // An object exposed by value of a class type becomes the service's instance of it once, so
  // that every connection shares it (and the root can call it) without binding it again.
  for (auto& [key, m] : snap->members) {
    if (m.kind != detail::ServiceMember::Kind::kObject) continue;
    try {
      m.value = Any(snap->classes.bind(m.value.object()));
    } catch (const UsageError& e) {
      throw UsageError("tether::Service '" + snap->name + "': '" + key.substr(8) + "': " + e.what());
    }
  }
  return snap;
}

// ------------------------------------------------------------------------------- Session

Session::Session(std::shared_ptr<const detail::ServiceDef> def, std::string peer, EventLoop& loop)
    : def_(std::move(def)), peer_(std::move(peer)), loop_(loop) {
  if (def_->state_factory) state_ = def_->state_factory();
}

Session::~Session() = default;

const std::string& Session::service_name() const noexcept { return def_->aliases.front(); }

Task<Netref> Session::peer_root() {
  if (!conn_) throw Disconnected("connection closed");
  Netref r = co_await conn_->root();
  co_return r;
}

Session* Session::find(const CallContext& ctx) noexcept {
  // The connection's context slot holds its Session (attach); a finished one is not found.
  const auto* weak = std::any_cast<std::weak_ptr<Session>>(&ctx.context());
  if (!weak) return nullptr;
  std::shared_ptr<Session> s = weak->lock();  // the root object keeps it alive meanwhile
  return s && s->conn_ ? s.get() : nullptr;
}

void Session::attach(Connection& conn) {
  conn_ = &conn;
  conn.set_context(weak_from_this());
}

bool Session::run_on_connect() noexcept {
  connected_ = true;
  if (!def_->on_connect) return true;
  try {
    def_->on_connect(*this);
    return true;
  } catch (...) {
    connect_error_ = std::current_exception();
    TETHER_LOG_WARN("service {}: on_connect refused {}: {}", def_->name, peer_,
                    describe_current_exception());
    connected_ = false;
    return false;
  }
}

void Session::finish(bool connection_alive) noexcept {
  if (finished_) return;
  finished_ = true;
  if (!connection_alive) conn_ = nullptr;
  if (connected_ && def_->on_disconnect) {
    try {
      def_->on_disconnect(*this);
    } catch (...) {
      TETHER_LOG_WARN("service {}: on_disconnect failed for {}: {}", def_->name, peer_,
                      describe_current_exception());
    }
  }
  conn_ = nullptr;  // from here on, Session::find no longer gives this session
}

void Session::leave() noexcept {
  if (busy_ > 0) --busy_;
  if (busy_ == 0 && draining_) wake_.set();
}

void Session::begin_drain() noexcept {
  draining_ = true;
  if (def_->root && conn_) {
    // A custom root's calls are not counted: the connection's own count of the requests it
    // serves says when it is idle.
    std::weak_ptr<Session> weak = weak_from_this();
    conn_->set_idle_callback([weak]() {
      if (auto s = weak.lock()) s->wake();
    });
  }
  wake_.set();
}

bool Session::should_close() const noexcept {
  if (!draining_ || busy_ != 0) return false;
  return !def_->root || !conn_ || conn_->serving() == 0;
}

Task<void> Session::wait_wake() {
  co_await wake_.wait();
  wake_.clear();
}

Session& ContextParam<Session>::get(CallContext& ctx) {
  Session* s = Session::find(ctx);
  if (!s) throw UsageError("no tether::Session for this connection (it does not serve a tether::Service)");
  return *s;
}

// ----------------------------------------------------------------------------- the root

namespace {

/// "tether" of "tether.CalculatorService".
std::string module_of(std::string_view type_name) {
  const auto dot = type_name.rfind('.');
  return dot == std::string_view::npos ? std::string("builtins") : std::string(type_name.substr(0, dot));
}

/// Counts a call into the service for the drain protocol.
Task<Any> counted_call(std::shared_ptr<Session> session, std::shared_ptr<const detail::ServiceDef> def,
                       const NativeFunction* fn, CallContext& ctx, std::vector<Any> args, Kwargs kwargs) {
  session->enter();
  struct Leave {
    Session* s;
    ~Leave() { s->leave(); }
  } leave{session.get()};
  (void)def;  // keeps *fn alive
  Any r = co_await (*fn)(ctx, std::move(args), std::move(kwargs));
  co_return r;
}

/// A service function handed to the peer by GETATTR ("builtins.method": callable for Python
/// without an INSPECT round trip).
class MemberFunction final : public Object {
 public:
  MemberFunction(std::shared_ptr<const detail::ServiceDef> def, const detail::ServiceMember* m,
                 std::string name, std::shared_ptr<Session> session)
      : def_(std::move(def)), member_(m), name_(std::move(name)), session_(std::move(session)) {}
  [[nodiscard]] std::string type_name() const override { return "builtins.method"; }
  Task<Any> call(CallContext& ctx, std::vector<Any> args, Kwargs kwargs) override {
    return counted_call(session_, def_, &member_->fn, ctx, std::move(args), std::move(kwargs));
  }
  [[nodiscard]] std::string repr() const override {
    return fmt::format("<bound method {}.{} of tether service>", def_->name, name_);
  }
  [[nodiscard]] std::vector<std::string> inspect_names() const override { return {"__call__"}; }
  // __doc__ (signature + doc string), __name__, __qualname__, __module__ (the service's).
  [[nodiscard]] bool has_attr(std::string_view name) const override { return is_descriptive_attr(name); }
  Any get_attr(CallContext& ctx, std::string_view name) override {
    const std::string doc = member_->doc ? member_->doc() : std::string();
    if (auto v = descriptive_attr(name, name_, module_of(def_->type_name), doc)) return std::move(*v);
    return Object::get_attr(ctx, name);
  }
  [[nodiscard]] std::vector<std::string> attr_names() const override {
    return {"__doc__", "__module__", "__name__", "__qualname__"};
  }

 private:
  std::shared_ptr<const detail::ServiceDef> def_;
  const detail::ServiceMember* member_;
  std::string name_;
  std::shared_ptr<Session> session_;
};

class ServiceRoot final : public Object {
 public:
  ServiceRoot(std::shared_ptr<const detail::ServiceDef> def, std::shared_ptr<Session> session, std::string prefix)
      : def_(std::move(def)), session_(std::move(session)), prefix_(std::move(prefix)) {}

  [[nodiscard]] std::string type_name() const override { return def_->type_name; }
  [[nodiscard]] bool has_attr(std::string_view name) const override {
    return find_member(name) != nullptr || name == "__doc__";
  }

  Task<Any> get_attr_async(CallContext& ctx, std::string name) override {
    if (name == "__doc__" && !find_member(name)) co_return doc_value();
    const detail::ServiceMember& m = member(name);
    if (m.kind == detail::ServiceMember::Kind::kProperty) {
      Any v = co_await counted_call(session_, def_, &m.fn, ctx, {}, {});
      co_return v;
    }
    co_return get_attr(ctx, name);
  }

  Any get_attr(CallContext&, std::string_view name) override {
    if (name == "__doc__" && !find_member(name)) return doc_value();
    const detail::ServiceMember& m = member(name);
    if (m.kind == detail::ServiceMember::Kind::kProperty) {
      throw UsageError("a service property is read with get_attr_async");
    }
    if (m.kind != detail::ServiceMember::Kind::kFunction) return m.value;
    auto it = methods_.find(name);
    if (it == methods_.end()) {
      std::string display(name.substr(prefix_.size()));
      it = methods_.emplace(std::string(name), std::make_shared<MemberFunction>(def_, &m, display, session_))
               .first;
    }
    return Any(it->second);
  }

  Task<void> set_attr_async(CallContext& ctx, std::string name, Any value) override {
    const detail::ServiceMember& m = member(name);
    if (m.kind != detail::ServiceMember::Kind::kProperty || !m.setter) {
      throw PyError("AttributeError", "access denied");
    }
    std::vector<Any> args;
    args.push_back(std::move(value));
    Any ignored = co_await counted_call(session_, def_, &m.setter, ctx, std::move(args), {});
    (void)ignored;
  }

  Task<Any> call_attr(CallContext& ctx, std::string_view name, std::vector<Any> args,
                      Kwargs kwargs) override {
    const detail::ServiceMember& m = member(name);
    switch (m.kind) {
      case detail::ServiceMember::Kind::kFunction:
        return counted_call(session_, def_, &m.fn, ctx, std::move(args), std::move(kwargs));
      case detail::ServiceMember::Kind::kObject:
        return m.value.object()->call(ctx, std::move(args), std::move(kwargs));
      case detail::ServiceMember::Kind::kProperty:
        return call_property(ctx, m, std::move(args), std::move(kwargs));
      case detail::ServiceMember::Kind::kValue: break;
    }
    throw PyError("TypeError", fmt::format("'{}' object is not callable", m.value.repr()));
  }

  void set_attr(CallContext&, std::string_view, Any) override {
    throw PyError("AttributeError", "access denied");
  }
  void del_attr(CallContext&, std::string_view) override { throw PyError("AttributeError", "access denied"); }

  [[nodiscard]] std::string repr() const override {
    return fmt::format("<{} object at 0x{:016x}>", def_->type_name, tag());  // never an address
  }
  [[nodiscard]] std::vector<std::string> attr_names() const override {
    std::vector<std::string> names;
    for (const auto& [key, m] : def_->members) {
      names.push_back(key.substr(8));
      if (!prefix_.empty()) names.push_back(prefix_ + key.substr(8));
    }
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  Any doc_value() const { return def_->doc.empty() ? Any() : Any(brine::Value(def_->doc)); }
  const detail::ServiceMember& member(std::string_view name) const {
    const detail::ServiceMember* m = find_member(name);
    if (!m) throw attribute_error(name);
    return *m;
  }
  /// A request looks its member up twice (the access check's has_attr, then the call), and a
  /// client usually calls the same function again: the last member found is tried first.
  /// Members are stored as "exposed_<name>" and answer as prefix_ + name: a name without the
  /// connection's prefix is no member.
  const detail::ServiceMember* find_member(std::string_view name) const {
    if (!name.starts_with(prefix_)) return nullptr;
    if (prefix_ != kStoredPrefix) {
      auto it = def_->members.find(std::string(kStoredPrefix) + std::string(name.substr(prefix_.size())));
      return it == def_->members.end() ? nullptr : &it->second;
    }
    if (last_ && last_->first == name) return &last_->second;
    auto it = def_->members.find(name);
    if (it == def_->members.end()) return nullptr;
    last_ = &*it;
    return &it->second;
  }

  static constexpr std::string_view kStoredPrefix = "exposed_";

  /// Calling a property: its value, called.
  Task<Any> call_property(CallContext& ctx, const detail::ServiceMember& m, std::vector<Any> args, Kwargs kwargs) {
    Any v = co_await counted_call(session_, def_, &m.fn, ctx, {}, {});
    if (!v.is_local()) throw PyError("TypeError", fmt::format("'{}' object is not callable", v.repr()));
    ObjectPtr obj = v.object();
    Any r = co_await obj->call(ctx, std::move(args), std::move(kwargs));
    co_return r;
  }

  std::shared_ptr<const detail::ServiceDef> def_;  // immutable: its members stay where they are
  mutable const std::pair<const std::string, detail::ServiceMember>* last_ = nullptr;
  std::shared_ptr<Session> session_;
  std::string prefix_;
  std::map<std::string, std::shared_ptr<MemberFunction>, std::less<>> methods_;
};

}  // namespace

ObjectPtr make_service_root(std::shared_ptr<const detail::ServiceDef> def, std::shared_ptr<Session> session,
                            std::string exposed_prefix) {
  if (def->root) {
    ObjectPtr root = def->root(*session);
    if (!root) throw UsageError("tether::Service '" + def->name + "': the root factory returned a null object");
    return root;
  }
  return std::make_shared<ServiceRoot>(std::move(def), std::move(session), std::move(exposed_prefix));
}

}  // namespace tether
