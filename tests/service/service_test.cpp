// Service, Session, serving and connecting: names and the root object, per-connection state and
// hooks, the export table after a client is done, RPyC generations (forced and the fallback),
// Unix sockets, TLS, in-memory pipes, a child's stdio, several server threads, graceful
// shutdown.

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "net/test_certs.hpp"
#include "service_fixture.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/loop/time.hpp"
#include "tether/net/tls.hpp"
#include "tether/rpc/class.hpp"
#include "tether/stream/mem_pipe.hpp"

namespace tether::testing {
namespace {

using brine::Value;

Service calc_service() {
  Service svc("CalcService");
  svc.expose(
      "add", [](std::int64_t a, std::int64_t b) { return a + b; }, arg_names("a", "b"));
  svc.expose_value("version", Value("1.2"));
  return svc;
}

// --- names and the root -----------------------------------------------------------------

TEST(ServiceNames, FollowRpycRules) {
  Service calc("CalcService");
  EXPECT_EQ(calc.service_name(), "CALC");
  EXPECT_EQ(calc.type_name(), "tether.CalcService");
  Service calculator("Calculator");
  EXPECT_EQ(calculator.service_name(), "CALCULATOR");
  EXPECT_EQ(calculator.type_name(), "tether.CalculatorService");
  Service aliased("Calc", {"calc", "math"});
  EXPECT_EQ(aliased.service_name(), "CALC");
  EXPECT_EQ(aliased.aliases(), (std::vector<std::string>{"CALC", "MATH"}));
}

Task<void> root_behaviour(std::uint16_t port) {
  Client c = co_await open_client(port);
  EXPECT_EQ(c.root.type_name(), "tether.CalcService");
  std::string name = co_await c.root.callattr<std::string>("get_service_name");
  EXPECT_EQ(name, "CALC");
  std::vector<std::string> aliases =
      co_await c.root.callattr<std::vector<std::string>>("exposed_get_service_aliases");
  EXPECT_EQ(aliases, std::vector<std::string>{"CALC"});
  // root.add and root.exposed_add, by CALLATTR and by GETATTR + CALL.
  std::int64_t a = co_await c.root.callattr<std::int64_t>("add", 1, 2);
  std::int64_t b = co_await c.root.callattr<std::int64_t>("exposed_add", 3, 4);
  EXPECT_EQ(a, 3);
  EXPECT_EQ(b, 7);
  Netref add = co_await c.root.attr("add");
  EXPECT_EQ(add.type_name(), "builtins.method");
  Any sum = co_await add.call(make_args(20, 22));
  EXPECT_EQ(sum.value().as_int64(), 42);
  Any version = co_await c.root.getattr("version");
  EXPECT_EQ(version.value().as_str(), "1.2");
  Caught e = co_await expect_remote_error(c.root.getattr("secret"));
  EXPECT_EQ(e.type, "AttributeError");
  e = co_await expect_remote_error(c.root.callattr("version"));
  EXPECT_EQ(e.type, "TypeError");
  e = co_await expect_remote_error(c.root.setattr("add", Value(1)));
  EXPECT_EQ(e.type, "AttributeError");
  e = co_await expect_remote_error(c.root.delattr("add"));
  EXPECT_EQ(e.type, "AttributeError");
  co_await close_client(c);
}

TEST_F(ServiceTest, RootExposesMembersUnderBothSpellings) {
  Service svc = calc_service();
  run(root_behaviour(start(svc)));
}

Task<void> alternating_members(std::uint16_t port) {
  Client c = co_await open_client(port);
  // The root remembers the member it found last: calls that alternate between members, a
  // missing name and a value must each still find their own.
  for (std::int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(co_await c.root.callattr<std::int64_t>("add", i, 10), i + 10);
    EXPECT_EQ(co_await c.root.callattr<std::int64_t>("sub", i, 10), i - 10);
    Caught e = co_await expect_remote_error(c.root.callattr("nothing_here"));
    EXPECT_EQ(e.type, "AttributeError");
    e = co_await expect_remote_error(c.root.callattr("version"));
    EXPECT_EQ(e.type, "TypeError");
    Any version = co_await c.root.getattr("version");
    EXPECT_EQ(version.value().as_str(), "1.2");
    EXPECT_EQ(co_await c.root.callattr<std::int64_t>("exposed_sub", 1, i), 1 - i);
  }
  co_await close_client(c);
}

TEST_F(ServiceTest, CallsAlternatingBetweenMembersEachFindTheirOwn) {
  Service svc = calc_service();
  svc.expose("sub", [](std::int64_t a, std::int64_t b) { return a - b; });
  run(alternating_members(start(svc)));
}

Task<void> root_refuses_setattr(std::uint16_t port) {
  Client c = co_await open_client(port);
  Caught e = co_await expect_remote_error(c.root.setattr("add", Value(1)));
  EXPECT_EQ(e.type, "AttributeError");
  EXPECT_EQ(e.message, "access denied");
  co_await close_client(c);
}

TEST_F(ServiceTest, RootRefusesSetattrEvenWhenThePolicyAllowsIt) {
  Service svc = calc_service();
  ServeOptions opts;
  opts.connection.policy.allow_setattr = true;
  run(root_refuses_setattr(start(svc, opts)));
}

// --- sessions ---------------------------------------------------------------------------

struct Hooks {
  int connects = 0;
  int disconnects = 0;
  std::vector<std::size_t> exported_at_disconnect;
  std::vector<std::string> peers;
  Event disconnected;
};

Task<std::string> ask_client(Session& s) {
  Netref client_root = co_await s.peer_root();
  std::string who = co_await client_root.callattr<std::string>("whoami");
  co_return "client says " + who;
}

Service session_service(std::shared_ptr<Hooks> hooks) {
  Service svc("Sessions");
  svc.with_state<std::int64_t>();
  svc.on_connect([hooks](Session& s) {
    ++hooks->connects;
    hooks->peers.push_back(s.peer());
  });
  svc.on_disconnect([hooks](Session& s) {
    ++hooks->disconnects;
    hooks->exported_at_disconnect.push_back(s.connection() ? s.connection()->stats().exported : 999);
    hooks->disconnected.set();
  });
  svc.expose("incr", [](Session& s) { return ++s.state_as<std::int64_t>(); });
  svc.expose("exported", [](Session& s) { return s.connection()->stats().exported; });
  svc.expose_async("ask_client", &ask_client);
  svc.expose("service", [](CallContext& ctx) { return Session::find(ctx)->service_name(); });
  return svc;
}

Task<void> two_sessions(std::uint16_t port, std::shared_ptr<Hooks> hooks) {
  Client a = co_await open_client(port);
  Client b = co_await open_client(port);
  std::int64_t a1 = co_await a.root.callattr<std::int64_t>("incr");
  std::int64_t a2 = co_await a.root.callattr<std::int64_t>("incr");
  std::int64_t b1 = co_await b.root.callattr<std::int64_t>("incr");
  EXPECT_EQ(a1, 1);
  EXPECT_EQ(a2, 2);
  EXPECT_EQ(b1, 1);
  std::string svc_name = co_await a.root.callattr<std::string>("service");
  EXPECT_EQ(svc_name, "SESSIONS");
  EXPECT_EQ(hooks->connects, 2);
  co_await close_client(a);
  co_await hooks->disconnected.wait();
  EXPECT_EQ(hooks->disconnects, 1);
  hooks->disconnected.clear();
  co_await close_client(b);
  co_await hooks->disconnected.wait();
  EXPECT_EQ(hooks->disconnects, 2);
}

TEST_F(ServiceTest, SessionsHavePerConnectionStateAndHooks) {
  auto hooks = std::make_shared<Hooks>();
  Service svc = session_service(hooks);
  run(two_sessions(start(svc), hooks));
  ASSERT_EQ(hooks->peers.size(), 2u);
  EXPECT_EQ(hooks->peers[0].rfind("127.0.0.1:", 0), 0u) << hooks->peers[0];
}

struct Thing {
  int n = 0;
};

Task<void> export_table(std::uint16_t port, std::shared_ptr<Hooks> hooks) {
  Client c = co_await open_client(port);
  {
    std::vector<Netref> held;
    for (int i = 0; i < 5; ++i) {
      Any t = co_await c.root.callattr<Any>("thing");
      held.push_back(t.netref());
    }
    Netref add = co_await c.root.attr("incr");
    held.push_back(add);
    std::size_t while_held = co_await c.root.callattr<std::size_t>("exported");
    EXPECT_EQ(while_held, 1u + 5u + 1u);  // the root, five things, one bound function
  }
  // The DELs of the dropped proxies went out before this request: the server has released them.
  std::size_t after = co_await c.root.callattr<std::size_t>("exported");
  EXPECT_EQ(after, 1u);  // only the root
  co_await close_client(c);
  co_await hooks->disconnected.wait();
  EXPECT_EQ(hooks->exported_at_disconnect, std::vector<std::size_t>{0u});
}

TEST_F(ServiceTest, ExportTableIsEmptyOnceTheClientIsDone) {
  auto hooks = std::make_shared<Hooks>();
  Service svc = session_service(hooks);
  svc.define_class<Thing>("Thing");
  svc.expose("thing", []() { return std::make_shared<Thing>(); });
  run(export_table(start(svc), hooks));
}

Task<void> server_calls_client(std::uint16_t port, const Service* client_service) {
  ClientOptions opts;
  opts.service = client_service;
  Client c = co_await open_client(port, opts);
  std::string said = co_await c.root.callattr<std::string>("ask_client");
  EXPECT_EQ(said, "client says tether client");
  co_await close_client(c);
}

TEST_F(ServiceTest, ServerReachesTheClientsService) {
  auto hooks = std::make_shared<Hooks>();
  Service svc = session_service(hooks);
  Service client_svc("Client");
  client_svc.expose("whoami", []() { return std::string("tether client"); });
  run(server_calls_client(start(svc), &client_svc));
}

// --- generations ------------------------------------------------------------------------

Task<void> add_in(std::uint16_t port, rpc::Generation client_gen, rpc::Generation expect) {
  ClientOptions opts;
  opts.connection.generation = client_gen;
  Client c = co_await open_client(port, opts);
  std::int64_t r = co_await c.root.callattr<std::int64_t>("add", 2, 3);
  EXPECT_EQ(r, 5);
  EXPECT_EQ(c.conn->generation(), expect);
  co_await close_client(c);
}

TEST_F(ServiceTest, Generation5Forced) {
  Service svc = calc_service();
  ServeOptions opts;
  opts.connection.generation = rpc::Generation::k5;
  run(add_in(start(svc, opts), rpc::Generation::k5, rpc::Generation::k5));
}

TEST_F(ServiceTest, Generation6Forced) {
  Service svc = calc_service();
  ServeOptions opts;
  opts.connection.generation = rpc::Generation::k6;
  run(add_in(start(svc, opts), rpc::Generation::k6, rpc::Generation::k6));
}

TEST_F(ServiceTest, AutoServerDetectsEitherGeneration) {
  Service svc = calc_service();
  std::uint16_t port = start(svc);
  run(add_in(port, rpc::Generation::k6, rpc::Generation::k6));
  run(add_in(port, rpc::Generation::k5, rpc::Generation::k5));
}

Task<void> fallback(std::uint16_t port, Server* server, rpc::Generation first, rpc::Generation server_gen) {
  ClientOptions opts;
  opts.connection.first_generation = first;
  const std::string endpoint = "127.0.0.1:" + std::to_string(port);
  EXPECT_FALSE(known_generation(endpoint).has_value());
  Client c = co_await open_client(port, opts);
  EXPECT_EQ(c.conn->generation(), server_gen);
  std::int64_t r = co_await c.root.callattr<std::int64_t>("add", 20, 22);
  EXPECT_EQ(r, 42);
  EXPECT_EQ(known_generation(endpoint), server_gen);
  EXPECT_EQ(server->stats().accepted, 2u);  // the failed attempt and the fallback
  co_await close_client(c);
  // Remembered: the next connection starts in the right generation.
  Client again = co_await open_client(port, opts);
  EXPECT_EQ(again.conn->generation(), server_gen);
  EXPECT_EQ(server->stats().accepted, 3u);
  co_await close_client(again);
}

TEST_F(ServiceTest, ClientFallsBackToGeneration6AndRemembersIt) {
  forget_known_generations();
  Service svc = calc_service();
  ServeOptions opts;
  opts.connection.generation = rpc::Generation::k6;
  std::uint16_t port = start(svc, opts);
  run(fallback(port, server_.get(), rpc::Generation::k5, rpc::Generation::k6));
  forget_known_generations();
}

TEST_F(ServiceTest, ClientFallsBackToGeneration5AndRemembersIt) {
  forget_known_generations();
  Service svc = calc_service();
  ServeOptions opts;
  opts.connection.generation = rpc::Generation::k5;
  std::uint16_t port = start(svc, opts);
  run(fallback(port, server_.get(), rpc::Generation::k6, rpc::Generation::k5));
  forget_known_generations();
}

/// One connect with generation = kAuto starting in 5.x, teaching `cache`; the server speaks 6.x.
Task<rpc::Generation> generation_with(std::uint16_t port, std::shared_ptr<GenerationCache> cache) {
  ClientOptions opts;
  opts.connection.first_generation = rpc::Generation::k5;
  opts.generations = std::move(cache);
  Client c = co_await open_client(port, opts);
  const rpc::Generation g = c.conn->generation();
  co_await close_client(c);
  co_return g;
}

TEST_F(ServiceTest, GenerationCachesKeepWhatTheyLearnToThemselves) {
  // ClientOptions start with the documented process-wide cache.
  EXPECT_EQ(ClientOptions().generations, GenerationCache::process_default());
  forget_known_generations();
  Service svc = calc_service();
  ServeOptions sopts;
  sopts.connection.generation = rpc::Generation::k6;
  const std::uint16_t port = start(svc, sopts);
  const std::string endpoint = "127.0.0.1:" + std::to_string(port);
  auto first = std::make_shared<GenerationCache>();
  auto second = std::make_shared<GenerationCache>();

  EXPECT_EQ(run(generation_with(port, first)), rpc::Generation::k6);
  EXPECT_EQ(server_->stats().accepted, 2u);  // the 5.x probe, then 6.x
  EXPECT_EQ(first->find(endpoint), rpc::Generation::k6);
  EXPECT_FALSE(second->find(endpoint).has_value()) << "another cache learnt nothing";
  EXPECT_FALSE(known_generation(endpoint).has_value()) << "nor did the process-wide one";

  // The second cache's client probes afresh; the first cache's goes straight to 6.x.
  EXPECT_EQ(run(generation_with(port, second)), rpc::Generation::k6);
  EXPECT_EQ(server_->stats().accepted, 4u);
  EXPECT_EQ(run(generation_with(port, first)), rpc::Generation::k6);
  EXPECT_EQ(server_->stats().accepted, 5u);

  // Forgetting in one leaves the other; without a cache every connect probes.
  first->forget(endpoint);
  EXPECT_EQ(first->size(), 0u);
  EXPECT_EQ(second->find(endpoint), rpc::Generation::k6);
  EXPECT_EQ(run(generation_with(port, nullptr)), rpc::Generation::k6);
  EXPECT_EQ(server_->stats().accepted, 7u);
  EXPECT_FALSE(known_generation(endpoint).has_value());
}

// --- transports -------------------------------------------------------------------------

Task<void> over_unix(std::string path) {
  std::unique_ptr<Connection> conn = co_await connect_unix(path);
  Netref root = co_await conn->root();
  std::int64_t r = co_await root.callattr<std::int64_t>("add", 1, 1);
  EXPECT_EQ(r, 2);
  root = Netref();
  co_await conn->close();
}

TEST_F(ServiceTest, ServesOverUnixSockets) {
  char tmpl[] = "/tmp/tether-service-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/calc.sock";
  Service svc = calc_service();
  ServeOptions opts;
  opts.unix_path = path;
  server_ = std::make_unique<Server>(svc, opts);
  server_->start();
  EXPECT_EQ(server_->port(), 0);
  run(over_unix(path));
  server_->close();
  server_.reset();
  std::filesystem::remove_all(tmpl);
}

Task<void> over_tls(std::uint16_t port, ClientOptions opts) {
  Client c = co_await open_client(port, std::move(opts));
  std::int64_t r = co_await c.root.callattr<std::int64_t>("add", 40, 2);
  EXPECT_EQ(r, 42);
  co_await close_client(c);
}

TEST_F(ServiceTest, ServesOverTls) {
  const TestCerts& certs = test_certs();
  Service svc = calc_service();
  ServeOptions opts;
  TlsServerOptions server_tls;
  server_tls.cert_file = certs.server_cert;
  server_tls.key_file = certs.server_key;
  opts.server.tls = TlsContext::server(server_tls);
  std::uint16_t port = start(svc, opts);
  ClientOptions client;
  TlsClientOptions client_tls;
  client_tls.ca_file = certs.ca_cert;
  client.net.tls = TlsContext::client(client_tls);
  run(over_tls(port, client));
}

Task<void> over_pipe(EventLoop& loop, const Service& svc) {
  MemPipePair pipe = make_mem_pipe(loop);
  TaskGroup group(loop);
  group.spawn(serve_stream(svc, std::make_unique<BufferedStream>(std::move(pipe.second))));
  std::unique_ptr<Connection> conn = connect_stream(std::make_unique<BufferedStream>(std::move(pipe.first)));
  Netref root = co_await conn->root();
  std::int64_t r = co_await root.callattr<std::int64_t>("add", 5, 6);
  EXPECT_EQ(r, 11);
  root = Netref();
  co_await conn->close();
  co_await group.wait();  // the server side ends when the client closes
}

TEST_F(ServiceTest, ServesOneStream) {
  Service svc = calc_service();
  run(over_pipe(loop_, svc));
}

Task<void> over_child_stdio() {
  std::vector<std::string> argv{TETHER_STDIO_SERVER};
  ProcessConnection pc = co_await connect_process(argv);
  Netref root = co_await pc.connection->root();
  std::int64_t r = co_await root.callattr<std::int64_t>("add", 100, 23);
  EXPECT_EQ(r, 123);
  std::string name = co_await root.callattr<std::string>("get_service_name");
  EXPECT_EQ(name, "CALC");
  root = Netref();
  co_await pc.connection->close();
  ExitStatus status = co_await pc.process->wait();
  EXPECT_TRUE(status.success()) << status.to_string();
}

TEST_F(ServiceTest, ConnectsToAChildProcessOverItsStdio) { run(over_child_stdio()); }

// --- several server threads --------------------------------------------------------------

std::int64_t thread_tag() {
  return static_cast<std::int64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id()));
}

