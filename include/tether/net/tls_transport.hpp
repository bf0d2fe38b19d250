#pragma once
/// \file TlsTransport: a Transport that runs TLS (OpenSSL 3, pimpl) over a connected
/// non-blocking socket.
///
/// OpenSSL talks to memory BIOs and this class moves the ciphertext between them and the
/// socket, so a read and a write may be in flight together (as Transport allows) without
/// either touching the other's socket direction. Bytes OpenSSL produces while reading (TLS 1.3
/// tickets, key updates, alerts) are flushed in the background when the socket is writable.
///
/// EOF: read() returns 0 after the peer's close_notify. A peer that closes the TCP connection
/// without close_notify (possible truncation) makes read() throw Disconnected.
/// shutdown_write() sends close_notify then shuts the socket's write side once it is flushed;
/// reading goes on. close() sends close_notify if it can do so without blocking, then closes.
/// Waiters pending at close() wake up with StreamClosed. Loop thread only.

#include <memory>
#include <string>

#include "tether/base/export.hpp"
#include "tether/base/fd.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/net/tls.hpp"
#include "tether/stream/transport.hpp"

namespace tether {

class TETHER_API TlsTransport final : public Transport {
 public:
  /// Runs the client handshake over `fd` (connected, non-blocking) on the current loop.
  /// `server_name` is sent as SNI (unless it is an IP literal) and checked against the
  /// certificate when the context asks for it. `timeout` (zero: none) bounds the handshake:
  /// Timeout on expiry. Failures throw TlsError (verification failures name the reason) or
  /// Disconnected when the peer closes during the handshake.
  static Task<std::unique_ptr<TlsTransport>> client(Fd fd, TlsContext ctx, std::string server_name,
                                                    Duration timeout = Duration::zero());
  /// The server side of the handshake (same errors; a client without the required
  /// certificate fails here with TlsError).
  static Task<std::unique_ptr<TlsTransport>> server(Fd fd, TlsContext ctx, Duration timeout = Duration::zero());

  ~TlsTransport() override;
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  Task<std::size_t> read(Buffer& buf, std::size_t max_bytes) override;
  Task<std::size_t> write(std::span<const iovec> chunks) override;
  void shutdown_write() override;
  void close() noexcept override;
  [[nodiscard]] bool closed() const noexcept override;
  [[nodiscard]] EventLoop& loop() const noexcept override;
  [[nodiscard]] int fd() const noexcept override;
  [[nodiscard]] std::string peer_name() const override;

  /// Negotiated protocol ("TLSv1.3"), cipher suite and ALPN protocol ("" if none).
  [[nodiscard]] std::string protocol() const;
  [[nodiscard]] std::string cipher() const;
  [[nodiscard]] std::string alpn() const;
  /// The peer certificate's subject in one line ("" if the peer sent none).
  [[nodiscard]] std::string peer_subject() const;
  /// The peer certificate: subject, issuer, SANs, and whether it was verified.
  [[nodiscard]] PeerCertificate peer_certificate() const;

  struct Impl;

 private:
  explicit TlsTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tether
