#include "tether/net/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstring>

#include <fmt/format.h>

#include "net/tls_impl.hpp"

namespace tether {

namespace detail {

std::string drain_openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    // "error:0A000086:SSL routines::certificate verify failed" -> keep the reason text.
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += reason ? reason : buf;
  }
  return out;
}

}  // namespace detail

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::string why = detail::drain_openssl_errors();
  throw TlsError(why.empty() ? what : what + ": " + why);
}

std::vector<unsigned char> alpn_wire(const std::vector<std::string>& protos) {
  std::vector<unsigned char> out;
  for (const auto& p : protos) {
    if (p.empty() || p.size() > 255) throw TlsError("ALPN protocol names must be 1..255 bytes");
    out.push_back(static_cast<unsigned char>(p.size()));
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
                void* arg) {
  auto* impl = static_cast<TlsContext::Impl*>(arg);
  unsigned char* sel = nullptr;
  if (SSL_select_next_proto(&sel, outlen, impl->alpn_wire.data(), static_cast<unsigned>(impl->alpn_wire.size()),
                            in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

int openssl_version(TlsVersion v) {
  switch (v) {
    case TlsVersion::kTls1_0: return TLS1_VERSION;
    case TlsVersion::kTls1_1: return TLS1_1_VERSION;
    case TlsVersion::kTls1_2: return TLS1_2_VERSION;
    case TlsVersion::kTls1_3: return TLS1_3_VERSION;
  }
  return TLS1_2_VERSION;
}

void common_setup(SSL_CTX* ctx, const TlsProtocolOptions& o) {
  if (o.max_version < o.min_version) throw TlsError("TLS max_version is below min_version");
  if (SSL_CTX_set_min_proto_version(ctx, openssl_version(o.min_version)) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, openssl_version(o.max_version)) != 1) {
    fail("cannot set the TLS protocol versions");
  }
  if (!o.cipher_list.empty() && SSL_CTX_set_cipher_list(ctx, o.cipher_list.c_str()) != 1) {
    fail(fmt::format("no usable cipher in the TLS cipher list '{}'", o.cipher_list));
  }
  if (!o.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, o.ciphersuites.c_str()) != 1) {
    fail(fmt::format("no usable suite in the TLS 1.3 ciphersuites '{}'", o.ciphersuites));
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

}  // namespace

TlsContext TlsContext::client(const TlsClientOptions& o) {
  ERR_clear_error();
  auto impl = std::make_shared<Impl>();
  impl->ctx = SSL_CTX_new(TLS_client_method());
  if (!impl->ctx) fail("SSL_CTX_new");
  impl->server = false;
  impl->check_hostname = o.verify_peer && o.check_hostname;
  common_setup(impl->ctx, o);
  if (o.verify_peer) {
    SSL_CTX_set_verify(impl->ctx, SSL_VERIFY_PEER, nullptr);
    if (!o.ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(impl->ctx, o.ca_file.c_str(), nullptr) != 1) {
        fail(fmt::format("cannot load CA file '{}'", o.ca_file));
      }
    } else if (SSL_CTX_set_default_verify_paths(impl->ctx) != 1) {
      fail("cannot load the system CA store");
    }
  } else {
    SSL_CTX_set_verify(impl->ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!o.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(impl->ctx, o.cert_file.c_str()) != 1) {
      fail(fmt::format("cannot load certificate '{}'", o.cert_file));
    }
    const std::string& key = o.key_file.empty() ? o.cert_file : o.key_file;
    if (SSL_CTX_use_PrivateKey_file(impl->ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
      fail(fmt::format("cannot load private key '{}'", key));
    }
    if (SSL_CTX_check_private_key(impl->ctx) != 1) fail("client certificate and key do not match");
  }
  if (!o.alpn.empty()) {
    impl->alpn_wire = alpn_wire(o.alpn);
    if (SSL_CTX_set_alpn_protos(impl->ctx, impl->alpn_wire.data(), static_cast<unsigned>(impl->alpn_wire.size())) != 0) {
      fail("SSL_CTX_set_alpn_protos");
    }
  }
  return TlsContext(std::move(impl));
}

TlsContext TlsContext::server(const TlsServerOptions& o) {
  ERR_clear_error();
  if (o.cert_file.empty() || o.key_file.empty()) throw TlsError("a TLS server needs cert_file and key_file");
  auto impl = std::make_shared<Impl>();
  impl->ctx = SSL_CTX_new(TLS_server_method());
  if (!impl->ctx) fail("SSL_CTX_new");
  impl->server = true;
  impl->check_hostname = false;
  common_setup(impl->ctx, o);
  if (SSL_CTX_use_certificate_chain_file(impl->ctx, o.cert_file.c_str()) != 1) {
    fail(fmt::format("cannot load certificate '{}'", o.cert_file));
  }
  if (SSL_CTX_use_PrivateKey_file(impl->ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail(fmt::format("cannot load private key '{}'", o.key_file));
  }
  if (SSL_CTX_check_private_key(impl->ctx) != 1) fail("certificate and private key do not match");
  // No TLS 1.3 session tickets: tether clients do not resume sessions, and unsolicited
  // tickets left unread in a client's socket turn its close() into a reset.
  SSL_CTX_set_num_tickets(impl->ctx, 0);
  static const unsigned char kSessionContext[] = "tether";
  SSL_CTX_set_session_id_context(impl->ctx, kSessionContext, sizeof kSessionContext - 1);
  if (!o.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(impl->ctx, o.ca_file.c_str(), nullptr) != 1) {
      fail(fmt::format("cannot load CA file '{}'", o.ca_file));
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(impl->ctx, names);
    }
  }
  if (o.require_client_cert) {
    if (o.ca_file.empty()) throw TlsError("require_client_cert needs ca_file (the CAs clients are checked against)");
    SSL_CTX_set_verify(impl->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  } else if (!o.ca_file.empty()) {
    SSL_CTX_set_verify(impl->ctx, SSL_VERIFY_PEER, nullptr);  // ask, but do not insist
  } else {
    SSL_CTX_set_verify(impl->ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!o.alpn.empty()) {
    impl->alpn_wire = alpn_wire(o.alpn);
    SSL_CTX_set_alpn_select_cb(impl->ctx, select_alpn, impl.get());
  }
  return TlsContext(std::move(impl));
}

bool TlsContext::is_server() const noexcept { return impl_ && impl_->server; }
bool TlsContext::check_hostname() const noexcept { return impl_ && impl_->check_hostname; }

}  // namespace tether
