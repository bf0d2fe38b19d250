// The command-line literal parser (tools/literal.hpp), on arbitrary text:
//  * it never crashes, never recurses past its depth limit, and either fails with a column
//    inside the text (1 .. characters + 1) and a message, or returns a literal;
//  * a literal's repr parses back to a literal with the same repr, except where Python's own
//    repr of complex numbers is not a fixed point (signed zeros and NaN signs: eval('-0j') is
//    (-0-0j), whose repr evaluates to -0j; eval('-nanj') is (-0+nanj), which evaluates to nanj):
//    there, from the second repr on, each number is at a fixed point or in a 2-cycle, as in Python.

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
  if (!again)
    std::fprintf(stderr, "repr %s does not parse: %s\n", repr.c_str(), again.error().to_string().c_str());
  FUZZ_CHECK(again.has_value());
  const std::string repr2 = tether::tools::literal_repr(again.value());
  if (repr2 != repr) {
    FUZZ_CHECK(repr.find('j') != std::string::npos);  // only complex numbers may do this
    // From the second repr on, every element is at a fixed point or in a 2-cycle.
    auto third = tether::tools::parse_literal(repr2);
    FUZZ_CHECK(third.has_value());
    const std::string repr3 = tether::tools::literal_repr(third.value());
    auto fourth = tether::tools::parse_literal(repr3);
    FUZZ_CHECK(fourth.has_value());
    const std::string repr4 = tether::tools::literal_repr(fourth.value());
    if (repr4 != repr2)
      std::fprintf(stderr, "%s -> %s -> %s -> %s\n", repr.c_str(), repr2.c_str(), repr3.c_str(),
                   repr4.c_str());
    FUZZ_CHECK(repr4 == repr2);
  }
  return 0;
}
