#include "tether/net/tls_transport.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "net/readiness.hpp"
#include "net/tls_impl.hpp"
#include "tether/loop/time.hpp"
#include "tether/net/address.hpp"
#include "tether/net/sockets.hpp"

namespace tether {

namespace {
using detail::Readiness;

constexpr std::size_t kInChunk = 64 * 1024;        // ciphertext read per recv()
constexpr std::size_t kMaxWritePerCall = 256 * 1024;  // plaintext encrypted per write()
constexpr int kFlushed = 0;

bool is_disconnect(int err) { return err == ECONNRESET || err == EPIPE || err == ECONNABORTED || err == ETIMEDOUT; }

}  // namespace

struct TlsTransport::Impl {
  Impl(EventLoop& lp, Fd f, const TlsContext& c) : loop(lp), fd(std::move(f)), ctx(c) {
    ssl = SSL_new(ctx.impl()->ctx);
    if (!ssl) throw TlsError("SSL_new: " + detail::drain_openssl_errors());
    rbio = BIO_new(BIO_s_mem());
    wbio = BIO_new(BIO_s_mem());
    if (!rbio || !wbio) {
      if (rbio) BIO_free(rbio);
      if (wbio) BIO_free(wbio);
      SSL_free(ssl);
      throw TlsError("BIO_new failed");
    }
    BIO_set_mem_eof_return(rbio, -1);  // an empty input BIO means "retry", not EOF
    SSL_set_bio(ssl, rbio, wbio);      // ssl owns both now
    peer = peer_address(fd.get()).to_string();
    rd = std::make_unique<Readiness>(loop, fd.get());
    rd->set_on_event([this](std::uint32_t) { on_event(); });
  }
  ~Impl() {
    rd.reset();
    if (ssl) SSL_free(ssl);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Background flush when the socket becomes writable (output produced by reads, alerts,
  // close_notify). A write() in progress does its own flushing through its waiter.
  void on_event() {
    if (closed || !rd->ready(Readiness::kWrite)) return;
    if (BIO_ctrl_pending(wbio) > 0) flush_some();
    maybe_shutdown_socket();
  }

  // Sends what the output BIO holds. Returns kFlushed, EAGAIN, or an errno (also recorded).
  int flush_some() {
    if (write_errno) return write_errno;
    while (true) {
      char* data = nullptr;
      long len = BIO_get_mem_data(wbio, &data);
      if (len <= 0) return kFlushed;
      ssize_t n = ::send(fd.get(), data, static_cast<std::size_t>(len), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          rd->clear(Readiness::kWrite);
          return EAGAIN;
        }
        write_errno = errno;
        return write_errno;
      }
      if (n == len) {
        (void)BIO_reset(wbio);
      } else {
        char discard[4096];
        for (ssize_t left = n; left > 0;) {
          int step = static_cast<int>(std::min<ssize_t>(left, sizeof discard));
          left -= BIO_read(wbio, discard, step);
        }
      }
    }
  }

  void maybe_shutdown_socket() {
    if (shut_pending && BIO_ctrl_pending(wbio) == 0 && !closed) {
      shut_pending = false;
      ::shutdown(fd.get(), SHUT_WR);
    }
  }

  // Reads ciphertext from the socket into the input BIO. Returns bytes (>0), 0 at EOF,
  // -EAGAIN when nothing is there, or -errno.
  long fill() {
    char buf[kInChunk];
    while (true) {
      ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
      if (n > 0) {
        BIO_write(rbio, buf, static_cast<int>(n));
        return n;
      }
      if (n == 0) {
        socket_eof = true;
        return 0;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        rd->clear(Readiness::kRead);
        return -EAGAIN;
      }
      return -errno;
    }
  }

  void check_open() const {
    if (closed) throw StreamClosed(close_cause);
  }

  [[noreturn]] void throw_io(int err, const char* what) const {
    if (is_disconnect(err)) throw Disconnected(fmt::format("TLS connection to {} lost: {}", peer, std::strerror(err)));
    throw IoError(err, fmt::format("TLS {} on {}", what, peer));
  }

  [[noreturn]] void throw_ssl(const char* stage) {
    long vr = SSL_get_verify_result(ssl);
    std::string why = detail::drain_openssl_errors();
    if (vr != X509_V_OK && !handshake_done) {
      throw TlsError(fmt::format("TLS {} with {} failed: certificate verify failed: {}{}{}", stage, peer,
                                 X509_verify_cert_error_string(vr), why.empty() ? "" : " (", why.empty() ? "" : why + ")"),
                     vr);
    }
    throw TlsError(fmt::format("TLS {} with {} failed: {}", stage, peer, why.empty() ? "protocol error" : why));
  }

  // Flushes everything, waiting for the socket as needed (handshake and write()).
  Task<void> flush_all() {
    while (true) {
      int rc = flush_some();
      if (rc == kFlushed) co_return;
      if (rc != EAGAIN) throw_io(rc, "write");
      co_await rd->wait(Readiness::kWrite);
      check_open();
    }
  }

  Task<void> handshake() {
    while (true) {
      ERR_clear_error();
      int r = SSL_do_handshake(ssl);
      int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, r);
      if (err == SSL_ERROR_SSL || err == SSL_ERROR_SYSCALL) {
        flush_some();  // best effort: let the peer see our alert
        throw_ssl("handshake");
      }
      co_await flush_all();
      if (r == 1) break;
      if (err != SSL_ERROR_WANT_READ) throw_ssl("handshake");
      long n = fill();
      if (n == 0) {
        throw Disconnected(fmt::format("TLS handshake with {} failed: the peer closed the connection", peer));
      }
      if (n == -EAGAIN) {
        co_await rd->wait(Readiness::kRead);
        check_open();
      } else if (n < 0) {
        throw_io(static_cast<int>(-n), "handshake");
      }
    }
    handshake_done = true;
  }

