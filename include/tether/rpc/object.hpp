#pragma once
/// \file Object: a C++ object the peer can reach by reference.
///
/// The dispatcher applies RPyC's attribute access check (§12.2 of the wire spec) before it
/// calls get_attr/call_attr/set_attr/del_attr with the *resolved* name, so an Object only
/// answers for names it has (has_attr). Exported objects are shared: the connection's export
/// table holds them while the peer holds references (DEL releases them).
///
/// Everything here runs on the connection's loop thread.

#include <any>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/loop/task.hpp"
#include "tether/rpc/any.hpp"

namespace tether {

class Connection;

/// RPyC's attribute-access configuration (defaults identical to RPyC's, §12.1).
struct AccessPolicy {
  bool allow_safe_attrs = true;
  bool allow_exposed_attrs = true;
  bool allow_public_attrs = false;
  bool allow_all_attrs = false;
  bool allow_getattr = true;
  bool allow_setattr = false;
  bool allow_delattr = false;
  std::string exposed_prefix = "exposed_";
};

/// RPyC's safe_attrs list (§12.3).
TETHER_API bool is_safe_attr(std::string_view name) noexcept;
/// __doc__, __name__, __qualname__, __module__: what tether's functions and classes answer
/// about themselves. The access check lets them through wherever it lets the safe attributes
/// through (RPyC's list has only __doc__); on a tether object they are plain strings.
TETHER_API bool is_descriptive_attr(std::string_view name) noexcept;

/// What a handler knows about the request it serves: the connection it came in on, through
/// the operations below (made by the connection for each request; copyable, valid while the
/// handler runs).
class TETHER_API CallContext {
 public:
  /// The peer's root object (GETROOT, cached): to call the peer back.
  Task<Netref> peer_root() const;
  /// The connection's loop.
  [[nodiscard]] EventLoop& loop() const noexcept;
  /// Keeps the connection's state alive (not open) for as long as the pointer lives.
  [[nodiscard]] std::shared_ptr<void> keep_alive() const;
  /// The connection's context slot (Connection::set_context).
  [[nodiscard]] const std::any& context() const noexcept;

 private:
  friend class rpc::detail::ConnectionCore;
  explicit CallContext(rpc::detail::ConnectionCore& core) noexcept : core_(core) {}
  rpc::detail::ConnectionCore& core_;
};

class TETHER_API Object {
 public:
  Object() noexcept;
  Object(const Object&) noexcept;
  Object& operator=(const Object&) noexcept { return *this; }  // keeps its own tag
  virtual ~Object() = default;

  /// A number naming this object for as long as the process lives, unique among objects and
  /// unrelated to its address: the default repr() and hash() use it, so that nothing about the
  /// server's memory layout reaches a peer.
  [[nodiscard]] std::uint64_t tag() const noexcept { return tag_; }

  /// The name the peer sees for this object's type (RPyC name_pack). "builtins.method" and
  /// "builtins.function" make Python treat the object as callable without an INSPECT round
  /// trip; other names get an INSPECT answered by inspect_names().
  [[nodiscard]] virtual std::string type_name() const = 0;

  /// The id_pack the object must be lent under, when it is not the connection's to choose:
  /// a class (instance id 0, so that a Python peer treats the proxy as a class), or a proxy
  /// forwarded from another connection (its origin's). nullopt (the default): the connection
  /// names it (type_name(), a class id derived from it, a fresh instance id).
  [[nodiscard]] virtual std::optional<brine::Value> fixed_id_pack() const { return std::nullopt; }
  /// The Netref this object forwards to, when it is another connection's proxy lent onward
  /// (sent back over that connection, it travels as the Netref itself). Default: none.
  [[nodiscard]] virtual const Netref* forwards_to() const noexcept { return nullptr; }

  // ----------------------------------------------------------------- attribute access
  //
  // The dispatcher applies the connection's AccessPolicy (RPyC's check, wire spec §12.2)
  // before it calls the attribute functions with the *resolved* name ("add" reaches
  // "exposed_add"), so an object answers only for names it has (has_attr) — unless it checks
  // its own access (below).

