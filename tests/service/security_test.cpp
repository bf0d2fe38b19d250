// Authorization on connect: the peer certificate in Session (mutual TLS), on_connect refusing a
// client with a clear error, and the auth-token check (ServeOptions/ClientOptions::auth_token)
// over TCP and Unix sockets.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "net/test_certs.hpp"
#include "service_fixture.hpp"
#include "tether/net/tls.hpp"
#include "tether/rpc/py_error.hpp"
#include "tether/service/auth.hpp"

namespace tether::testing {
namespace {

/// A service that only admits verified certificates with CN=client1; `whoami` reports what
/// the session saw of the peer.
Service guarded_service() {
  Service svc("Guarded");
  svc.on_connect([](Session& s) {
    const PeerCertificate& pc = s.peer_certificate();
    if (!pc.present || !pc.verified || pc.common_name != "client1") {
      throw PyError("PermissionError", "certificate '" + pc.subject + "' may not connect");
    }
  });
  svc.expose("whoami", [](Session& s) {
    const PeerCertificate& pc = s.peer_certificate();
    std::vector<std::string> out{pc.subject};
    for (const auto& v : {pc.dns_names, pc.ip_addresses, pc.emails, pc.uris}) out.insert(out.end(), v.begin(), v.end());
    return out;
  });
  svc.expose("add", [](std::int64_t a, std::int64_t b) { return a + b; });
  return svc;
}

ClientOptions tls_client(const std::string& cert, const std::string& key) {
  TlsClientOptions o;
  o.ca_file = test_certs().ca_cert;
  o.cert_file = cert;
  o.key_file = key;
  ClientOptions c;
  c.net.tls = TlsContext::client(o);
  return c;
}

ServeOptions mutual_tls() {
  TlsServerOptions o;
  o.cert_file = test_certs().server_cert;
  o.key_file = test_certs().server_key;
  o.ca_file = test_certs().ca_cert;
  o.require_client_cert = true;
  ServeOptions so;
  so.server.tls = TlsContext::server(o);
  return so;
}

/// What connecting and calling `whoami` gives: its answer joined by '|', or the error.
Task<std::string> whoami(std::uint16_t port, ClientOptions opts) {
  std::string out;
  try {
    Client c = co_await open_client(port, std::move(opts));
    std::vector<std::string> seen = co_await c.root.callattr<std::vector<std::string>>("whoami");
    for (const auto& s : seen) out += (out.empty() ? "" : "|") + s;
    co_await close_client(c);
  } catch (const RemoteError& e) {
    out = "remote " + e.type_name() + ": " + (e.args().empty() ? std::string() : e.args().front());
  } catch (const AuthenticationError& e) {
    out = std::string("auth: ") + e.what();
  } catch (const Error& e) {
    out = std::string("error: ") + e.what();
  }
  co_return out;
}

/// Runs the loop until the server has no connection left (bounded).
void wait_no_connections(EventLoop& loop, Server& server) {
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (server.connections() != 0 && Clock::now() < deadline) loop.run_once(std::chrono::milliseconds(10));
}

class SecurityTest : public ServiceTest {};

TEST_F(SecurityTest, OnConnectAuthorizesByTheVerifiedClientCertificate) {
  Service svc = guarded_service();
  std::uint16_t port = start(svc, mutual_tls());
  const TestCerts& certs = test_certs();
  EXPECT_EQ(run(whoami(port, tls_client(certs.san_client_cert, certs.san_client_key))),
            "CN=client1,O=tether tests|client1.example|10.0.0.7|fd00::7|client1@example.com|"
            "spiffe://tether.test/client1");
  // Another certificate of the same CA: refused by on_connect, with its reason.
  EXPECT_EQ(run(whoami(port, tls_client(certs.client_cert, certs.client_key))),
            "remote PermissionError: certificate 'CN=tether test client,O=tether tests' may not connect");
  wait_no_connections(loop_, *server_);
  EXPECT_EQ(server_->connections(), 0u);
  // The server goes on serving the admitted client.
  EXPECT_EQ(run(whoami(port, tls_client(certs.san_client_cert, certs.san_client_key))).substr(0, 10), "CN=client1");
}

TEST_F(SecurityTest, OnConnectRefusalWithoutPyErrorRevealsNothing) {
  Service svc("Shy");
  bool disconnected = false;
  svc.on_connect([](Session&) { throw std::runtime_error("internal reason: /etc/acl line 3"); });
  svc.on_disconnect([&disconnected](Session&) { disconnected = true; });
  svc.expose("whoami", []() { return std::vector<std::string>{"nobody"}; });
  std::uint16_t port = start(svc);
  EXPECT_EQ(run(whoami(port, ClientOptions())), "remote PermissionError: connection refused by the service");
  wait_no_connections(loop_, *server_);
  EXPECT_FALSE(disconnected);  // on_disconnect pairs with an accepted on_connect only
}

TEST_F(SecurityTest, NoCertificateWithoutTls) {
  Service svc("Plain");
  svc.expose("tls", [](Session& s) { return s.peer_certificate().present; });
  std::uint16_t port = start(svc);
  auto ask = [](std::uint16_t p) -> Task<bool> {
    Client c = co_await open_client(p);
    bool present = co_await c.root.callattr<bool>("tls");
    co_await close_client(c);
    co_return present;
  };
  EXPECT_FALSE(run(ask(port)));
}

// ----------------------------------------------------------------------------- auth token

Service token_service() {
  Service svc("Token");
  svc.expose("whoami", [](Session& s) { return std::vector<std::string>{"in:" + s.peer().substr(0, 4)}; });
  return svc;
}

ClientOptions with_token(std::string token) {
  ClientOptions c;
  c.auth_token = std::move(token);
  return c;
}

TEST_F(SecurityTest, AuthTokenAdmitsTheRightTokenOnly) {
  ServeOptions so;
  so.auth_token = "correct horse battery staple";
  std::uint16_t port = start(token_service(), so);
  EXPECT_EQ(run(whoami(port, with_token("correct horse battery staple"))), "in:127.");
  EXPECT_EQ(run(whoami(port, with_token("correct horse battery stapl"))),
            "auth: the server refused the auth token");
  EXPECT_EQ(run(whoami(port, with_token("correct horse battery staplex"))),
            "auth: the server refused the auth token");
  // A client without the token (what a stock RPyC client looks like): its first request is
  // answered with PermissionError, then the connection closes.
  std::string none = run(whoami(port, ClientOptions()));
  EXPECT_EQ(none.rfind("remote PermissionError: this server requires an auth token", 0), 0u) << none;
  wait_no_connections(loop_, *server_);
  EXPECT_EQ(server_->connections(), 0u);
  // ... and the server still serves the others.
  EXPECT_EQ(run(whoami(port, with_token("correct horse battery staple"))), "in:127.");
}

TEST_F(SecurityTest, AuthTokenOverUnixSockets) {
  std::string dir = (std::filesystem::temp_directory_path() / "tether-auth-XXXXXX").string();
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/s.sock";
  ServeOptions so;
  so.unix_path = path;
  so.auth_token = "unix secret";
  server_ = std::make_unique<Server>(token_service(), so);
  server_->start();
  auto call = [](std::string p, ClientOptions opts) -> Task<std::string> {
    std::string out;
    try {
      std::unique_ptr<Connection> conn = co_await connect_unix(p, std::move(opts));
      Netref root = co_await conn->root();
      std::vector<std::string> r = co_await root.callattr<std::vector<std::string>>("whoami");
      out = r.at(0);
      root = Netref();
      co_await conn->close();
    } catch (const AuthenticationError& e) {
      out = e.what();
    }
    co_return out;
  };
  EXPECT_EQ(run(call(path, with_token("unix secret"))).substr(0, 3), "in:");
  EXPECT_EQ(run(call(path, with_token("unix secreT"))), "the server refused the auth token");
  server_->close();
  server_.reset();
  std::filesystem::remove_all(dir);
}

TEST_F(SecurityTest, TokenClientAgainstAServerWithoutTokensFailsClearly) {
  std::uint16_t port = start(token_service());
  std::string r = run(whoami(port, with_token("t")));
  EXPECT_EQ(r.rfind("auth: the server closed the connection during the auth-token handshake", 0), 0u) << r;
  EXPECT_EQ(run(whoami(port, ClientOptions())), "in:127.");
}

TEST_F(SecurityTest, SilentClientIsDroppedAfterTheAuthTimeout) {
  ServeOptions so;
  so.auth_token = "t";
  so.auth_timeout = std::chrono::milliseconds(100);
  std::uint16_t port = start(token_service(), so);
  auto silent = [](std::uint16_t p) -> Task<bool> {
    ConnectOptions plain;  // a named argument (GCC 12 bit-copies temporaries given to coroutines)
    std::unique_ptr<BufferedStream> s = co_await open_connection("127.0.0.1", p, plain);
    bool eof = false;
    try {
      Bytes b = co_await s->read_until_close();
      eof = b.size() == 0;
    } catch (const Disconnected&) {
      eof = true;
    }
    co_return eof;
  };
  auto t0 = Clock::now();
  EXPECT_TRUE(run(silent(port)));
  EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(100));
}

TEST(AuthToken, ConstantTimeEqualCompares) {
  EXPECT_TRUE(auth::constant_time_equal("secret", "secret"));
  EXPECT_FALSE(auth::constant_time_equal("secreT", "secret"));
  EXPECT_FALSE(auth::constant_time_equal("secre", "secret"));
  EXPECT_FALSE(auth::constant_time_equal("secretsecret", "secret"));  // a repeat is no match
  EXPECT_FALSE(auth::constant_time_equal("", "secret"));
  EXPECT_FALSE(auth::constant_time_equal("x", ""));
  EXPECT_THROW((void)auth::client_hello(""), UsageError);
  EXPECT_THROW((void)auth::client_hello(std::string(auth::kMaxTokenSize + 1, 'x')), UsageError);
  EXPECT_EQ(auth::client_hello("ab"), std::string("TTHR\x01\x00\x02" "ab", 9));
}

}  // namespace
}  // namespace tether::testing