  EventLoop& loop;
  Fd fd;
  TlsContext ctx;
  SSL* ssl = nullptr;
  BIO* rbio = nullptr;
  BIO* wbio = nullptr;
  std::unique_ptr<Readiness> rd;
  std::string peer;
  std::string close_cause;
  bool closed = false;
  bool handshake_done = false;
  bool shutdown_sent = false;
  bool shut_pending = false;
  bool socket_eof = false;
  int write_errno = 0;
};

namespace {

Task<std::unique_ptr<TlsTransport::Impl>> run_handshake(std::unique_ptr<TlsTransport::Impl> impl) {
  co_await impl->handshake();
  co_return std::move(impl);
}

Task<std::unique_ptr<TlsTransport::Impl>> handshake_with_timeout(std::unique_ptr<TlsTransport::Impl> impl,
                                                                  Duration timeout) {
  std::string peer = impl->peer;
  if (timeout <= Duration::zero()) {
    auto done = co_await run_handshake(std::move(impl));
    co_return done;
  }
  bool timed_out = false;
  std::unique_ptr<TlsTransport::Impl> done;
  try {
    done = co_await with_timeout(timeout, run_handshake(std::move(impl)));
  } catch (const Timeout&) {
    timed_out = true;
  }
  if (timed_out) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
    throw Timeout(fmt::format("TLS handshake with {} timed out after {} ms", peer, ms));
  }
  co_return done;
}

bool is_ip_literal(const std::string& host) { return Address::from_ip(host, 0).has_value(); }

}  // namespace

TlsTransport::TlsTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsTransport::~TlsTransport() { close(); }

Task<std::unique_ptr<TlsTransport>> TlsTransport::client(Fd fd, TlsContext ctx, std::string server_name,
                                                         Duration timeout) {
  if (!ctx.impl() || ctx.is_server()) throw UsageError("TlsTransport::client needs a client TlsContext");
  auto impl = std::make_unique<Impl>(EventLoop::current_or_throw(), std::move(fd), ctx);
  SSL_set_connect_state(impl->ssl);
  if (!server_name.empty()) {
    bool ip = is_ip_literal(server_name);
    if (!ip) SSL_set_tlsext_host_name(impl->ssl, server_name.c_str());
    if (ctx.check_hostname()) {
      X509_VERIFY_PARAM* param = SSL_get0_param(impl->ssl);
      int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str())
                  : X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), 0);
      if (ok != 1) throw TlsError(fmt::format("cannot check the certificate against '{}'", server_name));
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
  } else if (ctx.check_hostname()) {
    throw UsageError("TLS hostname check needs a server name (or turn check_hostname off)");
  }
  auto done = co_await handshake_with_timeout(std::move(impl), timeout);
  co_return std::unique_ptr<TlsTransport>(new TlsTransport(std::move(done)));
}