  /// Whether the object has an attribute with exactly this name (e.g. "exposed_add",
  /// "__len__"). The access check uses it to resolve "add" to "exposed_add".
  [[nodiscard]] virtual bool has_attr(std::string_view name) const;
  /// True: the object decides its own attribute access (RPyC's `_rpyc_getattr` /
  /// `rpyc.restricted`): the connection's AccessPolicy is not applied to it, and every name
  /// reaches get_attr/set_attr/del_attr/call_attr exactly as the peer sent it. Such an object
  /// must refuse what it does not want reached (throw attribute_error). Default false.
  [[nodiscard]] virtual bool checks_own_access() const noexcept { return false; }

  // What the dispatcher calls: asynchronous, so that an object may await (one that forwards
  // to another connection, or computes an attribute with a request of its own). The defaults
  // call the synchronous forms below, which most objects override instead.

  virtual Task<Any> get_attr_async(CallContext& ctx, std::string name);
  virtual Task<void> set_attr_async(CallContext& ctx, std::string name, Any value);
  virtual Task<void> del_attr_async(CallContext& ctx, std::string name);
  /// Calls the attribute `name` (default: get_attr then call).
  virtual Task<Any> call_attr(CallContext& ctx, std::string_view name, std::vector<Any> args, Kwargs kwargs);
  /// Calling the object itself (default: TypeError "object is not callable").
  virtual Task<Any> call(CallContext& ctx, std::vector<Any> args, Kwargs kwargs);
  virtual Task<std::string> repr_async(CallContext& ctx);
  virtual Task<std::string> str_async(CallContext& ctx);
  virtual Task<std::int64_t> hash_async(CallContext& ctx);
  /// DIR: the names the peer may reach (the dispatcher filters attr_names() by the policy;
  /// an object that checks its own access answers here unfiltered).
  virtual Task<std::vector<std::string>> dir_async(CallContext& ctx);
  /// INSPECT: the dunders advertised to a Python peer (default: inspect_names()).
  virtual Task<std::vector<std::string>> inspect_async(CallContext& ctx);
  /// INSTANCECHECK: is the object named by `other_id_pack` an instance of this one (a class)?
  /// Default: false (this object is no class).
  virtual Task<bool> instance_check_async(CallContext& ctx, brine::Value other_id_pack);

  // Synchronous conveniences, called by the defaults above.

  /// Value of a resolved attribute (a method is returned as a bound callable object).
  virtual Any get_attr(CallContext& ctx, std::string_view name);
  virtual void set_attr(CallContext& ctx, std::string_view name, Any value);
  virtual void del_attr(CallContext& ctx, std::string_view name);
  /// Default: "<type_name object at 0x...>" with tag() (not the address) after "at".
  [[nodiscard]] virtual std::string repr() const;
  [[nodiscard]] virtual std::string str() const { return repr(); }
  /// Default: derived from tag() (identity hash, as Python's default is, without the address).
  [[nodiscard]] virtual std::int64_t hash() const;
  /// Attribute names reachable by the peer (DIR, filtered by the connection's policy).
  [[nodiscard]] virtual std::vector<std::string> attr_names() const { return {}; }
  /// Dunder operations advertised to Python peers in INSPECT ("__call__", "__len__", ...).
  [[nodiscard]] virtual std::vector<std::string> inspect_names() const;

