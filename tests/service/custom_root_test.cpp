// A custom root (Service::root): any tether::Object served by serve()/Server as the root of each
// connection, with the service's on_connect/on_disconnect hooks, its Session and its state —
// per-connection roots from a factory, one shared root, a factory that fails (the client is
// refused), the graceful drain of a call on such a root, and a tether client exposing one.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "service_fixture.hpp"
#include "tether/loop/task_group.hpp"

namespace tether::testing {
namespace {

using brine::Value;

/// What the hooks and factories saw.
struct Seen {
  int made = 0;
  std::vector<std::string> events;
  Event disconnected;
};

/// A root object of its own making: greet(name), count() (its own counter), peer() (from the
/// Session of the connection it serves), hold() (waits for `release`, then 7).
class Greeter final : public Object {
 public:
  explicit Greeter(std::string label) : label_(std::move(label)) {}
  [[nodiscard]] std::string type_name() const override { return "tests.Greeter"; }
  [[nodiscard]] bool has_attr(std::string_view n) const override {
    return n == "exposed_greet" || n == "exposed_count" || n == "exposed_peer" || n == "exposed_hold";
  }
  Task<Any> call_attr(CallContext& ctx, std::string_view name, std::vector<Any> args, Kwargs) override {
    if (name == "exposed_greet") return ready("hello " + args.at(0).value().as_str() + " from " + label_);
    if (name == "exposed_count") return ready(++count_);
    if (name == "exposed_peer") {
      Session* s = Session::find(ctx);
      return ready(s ? s->peer() : std::string("no session"));
    }
    if (name == "exposed_hold") return hold(release);
    throw attribute_error(name);
  }

  std::shared_ptr<Event> release = std::make_shared<Event>();
  std::shared_ptr<Event> entered = std::make_shared<Event>();

 private:
  static Task<Any> ready(Any v) { co_return v; }
  Task<Any> hold(std::shared_ptr<Event> gate) {
    entered->set();
    co_await gate->wait();
    co_return Any(Value(7));
  }