Task<void> many_clients(std::uint16_t port, std::int64_t main_tag) {
  std::vector<Client> clients;
  for (int i = 0; i < 4; ++i) {
    Client c = co_await open_client(port);
    clients.push_back(std::move(c));
  }
  std::set<std::int64_t> tags;
  for (auto& c : clients) {
    std::int64_t t = co_await c.root.callattr<std::int64_t>("tag");
    std::int64_t n = co_await c.root.callattr<std::int64_t>("incr");
    EXPECT_EQ(n, 1);  // per-connection state, whatever the thread
    tags.insert(t);
  }
  EXPECT_EQ(tags.count(main_tag), 0u);  // handlers run on the server's threads
  EXPECT_EQ(tags.size(), 2u);           // round-robin over both
  for (auto& c : clients) co_await close_client(c);
}

TEST_F(ServiceTest, SeveralServerThreads) {
  Service svc("Threads");
  svc.with_state<std::int64_t>();
  svc.expose("tag", []() { return thread_tag(); });
  svc.expose("incr", [](Session& s) { return ++s.state_as<std::int64_t>(); });
  ServeOptions opts;
  opts.server.threads = 2;
  run(many_clients(start(svc, opts), thread_tag()));
}

// --- graceful shutdown ------------------------------------------------------------------

