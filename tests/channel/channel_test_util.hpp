#pragma once
// Transports and stream pairs for the channel tests: in-memory pipes, socketpairs, and a
// wrapper transport that counts reads and records the iovecs handed to write(); recv_fails.

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "stream/forwarding_transport.hpp"
#include "tether/base/bytes.hpp"
#include "tether/channel/channel.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/fd_transport.hpp"
#include "tether/stream/mem_pipe.hpp"
#include "tether/stream/transport.hpp"

namespace tether::testing {

/// Forwards to another transport, counting reads and recording the iovecs of writes. With
/// `try_reads`, it forwards try_read()/read_ready_slot() too (the stream's frame-free read
/// path; a try_read that finds nothing is not counted); without, it reads only via read().
class ProbeTransport final : public ForwardingTransport {
 public:
  explicit ProbeTransport(std::unique_ptr<Transport> inner, bool try_reads = false)
      : ForwardingTransport(std::move(inner)), try_reads_(try_reads) {}

  Task<std::size_t> read(Buffer& buf, std::size_t max_bytes) override {
    ++reads_;
    ++task_reads_;
    return inner().read(buf, max_bytes);
  }
  std::size_t try_read(Buffer& buf, std::size_t max_bytes) override {
    if (!try_reads_) return kNotSupported;
    const std::size_t n = inner().try_read(buf, max_bytes);
    if (n != kWouldBlock && n != kNotSupported) ++reads_;
    return n;
  }
  detail::WaitSlot* read_ready_slot() noexcept override {
    return try_reads_ ? inner().read_ready_slot() : nullptr;
  }
  Task<std::size_t> write(std::span<const iovec> chunks) override {
    ++writes_;
    for (const iovec& c : chunks) chunks_.push_back(c);
    return inner().write(chunks);
  }

  [[nodiscard]] std::size_t reads() const noexcept { return reads_; }
  /// The reads made through read() (a coroutine each), not try_read().
  [[nodiscard]] std::size_t task_reads() const noexcept { return task_reads_; }
  [[nodiscard]] std::size_t writes() const noexcept { return writes_; }
  /// Every iovec passed to write(), in order (a retried partial write appears again).
  [[nodiscard]] const std::vector<iovec>& chunks() const noexcept { return chunks_; }

 private:
  bool try_reads_ = false;
  std::size_t reads_ = 0;
  std::size_t task_reads_ = 0;
  std::size_t writes_ = 0;
  std::vector<iovec> chunks_;
};

struct TransportEnds {
  std::unique_ptr<Transport> a;
  std::unique_ptr<Transport> b;
};

/// An in-memory pipe; max_read_chunk = 1 delivers one byte per read.
inline TransportEnds mem_pipe_ends(EventLoop& loop, std::size_t max_read_chunk = 0) {
  MemPipeOptions o;
  o.max_read_chunk = max_read_chunk;
  auto p = make_mem_pipe(loop, o);
  return {std::move(p.first), std::move(p.second)};
}

inline TransportEnds socketpair_ends(EventLoop& loop) {
  auto p = make_socketpair_transports(loop);
  return {std::move(p.first), std::move(p.second)};
}

inline std::unique_ptr<BufferedStream> stream_of(std::unique_ptr<Transport> t, StreamOptions o = {}) {
  return std::make_unique<BufferedStream>(std::move(t), o);
}

/// Expects recv() to fail with E; returns the message.
template <class E>
Task<std::string> recv_fails(Channel* ch) {
  std::string what;
  try {
    Bytes b = co_await ch->recv();
    ADD_FAILURE() << "recv returned " << b.size() << " bytes";
  } catch (const E& e) {
    what = e.what();
  }
  co_return what;
}

}  // namespace tether::testing
