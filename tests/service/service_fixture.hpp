#pragma once
// Service-layer test helpers: a loop fixture owning a Server on 127.0.0.1:0 (same loop as the
// client code under test), a client-session runner, and a catcher for remote exceptions.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "test_util.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/rpc/remote_exception.hpp"
#include "tether/service/client.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"

namespace tether::testing {

class ServiceTest : public LoopTest {
 protected:
  void TearDown() override {
    if (server_) {
      server_->close();
      server_.reset();
    }
    LoopTest::TearDown();
  }

  /// Starts `svc` on a free loopback port of this loop; returns the port.
  std::uint16_t start(const Service& svc, ServeOptions options = ServeOptions()) {
    options.host = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<Server>(svc, std::move(options));
    server_->start();
    return server_->port();
  }

  std::unique_ptr<Server> server_;
};

/// What a failed remote call raised.
struct Caught {
  bool thrown = false;
  std::string module;
  std::string type;
  std::string message;
};

inline Caught caught_from(const RemoteError& e) {
  Caught c;
  c.thrown = true;
  c.module = e.module();
  c.type = e.type_name();
  c.message = e.args().empty() ? std::string() : e.args().front();
  return c;
}

/// Runs `t`, expecting a RemoteError; returns what was raised (thrown = false if none).
template <class T>
Task<Caught> expect_remote_error(Task<T> t) {
  Caught c;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
    } else {
      T v = co_await std::move(t);
      (void)v;
    }
  } catch (const RemoteError& e) {
    c = caught_from(e);
  }
  co_return c;
}

/// A client connection to 127.0.0.1:port with its root (closed by close()).
struct Client {
  std::unique_ptr<Connection> conn;
  Netref root;
};

inline Task<Client> open_client(std::uint16_t port, ClientOptions options) {
  Client c;
  c.conn = co_await connect("127.0.0.1", port, std::move(options));
  c.root = co_await c.conn->root();
  co_return c;
}

inline Task<Client> open_client(std::uint16_t port) {
  Client c = co_await open_client(port, ClientOptions());
  co_return c;
}

inline Task<void> close_client(Client& c) {
  c.root = Netref();
  co_await c.conn->close();
}

/// A graceful shutdown with a 30 s grace period.
inline Task<void> shutdown_with_grace(Server& server) { co_await server.shutdown(std::chrono::seconds(30)); }

/// Graceful shutdown with an idle client and a busy one: `port`'s server is shut down (30 s
/// grace) once the busy client's call to `hold` has signalled `entered`; the idle connection
/// must close at once, the busy one only after `release` lets its call answer 7, and the
/// whole drain must take far less than the grace period. The events belong to the caller.
inline Task<void> expect_graceful_drain(std::uint16_t port, Server& server, Event& entered, Event& release,
                                        EventLoop& loop) {
  Client idle = co_await open_client(port);
  Client busy = co_await open_client(port);
  AsyncResult pending = busy.root.callattr_async("hold");
  co_await entered.wait();
  const auto t0 = Clock::now();
  TaskGroup group(loop);
  group.spawn(shutdown_with_grace(server));
  co_await idle.conn->wait_closed();
  EXPECT_FALSE(busy.conn->closed());
  release.set();
  Any r = co_await pending.wait();
  EXPECT_EQ(r.value().as_int64(), 7);
  co_await busy.conn->wait_closed();
  co_await group.wait();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(10));  // far from the 30 s grace period
  EXPECT_EQ(server.connections(), 0u);
}

}  // namespace tether::testing
