#pragma once
/// \file RPyC channel frames (wire spec §2) as pure functions: no stream, no loop.
///
///     offset  size  field
///     0       4     length      u32 big-endian: body bytes that follow (after compression)
///     4       1     flag        0 = body is the payload, non-zero = body is a zlib stream
///     5       len   body
///     5+len   1     trailer     0x0A
///
/// Senders compress (zlib format, level 1 by default) iff compression is on and the payload
/// is strictly longer than the threshold (3000 bytes), and write flag 0 or 1 only. Receivers
/// decompress whenever the flag is set, whatever the size. By default they also refuse a flag
/// other than 0 or 1 and a trailer other than 0x0A (ProtocolError): stock RPyC never sends
/// either, so such a frame means a desynchronised or foreign byte stream. With
/// `strict_framing = false` they accept what RPyC's own receiver accepts (any non-zero flag
/// means zlib, the trailer is dropped unchecked). Channel (channel.hpp) uses exactly this
/// code, so these functions are the single statement of the rules.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tether/base/buffer.hpp"
#include "tether/base/bytes.hpp"
#include "tether/base/export.hpp"

namespace tether {

/// Size of the frame header: u32 length + u8 flag.
inline constexpr std::size_t kFrameHeaderSize = 5;
/// The byte after every body ('\n'); RPyC writes it to flush line-buffered transports.
inline constexpr std::uint8_t kFrameTrailer = 0x0A;
/// Header + trailer.
inline constexpr std::size_t kFrameOverhead = kFrameHeaderSize + 1;

/// Framing parameters. A plain value; copy it freely.
struct ChannelOptions {
  /// Compress (zlib) payloads longer than compress_threshold. RPyC's default is on.
  bool compress = true;
  /// Payloads of exactly this many bytes are sent raw; one more byte and they are compressed.
  std::size_t compress_threshold = 3000;
  /// zlib level for outgoing frames (RPyC: 1). 0..9, or -1 for zlib's default.
  int compress_level = 1;
  /// Largest body (the u32 length field) accepted from the peer; larger -> ProtocolError
  /// as soon as the header arrives, before the body is buffered.
  std::size_t max_frame_size = std::size_t{64} << 20;
  /// Largest payload after decompression (zlib bombs); inflation stops at this many bytes
  /// and never allocates more than this for the output.
  std::size_t max_payload_size = std::size_t{64} << 20;
  /// Refuse (ProtocolError) a flag byte other than 0 or 1, checked as soon as the header
  /// arrives, and a trailer other than 0x0A. Every RPyC version sends exactly those. false:
  /// RPyC's receiver rules, any non-zero flag means zlib and the trailer is not checked
  /// (a different trailer is logged once).
  bool strict_framing = true;
};

/// One whole frame at the front of a buffer, looked at without consuming it
/// (FrameDecoder::peek). A view: `payload` points into the buffer (flag 0) or into storage the
/// decoder keeps (compressed frames), and is valid until the buffer is modified or the
/// decoder's next peek(), take_payload() or consume(), whichever comes first.
struct FrameView {
  std::span<const std::uint8_t> payload;  ///< the payload, decompressed if the flag was non-zero
  std::uint8_t flag = 0;                  ///< the flag byte as received
  std::size_t wire_size = 0;              ///< header + body + trailer bytes, to consume afterwards
  [[nodiscard]] bool compressed() const noexcept { return flag != 0; }
  [[nodiscard]] std::string_view view() const noexcept {
    return {reinterpret_cast<const char*>(payload.data()), payload.size()};
  }
};

/// Encodes one frame (header, possibly compressed body, trailer). Any payload size up to
/// 4 GiB - 1 after compression (LimitExceeded beyond); an empty payload gives an empty frame
/// (useful for tests; Channel::send refuses those). No thread or loop affinity.
[[nodiscard]] TETHER_API Bytes encode_frame(std::string_view payload, const ChannelOptions& opts = {});

/// Compresses `data` into a zlib stream (RFC 1950), as zlib.compress(data, level) does.
[[nodiscard]] TETHER_API Bytes zlib_compress(std::string_view data, int level = 1);

/// Inflates one complete zlib stream, producing at most `max_output` bytes and never
/// allocating more than that for the output. Throws ProtocolError on a corrupt, truncated or
/// over-long stream, and on bytes after the end of the stream.
[[nodiscard]] TETHER_API Bytes zlib_decompress(std::string_view data, std::size_t max_output);

namespace detail {
class Inflater;
}

/// Incremental frame parser over a Buffer that something else fills (a BufferedStream's read
/// buffer, or a test's). Keeps no bytes of the input: each call looks at the front of the
/// buffer and consumes exactly one whole frame or nothing. The only storage it keeps is the
/// output of the last compressed frame peek() inflated, reused by the next one (up to
/// kKeepInflated bytes of capacity between frames).
///
/// One way to take frames: peek() looks at the payload in place (no copy, no allocation for a
/// raw frame), consume() drops it; take_payload() in between makes it owning Bytes (a copy of
/// a raw payload; a compressed one's inflated storage moved out, not copied).
///
/// Not thread-safe; owned by one reader. Movable.
class TETHER_API FrameDecoder {
 public:
  explicit FrameDecoder(const ChannelOptions& opts = {});
  FrameDecoder(FrameDecoder&&) noexcept;
  FrameDecoder& operator=(FrameDecoder&&) noexcept;
  ~FrameDecoder();

