#pragma once
// Private to src/brine: Python's repr() of a float.

#include <string>

namespace tether::brine::detail {

/// Python's float repr ('r' format): shortest round-trip digits, exponent form when the
/// decimal point position is ≤ -4 or > 16. `add_dot_0` appends ".0" to integral fixed-form
/// values (float repr does, complex components do not); `always_sign` prefixes '+' for
/// non-negative values (the imaginary part of a complex).
std::string float_repr(double d, bool add_dot_0, bool always_sign);

}  // namespace tether::brine::detail
