// The request handlers (wire spec §6), one table indexed by handler number as RPyC's
// _dispatch_request has it, and the attribute access check (§12.2). DEL and CLOSE are acted on
// by the read loop (connection_core.cpp) and have no entry.

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "rpc/connection_core.hpp"
#include "tether/rpc/py_error.hpp"

namespace tether::rpc::detail {

using brine::Value;

namespace {

/// The name argument of GETATTR and friends (str, or UTF-8 bytes as Python accepts); a view
/// into `a`.
std::string_view attr_name(const Any& a) {
  if (a.is_value()) {
    if (a.value().is_str()) return a.value().as_str();
    if (a.value().is_bytes()) return a.value().as_bytes().view();
  }
  throw PyError("TypeError", "name must be a string");
}

void require_args(std::span<const Any> args, std::size_t min, std::size_t max, Handler h) {
  if (args.size() < min || args.size() > max) {
    throw PyError("TypeError", fmt::format("{} takes {} to {} arguments ({} given)", handler_name(h), min,
                                           max, args.size()));
  }
}

std::vector<Any> as_call_args(Any& a) {
  if (a.is_none()) return {};
  if (!a.is_tuple()) throw PyError("TypeError", "call arguments must be a tuple");
  return std::move(a).take_items();
}

ObjectPtr local_target(const Any& a, std::string_view what) {
  if (a.is_local()) return a.object();
  throw PyError("TypeError",
                fmt::format("{}: the target is not an object of this peer ({})", what, a.repr()));
}

constexpr std::array<std::string_view, 7> kCompareOps = {"__eq__", "__ne__", "__lt__", "__gt__",
                                                         "__le__", "__ge__", "__cmp__"};

/// prefix + name, on the stack when short (the usual case). Not copyable: view() may point
/// into the object itself.
class PrefixedName {
 public:
  PrefixedName(std::string_view prefix, std::string_view name) {
    if (prefix.empty()) return;
    if (prefix.size() + name.size() <= sizeof small_) {
      std::memcpy(small_, prefix.data(), prefix.size());
      std::memcpy(small_ + prefix.size(), name.data(), name.size());
      view_ = std::string_view(small_, prefix.size() + name.size());
    } else {
      large_ = std::string(prefix) + std::string(name);
      view_ = large_;
    }
  }
  PrefixedName(const PrefixedName&) = delete;
  PrefixedName& operator=(const PrefixedName&) = delete;
  [[nodiscard]] std::string_view view() const noexcept { return view_; }