struct Gate {
  Event entered;
  Event release;
};

Task<std::int64_t> hold(std::shared_ptr<Gate> gate) {
  gate->entered.set();
  co_await gate->release.wait();
  co_return 7;
}

TEST_F(ServiceTest, ShutdownDrainsConnections) {
  auto gate = std::make_shared<Gate>();
  Service svc("Drain");
  svc.expose_async("hold", [gate]() { return hold(gate); });
  std::uint16_t port = start(svc);
  run(expect_graceful_drain(port, *server_, gate->entered, gate->release, loop_));
}

// --- hooks ----------------------------------------------------------------------------------

/// Records what a ServerHook sees: what it was told, whether the server still accepted
/// connections during on_shutdown(), and when it was destroyed.
struct HookLog {
  std::vector<ServerInfo> made;
  std::vector<std::string> events;
  std::uint16_t port = 0;
  bool accepted_during_shutdown = false;
};

Task<bool> can_connect(std::uint16_t port) {
  ClientOptions o;
  o.connection.generation = rpc::Generation::k6;  // the servers below speak 6.x only
  try {
    Client c = co_await open_client(port, o);
    co_await close_client(c);
    co_return true;
  } catch (const Error&) {
    co_return false;
  }
}

class RecordingHook final : public ServerHook {
 public:
  explicit RecordingHook(HookLog& log) : log_(log) {}
  ~RecordingHook() override { log_.events.push_back("destroyed"); }
  Task<void> on_shutdown() override {
    log_.events.push_back("on_shutdown");
    log_.accepted_during_shutdown = co_await can_connect(log_.port);
  }

