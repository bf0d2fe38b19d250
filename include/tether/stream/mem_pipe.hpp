#pragma once
/// \file An in-memory duplex pipe pair: two Transports joined without any fd, for tests and
/// for wiring two layers together in one process.
///
/// Each direction is a byte queue with a capacity: a writer whose peer already holds
/// `capacity` unread bytes waits until the peer reads (back-pressure), and a write accepts at
/// most the free room. shutdown_write() and close() deliver EOF to the peer after the bytes
/// already written; abort() makes the peer's reads fail with Disconnected (a reset) once it has
/// read the bytes written before. Writing to a peer that closed throws Disconnected (a broken
/// pipe); bytes the closing end had not read are dropped.
///
/// Loop thread only; both ends must live on the same loop. Either end may be destroyed
/// first (destroying an end closes it).

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "tether/base/export.hpp"
#include "tether/stream/transport.hpp"

namespace tether {

struct MemPipeOptions {
  /// Unread bytes a direction holds before its writer waits.
  std::size_t capacity = 64 << 10;
  /// 0 = unlimited; otherwise each read() returns at most this many bytes (1 = deliver the
  /// stream one byte at a time, for boundary tests).
  std::size_t max_read_chunk = 0;
};

namespace detail {
struct MemPipeShared;
}

class TETHER_API MemPipeEnd final : public Transport {
 public:
  MemPipeEnd(std::shared_ptr<detail::MemPipeShared> shared, int side);
  ~MemPipeEnd() override;
  MemPipeEnd(const MemPipeEnd&) = delete;
  MemPipeEnd& operator=(const MemPipeEnd&) = delete;

  /// Returns 0 at EOF; Disconnected after the peer's abort(); StreamClosed after close().
  Task<std::size_t> read(Buffer& buf, std::size_t max_bytes) override;
  /// Waits for room; Disconnected if the peer closed; StreamClosed after close() or
  /// shutdown_write().
  Task<std::size_t> write(std::span<const iovec> chunks) override;
  /// read() without waiting (kWouldBlock when no byte, EOF or reset is there).
  std::size_t try_read(Buffer& buf, std::size_t max_bytes) override;
  detail::WaitSlot* read_ready_slot() noexcept override;
  /// Takes what fits in the free room now (0 when the peer's queue is full).
  std::size_t try_write(std::span<const iovec> chunks) override;
  void shutdown_write() override;
  void close() noexcept override;
  /// Closes so that the peer sees a reset (Disconnected) instead of EOF, after the bytes
  /// already written.
  void abort() noexcept;

  [[nodiscard]] bool closed() const noexcept override;
  [[nodiscard]] EventLoop& loop() const noexcept override;
  [[nodiscard]] std::string peer_name() const override { return "mem-pipe"; }
  /// Unread bytes waiting for this end.
  [[nodiscard]] std::size_t available() const noexcept;

 private:
  void close_impl(bool reset) noexcept;

  std::shared_ptr<detail::MemPipeShared> shared_;
  int side_;
};

using MemPipePair = std::pair<std::unique_ptr<MemPipeEnd>, std::unique_ptr<MemPipeEnd>>;

/// A connected pair: bytes written to `first` are read from `second` and vice versa.
TETHER_API MemPipePair make_mem_pipe(EventLoop& loop, std::size_t capacity = 64 << 10);
TETHER_API MemPipePair make_mem_pipe(EventLoop& loop, MemPipeOptions options);

}  // namespace tether
