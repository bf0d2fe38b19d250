#include "tether/channel/frame.hpp"

#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include <fmt/format.h>

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

void write_header(std::uint8_t* p, std::size_t body, std::uint8_t flag) noexcept {
  store_be32(p, static_cast<std::uint32_t>(body));
  p[4] = flag;
}

const std::uint8_t* bytes_of(std::string_view s) noexcept {
  return reinterpret_cast<const std::uint8_t*>(s.data());
}

/// One deflate stream per thread and level for the free functions: a fresh z_stream costs
/// ~270 KiB of allocation and set-up, more than compressing a few KiB.
detail::Deflater& thread_deflater(int level) {
  thread_local std::unique_ptr<detail::Deflater> cached;
  if (!cached || cached->level() != level) {
    auto fresh = std::make_unique<detail::Deflater>(level);  // throws before replacing
    cached = std::move(fresh);
  }
  return *cached;
}

}  // namespace

Bytes encode_frame(std::string_view payload, const ChannelOptions& opts) {
  const std::size_t n = payload.size();
  std::string out;
  if (opts.compress && n > opts.compress_threshold) {
    detail::Deflater& deflater = thread_deflater(opts.compress_level);
    const std::size_t bound = deflater.bound(n);
    out.resize(kFrameOverhead + bound);
    auto* p = reinterpret_cast<std::uint8_t*>(out.data());
    const std::size_t body = deflater.compress(bytes_of(payload), n, p + kFrameHeaderSize);
    check_body_size(body);
    write_header(p, body, 1);
    p[kFrameHeaderSize + body] = kFrameTrailer;
    out.resize(kFrameOverhead + body);
    return Bytes(std::move(out));
  }
  check_body_size(n);
  out.resize(kFrameOverhead + n);
  auto* p = reinterpret_cast<std::uint8_t*>(out.data());
  write_header(p, n, 0);
  if (n) std::memcpy(p + kFrameHeaderSize, payload.data(), n);
  p[kFrameHeaderSize + n] = kFrameTrailer;
  return Bytes(std::move(out));
}

Bytes zlib_compress(std::string_view data, int level) {
  detail::Deflater& deflater = thread_deflater(level);
  std::string out(deflater.bound(data.size()), '\0');
  const std::size_t n =
      deflater.compress(bytes_of(data), data.size(), reinterpret_cast<std::uint8_t*>(out.data()));
  out.resize(n);
  return Bytes(std::move(out));
}

Bytes zlib_decompress(std::string_view data, std::size_t max_output) {
  detail::Inflater inflater;
  return inflater.inflate(bytes_of(data), data.size(), max_output);
}

FrameDecoder::FrameDecoder(const ChannelOptions& opts) : opts_(opts) {}
FrameDecoder::FrameDecoder(FrameDecoder&&) noexcept = default;
FrameDecoder& FrameDecoder::operator=(FrameDecoder&&) noexcept = default;
FrameDecoder::~FrameDecoder() = default;

std::size_t FrameDecoder::bytes_needed(const Buffer& in) const noexcept {
  if (in.readable_bytes() < kFrameHeaderSize) return kFrameHeaderSize;
  return kFrameOverhead + load_be32(in.peek());
}

std::optional<FrameView> FrameDecoder::peek(const Buffer& in) {
  const std::size_t have = in.readable_bytes();
  if (have < kFrameHeaderSize) return std::nullopt;
  const std::uint8_t* p = in.peek();
  const std::size_t body = load_be32(p);
  const std::uint8_t flag = p[4];
  if (body > opts_.max_frame_size) {
    throw ProtocolError(fmt::format("frame body of {} bytes exceeds max_frame_size ({} bytes)",
                                    body, opts_.max_frame_size));
  }
  if (flag > 1 && opts_.strict_framing) {
    throw ProtocolError(fmt::format("frame flag is 0x{:02x}, not 0 (raw) or 1 (zlib)", flag));
  }
  const std::size_t total = kFrameOverhead + body;
  if (have < total) return std::nullopt;
  if (opts_.strict_framing && p[total - 1] != kFrameTrailer) {
    throw ProtocolError(fmt::format("frame trailer is 0x{:02x}, not 0x0a", p[total - 1]));
  }

  FrameView frame;
  frame.flag = flag;
  frame.wire_size = total;
  const std::uint8_t* data = p + kFrameHeaderSize;
  if (flag != 0) {
    if (!inflater_) inflater_ = std::make_unique<detail::Inflater>();
    try {
      inflater_->inflate_into(data, body, opts_.max_payload_size, inflated_);
    } catch (...) {
      release_inflated();  // a bomb stopped at the cap must not leave the cap allocated
      throw;
    }
    frame.payload = {reinterpret_cast<const std::uint8_t*>(inflated_.data()), inflated_.size()};
  } else {
    if (body > opts_.max_payload_size) {
      throw ProtocolError(fmt::format("frame payload of {} bytes exceeds max_payload_size ({} bytes)",
                                      body, opts_.max_payload_size));
    }
    frame.payload = {data, body};
  }
  const std::uint8_t trailer = data[body];
  if (trailer != kFrameTrailer && !warned_trailer_) {
    warned_trailer_ = true;
    TETHER_LOG_WARN("channel: frame trailer is 0x{:02x}, not 0x0a (accepted, as RPyC does)", trailer);
  }
  return frame;
}

Bytes FrameDecoder::take_payload(const FrameView& frame) {
  if (!frame.compressed()) return Bytes(frame.payload);
  std::string out;
  out.swap(inflated_);  // the storage itself, not a copy
  return Bytes(std::move(out));
}

void FrameDecoder::release_inflated() noexcept {
  std::string gone;
  gone.swap(inflated_);  // (assigning an empty string would keep the capacity)
}

}  // namespace tether
