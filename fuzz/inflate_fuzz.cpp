// The zlib inflater with its output limit (channel/frame.hpp zlib_decompress, and the
// channel's reused detail::Inflater) against zlib driven directly: the same bytes must be
// accepted or refused alike, with the same output, whatever the limit; and zlib_compress at
// every level must decompress back.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "channel/zlib_codec.hpp"
#include "frame_reference.hpp"
#include "fuzz_util.hpp"
#include "tether/base/error.hpp"
#include "tether/channel/frame.hpp"

namespace tf = tether::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // One inflate stream for the whole run, as a Channel keeps one for its life: inflateReset
  // between streams must leave nothing behind from a failed one.
  static tether::detail::Inflater reused;
  static std::string reused_out;

  tf::Input in(data, size);
  const std::uint8_t a = in.u8();
  const std::uint8_t b = in.u8();
  // The limit: small (0..16383 bytes) or 256 KiB (which a 4 KiB input can exceed, as the 64 MiB
  // default needs a 64 KiB one: the same paths, faster runs).
  const std::size_t max_output =
      (a & 0x80) ? std::size_t{256} << 10 : (static_cast<std::size_t>(a & 0x3F) << 8) | b;
  const std::string_view body = in.rest();

  const std::optional<std::string> ref = tf::ref_inflate(body, max_output);
  try {
    const tether::Bytes out = tether::zlib_decompress(body, max_output);
    FUZZ_CHECK(ref.has_value());
    FUZZ_CHECK(out.view() == *ref);
  } catch (const tether::ProtocolError&) {
    FUZZ_CHECK(!ref.has_value());
  }
  try {
    reused.inflate_into(reinterpret_cast<const std::uint8_t*>(body.data()), body.size(), max_output,
                        reused_out);
    FUZZ_CHECK(ref.has_value());
    FUZZ_CHECK(reused_out == *ref);
  } catch (const tether::ProtocolError&) {
    FUZZ_CHECK(!ref.has_value());
  }

  // Compression round trip of the raw input at RPyC's level (a level that changes from run to
  // run would set up a new deflate stream every time, ~270 KiB: slow under ASan).
  const tether::Bytes packed = tether::zlib_compress(body, 1);
  const std::optional<std::string> back = tf::ref_inflate(packed.view(), body.size());
  FUZZ_CHECK(back.has_value() && *back == body);
  const tether::Bytes unpacked = tether::zlib_decompress(packed.view(), body.size());
  FUZZ_CHECK(unpacked.view() == body);
  return 0;
}
