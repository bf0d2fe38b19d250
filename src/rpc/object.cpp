#include "tether/rpc/object.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <random>

#include "rpc/connection_core.hpp"
#include "tether/rpc/py_error.hpp"

namespace tether {

namespace {
// RPyC's safe_attrs (wire spec §12.3), sorted for binary search.
constexpr std::array<std::string_view, 80> kSafeAttrs = {
    "__abs__",         "__add__",      "__and__",       "__bool__",     "__cmp__",     "__contains__",
    "__delitem__",     "__delslice__", "__div__",       "__divmod__",   "__doc__",     "__enter__",
    "__eq__",          "__exit__",     "__float__",     "__floordiv__", "__format__",  "__ge__",
    "__getitem__",     "__getslice__", "__gt__",        "__hash__",     "__hex__",     "__iadd__",
    "__iand__",        "__idiv__",     "__ifloordiv__", "__ilshift__",  "__imod__",    "__imul__",
    "__index__",       "__int__",      "__invert__",    "__ior__",      "__ipow__",    "__irshift__",
    "__isub__",        "__iter__",     "__itruediv__",  "__ixor__",     "__le__",      "__len__",
    "__length_hint__", "__long__",     "__lshift__",    "__lt__",       "__mod__",     "__mul__",
    "__ne__",          "__neg__",      "__new__",       "__next__",     "__nonzero__", "__oct__",
    "__or__",          "__pos__",      "__pow__",       "__radd__",     "__rand__",    "__rdiv__",
    "__rdivmod__",     "__repr__",     "__rfloordiv__", "__rlshift__",  "__rmod__",    "__rmul__",
    "__ror__",         "__rpow__",     "__rrshift__",   "__rshift__",   "__rsub__",    "__rtruediv__",
    "__rxor__",        "__setitem__",  "__setslice__",  "__str__",      "__sub__",     "__truediv__",
    "__xor__",         "next"};
}  // namespace

bool is_safe_attr(std::string_view name) noexcept {
  if (!name.starts_with("__") && name != "next") return false;  // all others are dunders
  static const auto sorted = [] {
    auto a = kSafeAttrs;
    std::sort(a.begin(), a.end());
    return a;
  }();
  return std::binary_search(sorted.begin(), sorted.end(), name);
}

Task<Netref> CallContext::peer_root() const {
  Netref r = co_await core_.root();
  co_return r;
}

EventLoop& CallContext::loop() const noexcept { return core_.loop(); }

std::shared_ptr<void> CallContext::keep_alive() const { return core_.shared(); }

const std::any& CallContext::context() const noexcept { return core_.context(); }

bool Object::has_attr(std::string_view) const { return false; }

Any Object::get_attr(CallContext&, std::string_view name) { throw attribute_error(name); }

// The asynchronous interface's defaults: the synchronous forms, answered at once.

Task<Any> Object::get_attr_async(CallContext& ctx, std::string name) { co_return get_attr(ctx, name); }

Task<void> Object::set_attr_async(CallContext& ctx, std::string name, Any value) {
  set_attr(ctx, name, std::move(value));
  co_return;
}

Task<void> Object::del_attr_async(CallContext& ctx, std::string name) {
  del_attr(ctx, name);
  co_return;
}

Task<std::string> Object::repr_async(CallContext&) { co_return repr(); }
Task<std::string> Object::str_async(CallContext&) { co_return str(); }
Task<std::int64_t> Object::hash_async(CallContext&) { co_return hash(); }
Task<std::vector<std::string>> Object::dir_async(CallContext&) { co_return attr_names(); }
Task<std::vector<std::string>> Object::inspect_async(CallContext&) { co_return inspect_names(); }
Task<bool> Object::instance_check_async(CallContext&, brine::Value) { co_return false; }

Task<Any> Object::call_attr(CallContext& ctx, std::string_view name, std::vector<Any> args, Kwargs kwargs) {
  Any attr = get_attr(ctx, name);
  if (!attr.is_local()) throw PyError("TypeError", fmt::format("'{}' is not callable", name));
  ObjectPtr target = attr.object();
  Any r = co_await target->call(ctx, std::move(args), std::move(kwargs));
  co_return r;
}

void Object::set_attr(CallContext&, std::string_view name, Any) { throw attribute_error(name); }

void Object::del_attr(CallContext&, std::string_view name) { throw attribute_error(name); }

Task<Any> Object::call(CallContext&, std::vector<Any>, Kwargs) {
  throw PyError("TypeError", fmt::format("'{}' object is not callable", type_name()));
}

namespace {

/// Object tags: a counter, scrambled by a bijection keyed at random per process (so that tags
/// look like addresses, are unique, and say nothing about addresses or about how many objects
/// the process made).
std::uint64_t scramble(std::uint64_t x) noexcept {
  static const std::uint64_t key = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  x ^= key;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint64_t next_tag() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return scramble(counter.fetch_add(1, std::memory_order_relaxed));
}

}  // namespace

Object::Object() noexcept : tag_(next_tag()) {}
Object::Object(const Object&) noexcept : tag_(next_tag()) {}

std::string Object::repr() const {
  return fmt::format("<{} object at 0x{:016x}>", type_name(), tag_);
}

std::int64_t Object::hash() const { return static_cast<std::int64_t>(tag_ >> 1); }

std::vector<std::string> Object::inspect_names() const { return {}; }

bool is_descriptive_attr(std::string_view name) noexcept {
  return name == "__doc__" || name == "__name__" || name == "__qualname__" || name == "__module__";
}

std::optional<Any> descriptive_attr(std::string_view attr, std::string_view qualname, std::string_view module,
                                    const std::string& doc) {
  if (attr == "__doc__") return doc.empty() ? Any() : Any(brine::Value(doc));
  if (attr == "__qualname__") return Any(brine::Value(std::string(qualname)));
  if (attr == "__name__") {
    const auto dot = qualname.rfind('.');
    return Any(brine::Value(std::string(dot == std::string_view::npos ? qualname : qualname.substr(dot + 1))));
  }
  if (attr == "__module__") return Any(brine::Value(std::string(module)));
  return std::nullopt;
}

Any FunctionObject::get_attr(CallContext& ctx, std::string_view name) {
  if (auto v = descriptive_attr(name, name_, module_, doc())) return std::move(*v);
  return Object::get_attr(ctx, name);
}

std::vector<std::string> FunctionObject::attr_names() const {
  return {"__doc__", "__module__", "__name__", "__qualname__"};
}

Task<Any> FunctionObject::call(CallContext& ctx, std::vector<Any> args, Kwargs kwargs) {
  Any r = co_await fn_(ctx, std::move(args), std::move(kwargs));
  co_return r;
}

std::string FunctionObject::repr() const { return fmt::format("<tether function {}>", name_); }

namespace {
Task<Any> call_sync_fn(std::function<Any(std::vector<Any>, Kwargs)> fn, std::vector<Any> args,
                       Kwargs kwargs) {
  co_return fn(std::move(args), std::move(kwargs));
}
}  // namespace

ObjectPtr make_function(std::string name, std::function<Any(std::vector<Any>, Kwargs)> fn) {
  return std::make_shared<FunctionObject>(
      std::move(name), [fn = std::move(fn)](CallContext&, std::vector<Any> args, Kwargs kwargs) {
        return call_sync_fn(fn, std::move(args), std::move(kwargs));
      });
}

std::int64_t class_id_for(std::string_view type_name) noexcept {
  // FNV-1a: the same type name gets the same class id in every process and run.
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : type_name) h = (h ^ c) * 1099511628211ull;
  return static_cast<std::int64_t>((h >> 16) | 1);  // positive, non-zero, CPython-like magnitude
}