 private:
  std::uint64_t tag_;
};

using ObjectPtr = std::shared_ptr<Object>;

/// A callable exported as "builtins.function" (Python treats it as a function).
using NativeFunction = std::function<Task<Any>(CallContext&, std::vector<Any>, Kwargs)>;

/// A function's __doc__, made when the peer asks (the signature names parameter types, and a
/// class bound with tether::Class may be bound after the function). Empty: no documentation.
using DocFn = std::function<std::string()>;

/// The descriptive attribute `attr` (is_descriptive_attr) of a function or class named
/// `qualname` ("add", "Store.get") in `module`: __doc__ is `doc` (None when empty), __name__
/// the part after the last dot of `qualname`. nullopt for any other name.
[[nodiscard]] TETHER_API std::optional<Any> descriptive_attr(std::string_view attr, std::string_view qualname,
                                                             std::string_view module, const std::string& doc);

class TETHER_API FunctionObject : public Object {
 public:
  /// `name` may be qualified ("Store.get"): __qualname__ is all of it, __name__ the last part.
  FunctionObject(std::string name, NativeFunction fn, std::string type_name = "builtins.function",
                 DocFn doc = {}, std::string module = "tether")
      : name_(std::move(name)),
        type_name_(std::move(type_name)),
        module_(std::move(module)),
        fn_(std::move(fn)),
        doc_(std::move(doc)) {}
  [[nodiscard]] std::string type_name() const override { return type_name_; }
  Task<Any> call(CallContext& ctx, std::vector<Any> args, Kwargs kwargs) override;
  [[nodiscard]] std::string repr() const override;
  [[nodiscard]] std::vector<std::string> inspect_names() const override { return {"__call__"}; }
  /// __doc__ (the signature in Python notation, then the doc string given when it was bound),
  /// __name__, __qualname__, __module__: Python's help() and IPython's `?` read them.
  [[nodiscard]] bool has_attr(std::string_view name) const override { return is_descriptive_attr(name); }
  Any get_attr(CallContext& ctx, std::string_view name) override;
  [[nodiscard]] std::vector<std::string> attr_names() const override;
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// The __doc__ text ("" when there is none).
  [[nodiscard]] std::string doc() const { return doc_ ? doc_() : std::string(); }

 private:
  std::string name_;
  std::string type_name_;
  std::string module_;
  NativeFunction fn_;
  DocFn doc_;
};

/// Wraps a plain synchronous callable taking Anys.
TETHER_API ObjectPtr make_function(std::string name, std::function<Any(std::vector<Any>, Kwargs)> fn);

/// The class id a connection gives objects of `type_name` in their id_pack (the same in every
/// process and run). Instances and their class (TypeObject) share it, which is how a Python
/// peer's isinstance(obj, cls) answers without a request.
[[nodiscard]] TETHER_API std::int64_t class_id_for(std::string_view type_name) noexcept;

/// A class as an object the peer can hold and use as a class: lent under the id_pack
/// (name, class_id_for(name), 0) — instance id 0 is RPyC's mark of a type — so that
/// `isinstance(x, cls)` works on a Python peer for x of that type (checked there, from the
/// class ids, or with an INSTANCECHECK request answered here). Calling it creates an instance
/// when it has a constructor (Python's `c.root.Counter(5)`); without one it raises TypeError,
/// as Python does for types that cannot be instantiated. A Python built-in type is named by
/// its qualified name ("builtins.NoneType"): a Python peer resolves it to its own type.
class TETHER_API TypeObject : public Object {
 public:
  explicit TypeObject(std::string qualified_name, NativeFunction construct = {}, std::string doc = {})
      : name_(std::move(qualified_name)), construct_(std::move(construct)), doc_(std::move(doc)) {}

  [[nodiscard]] std::string type_name() const override { return name_; }
  [[nodiscard]] std::optional<brine::Value> fixed_id_pack() const override;
  [[nodiscard]] bool has_attr(std::string_view name) const override;
  Any get_attr(CallContext& ctx, std::string_view name) override;
  Task<Any> call(CallContext& ctx, std::vector<Any> args, Kwargs kwargs) override;
  Task<bool> instance_check_async(CallContext& ctx, brine::Value other_id_pack) override;
  [[nodiscard]] std::string repr() const override;
  [[nodiscard]] std::int64_t hash() const override { return class_id_for(name_); }
  [[nodiscard]] std::vector<std::string> attr_names() const override;
  [[nodiscard]] std::vector<std::string> inspect_names() const override;
  [[nodiscard]] bool constructible() const noexcept { return static_cast<bool>(construct_); }

 private:
  std::string name_;
  NativeFunction construct_;
  std::string doc_;
};

/// A Python type by its qualified name ("builtins.NoneType", "builtins.int"), as a class
/// object a Python peer resolves to its own type (isinstance(None, t) is then true there).
[[nodiscard]] TETHER_API ObjectPtr python_type(std::string qualified_name);

}  // namespace tether
