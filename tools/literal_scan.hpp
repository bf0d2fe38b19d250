#pragma once
/// \file Private pieces of the literal parser (literal.cpp): its failure type and the scanner of
/// str/bytes literals (literal_scan.cpp). Not part of the tool's interface.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tether::tools::detail {

/// A parse failure at byte offset `pos` of the text (parse_literal turns it into a LiteralError).
struct LiteralFailure {
  std::size_t pos;
  std::string message;
};

/// 0-15 for a hex digit (either case), 99 otherwise.
int digit_value(char c);

/// Appends code point `cp` (at most U+10FFFF) as UTF-8.
void append_utf8(std::string& out, std::uint32_t cp);

/// Scans one quoted literal whose opening quote is at text[pos] (after any prefix letters):
/// appends its value to `out` (bytes as raw bytes, str as UTF-8) and leaves `pos` after the
/// closing quote. Throws LiteralFailure (unterminated literal, bad escape, non-ASCII in bytes).
void scan_string(std::string_view text, std::size_t& pos, bool raw, bool bytes, std::string& out);

}  // namespace tether::tools::detail
