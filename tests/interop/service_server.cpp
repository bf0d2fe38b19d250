// service_server: a tether::Service served with tether::serve() for stock Python RPyC clients
// (tests/interop/test_python_service.py).
//
//   service_server [--grace-ms N] [--auth-token T] [--custom-root]
//
// --custom-root serves a Notebook (a hand-written tether::Object, one per connection) as the
// root instead of the service's members (tether::Service::root), with the same hooks: each
// on_connect prints "CONNECT", each on_disconnect "DISCONNECT".
//
// Listens on 127.0.0.1, a port from the kernel, with 2 server threads; prints "PORT <n>" on
// stdout once listening. Serves until SIGINT/SIGTERM, drains (ServeOptions::shutdown_grace =
// N ms, default 10 s), prints "STOPPED" and exits 0. `slow(ms, tag)` prints "SLOW BEGIN <tag>"
// when it starts and waits for a loop timer of `ms` (what the drain tests hold a connection
// busy with).

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "tether/base/bytes.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/time.hpp"
#include "tether/rpc/class.hpp"
#include "tether/rpc/py_error.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"

namespace {

std::mutex g_out_mu;

/// One line on stdout, flushed (the Python test reads it through a pipe).
void say(const std::string& line) {
  std::lock_guard<std::mutex> lock(g_out_mu);
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::int64_t thread_tag() {
  return static_cast<std::int64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id()) >> 1);
}

/// A key-value store. Shared between connections on two loop threads, so it locks.
class Store {
 public:
  explicit Store(std::string name) : name_(std::move(name)) {}
  void put(const std::string& key, const std::string& value) {
    std::lock_guard<std::mutex> lock(mu_);
    data_[key] = value;
  }
  std::optional<std::string> get(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = data_.find(key);
    if (it == data_.end()) return std::nullopt;
    return it->second;
  }
  bool has(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    return data_.count(key) != 0;
  }
  std::int64_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<std::int64_t>(data_.size());
  }
  std::vector<std::string> keys() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& [k, v] : data_) out.push_back(k);
    return out;
  }
  std::string name() const { return name_; }

 private:
  const std::string name_;
  mutable std::mutex mu_;
  std::map<std::string, std::string> data_;
};

tether::Class<Store> define_store(tether::Service& svc) {
  return svc.define_class<Store>("Store", "interop")
      .doc("A thread-safe string map.")
      .method("put", &Store::put, tether::arg_names("key", "value"), tether::doc("Stores value under key."))
      .method("get", &Store::get, tether::arg_names("key"))
      .method("keys", &Store::keys)
      .property("size", &Store::size)
      .property("name", &Store::name)
      .len(&Store::size)
      .iter([](const Store& s) { return s.keys(); })
      .getitem(&Store::get)
      .contains(&Store::has)
      .repr([](const Store& s) { return "<interop.Store " + s.name() + ">"; })
      .init([](std::string name) { return std::make_shared<Store>(std::move(name)); },
            tether::arg_names("name"));
}

/// A context manager (upstream test_context_managers): records how `with` left it. __exit__
/// takes RPyC's three arguments; it suppresses the exception when made with suppress=true.
class Guard {
 public:
  explicit Guard(bool suppress) : suppress_(suppress) {}
  std::string enter() {
    ++entered_;
    return "entered";
  }
  bool exit(const tether::Any& type, const tether::Any& value, const tether::Any& tb) {
    auto kind = [](const tether::Any& a) -> std::string {
      if (a.is_none()) return "None";
      return a.is_netref() ? "proxy" : "value";
    };
    last_ = kind(type) + " " + kind(value) + " " + kind(tb);
    return suppress_;
  }
  std::string last_exit() const { return last_; }
  std::int64_t entered() const { return entered_; }

 private:
  const bool suppress_;
  std::int64_t entered_ = 0;
  std::string last_ = "never";
};

