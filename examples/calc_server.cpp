// calc_server: a tether RPC server that stock Python RPyC clients (and tether clients) can call.
//
//   calc_server [--host 127.0.0.1] [--port 18861] [--threads 1] [--busy-poll-us N] [--stdio]
//
// Prints "listening on HOST:PORT" first (port 0 picks a free port), serves until SIGINT or
// SIGTERM, then drains the connections and exits. With --stdio it serves one connection on
// stdin/stdout instead (for tether::connect_process). The serving loops busy-poll adaptively by
// default (ServerOptions::busy_poll: they spin before sleeping only while requests arrive in
// quick succession); --busy-poll-us N makes them spin a fixed N microseconds instead, and
// --busy-poll-us 0 turns busy polling off.
//
// From Python:
//   import rpyc
//   c = rpyc.connect("127.0.0.1", PORT)
//   c.root.add(1, 2)                        # 3
//   c.root.apply(lambda x: x * 10, 4)       # 40: the server calls the Python lambda back
//   c.root.fail("bad")                      # raises ValueError('bad')
//   s = c.root.store; s.put("k", "v"); len(s); list(s); s["k"]

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tether/base/bytes.hpp"
#include "tether/rpc/class.hpp"
#include "tether/rpc/py_error.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"

namespace {

/// A small key-value store shared by every connection (so it locks: with --threads > 1 calls
/// arrive on several threads).
class Store {
 public:
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
    for (const auto& [k, v] : data_) out.push_back(k);
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> data_;
};

tether::Service make_calculator() {
  tether::Service calc("CalculatorService");
  // The service's class for Store: a shared_ptr<Store> it hands out is a "calc.Store".
  calc.define_class<Store>("Store", "calc")
      .method("put", &Store::put, tether::arg_names("key", "value"))
      .method("get", &Store::get, tether::arg_names("key"))
      .len(&Store::size)
      .iter([](const Store& s) { return s.keys(); })
      .getitem(&Store::get)
      .contains(&Store::has)
      .repr([](const Store& s) { return "<calc.Store with " + std::to_string(s.size()) + " keys>"; });

  // C++ integers overflow where Python's do not: check, and raise what Python would if it had
  // 64-bit ints (a + b on int64_t that overflows is undefined behaviour).
  calc.expose("add", [](std::int64_t a, std::int64_t b) {
    std::int64_t sum = 0;
    if (__builtin_add_overflow(a, b, &sum)) {
      throw tether::PyError("OverflowError", "add(): result does not fit a 64-bit integer");
    }
    return sum;
  }, tether::arg_names("a", "b"));
  calc.expose("divide", [](double a, double b) {
    if (b == 0) throw tether::PyError("ZeroDivisionError", "division by zero");
    return a / b;
  }, tether::arg_names("a", "b"));
  calc.expose("echo", [](tether::brine::Value v) { return v; }, tether::arg_names("value"));
  calc.expose("echo_bytes", [](tether::Bytes b) { return b; }, tether::arg_names("data"));
  // A callback: `f` is the caller's function; calling it calls back into the client.
  calc.expose("apply", [](std::function<std::int64_t(std::int64_t)> f, std::int64_t x) { return f(x); },
              tether::arg_names("f", "x"));
  calc.expose("fail", [](std::string message) -> std::int64_t { throw std::invalid_argument(message); },
              tether::arg_names("message"));
  calc.expose_object("store", std::make_shared<Store>());
  return calc;
}

const char* arg_value(int& i, int argc, char** argv) {
  if (i + 1 >= argc) {
    std::fprintf(stderr, "calc_server: %s needs a value\n", argv[i]);
    std::exit(2);
  }
  return argv[++i];
}

}  // namespace

int main(int argc, char** argv) {
  tether::ServeOptions opts;
  bool stdio = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--host") == 0) {
      opts.host = arg_value(i, argc, argv);
    } else if (std::strcmp(argv[i], "--port") == 0) {
      opts.port = static_cast<std::uint16_t>(std::atoi(arg_value(i, argc, argv)));
    } else if (std::strcmp(argv[i], "--threads") == 0) {
      opts.server.threads = static_cast<std::size_t>(std::atoi(arg_value(i, argc, argv)));
    } else if (std::strcmp(argv[i], "--busy-poll-us") == 0) {
      const long us = std::atol(arg_value(i, argc, argv));
      if (us < 0) {
        std::fprintf(stderr, "calc_server: --busy-poll-us must not be negative\n");
        return 2;
      }
      opts.server.busy_poll = std::chrono::microseconds(us);
    } else if (std::strcmp(argv[i], "--stdio") == 0) {
      stdio = true;
    } else {
      std::fprintf(stderr, "usage: calc_server [--host H] [--port N] [--threads N] [--busy-poll-us N] [--stdio]\n");
      return 2;
    }
  }
  try {
    tether::Service calc = make_calculator();
    if (stdio) {
      tether::serve_stdio(calc);
      return 0;
    }
    opts.on_listen = [](const std::vector<tether::Address>& addresses) {
      std::printf("listening on %s\n", addresses.front().to_string().c_str());
      std::fflush(stdout);
    };
    tether::serve(calc, opts);
    std::fprintf(stderr, "calc_server: stopped\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "calc_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
