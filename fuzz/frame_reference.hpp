#pragma once
// A reference decoder for RPyC frames (wire spec §2), written apart from the library's
// FrameDecoder and straight on zlib, against which the frame and channel targets compare.

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tether/channel/frame.hpp"

namespace tether::fuzz {

/// Inflates one complete zlib stream into at most `max_output` bytes; nullopt when the stream is
/// corrupt, truncated, followed by more bytes, or longer than max_output (Python's
/// zlib.decompress rules plus the cap).
inline std::optional<std::string> ref_inflate(std::string_view in, std::size_t max_output) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return std::nullopt;
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char chunk[16384];
  int ret = Z_OK;
  bool ok = true;
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof chunk;
    ret = inflate(&z, Z_NO_FLUSH);
    out.append(chunk, sizeof chunk - z.avail_out);
    if (out.size() > max_output) {
      ok = false;
      break;
    }
    if (ret == Z_STREAM_END) break;
    if (ret != Z_OK) {  // Z_BUF_ERROR: no progress possible (truncated); others: corrupt
      ok = false;
      break;
    }
  }
  const bool trailing = z.avail_in != 0;
  inflateEnd(&z);
  if (!ok || trailing) return std::nullopt;
  return out;
}

/// How the byte stream ends after the last whole frame.
enum class RefEnd {
  kClean,      ///< exactly at a frame boundary
  kTruncated,  ///< inside a frame whose header is acceptable (more bytes would be needed)
  kProtocol,   ///< at a frame the decoder must refuse
};

struct RefDecode {
  std::vector<std::string> payloads;  ///< every whole frame's payload, empty ones included
  RefEnd end = RefEnd::kClean;
  std::size_t consumed = 0;  ///< bytes of the whole frames
};

inline std::uint32_t ref_be32(const std::string_view w, std::size_t at) {
  return (static_cast<std::uint32_t>(static_cast<std::uint8_t>(w[at])) << 24) |
         (static_cast<std::uint32_t>(static_cast<std::uint8_t>(w[at + 1])) << 16) |
         (static_cast<std::uint32_t>(static_cast<std::uint8_t>(w[at + 2])) << 8) |
         static_cast<std::uint32_t>(static_cast<std::uint8_t>(w[at + 3]));
}

/// Decodes the whole byte stream `w` as a receiver with `opts` must.
inline RefDecode ref_decode(std::string_view w, const ChannelOptions& opts) {
  RefDecode r;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t rem = w.size() - pos;
    if (rem < 5) {
      r.end = rem == 0 ? RefEnd::kClean : RefEnd::kTruncated;
      break;
    }
    const std::size_t len = ref_be32(w, pos);
    const auto flag = static_cast<std::uint8_t>(w[pos + 4]);
    if (len > opts.max_frame_size || (opts.strict_framing && flag > 1)) {
      r.end = RefEnd::kProtocol;
      break;
    }
    if (rem < len + 6) {
      r.end = RefEnd::kTruncated;
      break;
    }
    if (opts.strict_framing && static_cast<std::uint8_t>(w[pos + 5 + len]) != 0x0A) {
      r.end = RefEnd::kProtocol;
      break;
    }
    const std::string_view body = w.substr(pos + 5, len);
    std::optional<std::string> payload;
    if (flag != 0) {
      payload = ref_inflate(body, opts.max_payload_size);
    } else if (len <= opts.max_payload_size) {
      payload = std::string(body);
    }
    if (!payload) {
      r.end = RefEnd::kProtocol;
      break;
    }
    r.payloads.push_back(std::move(*payload));
    pos += len + 6;
  }
  r.consumed = pos;
  return r;
}

/// Frame options taken from two input bytes: strictness, and small limits (which make the limit
/// paths reachable with small inputs) or `large` ones (the defaults for the frame target; the
/// channel target passes less, because a stream reserves a frame's announced size before its
/// body arrives, which ASan makes costly when it is tens of MiB on every run).
template <class In>
ChannelOptions options_from(In& in, std::size_t large = std::size_t{64} << 20) {
  ChannelOptions o;
  o.max_frame_size = large;
  o.max_payload_size = large;
  const std::uint8_t a = in.u8();
  const std::uint8_t b = in.u8();
  o.strict_framing = (a & 1) == 0;
  if (a & 2) o.max_frame_size = static_cast<std::size_t>(b) * 16;
  if (a & 4) o.max_payload_size = static_cast<std::size_t>(b) * 64;
  o.compress = (a & 8) == 0;
  o.compress_threshold = (a & 16) ? 0 : 3000;
  return o;
}

}  // namespace tether::fuzz