tether::Class<Guard> define_guard(tether::Service& svc) {
  return svc.define_class<Guard>("Guard", "interop")
      .method("__enter__", &Guard::enter)
      .method(
          "__exit__",
          [](Guard& g, tether::Any type, tether::Any value, tether::Any tb) {
            return g.exit(type, value, tb);
          },
          tether::arg_names("exc_type", "exc_value", "traceback"))
      .method("last_exit", &Guard::last_exit)
      .property("entered", &Guard::entered)
      .init([](bool suppress) { return std::make_shared<Guard>(suppress); }, tether::arg_names("suppress"));
}

/// Per-connection state (Session::state()).
struct ConnState {
  std::int64_t id = 0;
  std::int64_t counter = 0;
  std::string peer;
};

std::atomic<std::int64_t> g_connects{0};
std::mutex g_gone_mu;
std::vector<std::int64_t> g_gone;  ///< session ids whose on_disconnect ran

// Coroutines: named functions (GCC 12 rules, docs/rpc.md).

tether::Task<std::int64_t> slow_add(std::int64_t a, std::int64_t b, std::int64_t ms) {
  co_await tether::sleep(std::chrono::milliseconds(ms));
  co_return a + b;
}

/// Calls the peer's callable without nesting the loop.
tether::Task<std::int64_t> async_apply(tether::Netref f, std::int64_t x) {
  tether::Any r = co_await f.call(tether::make_args(x));
  std::int64_t v = co_await tether::from_any<std::int64_t>(std::move(r));
  co_return v + 1;
}

tether::Task<std::string> slow(std::int64_t ms, std::string tag) {
  say("SLOW BEGIN " + tag);
  co_await tether::sleep(std::chrono::milliseconds(ms));
  co_return "done " + tag;
}