 private:
  HookLog& log_;
};

ServerHookFactory recording_hook(HookLog& log) {
  return [&log](const ServerInfo& info) -> std::unique_ptr<ServerHook> {
    log.made.push_back(info);
    return std::make_unique<RecordingHook>(log);
  };
}

TEST_F(ServiceTest, HooksAreToldAboutTheServerAndRunBeforeAGracefulShutdownStopsAccepting) {
  HookLog log;
  ServeOptions o;
  o.connection.generation = rpc::Generation::k6;
  o.hooks.push_back(recording_hook(log));
  o.hooks.push_back([](const ServerInfo&) { return std::unique_ptr<ServerHook>(); });  // may decline
  log.port = start(Service("Calc", {"calc", "math"}), o);
  ASSERT_EQ(log.made.size(), 1u);
  const ServerInfo& info = log.made[0];
  EXPECT_EQ(info.loop, &loop_);
  EXPECT_EQ(info.host, "127.0.0.1");
  ASSERT_EQ(info.addresses.size(), 1u);
  EXPECT_EQ(info.addresses[0].port(), log.port);
  EXPECT_EQ(info.service_name, "CALC");
  EXPECT_EQ(info.aliases, (std::vector<std::string>{"CALC", "MATH"}));
  EXPECT_FALSE(info.tls);
  EXPECT_EQ(info.generation, rpc::Generation::k6);
  run(shutdown_with_grace(*server_));
  EXPECT_EQ(log.events, (std::vector<std::string>{"on_shutdown", "destroyed"}));
  EXPECT_TRUE(log.accepted_during_shutdown);
}