  std::string label_;
  std::int64_t count_ = 0;
};

Service greeter_service(std::shared_ptr<Seen> seen) {
  Service svc("Greeter");
  svc.root([seen](Session& s) -> ObjectPtr {
       ++seen->made;
       seen->events.push_back("root");
       EXPECT_EQ(s.connection(), nullptr) << "made before the connection exists";
       return std::make_shared<Greeter>("root " + std::to_string(seen->made));
     })
      .on_connect([seen](Session& s) {
        seen->events.push_back("connect");
        EXPECT_NE(s.connection(), nullptr);
      })
      .on_disconnect([seen](Session&) {
        seen->events.push_back("disconnect");
        seen->disconnected.set();
      });
  return svc;
}

Task<std::vector<std::string>> use_two_roots(std::uint16_t port, std::shared_ptr<Seen> seen) {
  std::vector<std::string> out;
  Client a = co_await open_client(port);
  Client b = co_await open_client(port);
  out.push_back(a.root.type_name());
  out.push_back(co_await a.root.callattr<std::string>("greet", "ann"));
  out.push_back(co_await b.root.callattr<std::string>("exposed_greet", "bob"));
  // Each connection has a root of its own: its own counter.
  std::int64_t a1 = co_await a.root.callattr<std::int64_t>("count");
  std::int64_t a2 = co_await a.root.callattr<std::int64_t>("count");
  std::int64_t b1 = co_await b.root.callattr<std::int64_t>("count");
  out.push_back(std::to_string(a1) + std::to_string(a2) + std::to_string(b1));
  // The Session of the connection reaches the root's code.
  std::string peer = co_await a.root.callattr<std::string>("peer");
  out.push_back(peer.starts_with("127.0.0.1:") ? "session" : peer);
  // The service's own members are not served: the custom root replaces them.
  Caught e = co_await expect_remote_error(a.root.callattr("get_service_name"));
  out.push_back(e.type);
  co_await close_client(a);
  co_await close_client(b);
  while (std::count(seen->events.begin(), seen->events.end(), "disconnect") < 2) {
    seen->disconnected.clear();
    co_await seen->disconnected.wait();
  }
  co_return out;
}

TEST_F(ServiceTest, ACustomRootPerConnectionWithTheServicesHooks) {
  auto seen = std::make_shared<Seen>();
  const std::uint16_t port = start(greeter_service(seen));
  EXPECT_EQ(run(use_two_roots(port, seen)),
            (std::vector<std::string>{"tests.Greeter", "hello ann from root 1", "hello bob from root 2", "121",
                                      "session", "AttributeError"}));
  EXPECT_EQ(seen->made, 2);
  EXPECT_EQ(seen->events, (std::vector<std::string>{"root", "connect", "root", "connect", "disconnect",
                                                    "disconnect"}));
}

Task<std::vector<std::int64_t>> counts_of_two_clients(std::uint16_t port) {
  Client a = co_await open_client(port);
  Client b = co_await open_client(port);
  std::vector<std::int64_t> out;
  out.push_back(co_await a.root.callattr<std::int64_t>("count"));
  out.push_back(co_await b.root.callattr<std::int64_t>("count"));
  out.push_back(co_await a.root.callattr<std::int64_t>("count"));
  bool same = a.root.id_pack() == b.root.id_pack();
  out.push_back(same ? 1 : 0);
  co_await close_client(a);
  co_await close_client(b);
  co_return out;
}

TEST_F(ServiceTest, OneSharedRootForEveryConnection) {
  auto shared = std::make_shared<Greeter>("everyone");
  Service svc("Shared");
  svc.root(shared);
  EXPECT_EQ(run(counts_of_two_clients(start(svc))), (std::vector<std::int64_t>{1, 2, 3, 1}));
}

Task<Caught> first_call_refused(std::uint16_t port) {
  std::unique_ptr<Connection> conn = co_await connect("127.0.0.1", port, [] {
    ClientOptions o;
    o.connection.generation = rpc::Generation::k5;  // no probe: the first request is ours
    return o;
  }());
  Caught e = co_await expect_remote_error(conn->root());
  co_await conn->wait_closed();
  co_return e;
}

TEST_F(ServiceTest, ARootFactoryThatThrowsRefusesTheClient) {
  auto seen = std::make_shared<Seen>();
  Service svc("Picky");
  svc.root([](Session&) -> ObjectPtr { throw PyError("PermissionError", "no root for you"); })
      .on_connect([seen](Session&) { seen->events.push_back("connect"); });
  const Caught e = run(first_call_refused(start(svc)));
  EXPECT_EQ(e.type, "PermissionError");
  EXPECT_EQ(e.message, "no root for you");
  EXPECT_TRUE(seen->events.empty()) << "on_connect does not run for a refused client";
  EXPECT_THROW(Service("Bad").root(RootFactory()), UsageError);
  EXPECT_THROW(Service("Bad").root(ObjectPtr()), UsageError);
}

TEST_F(ServiceTest, ShutdownDrainsACallOnACustomRoot) {
  auto root = std::make_shared<Greeter>("drain");
  Service svc("Drain");
  svc.root(root);
  const std::uint16_t port = start(svc);
  run(expect_graceful_drain(port, *server_, *root->entered, *root->release, loop_));
}

Task<std::string> server_asks_client(std::uint16_t port, const Service* client_service) {
  ClientOptions opts;
  opts.service = client_service;
  Client c = co_await open_client(port, opts);
  std::string said = co_await c.root.callattr<std::string>("ask");
  co_await close_client(c);
  co_return said;
}

TEST_F(ServiceTest, AClientCanExposeACustomRoot) {
  Service server_svc("Asker");
  server_svc.expose_async("ask", [](Session& s) -> Task<std::string> {
    Netref client_root = co_await s.peer_root();
    std::string r = co_await client_root.callattr<std::string>("greet", "server");
    co_return r;
  });
  Service client_svc("ClientRoot");
  client_svc.root([](Session&) { return std::make_shared<Greeter>("the client"); });
  EXPECT_EQ(run(server_asks_client(start(server_svc), &client_svc)), "hello server from the client");
}

}  // namespace
}  // namespace tether::testing