tether::Service make_service() {
  tether::Service svc("InteropService", {"Interop", "TetherInterop"});
  const tether::Class<Store> store_class = define_store(svc);
  svc.with_state<ConnState>();
  svc.on_connect([](tether::Session& s) {
    auto& st = s.state_as<ConnState>();
    st.id = ++g_connects;
    st.peer = s.peer();
  });
  svc.on_disconnect([](tether::Session& s) {
    std::lock_guard<std::mutex> lock(g_gone_mu);
    g_gone.push_back(s.state_as<ConnState>().id);
  });

  // --- numbers
  svc.expose(
      "add", [](std::int64_t a, std::int64_t b) { return a + b; }, tether::arg_names("a", "b"),
      tether::doc("Adds two integers."));
  svc.doc("The interop test service.");
  svc.expose(
      "narrow", [](std::int16_t x) { return static_cast<std::int16_t>(-x); }, tether::arg_names("x"));
  svc.expose(
      "u8", [](std::uint8_t x) { return x; }, tether::arg_names("x"));
  svc.expose(
      "scale", [](double x, double k) { return x * k; }, tether::arg_names("x", "k"));
  svc.expose(
      "negate", [](bool b) { return !b; }, tether::arg_names("flag"));
  // --- text and bytes
  svc.expose(
      "greet",
      [](std::string name, std::optional<std::string> greeting) {
        return greeting.value_or("hello") + ", " + name + "!";
      },
      tether::arg_names("name", "greeting"));
  svc.expose(
      "reverse_bytes",
      [](tether::Bytes b) {
        std::string s(b.view());
        return tether::Bytes(std::string(s.rbegin(), s.rend()));
      },
      tether::arg_names("data"));
  // --- containers
  svc.expose(
      "sorted_desc",
      [](std::vector<std::int64_t> v) {
        std::sort(v.begin(), v.end(), std::greater<>());
        return v;
      },
      tether::arg_names("values"));
  svc.expose(
      "upper_all",
      [](std::vector<std::string> v) {
        for (auto& s : v)
          for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        return v;
      },
      tether::arg_names("words"));
  svc.expose(
      "invert",
      [](std::map<std::string, std::int64_t> m) {
        std::map<std::int64_t, std::string> out;
        for (const auto& [k, v] : m) out[v] = k;
        return out;
      },
      tether::arg_names("mapping"));
  svc.expose(
      "maybe_double",
      [](std::optional<std::int64_t> x) -> std::optional<std::int64_t> {
        if (!x) return std::nullopt;
        return *x * 2;
      },
      tether::arg_names("x"));
  svc.expose(
      "swap",
      [](std::tuple<std::string, std::int64_t, double> t) {
        return std::make_tuple(std::get<2>(t), std::get<1>(t), std::get<0>(t));
      },
      tether::arg_names("triple"));
  svc.expose(
      "stats",
      [](std::vector<double> v) {
        double sum = 0;
        for (double d : v) sum += d;
        return std::make_tuple(sum, v.empty() ? 0.0 : sum / static_cast<double>(v.size()),
                               static_cast<std::int64_t>(v.size()));
      },
      tether::arg_names("values"));
  // --- errors
  svc.expose(
      "fail", [](std::string message) -> std::int64_t { throw std::invalid_argument(message); },
      tether::arg_names("message"));
  // --- async, blocking, threads
  svc.expose_async("slow_add", &slow_add, tether::arg_names("a", "b", "ms"));
  svc.expose_async("async_apply", &async_apply, tether::arg_names("f", "x"));
  svc.expose_async("slow", &slow, tether::arg_names("ms", "tag"));
  svc.expose("loop_thread",
             []() { return std::make_tuple(tether::EventLoop::current() != nullptr, thread_tag()); });
  svc.expose_blocking(
      "blocking_thread",
      [](std::int64_t x) {
        // (on a loop thread?, which thread, x squared)
        return std::make_tuple(tether::EventLoop::current() != nullptr, thread_tag(), x * x);
      },
      tether::arg_names("x"));
  // --- callbacks (a Python callable as std::function)
  svc.expose(
      "apply", [](std::function<std::int64_t(std::int64_t)> f, std::int64_t x) { return f(x); },
      tether::arg_names("f", "x"));
  svc.expose(
      "map_strings",
      [](std::function<std::string(std::string)> f, std::vector<std::string> v) {
        for (auto& s : v) s = f(s);
        return v;
      },
      tether::arg_names("f", "words"));
  svc.expose_blocking(
      "blocking_apply",
      [](std::function<std::int64_t(std::int64_t)> f, std::int64_t x) { return f(x) + f(x + 1); },
      tether::arg_names("f", "x"));
  // --- objects
  svc.expose_object("store", std::make_shared<Store>("shared"));
  svc.expose(
      "new_store", [](std::string name) { return std::make_shared<Store>(std::move(name)); },
      tether::arg_names("name"));
  // --- classes as objects: Store(name) creates one; isinstance(x, Store) works in Python;
  // NoneType is Python's own type, resolved there.
  svc.expose_object("Store", store_class.type_object());
  svc.expose_object("Guard", define_guard(svc).type_object());
  svc.expose_object("NoneType", tether::python_type("builtins.NoneType"));
  svc.expose_object("Opaque", std::make_shared<tether::TypeObject>("interop.Opaque"));
  // --- per-connection state
  svc.expose("incr", [](tether::Session& s) { return ++s.state_as<ConnState>().counter; });
  svc.expose("session_id", [](tether::Session& s) { return s.state_as<ConnState>().id; });
  svc.expose("peer", [](tether::Session& s) { return s.state_as<ConnState>().peer; });
  svc.expose("disconnected_sessions", []() {
    std::lock_guard<std::mutex> lock(g_gone_mu);
    return g_gone;
  });
  return svc;
}

}  // namespace

std::atomic<std::int64_t> g_notebook_disconnects{0};

