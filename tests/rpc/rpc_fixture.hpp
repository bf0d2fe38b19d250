#pragma once
// Two rpc Connections joined by an in-memory pipe, and a small test root object.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "test_util.hpp"
#include "tether/channel/channel.hpp"
#include "tether/loop/sync.hpp"
#include "tether/rpc/connection.hpp"
#include "tether/rpc/object.hpp"
#include "tether/rpc/py_error.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/mem_pipe.hpp"

namespace tether::testing {

/// A root exposing: add(a, b), echo(x), fail(msg) -> ValueError, call(fn, x) -> fn(x),
/// bounce(fn, n): calls fn(n) which may call bounce again (nested callbacks),
/// slow() -> never replies until released, answer (data attribute = 42).
class TestRoot : public Object {
 public:
  [[nodiscard]] std::string type_name() const override { return "tests.TestRoot"; }
  [[nodiscard]] bool has_attr(std::string_view n) const override {
    return n == "exposed_add" || n == "exposed_echo" || n == "exposed_fail" || n == "exposed_call" ||
           n == "exposed_answer" || n == "exposed_slow" || n == "exposed_make" || n == "exposed_bounce";
  }
  Any get_attr(CallContext&, std::string_view name) override {
    if (name == "exposed_answer") return Any(brine::Value(42));
    std::string n(name);
    auto self = this;
    return Any(std::static_pointer_cast<Object>(std::make_shared<FunctionObject>(
        n, [self, n](CallContext& ctx, std::vector<Any> args, Kwargs kw) {
          return self->call_attr(ctx, n, std::move(args), std::move(kw));
        }, "builtins.method")));
  }
  Task<Any> call_attr(CallContext& ctx, std::string_view name, std::vector<Any> args, Kwargs kwargs) override;

  std::shared_ptr<Event> release = std::make_shared<Event>();
  int calls = 0;
};

struct RpcPair {
  std::unique_ptr<Connection> client;
  std::unique_ptr<Connection> server;
  std::shared_ptr<TestRoot> server_root = std::make_shared<TestRoot>();
};

inline RpcPair make_rpc_pair(EventLoop& loop, ConnectionOptions client_opts = {}, ConnectionOptions server_opts = {},
                             ObjectPtr client_root = nullptr) {
  auto pipe = make_mem_pipe(loop, 1 << 20);
  RpcPair p;
  p.client = std::make_unique<Connection>(
      std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.first))), std::move(client_root),
      client_opts);
  p.server = std::make_unique<Connection>(
      std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.second))), p.server_root,
      server_opts);
  p.client->start();
  p.server->start();
  return p;
}

}  // namespace tether::testing
