#pragma once
/// \file FdTransport: the Transport over non-blocking file descriptors — a socket (TCP, Unix,
/// socketpair), one pipe end, or a pair of pipe fds (one read, one write: a child process's
/// stdout + stdin).
///
/// How it waits: each fd is registered once with the loop in edge-triggered mode, and the
/// transport tracks "readable"/"writable" flags itself. An operation always tries the system
/// call first and suspends only after EAGAIN (or after a short read/write, which proves the
/// kernel buffer was drained/filled at that instant; not once a hang-up or error was reported,
/// as no further edge would announce the EOF or error); the next edge sets the flag again.
///
/// Errors: ECONNRESET, EPIPE, ENOTCONN, ESHUTDOWN and ETIMEDOUT -> Disconnected; other errno ->
/// IoError; an operation on a closed transport (or one pending when close() is called) ->
/// StreamClosed.
///
/// SIGPIPE: socket writes use sendmsg(MSG_NOSIGNAL). Pipes have no such flag, so creating an
/// FdTransport over a non-socket fd sets SIGPIPE's disposition to SIG_IGN once per process if
/// it is still SIG_DFL (a handler the application installed is left alone). Writing to a pipe
/// whose reader is gone then fails with EPIPE -> Disconnected instead of killing the process.
/// Note for code that spawns children: an ignored signal stays ignored across execve, so reset
/// SIGPIPE to SIG_DFL in the child before exec (see ignore_sigpipe()).
///
/// Loop thread only (construction included). Owns its fds: they are closed by close() or the
/// destructor.

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "tether/base/export.hpp"
#include "tether/base/fd.hpp"
#include "tether/loop/io_watcher.hpp"
#include "tether/stream/detail/wait_slot.hpp"
#include "tether/stream/transport.hpp"

namespace tether {

class TETHER_API FdTransport : public Transport {
 public:
  /// One descriptor for both directions (a socket), or a single pipe end. Sets O_NONBLOCK and
  /// FD_CLOEXEC. `peer_name` is only reported by peer_name().
  FdTransport(EventLoop& loop, Fd fd, std::string peer_name = {});
  /// Separate descriptors for reading and writing (e.g. a child's stdout and stdin). Either
  /// may be invalid (Fd{}) for a one-way transport.
  FdTransport(EventLoop& loop, Fd read_fd, Fd write_fd, std::string peer_name);
  ~FdTransport() override;
  FdTransport(const FdTransport&) = delete;
  FdTransport& operator=(const FdTransport&) = delete;

  /// Reads with one readv (Buffer::read_from_fd) of at most max_bytes. 0 = EOF. Throws
  /// Disconnected on reset, StreamClosed if closed (also when close() happens while waiting).
  Task<std::size_t> read(Buffer& buf, std::size_t max_bytes) override;
  /// One readv if the descriptor was last seen readable, else kWouldBlock (no system call).
  std::size_t try_read(Buffer& buf, std::size_t max_bytes) override;
  detail::WaitSlot* read_ready_slot() noexcept override { return &read_slot_; }
  [[nodiscard]] bool read_would_block() const noexcept override {
    return !readable_ && !closed_ && can_read_;
  }
  /// One writev/sendmsg of up to IOV_MAX chunks; returns the bytes accepted (> 0). Throws
  /// Disconnected on EPIPE/ECONNRESET. The chunks must stay valid until the Task finishes.
  Task<std::size_t> write(std::span<const iovec> chunks) override;
  /// One writev/sendmsg if the descriptor was last seen writable; 0 on EAGAIN (or when a
  /// short write already proved the kernel buffer full).
  std::size_t try_write(std::span<const iovec> chunks) override;
  /// Sockets: shutdown(SHUT_WR). Separate write fd or a write-only pipe end: closes it.
  /// Idempotent; a later write() throws StreamClosed.
  void shutdown_write() override;
  /// Deregisters and closes the fds; pending operations resume with StreamClosed.
  void close() noexcept override;

  [[nodiscard]] bool closed() const noexcept override { return closed_; }
  [[nodiscard]] EventLoop& loop() const noexcept override { return *loop_; }
  /// The read descriptor (the only one for sockets), or -1 once closed.
  [[nodiscard]] int fd() const noexcept override;
  /// The write descriptor (same as fd() for sockets), or -1.
  [[nodiscard]] int write_fd() const noexcept;
  [[nodiscard]] std::string peer_name() const override { return peer_name_; }
  void set_peer_name(std::string name) { peer_name_ = std::move(name); }
  [[nodiscard]] bool is_socket() const noexcept { return is_socket_; }

  // --- Readiness, for layers that drive the fd themselves (TLS over OpenSSL, non-blocking
  // connect). The flags start "ready" (try first); after a syscall on the fd returns EAGAIN,
  // call mark_*_blocked() and then await wait_*(), which completes on the next edge.

  /// Completes when the read side is flagged readable (at once if it already is). Throws
  /// StreamClosed if the transport is or becomes closed. Cancellable.
  Task<void> wait_readable();
  /// Same for the write side (a connecting socket completes its connect here).
  Task<void> wait_writable();
  void mark_read_blocked() noexcept { readable_ = false; }
  void mark_write_blocked() noexcept { writable_ = false; }
  [[nodiscard]] bool readable() const noexcept { return readable_; }
  [[nodiscard]] bool writable() const noexcept { return writable_; }
  /// Whether a readiness report included a hang-up or an error (EPOLLHUP/EPOLLRDHUP/EPOLLERR).
  [[nodiscard]] bool hangup_seen() const noexcept { return hangup_; }

 private:
  void register_fds();
  void on_events(std::uint32_t events, bool read_side, bool write_side) noexcept;
  int rfd() const noexcept { return read_fd_.get(); }
  int wfd() const noexcept { return write_fd_.valid() ? write_fd_.get() : read_fd_.get(); }

  EventLoop* loop_;
  Fd read_fd_;
  Fd write_fd_;  // invalid when one descriptor serves both directions
  std::optional<IoWatcher> read_watcher_;
  std::optional<IoWatcher> write_watcher_;  // only with a separate write fd
  detail::WaitSlot read_slot_;
  detail::WaitSlot write_slot_;
  std::string peer_name_;
  bool is_socket_ = false;
  bool readable_ = true;
  bool writable_ = true;
  bool hangup_ = false;
  bool write_shut_ = false;
  bool can_read_ = true;
  bool can_write_ = true;
  bool closed_ = false;
};

using TransportPair = std::pair<std::unique_ptr<FdTransport>, std::unique_ptr<FdTransport>>;

/// A connected AF_UNIX stream socketpair on `loop`, each end an FdTransport. Throws IoError.
TETHER_API TransportPair make_socketpair_transports(EventLoop& loop);

/// Two pipes crossed so each end reads one and writes the other (like a child's stdio).
/// Throws IoError.
TETHER_API TransportPair make_pipe_transports(EventLoop& loop);

/// Sets SIGPIPE to SIG_IGN if its disposition is SIG_DFL (once per process; thread-safe).
/// FdTransport calls it for non-socket fds; call it yourself to be explicit.
TETHER_API void ignore_sigpipe() noexcept;

}  // namespace tether
