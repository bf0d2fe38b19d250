// The command-line literal parser (tools/literal.hpp), on arbitrary text:
//  * it never crashes, never recurses past its depth limit, and either fails with a column
//    inside the text (1 .. characters + 1) and a message, or returns a literal;
//  * a literal's repr parses back to a literal with the same repr (a fixed point: NaN payloads
//    and -0 inside complex sums are the only things repr does not keep, and they print alike).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "literal.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto lit = tether::tools::parse_literal(text);
  if (!lit) {
    std::size_t chars = 0;
    for (char c : text) {
      if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++chars;
    }
    FUZZ_CHECK(lit.error().column >= 1);
    FUZZ_CHECK(lit.error().column <= chars + 1);
    FUZZ_CHECK(!lit.error().message.empty());
    return 0;
  }
  const std::string repr = tether::tools::literal_repr(lit.value());
  auto again = tether::tools::parse_literal(repr);
  if (!again) std::fprintf(stderr, "repr %s does not parse: %s\n", repr.c_str(), again.error().to_string().c_str());
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(tether::tools::literal_repr(again.value()) == repr);
  return 0;
}
