#pragma once
// Private socket helpers shared by the net layer's sources.

#include "tether/base/fd.hpp"

namespace tether::detail {

/// A non-blocking, close-on-exec stream socket of `family`. Throws IoError.
Fd new_socket(int family);
/// setsockopt(level, opt, on); throws IoError(what) on failure.
void set_flag(int fd, int level, int opt, bool on, const char* what);

}  // namespace tether::detail
