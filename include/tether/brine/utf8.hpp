#pragma once
/// \file Strict UTF-8 validation, as Python's "utf-8" codec applies it when brine decodes a
/// str: no overlong forms, no surrogates (U+D800–U+DFFF), nothing above U+10FFFF.

#include <cstddef>
#include <optional>
#include <string_view>

#include "tether/base/export.hpp"

namespace tether::brine {

/// Offset of the first byte that starts an invalid or truncated sequence; nullopt if `text`
/// is valid UTF-8. Linear time with an ASCII fast path.
TETHER_API std::optional<std::size_t> find_invalid_utf8(std::string_view text) noexcept;

inline bool is_valid_utf8(std::string_view text) noexcept { return !find_invalid_utf8(text).has_value(); }

}  // namespace tether::brine
