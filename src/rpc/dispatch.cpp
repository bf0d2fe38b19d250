// The request handlers (wire spec §6) and the attribute access check (§12.2).

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

constexpr std::array<std::string_view, 7> kCompareOps = {"__eq__", "__ne__", "__lt__", "__gt__",
                                                         "__le__", "__ge__", "__cmp__"};

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

ObjectPtr ConnectionCore::local_target(const Any& a, std::string_view what) const {
  if (a.is_local()) return a.object();
  throw PyError("TypeError",
                fmt::format("{}: the target is not an object of this peer ({})", what, a.repr()));
}

namespace {

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
  const bool plain =
      p.allow_all_attrs || (p.allow_exposed_attrs && !prefix.empty() && name.starts_with(prefix)) ||
      (p.allow_safe_attrs && is_safe_attr(name)) || (p.allow_public_attrs && !name.starts_with("_"));
  const bool has_exposed = !prefix.empty() && obj.has_attr(exposed);
  if (plain && (!has_exposed || obj.has_attr(name))) return Access::kName;
  if (has_exposed) return Access::kExposed;
  if (plain) return Access::kName;
  return Access::kRefused;
}

}  // namespace

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

ConnectionCore::PreparedCall ConnectionCore::prepare_call_attr(std::span<Any> args) {
  require_args(args, 3, 4, Handler::kCallAttr);
  PreparedCall call;
  call.attr = true;
  call.obj = local_target(args[0], "callattr");
  call.name = resolve_attr(*call.obj, attr_name(args[1]), opts_.policy.allow_getattr);
  call.args = as_call_args(args[2]);
  if (args.size() > 3) call.kwargs = as_kwargs(args[3]);
  return call;
}

ConnectionCore::PreparedCall ConnectionCore::prepare_call(std::span<Any> args) {
  require_args(args, 2, 3, Handler::kCall);
  PreparedCall call;
  call.obj = local_target(args[0], "call");
  call.args = as_call_args(args[1]);
  if (args.size() > 2) call.kwargs = as_kwargs(args[2]);
  return call;
}