std::optional<brine::Value> TypeObject::fixed_id_pack() const {
  return brine::Value::make_tuple(brine::Value(name_), brine::Value(class_id_for(name_)), brine::Value(0));
}

bool TypeObject::has_attr(std::string_view name) const { return is_descriptive_attr(name); }

Any TypeObject::get_attr(CallContext& ctx, std::string_view name) {
  const auto dot = name_.rfind('.');
  const std::string module = dot == std::string::npos ? std::string("builtins") : name_.substr(0, dot);
  const std::string bare = dot == std::string::npos ? name_ : name_.substr(dot + 1);
  if (auto v = descriptive_attr(name, bare, module, doc_)) return std::move(*v);
  return Object::get_attr(ctx, name);
}

Task<Any> TypeObject::call(CallContext& ctx, std::vector<Any> args, Kwargs kwargs) {
  if (!construct_) throw PyError("TypeError", fmt::format("cannot create '{}' instances", name_));
  Any made = co_await construct_(ctx, std::move(args), std::move(kwargs));
  co_return made;
}

Task<bool> TypeObject::instance_check_async(CallContext&, brine::Value other_id_pack) {
  // Asked when the class ids differ (a Python peer answers equal ones itself): an instance of
  // this class carries this name and a non-zero instance id.
  if (!other_id_pack.is_tuple()) co_return false;
  const auto& t = other_id_pack.as_tuple();
  co_return t.size() == 3 && t[0].is_str() && t[0].as_str() == name_ && t[2].is_int64() && t[2].as_int64() != 0;
}

std::string TypeObject::repr() const { return fmt::format("<class '{}'>", name_); }

std::vector<std::string> TypeObject::attr_names() const { return {"__doc__", "__module__", "__name__", "__qualname__"}; }

std::vector<std::string> TypeObject::inspect_names() const {
  if (construct_) return {"__call__"};
  return {};
}

ObjectPtr python_type(std::string qualified_name) { return std::make_shared<TypeObject>(std::move(qualified_name)); }

}  // namespace tether