Task<std::unique_ptr<TlsTransport>> TlsTransport::server(Fd fd, TlsContext ctx, Duration timeout) {
  if (!ctx.impl() || !ctx.is_server()) throw UsageError("TlsTransport::server needs a server TlsContext");
  auto impl = std::make_unique<Impl>(EventLoop::current_or_throw(), std::move(fd), ctx);
  SSL_set_accept_state(impl->ssl);
  auto done = co_await handshake_with_timeout(std::move(impl), timeout);
  co_return std::unique_ptr<TlsTransport>(new TlsTransport(std::move(done)));
}

Task<std::size_t> TlsTransport::read(Buffer& buf, std::size_t max_bytes) {
  Impl& s = *impl_;
  s.check_open();
  if (max_bytes == 0) co_return 0;
  std::size_t total = 0;
  while (true) {
    std::size_t want = std::min(max_bytes - total, kInChunk);
    buf.ensure_writable(want);
    ERR_clear_error();
    std::size_t n = 0;
    int r = SSL_read_ex(s.ssl, buf.begin_write(), want, &n);
    int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s.ssl, r);
    if (BIO_ctrl_pending(s.wbio) > 0 && s.rd->ready(Readiness::kWrite)) s.flush_some();
    if (r == 1) {
      buf.has_written(n);
      total += n;
      if (total >= max_bytes) co_return total;
      continue;
    }
    if (err == SSL_ERROR_ZERO_RETURN) co_return total;  // close_notify: EOF (after what we have)
    if (err != SSL_ERROR_WANT_READ) {
      if (total > 0) co_return total;  // report the data now, the error on the next read
      if (err == SSL_ERROR_SYSCALL && s.socket_eof) {
        throw Disconnected(fmt::format("TLS peer {} closed the connection without close_notify", s.peer));
      }
      s.throw_ssl("read");
    }
    if (total > 0) co_return total;
    if (s.socket_eof) {
      throw Disconnected(fmt::format("TLS peer {} closed the connection without close_notify", s.peer));
    }
    long got = s.fill();
    if (got > 0) continue;
    if (got == 0) {
      throw Disconnected(fmt::format("TLS peer {} closed the connection without close_notify", s.peer));
    }
    if (got != -EAGAIN) s.throw_io(static_cast<int>(-got), "read");
    co_await s.rd->wait(Readiness::kRead);
    s.check_open();
  }
}

Task<std::size_t> TlsTransport::write(std::span<const iovec> chunks) {
  Impl& s = *impl_;
  s.check_open();
  if (s.shutdown_sent) throw StreamClosed("write after shutdown_write");
  if (s.write_errno) s.throw_io(s.write_errno, "write");
  std::size_t total = 0;
  for (const iovec& c : chunks) {
    const auto* base = static_cast<const std::uint8_t*>(c.iov_base);
    std::size_t left = c.iov_len;
    while (left > 0 && total < kMaxWritePerCall) {
      std::size_t step = std::min(left, kMaxWritePerCall - total);
      ERR_clear_error();
      std::size_t n = 0;
      if (SSL_write_ex(s.ssl, base, step, &n) != 1) s.throw_ssl("write");
      base += n;
      left -= n;
      total += n;
    }
    if (total >= kMaxWritePerCall) break;
  }
  co_await s.flush_all();
  co_return total;
}

void TlsTransport::shutdown_write() {
  Impl& s = *impl_;
  if (s.closed || s.shutdown_sent) return;
  s.shutdown_sent = true;
  ERR_clear_error();
  SSL_shutdown(s.ssl);  // queues close_notify; we keep reading until the peer's
  ERR_clear_error();
  s.shut_pending = true;
  if (s.rd->ready(Readiness::kWrite)) s.flush_some();
  s.maybe_shutdown_socket();
}