  /// Looks at the whole frame at the front of `in` without consuming it: its payload in place
  /// (a span into `in`) when the flag is 0, or inflated into the decoder's own storage when it
  /// is set, and the wire size to consume afterwards. Returns nullopt when `in` does not hold
  /// a whole frame yet (see bytes_needed()). Empty payloads are returned like any other
  /// (Channel skips them).
  ///
  /// Throws ProtocolError, with `in` untouched, when the header announces a body longer than
  /// max_frame_size (checked as soon as the 5 header bytes are there), when a compressed
  /// body is not a valid zlib stream, or when it inflates past max_payload_size. After a
  /// ProtocolError the byte stream cannot be resynchronised: abandon the connection.
  /// With strict_framing (the default) a flag other than 0/1 (checked on the header alone)
  /// and a trailer other than 0x0A are ProtocolErrors too; without it they are accepted as
  /// RPyC accepts them, and a bad trailer is logged once. Peeking the same frame again is
  /// allowed (a compressed one is inflated again).
  std::optional<FrameView> peek(const Buffer& in);

  /// The payload of `frame` (the last peek() result, still unconsumed) as owning Bytes: a copy
  /// of a raw payload, or the inflated storage itself moved out for a compressed one (the
  /// view's payload is invalid afterwards; the next compressed frame allocates afresh).
  [[nodiscard]] Bytes take_payload(const FrameView& frame);

  /// Drops `frame` (the last peek() result) from the front of `in` (retrieves its wire_size
  /// bytes; nothing if `in` holds fewer) and frees the inflate storage if its capacity grew
  /// past kKeepInflated. The view is invalid afterwards.
  void consume(Buffer& in, const FrameView& frame) noexcept {
    in.retrieve(frame.wire_size <= in.readable_bytes() ? frame.wire_size : in.readable_bytes());
    if (inflated_.capacity() > kKeepInflated) release_inflated();
  }

  /// Inflate storage up to this capacity is kept between compressed frames (RPyC compresses
  /// payloads from 3001 bytes, so typical ones fit). Larger storage is freed by consume():
  /// keeping it would save one allocation against the cost of inflating that much, while
  /// every idle channel would hold it.
  static constexpr std::size_t kKeepInflated = std::size_t{16} << 10;

  /// How many readable bytes `in` must hold before peek() can return the next frame: 5
  /// while the header is incomplete, then the whole frame's size. Does not validate the
  /// header (peek() does); call peek() first.
  [[nodiscard]] std::size_t bytes_needed(const Buffer& in) const noexcept;

  [[nodiscard]] const ChannelOptions& options() const noexcept { return opts_; }

 private:
  void release_inflated() noexcept;

  ChannelOptions opts_;
  std::unique_ptr<detail::Inflater> inflater_;  // created on the first compressed frame
  std::string inflated_;                        // the last compressed frame's payload
  bool warned_trailer_ = false;
};

}  // namespace tether
