#include "tether/channel/channel.hpp"

#include <exception>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "channel/zlib_codec.hpp"
#include "tether/base/endian.hpp"
#include "tether/base/error.hpp"
#include "tether/base/log.hpp"

namespace tether {
namespace {

constexpr std::size_t kMaxBody = std::numeric_limits<std::uint32_t>::max();
// A compressed frame's buffer is sized for the worst case; when the output is much smaller
// than that, copy it into a tight buffer rather than keep the slack queued.
constexpr std::size_t kShrinkSlack = 64 * 1024;
// Frames up to this size sent from a string_view are assembled on the stack.
constexpr std::size_t kSmallFrame = 1024;

void make_header(std::uint8_t (&h)[kFrameHeaderSize], std::size_t body, std::uint8_t flag) noexcept {
  store_be32(h, static_cast<std::uint32_t>(body));
  h[4] = flag;
}

}  // namespace

Channel::Channel(std::unique_ptr<BufferedStream> stream, ChannelOptions opts)
    : stream_(std::move(stream)), opts_(opts), decoder_(opts) {
  if (!stream_) throw UsageError("Channel: null stream");
}

Channel::~Channel() = default;

bool Channel::closed() const noexcept { return closed_ || stream_->closed(); }

void Channel::check_open() const {
  if (closed_) throw StreamClosed(error_);
}

void Channel::fail(const std::string& why) {
  if (closed_) return;
  error_ = why;
  closed_ = true;
  TETHER_LOG_DEBUG("channel: closing after protocol error: {}", why);
  // At once, dropping queued writes: nothing more may be read from or written to a
  // connection whose framing is lost.
  stream_->close(std::make_exception_ptr(ProtocolError(why)));
}

void Channel::close() {
  closed_ = true;
  stream_->close();
}

Task<void> Channel::drain() {
  check_open();
  co_await stream_->drain();
}

std::optional<Bytes> Channel::try_recv() {
  check_open();
  for (;;) {
    std::optional<Frame> frame;
    try {
      frame = decoder_.decode(stream_->buffer());
    } catch (const ProtocolError& e) {
      fail(e.what());
      throw;
    }
    if (!frame) return std::nullopt;
    ++stats_.frames_in;
    stats_.wire_bytes_in += frame->wire_size;
    stats_.payload_bytes_in += frame->payload.size();
    if (frame->compressed()) ++stats_.compressed_in;
    if (frame->payload.empty()) {
      ++stats_.empty_frames_in;
      continue;
    }
    return std::move(frame->payload);
  }
}

Task<Bytes> Channel::recv() {
  for (;;) {
    if (std::optional<Bytes> payload = try_recv()) co_return std::move(*payload);
    const std::size_t need = decoder_.bytes_needed(stream_->buffer());
    bool eof = false;
    try {
      co_await stream_->fill(need);
    } catch (const IncompleteRead&) {
      eof = true;
    }
    if (eof) {
      const std::size_t have = stream_->buffer().readable_bytes();
      if (have == 0) throw Disconnected("connection closed by peer");
      throw Disconnected(fmt::format(
          "connection closed by peer inside a frame (truncated frame: {} of {} bytes)", have,
          decoder_.bytes_needed(stream_->buffer())));
    }
  }
}

void Channel::send(std::string_view payload) {
  check_open();
  const std::size_t n = payload.size();
  if (n == 0) throw UsageError("Channel::send: empty payload (stock RPyC peers ignore empty frames)");
  if (opts_.compress && n > opts_.compress_threshold) {
    send_compressed(reinterpret_cast<const std::uint8_t*>(payload.data()), n);
    return;
  }
  if (n + kFrameOverhead <= kSmallFrame) {
    // The stream copies small writes into its tail chunk anyway: assemble the frame on the
    // stack and hand it over in one write, with no heap allocation here.
    char frame[kSmallFrame];
    std::uint8_t header[kFrameHeaderSize];
    make_header(header, n, 0);
    std::memcpy(frame, header, kFrameHeaderSize);
    std::memcpy(frame + kFrameHeaderSize, payload.data(), n);
    frame[kFrameHeaderSize + n] = static_cast<char>(kFrameTrailer);
    stream_->write(std::string_view(frame, n + kFrameOverhead));
    ++stats_.frames_out;
    stats_.payload_bytes_out += n;
    stats_.wire_bytes_out += kFrameOverhead + n;
    return;
  }
  Buffer buf;
  buf.ensure_writable(n + 1);  // room for the trailer; the head-room takes the header
  buf.append(payload);
  send_raw(std::move(buf));
}

void Channel::send(Buffer&& payload) {
  check_open();
  const std::size_t n = payload.readable_bytes();
  if (n == 0) throw UsageError("Channel::send: empty payload (stock RPyC peers ignore empty frames)");
  if (opts_.compress && n > opts_.compress_threshold) {
    Buffer consumed(std::move(payload));  // the caller's buffer is released either way
    send_compressed(consumed.peek(), n);
    return;
  }
  send_raw(std::move(payload));
}

void Channel::send_raw(Buffer&& payload) {
  const std::size_t n = payload.readable_bytes();
  if (n > kMaxBody) {
    throw LimitExceeded(fmt::format("frame body of {} bytes does not fit the u32 length field", n));
  }
  std::uint8_t header[kFrameHeaderSize];
  make_header(header, n, 0);
  const bool header_inline = payload.prependable_bytes() >= kFrameHeaderSize;
  const bool trailer_inline = payload.writable_bytes() >= 1;
  if (header_inline) payload.prepend(header, kFrameHeaderSize);
  if (trailer_inline) payload.append(&kFrameTrailer, 1);
  if (header_inline && trailer_inline) {
    stream_->write(std::move(payload));
  } else {
    // Pieces: nothing is copied, but a failure between them leaves half a frame queued.
    int queued = 0;
    try {
      if (!header_inline) {
        stream_->write(Bytes(header, kFrameHeaderSize));
        ++queued;
      }
      stream_->write(std::move(payload));
      ++queued;
      if (!trailer_inline) stream_->write(Bytes(&kFrameTrailer, 1));
    } catch (...) {
      if (queued > 0) fail("a frame was only partly queued: " + describe_current_exception());
      throw;
    }
  }
  ++stats_.frames_out;
  stats_.payload_bytes_out += n;
  stats_.wire_bytes_out += kFrameOverhead + n;
}

void Channel::send_compressed(const std::uint8_t* data, std::size_t n) {
  if (!deflater_) deflater_ = std::make_unique<detail::Deflater>(opts_.compress_level);
  const std::size_t bound = deflater_->bound(n);
  Buffer frame;
  frame.ensure_writable(bound + 1);  // fresh storage: the head-room is kCheapPrepend bytes
  const std::size_t body = deflater_->compress(data, n, frame.begin_write());
  if (body > kMaxBody) {
    throw LimitExceeded(fmt::format("frame body of {} bytes does not fit the u32 length field", body));
  }
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
