#pragma once
// Helpers shared by the fuzz targets: a reader that takes parameters from the front of the
// input, and a check that aborts (whatever NDEBUG says) with a message libFuzzer records.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

/// Fails the run (libFuzzer saves the input as a crash) when `cond` is false.
#define FUZZ_CHECK(cond)                                                  \
  do {                                                                    \
    if (!(cond)) ::tether::fuzz::check_failed(#cond, __FILE__, __LINE__); \
  } while (0)

namespace tether::fuzz {

[[noreturn]] inline void check_failed(const char* what, const char* file, int line) {
  std::fprintf(stderr, "fuzz check failed: %s at %s:%d\n", what, file, line);
  std::abort();
}

/// Takes parameters from the front of the fuzz input and leaves the rest as data. Past the end
/// every number is 0, so any input is a valid parameter set.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) noexcept : p_(data), end_(data + size) {}

  std::uint8_t u8() noexcept { return p_ != end_ ? *p_++ : 0; }
  std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  bool flag() noexcept { return (u8() & 1) != 0; }
  /// `n` bytes (fewer at the end of the input).
  std::string_view bytes(std::size_t n) noexcept {
    if (n > remaining()) n = remaining();
    std::string_view v(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return v;
  }
  /// Everything left.
  std::string_view rest() noexcept { return bytes(remaining()); }
  [[nodiscard]] std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

}  // namespace tether::fuzz
