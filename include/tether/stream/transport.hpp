#pragma once
/// \file Transport: the byte-moving contract under BufferedStream. TCP, Unix, pipes and
/// child processes implement it over a non-blocking fd (FdTransport); TLS wraps OpenSSL over
/// an fd; the in-memory pipe pair implements it without any fd.
///
/// Rules every implementation follows:
///  * At most one read() and one write() are in flight at a time (BufferedStream ensures it).
///  * Each operation first tries the system call at once and only suspends when it would block,
///    so data that is already there costs no loop turn.
///  * Destroying the Task of an in-flight operation cancels it (it deregisters its wait).
///  * Errors: peer reset / broken pipe -> Disconnected; other OS errors -> IoError; operations
///    after close() -> StreamClosed.
///  * Loop thread only.

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <string>

#include "tether/base/buffer.hpp"
#include "tether/base/export.hpp"
#include "tether/loop/task.hpp"
#include "tether/stream/detail/wait_slot.hpp"

namespace tether {

class EventLoop;

class TETHER_API Transport {
 public:
  virtual ~Transport() = default;

  /// Appends at least one and at most `max_bytes` bytes to `buf`, waiting until some arrive.
  /// Returns the count; 0 means EOF (the peer closed its write side).
  virtual Task<std::size_t> read(Buffer& buf, std::size_t max_bytes) = 0;

  /// try_read() / try_write(): nothing can move now (wait on read_ready_slot(), or use
  /// write(), then try again). The one spelling of "would block" for both directions.
  static constexpr std::size_t kWouldBlock = static_cast<std::size_t>(-1);
  /// try_read() / try_write(): this transport moves bytes only through read() / write() (the
  /// default).
  static constexpr std::size_t kNotSupported = static_cast<std::size_t>(-2);

  /// read() without waiting: appends at most `max_bytes` (> 0) bytes that are there now and
  /// returns the count, 0 at EOF, kWouldBlock, or kNotSupported. Throws what read() throws.
  /// Never called while a read() is in flight. A transport that implements it also returns
  /// its read_ready_slot().
  virtual std::size_t try_read(Buffer& buf, std::size_t max_bytes) {
    (void)buf;
    (void)max_bytes;
    return kNotSupported;
  }
  /// The slot notified when a try_read() that returned kWouldBlock may succeed (bytes, EOF or
  /// an error arrived, or the transport closed); wake-ups may be spurious. One waiter at a
  /// time, shared with read(): wait on it only while no read() is in flight. Null when
  /// try_read() is not supported.
  virtual detail::WaitSlot* read_ready_slot() noexcept { return nullptr; }
  /// True only when try_read() would surely return kWouldBlock now: nothing was reported
  /// readable since it last did. A stream then waits on read_ready_slot() without trying.
  /// False (the default) means "try".
  [[nodiscard]] virtual bool read_would_block() const noexcept { return false; }

  /// Writes a prefix of the gathered chunks, waiting until at least one byte is accepted.
  /// Returns the number of bytes written (> 0).
  virtual Task<std::size_t> write(std::span<const iovec> chunks) = 0;

  /// Writes a prefix of the chunks if the transport takes bytes now, without waiting: returns
  /// the count (> 0; 0 only when the chunks hold no byte), kWouldBlock when it would have to
  /// wait, or kNotSupported (the default: it cannot write without suspending) — then write()
  /// is the way. Throws what write() would on a broken or closed transport. Lets a stream
  /// flush without a coroutine when the kernel has room.
  virtual std::size_t try_write(std::span<const iovec> chunks) {
    (void)chunks;
    return kNotSupported;
  }

  /// Sends EOF to the peer (shutdown(SHUT_WR) or the equivalent); reading continues.
  virtual void shutdown_write() = 0;

  /// Releases the underlying resource at once. Idempotent.
  virtual void close() noexcept = 0;

  [[nodiscard]] virtual bool closed() const noexcept = 0;
  /// The loop the transport is bound to.
  [[nodiscard]] virtual EventLoop& loop() const noexcept = 0;
  /// The OS descriptor, or -1 (in-memory pipes).
  [[nodiscard]] virtual int fd() const noexcept { return -1; }
  /// Human-readable peer description ("127.0.0.1:4242", "unix:/tmp/s", "pipe").
  [[nodiscard]] virtual std::string peer_name() const { return {}; }
};

}  // namespace tether
