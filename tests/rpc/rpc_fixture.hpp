#pragma once
// Two rpc Connections joined by an in-memory pipe, and a small test root object.

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "tether/brine/codec.hpp"
#include "tether/channel/channel.hpp"
#include "tether/loop/sync.hpp"
#include "tether/rpc/connection.hpp"
#include "tether/rpc/object.hpp"
#include "tether/rpc/py_error.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/mem_pipe.hpp"

namespace tether::testing {

/// What GETATTR of a method returns: a callable that forwards to self->call_attr(name, ...).
/// `self` must outlive it (the test roots do: the connection holds them).
inline Any method_of(Object* self, std::string_view name) {
  std::string n(name);
  return Any(std::static_pointer_cast<Object>(std::make_shared<FunctionObject>(
      n,
      [self, n](CallContext& ctx, std::vector<Any> args, Kwargs kw) {
        return self->call_attr(ctx, n, std::move(args), std::move(kw));
      },
      "builtins.method")));
}

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
    return method_of(this, name);
  }
  Task<Any> call_attr(CallContext& ctx, std::string_view name, std::vector<Any> args, Kwargs kwargs) override;
  /// Unlike repr(): the forwarding tests tell STR from REPR by it.
  [[nodiscard]] std::string str() const override { return "a test root"; }

  std::shared_ptr<Event> release = std::make_shared<Event>();
  int calls = 0;
};

/// A started client Connection and a started server Connection serving `server_root`, joined
/// by an in-memory pipe.
struct ConnectionPair {
  std::unique_ptr<Connection> client;
  std::unique_ptr<Connection> server;
};

inline ConnectionPair connect_pair(EventLoop& loop, ObjectPtr server_root, ConnectionOptions client_opts = {},
                                   ConnectionOptions server_opts = {}, ObjectPtr client_root = nullptr,
                                   ChannelOptions channel_opts = {}) {
  auto pipe = make_mem_pipe(loop, 1 << 20);
  ConnectionPair p;
  p.client = std::make_unique<Connection>(
      std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.first)), channel_opts),
      std::move(client_root), client_opts);
  p.server = std::make_unique<Connection>(
      std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.second)), channel_opts),
      std::move(server_root), server_opts);
  p.client->start();
  p.server->start();
  return p;
}

struct RpcPair : ConnectionPair {
  std::shared_ptr<TestRoot> server_root = std::make_shared<TestRoot>();
};

inline RpcPair make_rpc_pair(EventLoop& loop, ConnectionOptions client_opts = {},
                             ConnectionOptions server_opts = {}, ObjectPtr client_root = nullptr) {
  RpcPair p;
  static_cast<ConnectionPair&>(p) =
      connect_pair(loop, p.server_root, client_opts, server_opts, std::move(client_root));
  return p;
}

/// A server Connection and a raw Channel playing a (possibly hostile) 5.x client.
struct RawClientPeer {
  std::unique_ptr<Connection> server;
  std::unique_ptr<Channel> raw;
};

inline RawClientPeer make_raw_client_peer(EventLoop& loop, ObjectPtr root) {
  auto pipe = make_mem_pipe(loop, 1 << 20);
  RawClientPeer p;
  p.raw = std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.first)));
  p.server = std::make_unique<Connection>(
      std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.second))), std::move(root));
  p.server->start();
  return p;
}

/// A 5.x message (msg, seq, body), dumped.
inline std::string payload5(std::int64_t msg, std::int64_t seq, brine::Value body) {
  std::string out;
  brine::dump_into(brine::Value::tuple({brine::Value(msg), brine::Value(seq), std::move(body)}), out);
  return out;
}

/// A client Connection and a raw Channel playing a 5.x server: for what a client sends.
struct RawServerPeer {
  std::unique_ptr<Channel> raw;
  std::unique_ptr<Connection> client;
};

inline RawServerPeer make_raw_server_peer(EventLoop& loop, ConnectionOptions opts = {}) {
  auto pipe = make_mem_pipe(loop, 1 << 20);
  RawServerPeer p;
  p.raw = std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.second)));
  p.client = std::make_unique<Connection>(
      std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.first))), nullptr, opts);
  p.client->start();
  return p;
}

/// The raw side's (REPLY, seq, boxed).
inline void send_raw_reply(Channel& raw, std::int64_t seq, brine::Value boxed) {
  std::string out;
  brine::dump_into(brine::Value::make_tuple(brine::Value(2), brine::Value(seq), std::move(boxed)), out);
  raw.send(OutFrame::copied(out));
}

/// The id_pack of the raw server's root.
inline brine::Value raw_root_id_pack() {
  return brine::Value::make_tuple(brine::Value("tests.Raw"), brine::Value(1), brine::Value(1));
}

/// What serve_raw replies to a request (the whole message): a boxed value, or nullopt to
/// leave it unanswered.
using RawAnswer = std::function<std::optional<brine::Value>(const brine::Value& msg)>;

/// Keeps every request message in `got`, answers GETROOT with a reference to the raw root and
/// the others with `answer`; ends after `count` requests (0: when the client goes away).
inline Task<void> serve_raw(Channel& raw, std::vector<brine::Value>& got, RawAnswer answer,
                            std::size_t count = 0) {
  while (count == 0 || got.size() < count) {
    Bytes b;
    try {
      b = co_await raw.recv();
    } catch (const Error&) {
      if (count == 0) co_return;  // the client went away
      throw;
    }
    brine::Value msg = brine::load(b.span());
    const std::int64_t seq = msg.as_tuple().at(1).as_int64();
    const brine::Value& handler = msg.as_tuple().at(2).as_tuple().at(0);
    std::optional<brine::Value> reply;
    if (handler == brine::Value(static_cast<std::int64_t>(rpc::Handler::kGetRoot))) {
      reply = brine::Value::make_tuple(brine::Value(static_cast<std::int64_t>(rpc::Label::kRemoteRef)),
                                       raw_root_id_pack());
    } else {
      reply = answer(msg);
    }
    got.push_back(std::move(msg));
    if (reply) send_raw_reply(raw, seq, std::move(*reply));
  }
}

}  // namespace tether::testing
