#include "tether/stream/mem_pipe.hpp"

#include <algorithm>

#include "tether/base/buffer.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/stream/detail/wait_slot.hpp"

namespace tether {

namespace detail {

/// State shared by the two ends. dir[s] holds the bytes written by side s.
struct MemPipeShared {
  struct Direction {
    Buffer data;
    bool eof = false;            // the writer shut down or closed
    bool reset = false;          // the writer aborted
    bool reader_closed = false;  // the reader is gone: writes fail
  };

  MemPipeShared(EventLoop& l, MemPipeOptions o)
      : loop(&l), options(o), readable{WaitSlot(l), WaitSlot(l)}, writable{WaitSlot(l), WaitSlot(l)} {}

  EventLoop* loop;
  MemPipeOptions options;
  Direction dir[2];
  WaitSlot readable[2];  // readable[s]: side s waits for bytes in dir[1 - s]
  WaitSlot writable[2];  // writable[s]: side s waits for room in dir[s]
  bool closed[2] = {false, false};
};

}  // namespace detail

MemPipeEnd::MemPipeEnd(std::shared_ptr<detail::MemPipeShared> shared, int side)
    : shared_(std::move(shared)), side_(side) {}

MemPipeEnd::~MemPipeEnd() {
  if (shared_->closed[side_]) return;
  close_impl(false);
}

bool MemPipeEnd::closed() const noexcept { return shared_->closed[side_]; }

EventLoop& MemPipeEnd::loop() const noexcept { return *shared_->loop; }

std::size_t MemPipeEnd::available() const noexcept { return shared_->dir[1 - side_].data.readable_bytes(); }

std::size_t MemPipeEnd::try_read(Buffer& buf, std::size_t max_bytes) {
  if (max_bytes == 0) throw UsageError("MemPipeEnd::read with max_bytes 0");
  detail::MemPipeShared& sh = *shared_;
  const int s = side_;
  if (sh.closed[s]) throw StreamClosed("mem pipe closed");
  auto& in = sh.dir[1 - s];
  if (!in.data.empty()) {
    std::size_t n = std::min(in.data.readable_bytes(), max_bytes);
    if (sh.options.max_read_chunk) n = std::min(n, sh.options.max_read_chunk);
    buf.append(in.data.peek(), n);
    in.data.retrieve(n);
    sh.writable[1 - s].notify();
    return n;
  }
  if (in.reset) throw Disconnected("mem pipe reset by peer");
  if (in.eof) return 0;
  return kWouldBlock;
}

detail::WaitSlot* MemPipeEnd::read_ready_slot() noexcept { return &shared_->readable[side_]; }

Task<std::size_t> MemPipeEnd::read(Buffer& buf, std::size_t max_bytes) {
  for (;;) {
    const std::size_t n = MemPipeEnd::try_read(buf, max_bytes);
    if (n != kWouldBlock) co_return n;
    co_await shared_->readable[side_].wait();
  }
}

std::size_t MemPipeEnd::try_write(std::span<const iovec> chunks) {
  detail::MemPipeShared& sh = *shared_;
  const int s = side_;
  if (sh.closed[s]) throw StreamClosed("mem pipe closed");
  auto& out = sh.dir[s];
  if (out.eof) throw StreamClosed("mem pipe write side is shut down");
  if (out.reader_closed) throw Disconnected("mem pipe peer closed (broken pipe)");
  std::size_t total = 0;
  for (const auto& c : chunks) total += c.iov_len;
  const std::size_t queued = out.data.readable_bytes();
  const std::size_t room = sh.options.capacity > queued ? sh.options.capacity - queued : 0;
  if (total == 0) return 0;
  const std::size_t n = std::min(room, total);
  if (n == 0) return kWouldBlock;
  std::size_t left = n;
  for (const auto& c : chunks) {
    if (left == 0) break;
    const std::size_t take = std::min(left, c.iov_len);
    out.data.append(c.iov_base, take);
    left -= take;
  }
  sh.readable[1 - s].notify();
  return n;
}

Task<std::size_t> MemPipeEnd::write(std::span<const iovec> chunks) {
  std::size_t total = 0;
  for (const auto& c : chunks) total += c.iov_len;
  if (total == 0) co_return 0;
  for (;;) {
    const std::size_t n = MemPipeEnd::try_write(chunks);
    if (n != kWouldBlock) co_return n;
    co_await shared_->writable[side_].wait();
  }
}

void MemPipeEnd::shutdown_write() {
  detail::MemPipeShared& sh = *shared_;
  if (sh.closed[side_] || sh.dir[side_].eof) return;
  sh.dir[side_].eof = true;
  sh.readable[1 - side_].notify();
  sh.writable[side_].notify();
}

void MemPipeEnd::close() noexcept { close_impl(false); }

void MemPipeEnd::abort() noexcept { close_impl(true); }

void MemPipeEnd::close_impl(bool reset) noexcept {
  detail::MemPipeShared& sh = *shared_;
  const int s = side_;
  if (sh.closed[s]) return;
  sh.closed[s] = true;
  sh.dir[s].eof = true;
  sh.dir[s].reset = reset;
  auto& in = sh.dir[1 - s];
  in.reader_closed = true;
  in.data.retrieve_all();
  in.data.shrink_to_fit();
  // Own pending operations resume and throw StreamClosed; the peer sees EOF, reset or EPIPE.
  sh.readable[s].notify();
  sh.writable[s].notify();
  sh.readable[1 - s].notify();
  sh.writable[1 - s].notify();
}

MemPipePair make_mem_pipe(EventLoop& loop, std::size_t capacity) {
  MemPipeOptions o;
  o.capacity = capacity;
  return make_mem_pipe(loop, o);
}

MemPipePair make_mem_pipe(EventLoop& loop, MemPipeOptions options) {
  if (options.capacity == 0) throw UsageError("make_mem_pipe: capacity must be > 0");
  auto shared = std::make_shared<detail::MemPipeShared>(loop, options);
  return {std::make_unique<MemPipeEnd>(shared, 0), std::make_unique<MemPipeEnd>(shared, 1)};
}

}  // namespace tether