Task<Any> ConnectionCore::dispatch(Handler h, std::vector<Any>& args) {
  CallContext ctx(*this);
  switch (h) {
    case Handler::kPing: require_args(args, 1, 1, h); co_return std::move(args[0]);
    case Handler::kGetRoot: co_return Any(root_);
    case Handler::kGetAttr: {
      require_args(args, 2, 2, h);
      ObjectPtr obj = local_target(args[0], "getattr");
      std::string name = resolve_attr(*obj, attr_name(args[1]), opts_.policy.allow_getattr);
      co_return obj->get_attr(ctx, name);
    }
    case Handler::kSetAttr: {
      require_args(args, 3, 3, h);
      ObjectPtr obj = local_target(args[0], "setattr");
      std::string name = resolve_attr(*obj, attr_name(args[1]), opts_.policy.allow_setattr);
      obj->set_attr(ctx, name, std::move(args[2]));
      co_return Any();
    }
    case Handler::kDelAttr: {
      require_args(args, 2, 2, h);
      ObjectPtr obj = local_target(args[0], "delattr");
      std::string name = resolve_attr(*obj, attr_name(args[1]), opts_.policy.allow_delattr);
      obj->del_attr(ctx, name);
      co_return Any();
    }
    case Handler::kCall: {
      PreparedCall call = prepare_call(args);
      Any r = co_await call.obj->call(ctx, std::move(call.args), std::move(call.kwargs));
      co_return r;
    }
    case Handler::kCallAttr: {
      PreparedCall call = prepare_call_attr(args);
      Any r = co_await call.obj->call_attr(ctx, call.name, std::move(call.args), std::move(call.kwargs));
      co_return r;
    }
    case Handler::kRepr:
    case Handler::kStr: {
      require_args(args, 1, 1, h);
      if (!args[0].is_local()) co_return Any(Value(args[0].repr()));
      co_return Any(Value(h == Handler::kRepr ? args[0].object()->repr() : args[0].object()->str()));
    }
    case Handler::kCmp: {
      require_args(args, 2, 3, h);
      ObjectPtr obj = local_target(args[0], "cmp");
      std::string op = args.size() > 2 ? std::string(attr_name(args[2])) : std::string("__cmp__");
      if (std::find(kCompareOps.begin(), kCompareOps.end(), op) == kCompareOps.end())
        throw attribute_error(op);
      if (obj->has_attr(op)) {
        std::string name = resolve_attr(*obj, op, opts_.policy.allow_getattr);
        Any r = co_await obj->call_attr(ctx, name, make_args(std::move(args[1])), Kwargs{});
        co_return r;
      }
      // object's default: identity for ==/!=, NotImplemented otherwise.
      const bool same = args[1].is_local() && args[1].object() == obj;
      if (op == "__eq__") co_return Any(Value(same));
      if (op == "__ne__") co_return Any(Value(!same));
      co_return Any(Value::not_implemented());
    }
    case Handler::kHash: {
      require_args(args, 1, 1, h);
      ObjectPtr obj = local_target(args[0], "hash");
      co_return Any(Value(obj->hash()));
    }
    case Handler::kDir: {
      require_args(args, 1, 1, h);
      ObjectPtr obj = local_target(args[0], "dir");
      // Only what a GETATTR could reach (wire spec §6: Python lists everything, tether only the
      // accessible names). Each name is listed as the object spells it (a Class<T> member as
      // both "get" and "exposed_get", as Python's dir of an RPyC service shows exposed_get and
      // tab completion wants get), and kept when the connection's policy lets GETATTR of it
      // through and the name it resolves to exists: with a custom exposed_prefix "exposed_get"
      // and "get" disappear; with allow_exposed_attrs off and allow_public_attrs on "get" is
      // allowed but resolves to nothing, so it is left out too. allow_getattr off: empty.
      const AccessPolicy& p = opts_.policy;
      Value::Tuple names;
      for (auto& n : obj->attr_names()) {
        const PrefixedName exposed(policy_prefix(p), n);
        const Access a = check_access(p, *obj, n, exposed.view(), p.allow_getattr);
        const bool reachable = (a == Access::kName && obj->has_attr(n)) || a == Access::kExposed;
        if (reachable) names.emplace_back(std::move(n));
      }
      co_return Any(Value::tuple(std::move(names)));
    }
    case Handler::kPickle: throw PyError("ValueError", "pickling is disabled");
    case Handler::kInspect: {
      require_args(args, 1, 1, h);
      if (!args[0].is_value()) throw PyError("TypeError", "INSPECT takes an id_pack");
      const Value& id_pack = args[0].value();
      if (!id_pack.is_tuple() || id_pack.as_tuple().size() != 3 || !id_pack.as_tuple()[2].is_int()) {
        throw PyError("builtins", "KeyError", {id_pack});
      }
      ObjectPtr obj = lookup_export(id_pack);
      Value::Tuple methods;
      for (auto& n : obj->inspect_names()) methods.push_back(Value::make_tuple(Value(std::move(n)), Value()));
      co_return Any(Value::tuple(std::move(methods)));
    }
    case Handler::kBuffIter: {
      require_args(args, 2, 2, h);
      ObjectPtr obj = local_target(args[0], "buffiter");
      std::int64_t count = 0;
      if (args[1].is_value() && args[1].value().is_int64()) count = args[1].value().as_int64();
      if (count < 0) throw PyError("ValueError", "negative count");
      if (!obj->has_attr("__next__")) throw PyError("TypeError", "object is not an iterator");
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
    case Handler::kOldSlicing: throw PyError("TypeError", "old-style slicing is not supported");
    case Handler::kCtxExit: {
      require_args(args, 1, 2, h);
      ObjectPtr obj = local_target(args[0], "__exit__");
      std::string name = resolve_attr(*obj, "__exit__", opts_.policy.allow_getattr);
      Any exc = args.size() > 1 ? std::move(args[1]) : Any();
      Any r = co_await obj->call_attr(ctx, name, make_args(std::move(exc)), Kwargs{});
      co_return r;
    }
    case Handler::kInstanceCheck: co_return Any(Value(false));
    case Handler::kClose:
    case Handler::kDel: break;  // handled by the read loop
  }
  throw PyError("builtins", "KeyError", {Value(static_cast<std::int64_t>(h))});
}

}  // namespace tether::rpc::detail
