#include "tether/channel/channel.hpp"

#include <fmt/format.h>

#include <exception>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "channel/zlib_codec.hpp"
#include "tether/base/endian.hpp"
#include "tether/base/error.hpp"
#include "tether/base/log.hpp"

namespace tether {
namespace {

constexpr std::size_t kMaxBody = std::numeric_limits<std::uint32_t>::max();

void check_body_size(std::size_t n) {
  if (n > kMaxBody) {
    throw LimitExceeded(fmt::format("frame body of {} bytes does not fit the u32 length field", n));
  }
}

// A compressed frame's buffer is sized for the worst case; when the output is much smaller
// than that, copy it into a tight buffer rather than keep the slack queued.
constexpr std::size_t kShrinkSlack = 64 * 1024;

void make_header(std::uint8_t (&h)[kFrameHeaderSize], std::size_t body, std::uint8_t flag) noexcept {
  store_be32(h, static_cast<std::uint32_t>(body));
  h[4] = flag;
}

}  // namespace

Channel::Channel(std::unique_ptr<BufferedStream> stream, ChannelOptions opts)
    : stream_(std::move(stream)), in_(nullptr), opts_(opts), decoder_(opts) {
  if (!stream_) throw UsageError("Channel: null stream");
  in_ = &stream_->buffer();
}

Channel::~Channel() = default;

bool Channel::closed() const noexcept { return closed_ || stream_->closed(); }

void Channel::throw_closed() const { throw StreamClosed(error_); }

void Channel::fail(const std::string& why) {
  if (closed_) return;
  error_ = why;
  closed_ = true;
  peeked_.reset();
  TETHER_LOG_DEBUG("channel: closing after protocol error: {}", why);
  // At once, dropping queued writes: nothing more may be read from or written to a
  // connection whose framing is lost.
  stream_->close(std::make_exception_ptr(ProtocolError(why)));
}

void Channel::close() {
  closed_ = true;
  peeked_.reset();
  stream_->close();
}

Task<void> Channel::drain() {
  check_open();
  co_await stream_->drain();
}

bool Channel::peek_next() {
  check_open();
  Buffer& in = *in_;
  for (;;) {
    try {
      peeked_ = decoder_.peek(in);
    } catch (const ProtocolError& e) {
      fail(e.what());
      throw;
    }
    if (!peeked_) return false;
    ++stats_.frames_in;
    stats_.wire_bytes_in += peeked_->wire_size;
    stats_.payload_bytes_in += peeked_->payload.size();
    if (peeked_->compressed()) ++stats_.compressed_in;
    if (!peeked_->payload.empty()) return true;
    ++stats_.empty_frames_in;
    decoder_.consume(in, *peeked_);
  }
}

void Channel::repoint_peeked() noexcept {
  // Peeked and not consumed: a raw payload is re-pointed, in case a read compacted or grew the
  // stream's buffer since (an inflated one lives in the decoder and does not move).
  if (!peeked_->compressed()) {
    peeked_->payload = {in_->peek() + kFrameHeaderSize, peeked_->payload.size()};
  }
}

std::optional<std::span<const std::uint8_t>> Channel::peek() {
  if (peeked_) {
    repoint_peeked();  // the same frame again (peeked_ is cleared by every close)
  } else if (!peek_next()) {
    return std::nullopt;
  }
  return peeked_->payload;
}

void Channel::consume() noexcept {
  if (!peeked_) return;
  if (!closed_) decoder_.consume(*in_, *peeked_);
  peeked_.reset();
}

void Channel::throw_eof() {
  const std::size_t have = in_->readable_bytes();
  if (have == 0) throw Disconnected("connection closed by peer");
  throw Disconnected(fmt::format("connection closed by peer inside a frame (truncated frame: {} of {} bytes)",
                                 have, decoder_.bytes_needed(*in_)));
}

bool Channel::FrameWait::advance() {
  Channel& ch = *ch_;
  for (;;) {
    // Fewer bytes than a header (an empty buffer, typically, once the caller's own peek()
    // found nothing) hold no frame: straight to the transport.
    const bool may_hold_frame = ch.closed_ || ch.peeked_ || ch.in_->readable_bytes() >= kFrameHeaderSize;
    if (may_hold_frame && ch.peek()) return true;
    BufferedStream::FillPoll p;
    try {
      p = ch.stream_->try_fill(ch.decoder_.bytes_needed(*ch.in_));
    } catch (const IncompleteRead&) {
      eof_ = true;
      return true;
    }
    if (p == BufferedStream::FillPoll::kReady) continue;  // the header, or the whole frame
    slow_ = p == BufferedStream::FillPoll::kUnsupported;
    return false;
  }
}

bool Channel::FrameWait::await_ready() { return advance(); }

// For transports without try_read: the fill() loop as a task of its own.
Task<void> Channel::wait_task() {
  for (;;) {
    if (peek()) co_return;
    const std::size_t need = decoder_.bytes_needed(*in_);
    bool eof = false;
    try {
      co_await stream_->fill(need);
    } catch (const IncompleteRead&) {
      eof = true;
    }
    if (eof) throw_eof();
  }
}

std::coroutine_handle<> Channel::FrameWait::await_suspend(std::coroutine_handle<> h) {
  Channel& ch = *ch_;
  if (slow_) {
    fill_ = ch.wait_task();
    return fill_.await_suspend(h);  // starts it
  }
  readable_.emplace(*ch.stream_);
  if (!readable_->await_suspend(h)) return h;  // closed or at EOF meanwhile: the next try says
  return std::noop_coroutine();
}

void Channel::FrameWait::await_resume() {
  if (eof_) ch_->throw_eof();
  if (fill_.valid()) {
    fill_.await_resume();
  } else if (readable_) {
    readable_->await_resume();
    readable_.reset();
    advance();  // what arrived; rarely nothing yet (a spurious wake-up): the caller waits again
    if (eof_) ch_->throw_eof();
  }
}

// The helper over peek() / consume() / wait(): the payload copied out (or, compressed, its
// inflated storage moved out).
Task<Bytes> Channel::recv() {
  for (;;) {
    if (peek()) {
      Bytes payload = decoder_.take_payload(*peeked_);
      consume();
      co_return payload;
    }
    co_await wait();
  }
}

void Channel::send_copy(std::string_view payload) {
  const std::size_t n = payload.size();
  if (n == 0) throw UsageError("Channel::send: empty payload (stock RPyC peers ignore empty frames)");
  if (opts_.compress && n > opts_.compress_threshold) {
    send_compressed(reinterpret_cast<const std::uint8_t*>(payload.data()), n);
    return;
  }
  if (n + kFrameOverhead <= BufferedStream::kCoalesceLimit) {
    // The stream copies small writes into its tail chunk anyway: hand it the header, the
    // payload and the trailer in one gathered write, copied once, straight into that chunk.
    std::uint8_t header[kFrameHeaderSize];
    make_header(header, n, 0);
    const std::string_view pieces[] = {
        {reinterpret_cast<const char*>(header), kFrameHeaderSize},
        payload,
        {reinterpret_cast<const char*>(&kFrameTrailer), 1},
    };
    stream_->write_gather(pieces);
    count_raw_out(n);
    return;
  }
  Buffer buf;
  buf.ensure_writable(n + 1);  // room for the trailer; the head-room takes the header
  buf.append(payload);
  send_raw(std::move(buf));
}

void Channel::send_buffer(Buffer&& payload) {
  const std::size_t n = payload.readable_bytes();
  if (n == 0) throw UsageError("Channel::send: empty payload (stock RPyC peers ignore empty frames)");
  if (opts_.compress && n > opts_.compress_threshold) {
    Buffer consumed(std::move(payload));  // the caller's buffer is released either way
    send_compressed(consumed.peek(), n);
    return;
  }
  send_raw(std::move(payload));
}

void Channel::count_raw_out(std::size_t n) noexcept {
  ++stats_.frames_out;
  stats_.payload_bytes_out += n;
  stats_.wire_bytes_out += kFrameOverhead + n;
}

template <class Queue>
void Channel::queue_pieces(std::size_t wire_bytes, Queue&& queue) {
  stream_->check_writable(wire_bytes);                      // all or nothing for the stream's own reasons
  const std::size_t before = stream_->write_buffer_size();  // writes only add to it
  try {
    queue();
  } catch (...) {
    if (stream_->write_buffer_size() != before) {
      fail("a frame was only partly queued: " + describe_current_exception());
    }
    throw;
  }
}

void Channel::send_raw(Buffer&& payload) {
  const std::size_t n = payload.readable_bytes();
  check_body_size(n);
  std::uint8_t header[kFrameHeaderSize];
  make_header(header, n, 0);
  const bool header_inline = payload.prependable_bytes() >= kFrameHeaderSize;
  const bool trailer_inline = payload.writable_bytes() >= 1;
  if (header_inline) payload.prepend(header, kFrameHeaderSize);
  if (trailer_inline) payload.append(&kFrameTrailer, 1);
  if (header_inline && trailer_inline) {
    stream_->write(std::move(payload));
  } else {
    queue_pieces(kFrameOverhead + n, [&] {  // nothing copied
      if (!header_inline) stream_->write(Bytes(header, kFrameHeaderSize));
      stream_->write(std::move(payload));
      if (!trailer_inline) stream_->write(Bytes(&kFrameTrailer, 1));
    });
  }
  count_raw_out(n);
}

void Channel::send_spliced(Buffer&& head, std::size_t at, Bytes block) {
  const std::size_t h = head.readable_bytes();
  if (at > h) throw UsageError(fmt::format("Channel::send: splice at {} of a {}-byte head", at, h));
  const std::size_t n = h + block.size();
  if (block.empty() || (opts_.compress && n > opts_.compress_threshold)) {
    Buffer joined;
    joined.ensure_writable(n + 1);
    joined.append(head.peek(), at);
    joined.append(block.data(), block.size());
    joined.append(head.peek() + at, h - at);
    send_buffer(std::move(joined));
    return;
  }
  check_body_size(n);
  // What follows the block (a few closing tuple headers, say) and the trailer: one small
  // piece, copied (the stream coalesces it into its tail chunk).
  std::string after(reinterpret_cast<const char*>(head.peek()) + at, h - at);
  after.push_back(static_cast<char>(kFrameTrailer));
  head.unwrite(h - at);
  std::uint8_t header[kFrameHeaderSize];
  make_header(header, n, 0);
  const bool header_inline = head.prependable_bytes() >= kFrameHeaderSize;
  if (header_inline) head.prepend(header, kFrameHeaderSize);
  queue_pieces(kFrameOverhead + n, [&] {
    if (!header_inline) stream_->write(Bytes(header, kFrameHeaderSize));
    if (head.readable_bytes() > 0) stream_->write(std::move(head));
    stream_->write(std::move(block));
    stream_->write(std::string_view(after));
  });
  count_raw_out(n);
  ++stats_.spliced_out;
}

void Channel::send_compressed(const std::uint8_t* data, std::size_t n) {
  if (!deflater_) deflater_ = std::make_unique<detail::Deflater>(opts_.compress_level);
  const std::size_t bound = deflater_->bound(n);
  Buffer frame;
  frame.ensure_writable(bound + 1);  // fresh storage: the head-room is kCheapPrepend bytes
  const std::size_t body = deflater_->compress(data, n, frame.begin_write());
  check_body_size(body);
  frame.has_written(body);
  frame.append(&kFrameTrailer, 1);
  std::uint8_t header[kFrameHeaderSize];
  make_header(header, body, 1);
  frame.prepend(header, kFrameHeaderSize);
  if (frame.capacity() > 2 * frame.readable_bytes() + kShrinkSlack) frame.shrink_to_fit();
  stream_->write(std::move(frame));
  ++stats_.frames_out;
  ++stats_.compressed_out;
  stats_.payload_bytes_out += n;
  stats_.wire_bytes_out += kFrameOverhead + body;
}

}  // namespace tether
