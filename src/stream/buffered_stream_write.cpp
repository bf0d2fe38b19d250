// BufferedStream's write path: the chunk queue, the end-of-turn flush and the background
// flusher, drain()/flush() and write_eof(). (The class's own header is included first.)
#include <fmt/format.h>
#include <sys/uio.h>

#include <array>
#include <cstring>
#include <span>
#include <string>

#include "stream/buffer_cache.hpp"
#include "stream/buffered_stream_impl.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/runner.hpp"
#include "tether/stream/buffered_stream.hpp"

namespace tether {

namespace {

using Impl = BufferedStream::Impl;

/// Writes up to this size are copied into the tail chunk; larger ones are moved in.
constexpr std::size_t kCoalesceMax = BufferedStream::kCoalesceLimit;
/// A coalescing tail chunk stops growing at this size (a new one starts).
constexpr std::size_t kTailCap = 64 << 10;
/// Chunks gathered per writev.
constexpr std::size_t kFlushIov = 64;

/// memcpy for the pieces of a gathered write, which are often a few bytes (a frame header or
/// trailer): fixed-size copies (plain moves, overlapping for the odd sizes) below 16 bytes
/// instead of a library call each.
inline void copy_piece(std::uint8_t* out, const char* p, std::size_t k) noexcept {
  if (k >= 16) {
    std::memcpy(out, p, k);
  } else if (k >= 8) {
    std::memcpy(out, p, 8);
    std::memcpy(out + k - 8, p + k - 8, 8);
  } else if (k >= 4) {
    std::memcpy(out, p, 4);
    std::memcpy(out + k - 4, p + k - 4, 4);
  } else if (k > 0) {
    out[0] = static_cast<std::uint8_t>(p[0]);
    out[k / 2] = static_cast<std::uint8_t>(p[k / 2]);
    out[k - 1] = static_cast<std::uint8_t>(p[k - 1]);
  }
}

}  // namespace

void Impl::check_writable(std::size_t n) const {
  if (closed) throw StreamClosed(cause);
  if (eof_requested) throw UsageError("BufferedStream: write after write_eof()");
  if (opts.max_write_buffer_size && queued + n > opts.max_write_buffer_size) {
    throw LimitExceeded(fmt::format("write of {} bytes: {} already queued, max_write_buffer_size is {}", n,
                                    queued, opts.max_write_buffer_size));
  }
}

Buffer& Impl::tail_for(std::size_t n) {
  if (wq.size() > wq_head) {
    detail::WriteChunk& tail = wq.back();
    const bool tail_in_flight = wq.size() - 1 < wq_head + inflight_chunks;
    if (tail.coalescing && !tail_in_flight && tail.buffer.readable_bytes() + n <= kTailCap) {
      tail.buffer.ensure_writable(n);
      return tail.buffer;
    }
  }
  detail::WriteChunk& c = wq.emplace_back();
  c.is_buffer = true;
  c.coalescing = true;
  if (detail::take_cached_buffer(c.buffer, n)) {
    ++stats.buffers_reused;
  } else {
    ++stats.buffers_allocated;
    try {
      c.buffer.ensure_writable(n);
    } catch (...) {
      wq.pop_back();  // nothing was queued
      throw;
    }
  }
  return c.buffer;
}

void Impl::push_joined(std::span<const std::string_view> pieces, std::size_t n) {
  std::string joined;
  joined.reserve(n);
  for (const std::string_view& p : pieces) joined.append(p);
  detail::WriteChunk c;
  c.bytes = Bytes(std::move(joined));  // one owned chunk, as write(string_view) makes
  push_chunk(std::move(c));
}

void Impl::append_small(const void* data, std::size_t n) {
  Buffer& tail = tail_for(n);
  std::memcpy(tail.begin_write(), data, n);
  tail.has_written(n);
}

void Impl::push_chunk(detail::WriteChunk&& c) { wq.push_back(std::move(c)); }

void Impl::after_enqueue(std::size_t n) {
  queued += n;
  written_total += n;
  if (!paused && queued > opts.write_high_water) paused = true;
  arm_flush();
}

void Impl::arm_flush() {
  if (flusher || flush_armed || queued == 0 || transport_closed) return;
  // Written out at the end of this loop iteration: everything queued until then goes in one
  // writev. drain()/flush()/close() may withdraw it and write at once instead.
  flush_armed = true;
  loop->at_end_of_iteration(&Impl::on_end_of_turn, this);
}

void Impl::disarm_flush() noexcept {
  if (!flush_armed) return;
  flush_armed = false;
  loop->cancel_end_of_iteration(&Impl::on_end_of_turn, this);
}

void Impl::on_end_of_turn(void* ctx) noexcept {
  auto* s = static_cast<Impl*>(ctx);
  s->flush_armed = false;
  try {
    s->write_out();
  } catch (...) {  // no memory even to report a write error: drop the connection
    s->drop_write_queue();
    s->finish_close();
  }
}

void Impl::start_flusher() {
  if (transport_closed) return;
  disarm_flush();
  if (flusher) return;  // already writing (or waiting for room)
  write_out();
}

void Impl::write_out() {
  if (flusher || transport_closed) return;
  // As much as the transport takes now, without a coroutine (the usual case: the kernel has
  // room); the rest goes to the flusher, which waits for room.
  std::array<iovec, kFlushIov> iov;
  while (queued > 0) {
    const std::size_t cnt = build_iov(iov.data(), iov.size());
    std::size_t n = 0;
    try {
      n = transport->try_write(std::span<const iovec>(iov.data(), cnt));
    } catch (...) {
      inflight_chunks = 0;
      close_now(std::current_exception());
      return;
    }
    inflight_chunks = 0;
    if (n == Transport::kWouldBlock || n == Transport::kNotSupported || n == 0) break;
    ++stats.write_calls;
    consume_written(n);
  }
  if (queued == 0) {
    if (eof_requested && !eof_sent) send_eof();
    if (closed) finish_close();  // the last step of a graceful close()
    return;
  }
  try {
    flusher = detail::start_runner(flush_loop(), detail::RunnerHook{&Impl::on_flusher_done, this});
  } catch (...) {  // no memory for the flusher's frame
    close_now(std::current_exception());
    return;
  }
  detail::resume(flusher);
}

void Impl::stop_flusher() noexcept {
  disarm_flush();
  if (!flusher) return;
  if (!flusher_waiting) return;  // running: it is the caller, and notices the close when it returns
  flusher_waiting = false;
  inflight_chunks = 0;
  std::exchange(flusher, {}).destroy();  // cancels its transport write
}

void Impl::on_flusher_done(void* ctx, std::coroutine_handle<> h, std::exception_ptr) noexcept {
  auto* s = static_cast<Impl*>(ctx);
  if (s->flusher == h) s->flusher = {};
  h.destroy();
}

std::size_t Impl::build_iov(iovec* iov, std::size_t max_iov) {
  std::size_t cnt = 0;
  for (std::size_t i = wq_head; i < wq.size() && cnt < max_iov; ++i) {
    const detail::WriteChunk& c = wq[i];
    iov[cnt].iov_base = const_cast<std::uint8_t*>(c.data());
    iov[cnt].iov_len = c.size();
    ++cnt;
  }
  inflight_chunks = cnt;
  return cnt;
}

void Impl::consume_written(std::size_t n) noexcept {
  queued -= n;
  flushed_total += n;
  stats.bytes_written += n;
  while (n > 0 && wq_head < wq.size()) {
    detail::WriteChunk& c = wq[wq_head];
    const std::size_t sz = c.size();
    if (n >= sz) {
      n -= sz;
      // Free its storage now; a small buffer goes to the thread's pool, for the next chunk.
      if (c.is_buffer) {
        detail::release_buffer(c.buffer);
      } else if (c.shared) {
        c.shared.reset();
      } else {
        Bytes gone = std::move(c.bytes);  // (assigning empty Bytes would keep the capacity)
      }
      ++wq_head;
    } else {
      c.consume(n);
      n = 0;
    }
  }
  if (wq_head == wq.size()) {
    wq.clear();
    wq_head = 0;
  } else if (wq_head >= 16 && wq_head * 2 >= wq.size()) {
    wq.erase(wq.begin(), wq.begin() + static_cast<std::ptrdiff_t>(wq_head));
    wq_head = 0;
  }
  if (paused && queued <= opts.write_low_water) {
    paused = false;
    drain_waiters.wake_all();
  }
  flush_waiters.wake_all();
}

void Impl::drop_write_queue() noexcept {
  wq.clear();
  wq_head = 0;
  inflight_chunks = 0;
  queued = 0;
  paused = false;
}

Task<void> Impl::flush_loop() {
  std::array<iovec, kFlushIov> iov;
  while (queued > 0 && !transport_closed) {
    const std::size_t cnt = build_iov(iov.data(), iov.size());
    std::size_t n = 0;
    flusher_waiting = true;
    try {
      const std::size_t r = co_await transport->write(std::span<const iovec>(iov.data(), cnt));
      n = r;
    } catch (...) {
      flusher_waiting = false;
      inflight_chunks = 0;
      close_now(std::current_exception());
      co_return;
    }
    flusher_waiting = false;
    inflight_chunks = 0;
    ++stats.write_calls;
    consume_written(n);
  }
  if (transport_closed) co_return;
  if (eof_requested && !eof_sent) send_eof();
  if (closed) finish_close();  // the last step of a graceful close()
}

void Impl::send_eof() {
  eof_sent = true;
  try {
    transport->shutdown_write();
  } catch (...) {
    close_now(std::current_exception());
  }
}

void Impl::rethrow_write_state() const {
  if (error) std::rethrow_exception(error);
  if (closed) throw StreamClosed(cause);
}

// ----------------------------------------------------------------------- BufferedStream

void BufferedStream::write(Bytes data) {
  if (data.size() <= kCoalesceMax) {
    write(data.view());  // copied into the tail chunk
    return;
  }
  Impl& s = *impl_;
  const std::size_t n = data.size();
  s.check_writable(n);
  detail::WriteChunk c;
  c.bytes = std::move(data);  // queued as its own chunk, not copied
  s.push_chunk(std::move(c));
  s.after_enqueue(n);
}

void BufferedStream::write(std::string_view data) {
  if (data.size() > kCoalesceMax) {
    write(Bytes(data));  // large: one owned chunk
    return;
  }
  Impl& s = *impl_;
  const std::size_t n = data.size();
  s.check_writable(n);
  if (n == 0) return;
  s.append_small(data.data(), n);
  s.after_enqueue(n);
}

void BufferedStream::write_gather(std::span<const std::string_view> pieces) {
  Impl& s = *impl_;
  std::size_t n = 0;
  for (const std::string_view& p : pieces) n += p.size();
  s.check_writable(n);
  if (n == 0) return;
  if (n <= kCoalesceMax) {
    Buffer& tail = s.tail_for(n);
    std::uint8_t* out = tail.begin_write();
    for (const std::string_view& p : pieces) {
      copy_piece(out, p.data(), p.size());
      out += p.size();
    }
    tail.has_written(n);
  } else {
    s.push_joined(pieces, n);
  }
  s.after_enqueue(n);
}

void BufferedStream::write(Buffer&& data) {
  Impl& s = *impl_;
  const std::size_t n = data.readable_bytes();
  s.check_writable(n);
  if (n == 0) return;
  if (n <= kCoalesceMax) {
    s.append_small(data.peek(), n);
    data.retrieve_all();
  } else {
    detail::WriteChunk c;
    c.is_buffer = true;
    c.buffer = std::move(data);
    s.push_chunk(std::move(c));
  }
  s.after_enqueue(n);
}

void BufferedStream::write(std::shared_ptr<const Bytes> data) {
  Impl& s = *impl_;
  if (!data) throw UsageError("BufferedStream::write: null shared bytes");
  const std::size_t n = data->size();
  s.check_writable(n);
  if (n == 0) return;
  if (n <= kCoalesceMax) {
    s.append_small(data->data(), n);
  } else {
    detail::WriteChunk c;
    c.shared = std::move(data);
    s.push_chunk(std::move(c));
  }
  s.after_enqueue(n);
}

Task<void> BufferedStream::drain() {
  Impl& s = *impl_;
  s.rethrow_write_state();
  if (s.queued > 0) s.start_flusher();  // flush now, not at the end of the turn
  while (s.paused && !s.closed) co_await s.drain_waiters.wait();
  s.rethrow_write_state();
}

void BufferedStream::write_now() noexcept {
  Impl& s = *impl_;
  if (s.queued == 0) return;
  s.disarm_flush();
  Impl::on_end_of_turn(&s);  // what the end of the iteration would have done, now (a no-op
                             // while the flusher runs or once the transport is closed)
}

Task<void> BufferedStream::flush() {
  Impl& s = *impl_;
  const std::uint64_t target = s.written_total;
  s.rethrow_write_state();
  if (s.queued > 0) s.start_flusher();
  while (s.flushed_total < target && !s.transport_closed) co_await s.flush_waiters.wait();
  if (s.flushed_total < target) s.rethrow_write_state();
}

void BufferedStream::write_eof() {
  Impl& s = *impl_;
  if (s.closed) throw StreamClosed(s.cause);
  if (s.eof_requested) return;
  s.eof_requested = true;
  if (s.queued == 0 && !s.flusher) {
    s.send_eof();
  } else {
    s.arm_flush();
  }
}

void BufferedStream::check_writable(std::size_t n) const { impl_->check_writable(n); }

std::size_t BufferedStream::write_buffer_size() const noexcept { return impl_->queued; }

void BufferedStream::set_write_buffer_limits(std::size_t high, std::size_t low) {
  Impl& s = *impl_;
  if (low == 0) low = high / 4;
  if (low > high) throw UsageError("set_write_buffer_limits: low water above high water");
  s.opts.write_high_water = high;
  s.opts.write_low_water = low;
  if (s.queued > high) {
    s.paused = true;
  } else if (s.paused && s.queued <= low) {
    s.paused = false;
    s.drain_waiters.wake_all();
  }
}

}  // namespace tether