/// A connection's root under --custom-root: an Object written by hand, not a Service's members.
/// write(line) -> lines so far, lines(), len(root), peer() (from the connection's Session),
/// add(a, b), slow(ms, tag), disconnects() (on_disconnect calls so far).
class Notebook final : public tether::Object {
 public:
  Notebook() {
    add(
        "write",
        [this](std::string line) {
          lines_.push_back(std::move(line));
          return static_cast<std::int64_t>(lines_.size());
        },
        tether::arg_names("line"));
    add("lines", [this]() { return lines_; });
    add("peer", [](tether::Session& s) { return s.peer(); });
    add(
        "add", [](std::int64_t a, std::int64_t b) { return a + b; }, tether::arg_names("a", "b"));
    add("slow", &slow, tether::arg_names("ms", "tag"));
    add("disconnects", []() { return g_notebook_disconnects.load(); });
  }
  [[nodiscard]] std::string type_name() const override { return "interop.Notebook"; }
  [[nodiscard]] bool has_attr(std::string_view name) const override {
    return members_.contains(name) || name == "__len__";
  }
  tether::Any get_attr(tether::CallContext& ctx, std::string_view name) override {
    auto it = members_.find(name);
    if (it == members_.end()) return tether::Object::get_attr(ctx, name);
    return tether::Any(it->second);
  }
  tether::Task<tether::Any> call_attr(tether::CallContext& ctx, std::string_view name,
                                      std::vector<tether::Any> args, tether::Kwargs kwargs) override {
    if (name == "__len__") return length(static_cast<std::int64_t>(lines_.size()));
    auto it = members_.find(name);
    if (it == members_.end()) throw tether::attribute_error(name);
    return it->second->call(ctx, std::move(args), std::move(kwargs));
  }
  [[nodiscard]] std::vector<std::string> attr_names() const override {
    std::vector<std::string> names;  // both spellings, as a Class<T> object lists them
    for (const auto& [key, fn] : members_) {
      names.push_back(key);
      names.push_back(key.substr(8));
    }
    return names;
  }
  [[nodiscard]] std::vector<std::string> inspect_names() const override { return {"__len__"}; }

 private:
  template <class F>
  void add(const std::string& name, F f, tether::ArgNames names = tether::ArgNames()) {
    members_["exposed_" + name] = tether::make_function_object(name, std::move(f), std::move(names));
  }
  static tether::Task<tether::Any> length(std::int64_t n) { co_return tether::Any(tether::brine::Value(n)); }

  std::map<std::string, tether::ObjectPtr, std::less<>> members_;
  std::vector<std::string> lines_;
};

tether::Service make_notebook_service() {
  tether::Service svc("NotebookService");
  svc.root([](tether::Session&) { return std::make_shared<Notebook>(); });
  svc.on_connect([](tether::Session&) { say("CONNECT"); });
  svc.on_disconnect([](tether::Session&) {
    ++g_notebook_disconnects;
    say("DISCONNECT");
  });
  return svc;
}

int main(int argc, char** argv) {
  tether::ServeOptions opts;
  opts.host = "127.0.0.1";
  opts.port = 0;
  opts.server.threads = 2;
  opts.shutdown_grace = std::chrono::seconds(10);
  bool custom_root = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--grace-ms") == 0 && i + 1 < argc) {
      opts.shutdown_grace = std::chrono::milliseconds(std::atoll(argv[++i]));
    } else if (std::strcmp(argv[i], "--auth-token") == 0 && i + 1 < argc) {
      opts.auth_token = argv[++i];
    } else if (std::strcmp(argv[i], "--custom-root") == 0) {
      custom_root = true;
    } else {
      std::fprintf(stderr, "usage: service_server [--grace-ms N] [--auth-token T] [--custom-root]\n");
      return 2;
    }
  }
  try {
    tether::Service svc = custom_root ? make_notebook_service() : make_service();
    opts.on_listen = [](const std::vector<tether::Address>& addresses) {
      say("PORT " + std::to_string(addresses.front().port()));
    };
    tether::serve(svc, opts);
    say("STOPPED");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "service_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
