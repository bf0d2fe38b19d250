// One meaning per verb: call(args...) calls the object itself (CALL); callattr<R>(name,
// args...) calls a method by name (CALLATTR) — on Netref, SyncNetref and the roots of
// Connection and SyncConnection.

#include <cstdint>
#include <string>
#include <vector>

#include "service_fixture.hpp"
#include "tether/service/sync.hpp"

namespace tether::testing {
namespace {

using brine::Value;

Service verbs_service(std::shared_ptr<std::vector<std::string>> log) {
  Service svc("Verbs");
  svc.expose("add", [](std::int64_t a, std::int64_t b) { return a + b; });
  svc.expose("echo", [log](std::string s) {
    log->push_back("echo(" + s + ")");
    return s;
  });
  // A method named like an argument: fn.call("hello") must not reach it.
  svc.expose("hello", [log]() {
    log->push_back("hello()");
    return std::string("wrong verb");
  });
  return svc;
}

Task<std::vector<std::string>> use_verbs(std::uint16_t port) {
  Client c = co_await open_client(port);
  std::vector<std::string> out;
  std::int64_t a = co_await c.root.callattr<std::int64_t>("add", 1, 2);
  out.push_back(std::to_string(a));
  Netref echo = co_await c.root.attr("echo");
  std::string e = co_await echo.call<std::string>("hello");  // CALL of echo with "hello"
  out.push_back(e);
  Netref add = co_await c.root.attr("add");
  std::int64_t b = co_await add.call<std::int64_t>(20, 22);
  out.push_back(std::to_string(b));
  std::int64_t d = co_await c.root.callattr<std::int64_t>("add", make_args(5, 6));  // the list is the arguments
  out.push_back(std::to_string(d));
  std::int64_t f = co_await add.call<std::int64_t>(make_args(7, 8));
  out.push_back(std::to_string(f));
  std::int64_t g = co_await c.conn->callattr<std::int64_t>("add", 100, 1);  // the connection's root
  out.push_back(std::to_string(g));
  Any untyped = co_await add.call(make_args(2, 2));
  out.push_back(std::to_string(untyped.value().as_int64()));
  co_await close_client(c);
  co_return out;
}

TEST_F(ServiceTest, CallCallsTheObjectAndCallattrAMethodByName) {
  auto log = std::make_shared<std::vector<std::string>>();
  EXPECT_EQ(run(use_verbs(start(verbs_service(log)))),
            (std::vector<std::string>{"3", "hello", "42", "11", "15", "101", "4"}));
  EXPECT_EQ(*log, (std::vector<std::string>{"echo(hello)"}));
}

TEST(SyncVerbs, CallCallsTheObjectAndCallattrAMethodByName) {
  auto log = std::make_shared<std::vector<std::string>>();
  ServeOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  ServerThread server(verbs_service(log), o);
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 1, 2), 3);
  EXPECT_EQ(conn.root().callattr<std::int64_t>("add", 3, 4), 7);
  SyncNetref echo = conn.root().attr("echo");
  EXPECT_EQ(echo.call<std::string>("hello"), "hello");
  SyncNetref add = conn.root().attr("add");
  EXPECT_EQ(add.call<std::int64_t>(make_args(20, 22)), 42);
  EXPECT_EQ(conn.root().callattr<std::int64_t>("add", make_args(5, 6)), 11);
  conn.close();
  EXPECT_EQ(*log, (std::vector<std::string>{"echo(hello)"}));
}

}  // namespace
}  // namespace tether::testing
