#include "tether/base/fd.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace tether {

void Fd::reset(int fd) noexcept {
  if (fd_ >= 0 && fd_ != fd) ::close(fd_);
  fd_ = fd;
}

bool set_nonblocking(int fd) noexcept {
  int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return false;
  int fdflags = ::fcntl(fd, F_GETFD, 0);
  return fdflags >= 0 && ::fcntl(fd, F_SETFD, fdflags | FD_CLOEXEC) >= 0;
}

}  // namespace tether
