#pragma once
/// \file Fd: the one type that closes file descriptors.

#include <utility>

#include "tether/base/export.hpp"

namespace tether {

/// Owns a file descriptor; closes it on destruction. Move-only. No loop affinity.
class TETHER_API Fd {
 public:
  Fd() noexcept = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  /// Gives up ownership without closing.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  /// Closes the held descriptor (if any) and takes `fd`.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

/// Sets O_NONBLOCK and FD_CLOEXEC on fd; returns false (errno set) on failure.
TETHER_API bool set_nonblocking(int fd) noexcept;

}  // namespace tether
