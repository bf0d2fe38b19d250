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

class TlsTest : public testing::LoopTest {
 protected:
  /// The TlsError a connection with `opts` fails with ("connected" if it does not fail).
  std::string refusal_of(std::uint16_t port, ConnectOptions opts) {
    try {
      (void)run(echo_once("127.0.0.1", port, "x", std::move(opts)));
    } catch (const TlsError& e) {
      return e.what();
    }
    return "connected";
  }
};

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
  std::string cipher;
  PeerCertificate cert;
};

Task<void> recording_echo(std::unique_ptr<BufferedStream> s, Address peer, Seen* seen) {
  ++seen->handled;
  if (auto* tls = dynamic_cast<TlsTransport*>(&s->transport())) {
    seen->subject = tls->peer_subject();
    seen->protocol = tls->protocol();
    seen->cipher = tls->cipher();
    seen->cert = tls->peer_certificate();
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

// ---------------------------------------------------------------- protocol and cipher floor

/// A client context restricted to `min`..`max` and `ciphers` (TLS <= 1.2), at OpenSSL security
/// level 0 so that it really offers old protocols and weak suites (Debian's OpenSSL will not
/// at level 1+).
ConnectOptions legacy_client(TlsVersion min, TlsVersion max, const std::string& ciphers) {
  TlsClientOptions o;
  o.ca_file = test_certs().ca_cert;
  o.min_version = min;
  o.max_version = max;
  o.cipher_list = ciphers + ":@SECLEVEL=0";
  ConnectOptions c;
  c.tls = TlsContext::client(o);
  return c;
}

/// A server that opts out of the defaults the same way (the positive control: the legacy
/// client does connect when the server allows it, so a refusal is the default's doing).
TlsContext permissive_server(TlsVersion min, const std::string& ciphers) {
  TlsServerOptions o;
  o.cert_file = test_certs().server_cert;
  o.key_file = test_certs().server_key;
  o.min_version = min;
  o.cipher_list = ciphers + ":@SECLEVEL=0";
  return TlsContext::server(o);
}

TEST_F(TlsTest, DefaultServerRefusesTls11AndTls10Clients) {
  Seen seen;
  ServerOptions so;
  so.tls = server_ctx();
  StreamServer server(recording(&seen), so);
  server.listen(0, "127.0.0.1");
  const std::uint16_t port = server.ports()[0];
  for (TlsVersion v : {TlsVersion::kTls1_1, TlsVersion::kTls1_0}) {
    std::string why = refusal_of(port, legacy_client(v, v, "ALL"));
    EXPECT_TRUE(why.find("protocol version") != std::string::npos ||
                why.find("unsupported protocol") != std::string::npos)
        << why;
  }
  EXPECT_EQ(seen.handled, 0);
  auto deadline = Clock::now() + 10s;
  while (server.stats().handshake_failures < 2 && Clock::now() < deadline) loop_.run_once(10ms);
  EXPECT_EQ(server.stats().handshake_failures, 2u);

  // The same client connects to a server that allows TLS 1.0+: it really offers TLS 1.1.
  ServerOptions old;
  old.tls = permissive_server(TlsVersion::kTls1_0, "ALL");
  StreamServer legacy(recording(&seen), old);
  legacy.listen(0, "127.0.0.1");
  EXPECT_EQ(run(echo_once("127.0.0.1", legacy.ports()[0], "old",
                          legacy_client(TlsVersion::kTls1_1, TlsVersion::kTls1_1, "ALL"))),
            "old");
  EXPECT_EQ(seen.protocol, "TLSv1.1");
}

TEST_F(TlsTest, DefaultServerRefusesTls12ClientsWithoutEcdheAead) {
  Seen seen;
  ServerOptions so;
  so.tls = server_ctx();
  StreamServer server(recording(&seen), so);
  server.listen(0, "127.0.0.1");
  const std::uint16_t port = server.ports()[0];
  // CBC with ECDHE, AEAD without ECDHE (RSA key exchange), and NULL encryption.
  for (const char* ciphers : {"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-GCM-SHA256",
                              "ECDHE-ECDSA-NULL-SHA"}) {
    std::string why = refusal_of(port, legacy_client(TlsVersion::kTls1_2, TlsVersion::kTls1_2, ciphers));
    EXPECT_NE(why, "connected") << ciphers;
    EXPECT_TRUE(why.find("handshake failure") != std::string::npos ||
                why.find("no ciphers") != std::string::npos || why.find("no shared cipher") != std::string::npos)
        << ciphers << ": " << why;
  }
  EXPECT_EQ(seen.handled, 0);

  // Positive control: a server that allows CBC takes the same client.
  ServerOptions weak;
  weak.tls = permissive_server(TlsVersion::kTls1_2, "ECDHE-ECDSA-AES128-SHA");
  StreamServer cbc(recording(&seen), weak);
  cbc.listen(0, "127.0.0.1");
  EXPECT_EQ(run(echo_once("127.0.0.1", cbc.ports()[0], "cbc",
                          legacy_client(TlsVersion::kTls1_2, TlsVersion::kTls1_2, "ECDHE-ECDSA-AES128-SHA"))),
            "cbc");
  EXPECT_EQ(seen.cipher, "ECDHE-ECDSA-AES128-SHA");
}

TEST_F(TlsTest, Tls12NegotiatesEcdheAeadAndTls13Works) {
  Seen seen;
  ServerOptions so;
  so.tls = server_ctx();
  StreamServer server(recording(&seen), so);
  server.listen(0, "127.0.0.1");
  const std::uint16_t port = server.ports()[0];

  TlsClientOptions v12;
  v12.ca_file = test_certs().ca_cert;
  v12.max_version = TlsVersion::kTls1_2;
  ConnectOptions c12;
  c12.tls = TlsContext::client(v12);
  EXPECT_EQ(run(echo_once("127.0.0.1", port, "1.2", c12)), "1.2");
  EXPECT_EQ(seen.protocol, "TLSv1.2");
  EXPECT_EQ(seen.cipher.rfind("ECDHE-", 0), 0u) << seen.cipher;
  EXPECT_TRUE(seen.cipher.find("GCM") != std::string::npos || seen.cipher.find("CHACHA20") != std::string::npos)
      << seen.cipher;

  TlsClientOptions v13;
  v13.ca_file = test_certs().ca_cert;
  v13.min_version = TlsVersion::kTls1_3;
  ConnectOptions c13;
  c13.tls = TlsContext::client(v13);
  EXPECT_EQ(run(echo_once("127.0.0.1", port, "1.3", c13)), "1.3");
  EXPECT_EQ(seen.protocol, "TLSv1.3");
}

TEST_F(TlsTest, BadProtocolSettingsAreReported) {
  TlsClientOptions o;
  o.cipher_list = "NO-SUCH-CIPHER";
  EXPECT_THROW((void)TlsContext::client(o), TlsError);
  TlsClientOptions inverted;
  inverted.min_version = TlsVersion::kTls1_3;
  inverted.max_version = TlsVersion::kTls1_2;
  EXPECT_THROW((void)TlsContext::client(inverted), TlsError);
}

// ------------------------------------------------------------------ the peer's certificate

TEST_F(TlsTest, PeerCertificateShowsSubjectSansAndVerification) {
  Seen seen;
  ServerOptions so;
  so.tls = server_ctx(/*mutual=*/true);
  StreamServer server(recording(&seen), so);
  server.listen(0, "127.0.0.1");
  TlsClientOptions o;
  o.ca_file = test_certs().ca_cert;
  o.cert_file = test_certs().san_client_cert;
  o.key_file = test_certs().san_client_key;
  ConnectOptions c;
  c.tls = TlsContext::client(o);
  EXPECT_EQ(run(echo_once("127.0.0.1", server.ports()[0], "who", c)), "who");
  const PeerCertificate& pc = seen.cert;
  EXPECT_TRUE(pc.present);
  EXPECT_TRUE(pc.verified);
  EXPECT_EQ(pc.subject, "CN=client1,O=tether tests");
  EXPECT_EQ(pc.issuer, "CN=tether test CA,O=tether tests");
  EXPECT_EQ(pc.common_name, "client1");
  EXPECT_EQ(pc.dns_names, std::vector<std::string>{"client1.example"});
  EXPECT_EQ(pc.ip_addresses, (std::vector<std::string>{"10.0.0.7", "fd00::7"}));
  EXPECT_EQ(pc.emails, std::vector<std::string>{"client1@example.com"});
  EXPECT_EQ(pc.uris, std::vector<std::string>{"spiffe://tether.test/client1"});
}

TEST_F(TlsTest, ClientSeesTheServersCertificateAndNoneWithoutVerification) {
  ServerOptions so;
  so.tls = server_ctx();
  StreamServer server(echo_lines, so);
  server.listen(0, "127.0.0.1");
  auto look = [](std::uint16_t port, ConnectOptions opts) -> Task<PeerCertificate> {
    std::unique_ptr<BufferedStream> s = co_await open_connection("127.0.0.1", port, std::move(opts));
    auto* tls = dynamic_cast<TlsTransport*>(&s->transport());
    PeerCertificate pc = tls ? tls->peer_certificate() : PeerCertificate();
    s->close();
    co_return pc;
  };
  PeerCertificate verified = run(look(server.ports()[0], client_opts()));
  EXPECT_TRUE(verified.present);
  EXPECT_TRUE(verified.verified);
  EXPECT_EQ(verified.subject, "CN=localhost,O=tether tests");
  EXPECT_EQ(verified.dns_names, std::vector<std::string>{"localhost"});
  EXPECT_EQ(verified.ip_addresses, (std::vector<std::string>{"127.0.0.1", "::1"}));
  TlsClientOptions blind;
  blind.verify_peer = false;
  ConnectOptions c;
  c.tls = TlsContext::client(blind);
  PeerCertificate unverified = run(look(server.ports()[0], c));
  EXPECT_TRUE(unverified.present);
  EXPECT_FALSE(unverified.verified);
}

}  // namespace
}  // namespace tether