void TlsTransport::close() noexcept {
  Impl& s = *impl_;
  if (s.closed) return;
  if (s.handshake_done && !s.shutdown_sent && !s.write_errno) {
    s.shutdown_sent = true;
    ERR_clear_error();
    SSL_shutdown(s.ssl);
    ERR_clear_error();
    s.flush_some();  // best effort, never waits
  }
  // Discard what the kernel still holds for us: closing a socket with unread bytes makes the
  // kernel send a reset, which could destroy our close_notify and last data at the peer.
  char sink[4096];
  while (::recv(s.fd.get(), sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
  s.closed = true;
  s.rd->detach();
  s.rd->poke(Readiness::kRead);
  s.rd->poke(Readiness::kWrite);
  s.fd.reset();
}

bool TlsTransport::closed() const noexcept { return impl_->closed; }
EventLoop& TlsTransport::loop() const noexcept { return impl_->loop; }
int TlsTransport::fd() const noexcept { return impl_->fd.get(); }
std::string TlsTransport::peer_name() const { return impl_->peer; }

std::string TlsTransport::protocol() const { return SSL_get_version(impl_->ssl); }

std::string TlsTransport::cipher() const {
  const char* c = SSL_get_cipher_name(impl_->ssl);
  return c ? c : "";
}

std::string TlsTransport::alpn() const {
  const unsigned char* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(impl_->ssl, &p, &len);
  return p ? std::string(reinterpret_cast<const char*>(p), len) : std::string();
}

std::string TlsTransport::peer_subject() const {
  X509* cert = SSL_get0_peer_certificate(impl_->ssl);
  if (!cert) return {};
  char buf[512];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  return buf;
}

namespace {

/// An X509_NAME in RFC 2253 one-line form ("CN=client1,O=tether tests"; UTF-8 kept).
std::string name_line(const X509_NAME* name) {
  if (!name) return {};
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return {};
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data ? data : "", data ? static_cast<std::size_t>(len) : 0);
  BIO_free(bio);
  return out;
}

std::string asn1_text(const ASN1_STRING* s) {
  if (!s) return {};
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
}

std::string ip_text(const ASN1_OCTET_STRING* s) {
  const int len = ASN1_STRING_length(s);
  const unsigned char* p = ASN1_STRING_get0_data(s);
  char buf[INET6_ADDRSTRLEN] = {};
  if (len == 4 && ::inet_ntop(AF_INET, p, buf, sizeof buf)) return buf;
  if (len == 16 && ::inet_ntop(AF_INET6, p, buf, sizeof buf)) return buf;
  return {};
}

}  // namespace

PeerCertificate TlsTransport::peer_certificate() const {
  PeerCertificate out;
  X509* cert = SSL_get0_peer_certificate(impl_->ssl);
  if (!cert) return out;
  out.present = true;
  out.verified = SSL_get_verify_mode(impl_->ssl) != SSL_VERIFY_NONE && SSL_get_verify_result(impl_->ssl) == X509_V_OK;
  out.subject = name_line(X509_get_subject_name(cert));
  out.issuer = name_line(X509_get_issuer_name(cert));
  const X509_NAME* subject = X509_get_subject_name(cert);
  int last = -1;
  for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
    last = i;
  }
  if (last >= 0) out.common_name = asn1_text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, last)));
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
      switch (g->type) {
        case GEN_DNS: out.dns_names.push_back(asn1_text(g->d.dNSName)); break;
        case GEN_EMAIL: out.emails.push_back(asn1_text(g->d.rfc822Name)); break;
        case GEN_URI: out.uris.push_back(asn1_text(g->d.uniformResourceIdentifier)); break;
        case GEN_IPADD: {
          std::string ip = ip_text(g->d.iPAddress);
          if (!ip.empty()) out.ip_addresses.push_back(std::move(ip));
          break;
        }
        default: break;
      }
    }
    GENERAL_NAMES_free(sans);
  }
  return out;
}

}  // namespace tether
