#pragma once
// Objects served to stock Python RPyC clients by the interop test server, written against
// the rpc layer directly (no typed bindings), so the interop tests exercise the protocol
// layer on its own.

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "tether/rpc/any.hpp"
#include "tether/rpc/object.hpp"
#include "tether/rpc/py_error.hpp"

namespace tether::interop {

using Method = std::function<Task<Any>(CallContext&, std::vector<Any>, Kwargs)>;

/// An object whose members are a table of methods (exposed as "exposed_<name>" unless the
/// name is a dunder) and data attributes.
class TableObject : public Object {
 public:
  TableObject(std::string type_name, std::vector<std::string> inspect = {})
      : type_name_(std::move(type_name)), inspect_(std::move(inspect)) {}

  void method(const std::string& name, Method fn) { methods_[member_name(name)] = std::move(fn); }
  void data(const std::string& name, Any v) { data_[member_name(name)] = std::move(v); }

  [[nodiscard]] std::string type_name() const override { return type_name_; }
  [[nodiscard]] bool has_attr(std::string_view n) const override {
    return methods_.contains(std::string(n)) || data_.contains(std::string(n));
  }
  Any get_attr(CallContext&, std::string_view n) override {
    std::string name(n);
    if (auto it = data_.find(name); it != data_.end()) return it->second;
    auto it = methods_.find(name);
    if (it == methods_.end()) throw attribute_error(n);
    Method fn = it->second;
    return Any(std::static_pointer_cast<Object>(std::make_shared<FunctionObject>(
        name, [fn](CallContext& ctx, std::vector<Any> a, Kwargs k) { return fn(ctx, std::move(a), std::move(k)); },
        "builtins.method")));
  }
  Task<Any> call_attr(CallContext& ctx, std::string_view n, std::vector<Any> args, Kwargs kw) override {
    auto it = methods_.find(std::string(n));
    if (it == methods_.end()) return Object::call_attr(ctx, n, std::move(args), std::move(kw));
    return it->second(ctx, std::move(args), std::move(kw));
  }
  [[nodiscard]] std::vector<std::string> attr_names() const override {
    std::vector<std::string> out;
    for (auto& [k, v] : methods_) out.push_back(k);
    for (auto& [k, v] : data_) out.push_back(k);
    return out;
  }
  [[nodiscard]] std::vector<std::string> inspect_names() const override { return inspect_; }

 private:
  static std::string member_name(const std::string& n) {
    return n.starts_with("__") ? n : "exposed_" + n;
  }
  std::string type_name_;
  std::vector<std::string> inspect_;
  std::map<std::string, Method> methods_;
  std::map<std::string, Any> data_;
};

/// The root service of the interop server. `last_closed_exported` reports how many objects
/// the export table of the most recently closed connection still held after it closed.
std::shared_ptr<TableObject> make_interop_root(std::function<std::size_t()> last_closed_exported);

}  // namespace tether::interop