 private:
  char small_[64];
  std::string large_;
  std::string_view view_;
};

/// The exposed prefix in force: none when allow_exposed_attrs is off.
std::string_view policy_prefix(const AccessPolicy& p) noexcept {
  return p.allow_exposed_attrs ? std::string_view(p.exposed_prefix) : std::string_view();
}

/// What the access check (§12.2) lets a request for `name` reach.
enum class Access { kRefused, kName, kExposed };

/// §12.2 steps 1-8, without throwing. `exposed` is prefix + name (empty when
/// allow_exposed_attrs is off); kExposed means the request reaches `exposed`, kName `name`.
Access check_access(const AccessPolicy& p, const Object& obj, std::string_view name, std::string_view exposed,
                    bool master_switch) {
  if (!master_switch) return Access::kRefused;
  const std::string_view prefix = policy_prefix(p);
  const bool plain = p.allow_all_attrs ||
                     (p.allow_exposed_attrs && !prefix.empty() && name.starts_with(prefix)) ||
                     (p.allow_safe_attrs && (is_safe_attr(name) || is_descriptive_attr(name))) ||
                     (p.allow_public_attrs && !name.starts_with("_"));
  const bool has_exposed = !prefix.empty() && obj.has_attr(exposed);
  if (plain && (!has_exposed || obj.has_attr(name))) return Access::kName;
  if (has_exposed) return Access::kExposed;
  if (plain) return Access::kName;
  return Access::kRefused;
}

// ------------------------------------------------------------------------------ handlers
//
// Each takes the request and returns its result. Handlers that answer at once return a ready
// value through `ready`; those that call into objects return the object's Task directly, so
// that a call costs no coroutine frame of the dispatcher's own.

using HandlerFn = Task<Any> (*)(ConnectionCore&, CallContext&, Request&);

Task<Any> ready(Any a) { co_return a; }

/// The name a request for `name` reaches on `obj`: RPyC's access check, unless the object
/// checks its own access.
std::string reach(ConnectionCore& c, const Object& obj, std::string_view name, bool master_switch) {
  if (obj.checks_own_access()) return std::string(name);
  return c.resolve_attr(obj, name, master_switch);
}

/// CALLATTR's and CALL's target, name and arguments, in the usual shape or taken from the
/// argument tuple with RPyC's checks, in its order.
void shape_call(ConnectionCore& c, Request& r, bool attr) {
  CallShape& call = r.call;
  const bool allow = c.options().policy.allow_getattr;
  if (!call.present) {
    std::vector<Any>& args = r.args;
    if (attr) {
      require_args(args, 3, 4, Handler::kCallAttr);
      call.obj = local_target(args[0], "callattr");
      call.name = reach(c, *call.obj, attr_name(args[1]), allow);
      call.args = as_call_args(args[2]);
      if (args.size() > 3) call.kwargs = std::move(args[3]);
    } else {
      require_args(args, 2, 3, Handler::kCall);
      call.obj = local_target(args[0], "call");
      call.args = as_call_args(args[1]);
      if (args.size() > 2) call.kwargs = std::move(args[2]);
    }
    call.present = true;
    return;
  }
  if (attr) call.name = reach(c, *call.obj, call.name, allow);
}

Task<Any> do_call_attr(ConnectionCore& c, CallContext& ctx, Request& r) {
  shape_call(c, r, true);
  Kwargs kwargs = as_kwargs(r.call.kwargs);
  return r.call.obj->call_attr(ctx, r.call.name, std::move(r.call.args), std::move(kwargs));
}

Task<Any> do_call(ConnectionCore& c, CallContext& ctx, Request& r) {
  shape_call(c, r, false);
  Kwargs kwargs = as_kwargs(r.call.kwargs);
  return r.call.obj->call(ctx, std::move(r.call.args), std::move(kwargs));
}

Task<Any> do_ping(ConnectionCore&, CallContext&, Request& r) {
  require_args(r.args, 1, 1, Handler::kPing);
  return ready(std::move(r.args[0]));
}

Task<Any> do_get_root(ConnectionCore& c, CallContext&, Request&) { return ready(Any(c.root_object())); }

Task<Any> do_get_attr(ConnectionCore& c, CallContext& ctx, Request& r) {
  ObjectPtr obj;
  std::string name;
  if (r.call.present) {
    obj = std::move(r.call.obj);
    name = std::move(r.call.name);
  } else {
    require_args(r.args, 2, 2, Handler::kGetAttr);
    obj = local_target(r.args[0], "getattr");
    name = attr_name(r.args[1]);
  }
  name = reach(c, *obj, name, c.options().policy.allow_getattr);
  Any value = co_await obj->get_attr_async(ctx, std::move(name));
  co_return value;
}

Task<Any> do_set_attr(ConnectionCore& c, CallContext& ctx, Request& r) {
  require_args(r.args, 3, 3, Handler::kSetAttr);
  ObjectPtr obj = local_target(r.args[0], "setattr");
  std::string name = reach(c, *obj, attr_name(r.args[1]), c.options().policy.allow_setattr);
  co_await obj->set_attr_async(ctx, std::move(name), std::move(r.args[2]));
  co_return Any();
}

Task<Any> do_del_attr(ConnectionCore& c, CallContext& ctx, Request& r) {
  require_args(r.args, 2, 2, Handler::kDelAttr);
  ObjectPtr obj = local_target(r.args[0], "delattr");
  std::string name = reach(c, *obj, attr_name(r.args[1]), c.options().policy.allow_delattr);
  co_await obj->del_attr_async(ctx, std::move(name));
  co_return Any();
}

Task<Any> do_repr_or_str(CallContext& ctx, Request& r, Handler h) {
  require_args(r.args, 1, 1, h);
  if (!r.args[0].is_local()) co_return Any(Value(r.args[0].repr()));
  ObjectPtr obj = r.args[0].object();
  std::string text;
  if (h == Handler::kRepr) {
    std::string t = co_await obj->repr_async(ctx);
    text = std::move(t);
  } else {
    std::string t = co_await obj->str_async(ctx);
    text = std::move(t);
  }
  co_return Any(Value(std::move(text)));
}
Task<Any> do_repr(ConnectionCore&, CallContext& ctx, Request& r) {
  return do_repr_or_str(ctx, r, Handler::kRepr);
}
Task<Any> do_str(ConnectionCore&, CallContext& ctx, Request& r) {
  return do_repr_or_str(ctx, r, Handler::kStr);
}

Task<Any> do_cmp(ConnectionCore& c, CallContext& ctx, Request& r) {
  require_args(r.args, 2, 3, Handler::kCmp);
  ObjectPtr obj = local_target(r.args[0], "cmp");
  std::string op = r.args.size() > 2 ? std::string(attr_name(r.args[2])) : std::string("__cmp__");
  if (std::find(kCompareOps.begin(), kCompareOps.end(), op) == kCompareOps.end()) throw attribute_error(op);
  if (obj->checks_own_access() || obj->has_attr(op)) {
    std::string name = reach(c, *obj, op, c.options().policy.allow_getattr);
    Any r_ = co_await obj->call_attr(ctx, name, make_args(std::move(r.args[1])), Kwargs{});
    co_return r_;
  }
  // object's default: identity for ==/!=, NotImplemented otherwise.
  const bool same = r.args[1].is_local() && r.args[1].object() == obj;
  if (op == "__eq__") co_return Any(Value(same));
  if (op == "__ne__") co_return Any(Value(!same));
  co_return Any(Value::not_implemented());
}

Task<Any> do_hash(ConnectionCore&, CallContext& ctx, Request& r) {
  require_args(r.args, 1, 1, Handler::kHash);
  ObjectPtr obj = local_target(r.args[0], "hash");
  std::int64_t h = co_await obj->hash_async(ctx);
  co_return Any(Value(h));
}

Task<Any> do_dir(ConnectionCore& c, CallContext& ctx, Request& r) {
  require_args(r.args, 1, 1, Handler::kDir);
  ObjectPtr obj = local_target(r.args[0], "dir");
  std::vector<std::string> names;
  if (obj->checks_own_access()) {
    std::vector<std::string> own = co_await obj->dir_async(ctx);
    names = std::move(own);
  } else {
    names = c.reachable_names(*obj);
  }
  Value::Tuple out;
  out.reserve(names.size());
  for (auto& n : names) out.emplace_back(std::move(n));
  co_return Any(Value::tuple(std::move(out)));
}

Task<Any> do_pickle(ConnectionCore&, CallContext&, Request&) {
  throw PyError("ValueError", "pickling is disabled");
}

Task<Any> do_inspect(ConnectionCore& c, CallContext& ctx, Request& r) {
  require_args(r.args, 1, 1, Handler::kInspect);
  if (!r.args[0].is_value()) throw PyError("TypeError", "INSPECT takes an id_pack");
  const Value& id_pack = r.args[0].value();
  if (!id_pack.is_tuple() || id_pack.as_tuple().size() != 3 || !id_pack.as_tuple()[2].is_int()) {
    throw PyError("builtins", "KeyError", {id_pack});
  }
  ObjectPtr obj = c.exports().find(id_pack);
  if (!obj) throw PyError("builtins", "KeyError", {id_pack});
  std::vector<std::string> names = co_await obj->inspect_async(ctx);
  Value::Tuple methods;
  for (auto& n : names) methods.push_back(Value::make_tuple(Value(std::move(n)), Value()));
  co_return Any(Value::tuple(std::move(methods)));
}

Task<Any> do_buff_iter(ConnectionCore&, CallContext& ctx, Request& r) {
  require_args(r.args, 2, 2, Handler::kBuffIter);
  ObjectPtr obj = local_target(r.args[0], "buffiter");
  std::int64_t count = 0;
  if (r.args[1].is_value() && r.args[1].value().is_int64()) count = r.args[1].value().as_int64();
  if (count < 0) throw PyError("ValueError", "negative count");
  if (!obj->checks_own_access() && !obj->has_attr("__next__")) {
    throw PyError("TypeError", "object is not an iterator");
  }
  std::vector<Any> items;
  for (std::int64_t i = 0; i < count; ++i) {
    bool stopped = false;
    Any item;
    try {
      item = co_await obj->call_attr(ctx, "__next__", std::vector<Any>{}, Kwargs{});
    } catch (const StopIteration&) {
      stopped = true;
    }
    if (stopped) break;
    items.push_back(std::move(item));
  }
  co_return Any::tuple(std::move(items));
}

Task<Any> do_old_slicing(ConnectionCore&, CallContext&, Request&) {
  throw PyError("TypeError", "old-style slicing is not supported");
}

Task<Any> do_ctx_exit(ConnectionCore& c, CallContext& ctx, Request& r) {
  // RPyC's client sends the exception *type* (or None) and RPyC's server raises it, calling
  // __exit__(type, value, traceback) with the instance raising made: so does this, creating
  // the value by calling the type (a remote class is called on its side, as raising it would).
  // There is no traceback object to give: None.
  require_args(r.args, 1, 2, Handler::kCtxExit);
  ObjectPtr obj = local_target(r.args[0], "__exit__");
  std::string name = reach(c, *obj, "__exit__", c.options().policy.allow_getattr);
  Any type = r.args.size() > 1 ? std::move(r.args[1]) : Any();
  Any value;
  if (type.is_netref() && type.netref().valid()) {
    try {
      Any made = co_await type.netref().call();
      value = std::move(made);
    } catch (const Error&) {
      value = Any();  // not instantiable without arguments: the value stays None
    }
  } else if (!type.is_none()) {
    value = type;  // a plain value (a tether client's exception value): given as both
  }
  Any result =
      co_await obj->call_attr(ctx, name, make_args(std::move(type), std::move(value), Any()), Kwargs{});
  co_return result;
}

Task<Any> do_instance_check(ConnectionCore&, CallContext& ctx, Request& r) {
  // (cls, other id_pack): is the object named by the id_pack an instance of `cls`? Asked by a
  // Python peer's proxy when the class ids differ (else it answers itself).
  require_args(r.args, 2, 2, Handler::kInstanceCheck);
  ObjectPtr cls = local_target(r.args[0], "instancecheck");
  if (!r.args[1].is_value()) co_return Any(Value(false));
  bool yes = co_await cls->instance_check_async(ctx, r.args[1].value());
  co_return Any(Value(yes));
}

/// By handler number (index 0, CLOSE and DEL unused: the read loop acts on those).
constexpr std::array<HandlerFn, 21> kHandlers = {
    nullptr,   do_ping,      nullptr,    do_get_root,  do_get_attr,    do_del_attr, do_set_attr,
    do_call,   do_call_attr, do_repr,    do_str,       do_cmp,         do_hash,     do_dir,
    do_pickle, nullptr,      do_inspect, do_buff_iter, do_old_slicing, do_ctx_exit, do_instance_check,
};

}  // namespace

Kwargs as_kwargs(const Any& a) {
  Kwargs out;
  if (a.is_none()) return out;
  if (!a.is_tuple()) throw PyError("TypeError", "keyword arguments must be a tuple of pairs");
  for (auto& pair : a.items()) {
    if (!pair.is_tuple()) throw PyError("TypeError", "keyword arguments must be a tuple of pairs");
    auto kv = pair.items();
    if (kv.size() != 2 || !kv[0].is_value() || !kv[0].value().is_str()) {
      throw PyError("TypeError", "keyword argument names must be strings");
    }
    out.emplace_back(kv[0].value().as_str(), std::move(kv[1]));
  }
  return out;
}

Task<Any> ConnectionCore::dispatch(CallContext& ctx, Request& req) {
  if (refusal_) std::rethrow_exception(refusal_);
  if (req.intercept) [[unlikely]] {
    // The interceptors' `before`: a deny (or an exception) is the call's exception.
    if (std::exception_ptr refused = req.intercept->before()) std::rethrow_exception(refused);
  }
  const auto n = static_cast<std::size_t>(req.handler);
  HandlerFn fn = n < kHandlers.size() ? kHandlers[n] : nullptr;
  if (!fn) throw PyError("builtins", "KeyError", {Value(static_cast<std::int64_t>(n))});
  return fn(*this, ctx, req);
}

std::string ConnectionCore::resolve_attr(const Object& obj, std::string_view name, bool master_switch) const {
  const AccessPolicy& p = opts_.policy;
  const PrefixedName exposed(policy_prefix(p), name);
  switch (check_access(p, obj, name, exposed.view(), master_switch)) {
    case Access::kName: return std::string(name);
    case Access::kExposed: return std::string(exposed.view());
    case Access::kRefused: break;
  }
  throw attribute_error(name);
}

std::vector<std::string> ConnectionCore::reachable_names(const Object& obj) const {
  // Only what a GETATTR could reach (wire spec §6: Python lists everything, tether only the
  // accessible names). Each name is listed as the object spells it (a Class<T> member as both
  // "get" and "exposed_get", as Python's dir of an RPyC service shows exposed_get and tab
  // completion wants get), and kept when the connection's policy lets GETATTR of it through
  // and the name it resolves to exists: with a custom exposed_prefix "exposed_get" and "get"
  // disappear; with allow_exposed_attrs off and allow_public_attrs on "get" is allowed but
  // resolves to nothing, so it is left out too. allow_getattr off: empty.
  const AccessPolicy& p = opts_.policy;
  std::vector<std::string> out;
  for (auto& n : obj.attr_names()) {
    const PrefixedName exposed(policy_prefix(p), n);
    const Access a = check_access(p, obj, n, exposed.view(), p.allow_getattr);
    const bool reachable = (a == Access::kName && obj.has_attr(n)) || a == Access::kExposed;
    if (reachable) out.push_back(std::move(n));
  }
  return out;
}

}  // namespace tether::rpc::detail
