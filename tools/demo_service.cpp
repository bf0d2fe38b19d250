#include "demo_service.hpp"

#include <functional>
#include <optional>
#include <vector>

#include "py_objects.hpp"
#include "tether/base/bytes.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/time.hpp"
#include "tether/rpc/class.hpp"
#include "tether/rpc/py_error.hpp"

namespace tether::tools {

namespace {

/// The `store` object: a small key-value table shared by every connection (locked: with
/// --threads N calls arrive on several loop threads).
class DemoStore {
 public:
  void set(const std::string& key, brine::Value value) {
    std::lock_guard<std::mutex> lock(mu_);
    data_[key] = std::move(value);
  }
  std::optional<brine::Value> get(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = data_.find(key);
    if (it == data_.end()) return std::nullopt;
    return it->second;
  }
  bool remove(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    if (data_.erase(key) == 0) throw PyError("KeyError", brine::Value(key).repr());
    return true;
  }
  std::int64_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<std::int64_t>(data_.size());
  }
  bool has(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    return data_.count(key) != 0;
  }
  std::vector<std::string> keys() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& kv : data_) out.push_back(kv.first);
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, brine::Value> data_;
};

const char* py_type(const brine::Value& v) { return std::string_view(brine::type_name(v.type())).data(); }

brine::Value demo_add(const brine::Value& a, const brine::Value& b) {
  if (a.is_int64() && b.is_int64() && !a.is_bool() && !b.is_bool()) {
    std::int64_t sum = 0;
    if (__builtin_add_overflow(a.as_int64(), b.as_int64(), &sum)) {
      throw PyError("OverflowError", "add(): the sum does not fit 64 bits (the demo adds int64 only)");
    }
    return brine::Value(sum);
  }
  if (a.is_int() && b.is_int() && !a.is_bool() && !b.is_bool()) {
    throw PyError("OverflowError",
                  "add(): the demo adds ints of up to 64 bits (they travel at any size: try store.set)");
  }
  const bool a_num = a.is_int() || a.is_float();
  const bool b_num = b.is_int() || b.is_float();
  if (a_num && b_num) {
    const double x = a.is_float() ? a.as_double() : a.as_big_int().to_double();
    const double y = b.is_float() ? b.as_double() : b.as_big_int().to_double();
    return brine::Value(x + y);
  }
  if (a.is_str() && b.is_str()) return brine::Value(a.as_str() + b.as_str());
  if (a.is_bytes() && b.is_bytes()) {
    std::string s(reinterpret_cast<const char*>(a.as_bytes().data()), a.as_bytes().size());
    s.append(reinterpret_cast<const char*>(b.as_bytes().data()), b.as_bytes().size());
    return brine::Value::bytes(s);
  }
  throw PyError("TypeError", std::string("unsupported operand type(s) for +: '") + py_type(a) + "' and '" +
                                 py_type(b) + "'");
}

Task<double> demo_sleep(double seconds) {
  co_await sleep_for_seconds(seconds);
  co_return seconds;
}

}  // namespace

void DemoCounters::note(const std::string& peer, const char* method) {
  calls.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu);
    ++per_method[method];
  }
  TETHER_LOG_INFO("call {} from {}", method, peer);
}

Service make_demo_service(std::shared_ptr<DemoCounters> c) {
  Service demo("DemoService");
  demo.define_class<DemoStore>("Store", "demo")
      .method("set", &DemoStore::set, arg_names("key", "value"))
      .method("get", &DemoStore::get, arg_names("key"))
      .method("delete", &DemoStore::remove, arg_names("key"))
      .method("keys", &DemoStore::keys)
      .len(&DemoStore::size)
      .iter([](const DemoStore& s) { return s.keys(); })
      .getitem(&DemoStore::get)
      .contains(&DemoStore::has)
      .repr([](const DemoStore& s) { return "<demo.Store with " + std::to_string(s.size()) + " keys>"; });

  demo.on_connect([c](Session& s) {
    c->connections.fetch_add(1, std::memory_order_relaxed);
    c->open.fetch_add(1, std::memory_order_relaxed);
    TETHER_LOG_INFO("connection from {}", s.peer());
  });
  demo.on_disconnect([c](Session& s) {
    c->open.fetch_sub(1, std::memory_order_relaxed);
    TETHER_LOG_INFO("connection from {} closed", s.peer());
  });
  demo.expose(
      "add",
      [c](Session& s, brine::Value a, brine::Value b) {
        c->note(s.peer(), "add");
        return demo_add(a, b);
      },
      arg_names("a", "b"), doc("a + b for numbers, strings, bytes or tuples."));
  demo.expose(
      "echo",
      [c](Session& s, Bytes data) {
        c->note(s.peer(), "echo");
        return data;
      },
      arg_names("data"), doc("Returns the bytes it is given."));
  demo.expose(
      "upper",
      [c](Session& s, std::string text) {
        c->note(s.peer(), "upper");
        for (auto& ch : text) {
          if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
        }
        return text;
      },
      arg_names("text"), doc("The text in ASCII capitals."));
  demo.expose_async(
      "sleep",
      [c](Session& s, double seconds) {
        c->note(s.peer(), "sleep");
        if (!(seconds >= 0) || seconds > 3600)
          throw PyError("ValueError", "sleep(): seconds must be in [0, 3600]");
        return demo_sleep(seconds);
      },
      arg_names("seconds"), doc("Waits (without blocking the server), then returns seconds."));
  demo.expose(
      "fail",
      [c](Session& s, std::string message) -> brine::Value {
        c->note(s.peer(), "fail");
        c->errors.fetch_add(1, std::memory_order_relaxed);
        throw PyError("ValueError", message);
      },
      arg_names("message"), doc("Raises ValueError(message)."));
  demo.expose(
      "countdown",
      [c](Session& s, std::int64_t n, std::function<void(std::int64_t)> callback) {
        c->note(s.peer(), "countdown");
        if (n < 0 || n > 10000) throw PyError("ValueError", "countdown(): n must be in [0, 10000]");
        if (!callback) throw PyError("TypeError", "countdown(): callback must be callable");
        for (std::int64_t i = n; i > 0; --i) callback(i);
        return n;
      },
      arg_names("n", "callback"), doc("Calls callback(i) for i = n down to 1, then returns n."));
  demo.doc("tether's demo service: `tether serve --demo`.");
  demo.expose("stats", [c](Session& s) {
    c->note(s.peer(), "stats");
    std::vector<Any> items;
    auto put = [&](std::string key, std::uint64_t v) {
      items.emplace_back(brine::Value(std::move(key)));
      items.emplace_back(brine::Value(static_cast<std::int64_t>(v)));
    };
    put("connections", c->connections.load());
    put("open", c->open.load());
    put("calls", c->calls.load());
    put("errors", c->errors.load());
    std::lock_guard<std::mutex> lock(c->mu);
    for (const auto& [k, v] : c->per_method) put("calls." + k, v);
    return ObjectPtr(std::make_shared<PyContainer>(PyContainer::Kind::kDict, std::move(items)));
  }, doc("Counters of this server: connections, calls, errors, calls per function."));
  demo.expose_object("store", std::make_shared<DemoStore>());
  return demo;
}

}  // namespace tether::tools
