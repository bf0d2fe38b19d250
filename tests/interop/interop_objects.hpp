#pragma once
// Objects served to stock Python RPyC clients by the interop test server, written against
// the rpc layer directly (no typed bindings), so the interop tests exercise the protocol
// layer on its own.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tether/channel/channel.hpp"
#include "tether/rpc/any.hpp"
#include "tether/rpc/connection.hpp"
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

/// What the interop server tells a connection's root about the server and about the
/// connection the root serves. Every member may be empty (the root then reports nothing).
struct ServerView {
  /// Objects the export table of the most recently closed connection held after it closed.
  std::function<std::size_t()> last_closed_exported;
  /// This connection's number (1, 2, ... in accept order; never reused).
  std::int64_t connection_id = 0;
  /// Connections whose close the server has handled so far.
  std::function<std::size_t()> closed_connections;
  /// The export count of connection `id` when the server handled its close; nullopt while
  /// that connection is open (or unknown).
  std::function<std::optional<std::size_t>(std::int64_t)> exported_at_close;
  /// This connection's counters, and its channel's (the connection is open while its root
  /// is called, so both are there then).
  std::function<ConnectionStats()> connection_stats;
  std::function<ChannelStats()> channel_stats;
  /// How many objects the root of connection `id` made are still alive (LiveObjects), open
  /// or closed; nullopt for a number never handed out.
  std::function<std::optional<std::size_t>(std::int64_t)> live_objects_of;
};

/// Counts the live objects a root made for its connection (containers and their iterators),
/// so a test can see that the objects a disconnected client held were really destroyed and
/// not only dropped from the export table.
class LiveObjects {
 public:
  void track(const std::shared_ptr<Object>& o) {
    std::erase_if(objects_, [](const std::weak_ptr<Object>& w) { return w.expired(); });
    objects_.push_back(o);
  }
  [[nodiscard]] std::size_t count() const {
    std::size_t n = 0;
    for (const auto& w : objects_) n += w.expired() ? 0 : 1;
    return n;
  }

 private:
  std::vector<std::weak_ptr<Object>> objects_;
};

/// The root service of the interop server for one connection. The objects it makes are
/// tracked in `live` (which the server keeps after the connection is gone).
std::shared_ptr<TableObject> make_interop_root(ServerView view, std::shared_ptr<LiveObjects> live);

}  // namespace tether::interop