TEST_F(ServiceTest, CloseDestroysHooksWithoutOnShutdown) {
  HookLog log;
  ServeOptions o;
  o.hooks.push_back(recording_hook(log));
  start(calc_service(), o);
  server_->close();
  EXPECT_EQ(log.events, (std::vector<std::string>{"destroyed"}));
}

TEST_F(ServiceTest, AFailingHookFactoryClosesTheServer) {
  std::uint16_t port = 0;
  ServeOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.connection.generation = rpc::Generation::k6;
  o.on_listen = [&port](const std::vector<Address>& a) { port = a.front().port(); };
  o.hooks.push_back(
      [](const ServerInfo&) -> std::unique_ptr<ServerHook> { throw UsageError("no registry"); });
  Server server(calc_service(), o);
  EXPECT_THROW(server.start(), UsageError);
  ASSERT_NE(port, 0);
  EXPECT_FALSE(run(can_connect(port)));
}

// ---- what a Service can say: a custom exposed prefix, computed attributes

/// What each GETATTR of `names` gives: the value's repr, or the exception's type name.
Task<std::vector<std::string>> getattrs(std::uint16_t port, std::vector<std::string> names) {
  Client c = co_await open_client(port);
  std::vector<std::string> out;
  for (const auto& n : names) {
    try {
      Any v = co_await c.root.getattr(n);
      out.push_back(v.is_netref() ? "callable" : v.repr());
    } catch (const RemoteError& e) {
      out.push_back(e.type_name());
    }
  }
  co_await close_client(c);
  co_return out;
}

