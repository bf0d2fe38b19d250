// FrameDecoder (channel/frame.hpp) against the reference decoder: the input, after two option
// bytes and a chunk plan, is a byte stream appended to a Buffer in fuzzed chunks; after each
// chunk the decoder takes every whole frame (peek() + take_payload() + consume(), or peek()
// twice + the view + consume(), chosen per frame). Payloads, the point and kind of failure, bytes_needed() and
// what stays buffered must match the reference; what decodes must encode and decode back.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "frame_reference.hpp"
#include "fuzz_util.hpp"
#include "tether/base/buffer.hpp"
#include "tether/base/error.hpp"
#include "tether/base/log.hpp"
#include "tether/channel/frame.hpp"

namespace tf = tether::fuzz;

namespace {

/// Every frame that decodes must survive encode_frame -> peek unchanged (compressed or not).
void check_round_trip(const std::string& payload, const tether::ChannelOptions& opts) {
  tether::ChannelOptions big = opts;
  big.max_frame_size = std::size_t{64} << 20;
  big.max_payload_size = std::size_t{64} << 20;
  const tether::Bytes wire = tether::encode_frame(payload, opts);
  tether::Buffer b;
  b.append(wire.view());
  tether::FrameDecoder d(big);
  std::optional<tether::FrameView> f = d.peek(b);
  FUZZ_CHECK(f.has_value());
  FUZZ_CHECK(f->view() == payload);
  FUZZ_CHECK(f->wire_size == wire.size());
  FUZZ_CHECK(f->compressed() == (opts.compress && payload.size() > opts.compress_threshold));
  d.consume(b, *f);
  FUZZ_CHECK(b.empty());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tether::set_log_level(tether::LogLevel::kError);  // the non-strict trailer warning
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tf::Input in(data, size);
  // Large limits of 256 KiB rather than the 64 MiB defaults: a 4 KiB input inflates to ~4 MiB
  // at most, so it can still cross them; the paths are the same and runs stay fast.
  const tether::ChannelOptions opts = tf::options_from(in, std::size_t{256} << 10);
  const std::uint8_t plan_seed = in.u8();
  const std::uint8_t modes = in.u8();
  const std::string_view wire = in.rest();
  const tf::RefDecode ref = tf::ref_decode(wire, opts);

  tether::FrameDecoder dec(opts);
  tether::Buffer buf;
  std::size_t fed = 0;
  std::size_t got = 0;  // frames taken so far
  std::size_t taken_bytes = 0;
  bool failed = false;
  std::uint32_t plan = plan_seed;
  while (fed < wire.size() && !failed) {
    // Chunk sizes 1..64 from a small generator seeded by the input (plan_seed 0: all at once).
    std::size_t n = wire.size() - fed;
    if (plan_seed != 0) {
      plan = plan * 1103515245u + 12345u;
      n = std::min<std::size_t>(n, 1 + ((plan >> 16) % 64));
    }
    buf.append(wire.substr(fed, n));
    fed += n;
    for (;;) {
      const bool use_peek = ((modes >> (got % 8)) & 1) != 0;
      try {
        if (use_peek) {
          std::optional<tether::FrameView> v = dec.peek(buf);
          if (!v) break;
          FUZZ_CHECK(got < ref.payloads.size());
          FUZZ_CHECK(v->view() == ref.payloads[got]);
          // Peeking again sees the same frame.
          std::optional<tether::FrameView> again = dec.peek(buf);
          FUZZ_CHECK(again && again->wire_size == v->wire_size && again->view() == ref.payloads[got]);
          if (got % 2 == 0) {
            tether::Bytes p = dec.take_payload(*again);
            FUZZ_CHECK(p.view() == ref.payloads[got]);
          }
          taken_bytes += again->wire_size;
          dec.consume(buf, *again);
        } else {
          std::optional<tether::FrameView> f = dec.peek(buf);
          if (!f) break;
          FUZZ_CHECK(got < ref.payloads.size());
          tether::Bytes p = dec.take_payload(*f);
          FUZZ_CHECK(p.view() == ref.payloads[got]);
          taken_bytes += f->wire_size;
          dec.consume(buf, *f);
        }
        ++got;
        FUZZ_CHECK(buf.readable_bytes() == fed - taken_bytes);
      } catch (const tether::ProtocolError&) {
        // Refused: exactly where the reference refuses, with nothing consumed.
        FUZZ_CHECK(ref.end == tf::RefEnd::kProtocol);
        FUZZ_CHECK(got == ref.payloads.size());
        FUZZ_CHECK(buf.readable_bytes() == fed - taken_bytes);
        failed = true;
        break;
      }
    }
    if (!failed) {
      FUZZ_CHECK(dec.bytes_needed(buf) > buf.readable_bytes());
      if (buf.readable_bytes() < tether::kFrameHeaderSize)
        FUZZ_CHECK(dec.bytes_needed(buf) == tether::kFrameHeaderSize);
    }
  }
  FUZZ_CHECK(got == ref.payloads.size());
  FUZZ_CHECK(taken_bytes == ref.consumed);
  if (!failed) {
    FUZZ_CHECK(ref.end != tf::RefEnd::kProtocol);
    FUZZ_CHECK((ref.end == tf::RefEnd::kClean) == buf.empty());
  }

  // Round trips: the first few payloads up to 64 KiB, with the fuzzed options (compression
  // threshold 0 or 3000, compression on or off).
  for (std::size_t i = 0; i < ref.payloads.size() && i < 4; ++i) {
    if (ref.payloads[i].size() <= (std::size_t{64} << 10)) check_round_trip(ref.payloads[i], opts);
  }
  return 0;
}
