// TLS: verified echo, untrusted and mismatched certificates, mutual TLS, handshake timeout.
#include <openssl/x509.h>

#include "net_test_util.hpp"
#include "test_certs.hpp"
#include "test_util.hpp"
#include "tether/net/stream_server.hpp"
#include "tether/net/tls.hpp"
#include "tether/net/tls_transport.hpp"

namespace tether {
namespace {

using namespace std::chrono_literals;
using testing::echo_lines;
using testing::echo_once;
using testing::round_trip;
using testing::test_certs;

class TlsTest : public testing::LoopTest {};

TlsContext server_ctx(bool mutual = false) {
  TlsServerOptions o;
  o.cert_file = test_certs().server_cert;
  o.key_file = test_certs().server_key;
  if (mutual) {
    o.ca_file = test_certs().ca_cert;
    o.require_client_cert = true;
  }
  return TlsContext::server(o);
}

ConnectOptions client_opts(bool with_cert = false) {
  TlsClientOptions o;
  o.ca_file = test_certs().ca_cert;
  if (with_cert) {
    o.cert_file = test_certs().client_cert;
    o.key_file = test_certs().client_key;
  }
  ConnectOptions c;
  c.tls = TlsContext::client(o);
  return c;
}

struct Seen {
  int handled = 0;
  std::string subject;
  std::string protocol;
};

Task<void> recording_echo(std::unique_ptr<BufferedStream> s, Address peer, Seen* seen) {
  ++seen->handled;
  if (auto* tls = dynamic_cast<TlsTransport*>(&s->transport())) {
    seen->subject = tls->peer_subject();
    seen->protocol = tls->protocol();
  }
  co_await echo_lines(std::move(s), peer);
}

StreamServer::Handler recording(Seen* seen) {
  return [seen](std::unique_ptr<BufferedStream> s, Address p) { return recording_echo(std::move(s), p, seen); };
}

TEST_F(TlsTest, VerifiedEchoByNameAndByAddress) {
  Seen seen;
  ServerOptions so;
  so.tls = server_ctx();
  StreamServer server(recording(&seen), so);
  server.listen(0, "127.0.0.1");
  std::uint16_t port = server.ports()[0];
  EXPECT_EQ(run(echo_once("localhost", port, "secret", client_opts())), "secret");  // SNI + name check
  EXPECT_EQ(run(echo_once("127.0.0.1", port, "by ip", client_opts())), "by ip");  // IP SAN check
  EXPECT_EQ(seen.handled, 2);
  EXPECT_EQ(seen.protocol, "TLSv1.3");
  EXPECT_TRUE(seen.subject.empty());  // no client certificate
}

TEST_F(TlsTest, UntrustedCertificateFailsWithTheVerifyReason) {
  TlsServerOptions self;
  self.cert_file = test_certs().self_cert;
  self.key_file = test_certs().self_key;
  ServerOptions so;
  so.tls = TlsContext::server(self);
  StreamServer server(echo_lines, so);
  server.listen(0, "127.0.0.1");
  try {
    run(echo_once("localhost", server.ports()[0], "x", client_opts()));
    FAIL() << "an untrusted certificate must be refused";
  } catch (const TlsError& e) {
    std::string what = e.what();
    EXPECT_NE(e.verify_result(), X509_V_OK);
    EXPECT_NE(what.find("certificate verify failed"), std::string::npos) << what;
    EXPECT_NE(what.find(X509_verify_cert_error_string(e.verify_result())), std::string::npos) << what;
    EXPECT_EQ(e.kind(), ErrorKind::kProtocolError);
  }
  // The server counted the failed handshake once the client's alert arrived.
  auto deadline = Clock::now() + 10s;
  while (server.stats().handshake_failures == 0 && Clock::now() < deadline) loop_.run_once(10ms);
  EXPECT_EQ(server.stats().handshake_failures, 1u);
  EXPECT_EQ(server.stats().handler_errors, 0u);
}

TEST_F(TlsTest, HostnameMismatchIsRefused) {
  ServerOptions so;
  so.tls = server_ctx();
  StreamServer server(echo_lines, so);
  server.listen(0, "127.0.0.1");
  ConnectOptions c = client_opts();
  c.server_hostname = "not-localhost.example";
  try {
    run(echo_once("127.0.0.1", server.ports()[0], "x", c));
    FAIL() << "a certificate for another name must be refused";
  } catch (const TlsError& e) {
    EXPECT_EQ(e.verify_result(), X509_V_ERR_HOSTNAME_MISMATCH) << e.what();
    EXPECT_NE(std::string(e.what()).find("hostname mismatch"), std::string::npos) << e.what();
  }
}

Task<void> write_then_read(std::uint16_t port, ConnectOptions opts) {
  std::unique_ptr<BufferedStream> s = co_await open_connection("127.0.0.1", port, std::move(opts));
  std::string reply = co_await round_trip(*s, "let me in");
  (void)reply;
}

TEST_F(TlsTest, MutualTlsRefusesAClientWithoutCertificate) {
  Seen seen;
  ServerOptions so;
  so.tls = server_ctx(/*mutual=*/true);
  StreamServer server(recording(&seen), so);
  server.listen(0, "127.0.0.1");
  // TLS 1.3: the client finishes its side first and learns of the refusal from the alert.
  try {
    run(write_then_read(server.ports()[0], client_opts(/*with_cert=*/false)));
    FAIL() << "the server must refuse a client without a certificate";
  } catch (const Error& e) {
    EXPECT_TRUE(e.kind() == ErrorKind::kProtocolError || e.kind() == ErrorKind::kDisconnected ||
                e.kind() == ErrorKind::kIncompleteRead)
        << e.what();
  }
  EXPECT_EQ(seen.handled, 0);
  EXPECT_EQ(server.stats().handshake_failures, 1u);
  // With a certificate from the trusted CA it works, and the server sees who it is.
  EXPECT_EQ(run(echo_once("127.0.0.1", server.ports()[0], "cert", client_opts(true))), "cert");
  EXPECT_EQ(seen.handled, 1);
  EXPECT_NE(seen.subject.find("tether test client"), std::string::npos) << seen.subject;
}

Task<std::string> silent_client(std::uint16_t port) {
  ConnectOptions plain;
  std::unique_ptr<BufferedStream> s = co_await open_connection("127.0.0.1", port, plain);
  std::string out;
  try {
    Bytes b = co_await s->read_until_close();
    out = b.str();
  } catch (const Disconnected&) {
  }
  co_return out;
}

TEST_F(TlsTest, StalledHandshakeTimesOut) {
  ServerOptions so;
  so.tls = server_ctx();
  so.tls_handshake_timeout = 100ms;
  StreamServer server(echo_lines, so);
  server.listen(0, "127.0.0.1");
  auto t0 = Clock::now();
  EXPECT_EQ(run(silent_client(server.ports()[0])), "");  // the server hangs up on us
  EXPECT_GE(Clock::now() - t0, 100ms);
  EXPECT_EQ(server.stats().handshake_failures, 1u);
}

TEST_F(TlsTest, BadConfigurationIsReported) {
  TlsServerOptions o;
  o.cert_file = "/nonexistent/cert.pem";
  o.key_file = "/nonexistent/key.pem";
  try {
    (void)TlsContext::server(o);
    FAIL();
  } catch (const TlsError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/cert.pem"), std::string::npos) << e.what();
  }
  TlsServerOptions mismatch;
  mismatch.cert_file = test_certs().server_cert;
  mismatch.key_file = test_certs().client_key;
  EXPECT_THROW((void)TlsContext::server(mismatch), TlsError);
}

}  // namespace
}  // namespace tether
