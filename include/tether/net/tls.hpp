#pragma once
/// \file TLS configuration (OpenSSL 3 behind a pimpl): TlsContext for clients and servers,
/// and TlsError, the error every TLS failure throws.

#include <memory>
#include <string>
#include <vector>

#include "tether/base/error.hpp"
#include "tether/base/export.hpp"

namespace tether {

/// A TLS failure: handshake, certificate verification, a fatal alert from the peer, or a bad
/// configuration. Kind: kProtocolError. what() carries OpenSSL's reasons, for verification
/// failures the verifier's text (e.g. "certificate verify failed: self-signed certificate").
class TETHER_API TlsError : public Error {
 public:
  explicit TlsError(const std::string& what, long verify_result = 0)
      : Error(ErrorKind::kProtocolError, what), verify_result_(verify_result) {}
  /// X509_V_* code of a failed certificate verification (0 when not a verification failure).
  [[nodiscard]] long verify_result() const noexcept { return verify_result_; }

 private:
  long verify_result_;
};

/// Protocol versions, for TlsClientOptions/TlsServerOptions::min_version and max_version.
enum class TlsVersion { kTls1_0, kTls1_1, kTls1_2, kTls1_3 };

/// The default TLS 1.2 cipher list (OpenSSL syntax): ECDHE key exchange with AEAD ciphers
/// (AES-GCM, ChaCha20-Poly1305) only -- no RSA key exchange, CBC, RC4, 3DES or NULL. TLS 1.3
/// suites are all AEAD and configured apart (`ciphersuites`).
inline constexpr const char* kDefaultTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/// Protocol settings shared by clients and servers. The defaults are TLS 1.2 and 1.3 only,
/// ECDHE+AEAD ciphers for TLS 1.2; compression and renegotiation are always off.
struct TlsProtocolOptions {
  TlsVersion min_version = TlsVersion::kTls1_2;
  TlsVersion max_version = TlsVersion::kTls1_3;
  /// TLS 1.2 (and older) cipher list, OpenSSL syntax (SSL_CTX_set_cipher_list).
  std::string cipher_list = kDefaultTls12Ciphers;
  /// TLS 1.3 suites (SSL_CTX_set_ciphersuites); empty: OpenSSL's default (all AEAD).
  std::string ciphersuites;
};

/// The peer's certificate as a TLS connection verified it (TlsTransport::peer_certificate(),
/// Session::peer_certificate()). Empty (present == false) without TLS or when the peer sent
/// none.
struct PeerCertificate {
  bool present = false;
  /// The chain was verified against the configured CAs (a server that requested client
  /// certificates, or a client with verify_peer). False when verification was off.
  bool verified = false;
  std::string subject;      ///< RFC 2253 one-line form: "CN=client1,O=tether tests"
  std::string issuer;       ///< same form
  std::string common_name;  ///< the subject's (last) CN, "" if none
  std::vector<std::string> dns_names;     ///< subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  ///< subjectAltName IPs, "127.0.0.1" / "::1"
  std::vector<std::string> emails;        ///< subjectAltName rfc822 names
  std::vector<std::string> uris;          ///< subjectAltName URIs ("spiffe://...")
};

/// Client-side settings.
struct TlsClientOptions : TlsProtocolOptions {
  /// PEM file of trusted CAs; empty = the system store (OpenSSL's default paths).
  std::string ca_file;
  /// Verify the server's certificate chain (turning this off is for tests and debugging).
  bool verify_peer = true;
  /// Check that the certificate matches the host name (or IP) given to the connect call.
  bool check_hostname = true;
  /// Client certificate and key (PEM) for servers that require one (mutual TLS).
  std::string cert_file;
  std::string key_file;
  /// ALPN protocols to offer, in preference order (empty: no ALPN).
  std::vector<std::string> alpn;
};

/// Server-side settings.
struct TlsServerOptions : TlsProtocolOptions {
  std::string cert_file;  ///< PEM certificate chain (leaf first); required
  std::string key_file;   ///< PEM private key; required
  /// PEM file of CAs accepted for client certificates.
  std::string ca_file;
  /// Mutual TLS: refuse clients that present no certificate valid under ca_file.
  bool require_client_cert = false;
  /// ALPN protocols accepted, in preference order (empty: ignore the client's offer).
  std::vector<std::string> alpn;
};

/// Shared TLS configuration (an SSL_CTX). Cheap to copy (shared); after creation it is
/// immutable and usable from any thread, so one context serves every loop of a server.
/// Creating one reads the files named in the options and throws TlsError (with OpenSSL's
/// reason and the file name) if they cannot be loaded.
class TETHER_API TlsContext {
 public:
  struct Impl;

  static TlsContext client(const TlsClientOptions& opts = {});
  static TlsContext server(const TlsServerOptions& opts);

  [[nodiscard]] bool is_server() const noexcept;
  [[nodiscard]] bool check_hostname() const noexcept;
  [[nodiscard]] const std::shared_ptr<Impl>& impl() const noexcept { return impl_; }

 private:
  explicit TlsContext(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace tether
