// The decoder behind `tether tap` (tools/tap_decoder.hpp) on arbitrary byte streams in both
// directions, fed in fuzzed chunks: it never crashes, and every line it prints is one
// non-empty line of bounded length, whatever the peers send.
//
// Input: [width] then repeated [direction][length][that many bytes].

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fuzz_util.hpp"
#include "tap_decoder.hpp"

namespace {

void check_lines(const std::vector<std::string>& lines, std::size_t width) {
  for (const auto& l : lines) {
    FUZZ_CHECK(!l.empty());
    FUZZ_CHECK(l.find('\n') == std::string::npos);
    FUZZ_CHECK(l.find('\r') == std::string::npos);
    // prefix (connection, direction, time) + message cut to width + sizes and latency
    FUZZ_CHECK(l.size() <= width + 160);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tether::fuzz::Input in(data, size);
  const std::size_t width = 20 + in.u8();
  auto times = std::make_shared<tether::tools::TapTimes>();
  tether::tools::TapDecoder c2s(1, 0, width, times);
  tether::tools::TapDecoder s2c(1, 1, width, times);
  while (in.remaining() > 0) {
    tether::tools::TapDecoder& dec = (in.u8() & 1) ? s2c : c2s;
    const std::string_view chunk = in.bytes(in.u8());
    check_lines(dec.feed(chunk), width);
  }
  check_lines(c2s.finish(), width);
  check_lines(s2c.finish(), width);
  return 0;
}
