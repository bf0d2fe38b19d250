#pragma once
// Private: zlib streams kept alive between frames (deflateReset / inflateReset avoid the
// allocation and set-up of a fresh z_stream per frame). Only src/channel includes <zlib.h>.

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "tether/base/bytes.hpp"

namespace tether::detail {

/// One deflate stream producing zlib-format output (RFC 1950), byte-identical to Python's
/// zlib.compress(data, level) with the same zlib version. Not thread-safe.
class Deflater {
 public:
  explicit Deflater(int level);
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  ~Deflater();

  [[nodiscard]] int level() const noexcept { return level_; }
  /// Largest output compress() can produce for n input bytes.
  [[nodiscard]] std::size_t bound(std::size_t n) noexcept;
  /// Compresses in[0..n) into out, which has room for at least bound(n) bytes. Returns the
  /// number of bytes written.
  std::size_t compress(const std::uint8_t* in, std::size_t n, std::uint8_t* out);

 private:
  z_stream z_{};
  int level_;
};

/// One inflate stream for zlib-format input. Not thread-safe.
class Inflater {
 public:
  Inflater();
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  ~Inflater();

  /// Inflates one complete zlib stream of n bytes. Produces at most max_output bytes; its
  /// output allocations never exceed max_output (+1 for std::string's terminator). Throws
  /// ProtocolError when the input is corrupt or truncated, has bytes after its end, or would
  /// inflate past max_output.
  Bytes inflate(const std::uint8_t* in, std::size_t n, std::size_t max_output);
  /// The same into `out`, replacing its contents and reusing its capacity (no allocation when
  /// the payload fits it). On an exception `out` holds unspecified bytes.
  void inflate_into(const std::uint8_t* in, std::size_t n, std::size_t max_output, std::string& out);

 private:
  z_stream z_{};
};

}  // namespace tether::detail