TEST_F(ServiceTest, ACustomExposedPrefixIsHonouredForServiceMembers) {
  // upstream test_custom_service: a service whose members answer under "api_" (the
  // connection's AccessPolicy::exposed_prefix), not under RPyC's default "exposed_".
  Service svc("Prefixed");
  svc.expose("add", [](std::int64_t a, std::int64_t b) { return a + b; });
  svc.expose_value("answer", Any(Value(42)));
  ServeOptions options;
  options.connection.policy.exposed_prefix = "api_";
  EXPECT_EQ(run(getattrs(start(svc, options), {"answer", "api_answer", "exposed_answer", "add", "api_add",
                                               "exposed_add"})),
            (std::vector<std::string>{"42", "42", "AttributeError", "callable", "callable", "AttributeError"}));
}

/// Reads `temperature` twice, sets it, reads it again, reads `broken`, and sets `readonly`.
Task<std::vector<std::string>> use_properties(std::uint16_t port) {
  Client c = co_await open_client(port);
  std::vector<std::string> out;
  for (int i = 0; i < 2; ++i) {
    Any t = co_await c.root.getattr("temperature");
    out.push_back(t.repr());
  }
  co_await c.root.setattr("temperature", Any(Value(100)));
  Any after = co_await c.root.getattr("temperature");
  out.push_back(after.repr());
  try {
    (void)co_await c.root.getattr("broken");
    out.push_back("no error");
  } catch (const RemoteError& e) {
    out.push_back(e.type_name() + ": " + (e.args().empty() ? std::string() : e.args().front()));
  }
  try {
    co_await c.root.setattr("readonly", Any(Value(1)));
    out.push_back("set");
  } catch (const RemoteError& e) {
    out.push_back(e.type_name());
  }
  std::int64_t called = co_await c.root.callattr<std::int64_t>("adder", 5);  // a property holding a callable
  out.push_back(std::to_string(called));
  co_await close_client(c);
  co_return out;
}

TEST_F(ServiceTest, ComputedAttributesAreCalledOnEachAccessAndMayRaise) {
  // upstream test_attr_access: properties whose getter and setter are C++ functions.
  auto reads = std::make_shared<std::int64_t>(0);
  auto value = std::make_shared<std::int64_t>(20);
  Service svc("Props");
  svc.property(
      "temperature",
      [reads, value]() {
        ++*reads;
        return *value + *reads;
      },
      [value](std::int64_t v) { *value = v; });
  svc.property("broken", []() -> std::int64_t { throw PyError("ValueError", "sensor offline"); });
  svc.property("readonly", []() { return std::string("fixed"); });
  svc.property("adder", []() {
    return std::function<std::int64_t(std::int64_t)>([](std::int64_t x) { return x + 1; });
  });
  ServeOptions options;
  options.connection.policy.allow_setattr = true;
  EXPECT_EQ(run(use_properties(start(svc, options))),
            (std::vector<std::string>{"21", "22", "103", "ValueError: sensor offline", "AttributeError", "6"}));
  EXPECT_EQ(*value, 100);
}

TEST_F(ServiceTest, SettingAComputedAttributeNeedsAllowSetattr) {
  auto value = std::make_shared<std::int64_t>(1);
  Service svc("Props");
  svc.property("level", [value]() { return *value; }, [value](std::int64_t v) { *value = v; });
  const std::uint16_t port = start(svc);  // RPyC's default policy: no SETATTR
  auto set_level = [](std::uint16_t p) -> Task<std::string> {
    Client c = co_await open_client(p);
    std::string what = "set";
    try {
      co_await c.root.setattr("level", Any(Value(9)));
    } catch (const RemoteError& e) {
      what = e.type_name();
    }
    co_await close_client(c);
    co_return what;
  };
  EXPECT_EQ(run(set_level(port)), "AttributeError");
  EXPECT_EQ(*value, 1);
}

}  // namespace
}  // namespace tether::testing
