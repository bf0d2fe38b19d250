#include "tether/stream/fd_transport.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>

#include "tether/base/error.hpp"
#include "tether/loop/event_loop.hpp"

namespace tether {

namespace {

constexpr std::size_t kMaxIov = IOV_MAX;

bool is_disconnect_errno(int err) noexcept {
  switch (err) {
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
    case ESHUTDOWN:
    case ETIMEDOUT:
    case ECONNABORTED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETRESET: return true;
    default: return false;
  }
}

[[noreturn]] void throw_errno(int err, const char* op, int fd) {
  if (is_disconnect_errno(err)) {
    throw Disconnected(fmt::format("{} on fd {}: {}", op, fd, std::strerror(err)));
  }
  throw IoError(err, fmt::format("{} on fd {}", op, fd));
}

std::size_t total_size(std::span<const iovec> chunks) noexcept {
  std::size_t n = 0;
  for (const auto& c : chunks) n += c.iov_len;
  return n;
}

}  // namespace

void ignore_sigpipe() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO)) {
      struct sigaction ign {};
      ign.sa_handler = SIG_IGN;
      sigemptyset(&ign.sa_mask);
      ::sigaction(SIGPIPE, &ign, nullptr);
    }
  });
}

FdTransport::FdTransport(EventLoop& loop, Fd fd, std::string peer_name)
    : FdTransport(loop, std::move(fd), Fd{}, std::move(peer_name)) {}

FdTransport::FdTransport(EventLoop& loop, Fd read_fd, Fd write_fd, std::string peer_name)
    : loop_(&loop),
      read_fd_(std::move(read_fd)),
      write_fd_(std::move(write_fd)),
      read_slot_(loop),
      write_slot_(loop),
      peer_name_(std::move(peer_name)) {
  loop.assert_in_loop_thread();
  if (!read_fd_.valid() && write_fd_.valid()) {
    // A write-only transport: keep the one descriptor in read_fd_ as the "single fd".
    read_fd_ = std::move(write_fd_);
    can_read_ = false;
  }
  if (!read_fd_.valid()) throw UsageError("FdTransport needs at least one valid fd");
  const bool separate = write_fd_.valid();
  for (int f : {read_fd_.get(), separate ? write_fd_.get() : -1}) {
    if (f >= 0 && !set_nonblocking(f)) throw IoError(errno, "set_nonblocking");
  }
  struct stat st {};
  if (::fstat(read_fd_.get(), &st) == 0) is_socket_ = S_ISSOCK(st.st_mode);
  if (!separate && !is_socket_) {
    const int fl = ::fcntl(read_fd_.get(), F_GETFL);
    if (fl >= 0) {
      if ((fl & O_ACCMODE) == O_RDONLY) can_write_ = false;
      if ((fl & O_ACCMODE) == O_WRONLY) can_read_ = false;
    }
  }
  if (!is_socket_ && can_write_) ignore_sigpipe();
  register_fds();
}

FdTransport::~FdTransport() {
  // Quiet close: waiters are not woken (they must not outlive the transport).
  closed_ = true;
  read_watcher_.reset();
  write_watcher_.reset();
}

void FdTransport::register_fds() {
  read_watcher_.emplace(*loop_, read_fd_.get(), IoWatcher::Mode::kEdge);
  if (write_fd_.valid()) {
    read_watcher_->set_handler([this](std::uint32_t ev) { on_events(ev, true, false); });
    read_watcher_->enable_reading();
    write_watcher_.emplace(*loop_, write_fd_.get(), IoWatcher::Mode::kEdge);
    write_watcher_->set_handler([this](std::uint32_t ev) { on_events(ev, false, true); });
    write_watcher_->enable_writing();
    return;
  }
  read_watcher_->set_handler([this](std::uint32_t ev) { on_events(ev, can_read_, can_write_); });
  if (can_read_ && can_write_) {
    read_watcher_->enable_all();
  } else if (can_read_) {
    read_watcher_->enable_reading();
  } else {
    read_watcher_->enable_writing();
  }
}

void FdTransport::on_events(std::uint32_t events, bool read_side, bool write_side) noexcept {
  if (events & (kIoHangup | kIoError)) hangup_ = true;
  if (read_side && (events & (kIoReadable | kIoError | kIoHangup))) {
    readable_ = true;
    read_slot_.notify();
  }
  if (write_side && (events & (kIoWritable | kIoError | kIoHangup))) {
    writable_ = true;
    write_slot_.notify();
  }
}

int FdTransport::fd() const noexcept { return closed_ ? -1 : read_fd_.get(); }

int FdTransport::write_fd() const noexcept {
  if (closed_ || write_shut_ || !can_write_) return -1;
  return wfd();
}

std::size_t FdTransport::try_read(Buffer& buf, std::size_t max_bytes) {
  if (max_bytes == 0) throw UsageError("FdTransport::read with max_bytes 0");
  if (closed_) throw StreamClosed("transport closed");
  if (!can_read_) throw StreamClosed("transport has no read side");
  while (readable_) {
    int err = 0;
    const ssize_t n = buf.read_from_fd(rfd(), &err, max_bytes);
    if (n > 0) {
      // A short read proves the kernel buffer was empty: skip the EAGAIN round trip. Not
      // after a hang-up or error was reported: that edge has passed, and the next read must
      // still see the EOF or the error.
      // read_from_fd offers at least min(max_bytes, kSpillSize) bytes of room, so only a read
      // below that is known to be short.
      const std::size_t surely_offered = std::min(max_bytes, Buffer::kSpillSize);
      if (static_cast<std::size_t>(n) < surely_offered && !hangup_) readable_ = false;
      return static_cast<std::size_t>(n);
    }
    if (n == 0) return 0;
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) throw_errno(err, "read", rfd());
    readable_ = false;
  }
  return kWouldBlock;
}

Task<std::size_t> FdTransport::read(Buffer& buf, std::size_t max_bytes) {
  for (;;) {
    const std::size_t n = FdTransport::try_read(buf, max_bytes);
    if (n != kWouldBlock) co_return n;
    co_await read_slot_.wait();
  }
}

std::size_t FdTransport::try_write(std::span<const iovec> chunks) {
  if (closed_) throw StreamClosed("transport closed");
  if (write_shut_ || !can_write_) throw StreamClosed("transport write side is shut down");
  if (!writable_) return kWouldBlock;
  if (chunks.size() > kMaxIov) chunks = chunks.first(kMaxIov);
  const std::size_t total = total_size(chunks);
  if (total == 0) return 0;
  for (;;) {
    ssize_t n;
    if (is_socket_) {
      msghdr msg{};
      msg.msg_iov = const_cast<iovec*>(chunks.data());
      msg.msg_iovlen = chunks.size();
      n = ::sendmsg(wfd(), &msg, MSG_NOSIGNAL);
    } else {
      n = ::writev(wfd(), chunks.data(), static_cast<int>(chunks.size()));
    }
    if (n > 0) {
      // A short write proves the kernel buffer is full: wait for the next edge.
      if (static_cast<std::size_t>(n) < total) writable_ = false;
      return static_cast<std::size_t>(n);
    }
    const int err = (n < 0) ? errno : EAGAIN;
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) throw_errno(err, is_socket_ ? "sendmsg" : "writev", wfd());
    writable_ = false;
    return kWouldBlock;
  }
}

Task<std::size_t> FdTransport::write(std::span<const iovec> chunks) {
  if (chunks.size() > kMaxIov) chunks = chunks.first(kMaxIov);
  if (total_size(chunks) == 0) co_return 0;
  for (;;) {
    const std::size_t n = FdTransport::try_write(chunks);
    if (n != kWouldBlock) co_return n;
    co_await write_slot_.wait();
  }
}

Task<void> FdTransport::wait_readable() {
  while (!closed_ && !readable_) co_await read_slot_.wait();
  if (closed_) throw StreamClosed("transport closed");
}

Task<void> FdTransport::wait_writable() {
  while (!closed_ && !writable_) co_await write_slot_.wait();
  if (closed_) throw StreamClosed("transport closed");
}

void FdTransport::shutdown_write() {
  if (closed_ || write_shut_ || !can_write_) return;
  write_shut_ = true;
  if (write_fd_.valid()) {
    write_watcher_.reset();
    write_fd_.reset();
  } else if (is_socket_) {
    if (::shutdown(read_fd_.get(), SHUT_WR) < 0 && errno != ENOTCONN) {
      const int err = errno;
      throw IoError(err, fmt::format("shutdown(SHUT_WR) on fd {}", read_fd_.get()));
    }
  } else if (!can_read_) {
    close();  // a write-only pipe end: closing it is the EOF
    return;
  }
  write_slot_.notify();
}

void FdTransport::close() noexcept {
  if (closed_) return;
  closed_ = true;
  // Deregister before the descriptors close (IoWatcher's rule), then wake pending operations:
  // they resume from the ready queue and throw StreamClosed.
  read_watcher_.reset();
  write_watcher_.reset();
  read_fd_.reset();
  write_fd_.reset();
  read_slot_.notify();
  write_slot_.notify();
}

TransportPair make_socketpair_transports(EventLoop& loop) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
    throw IoError(errno, "socketpair");
  }
  Fd a(sv[0]);
  Fd b(sv[1]);
  return {std::make_unique<FdTransport>(loop, std::move(a), "socketpair"),
          std::make_unique<FdTransport>(loop, std::move(b), "socketpair")};
}

TransportPair make_pipe_transports(EventLoop& loop) {
  int p1[2];
  int p2[2];
  if (::pipe2(p1, O_NONBLOCK | O_CLOEXEC) < 0) throw IoError(errno, "pipe2");
  Fd p1r(p1[0]);
  Fd p1w(p1[1]);
  if (::pipe2(p2, O_NONBLOCK | O_CLOEXEC) < 0) throw IoError(errno, "pipe2");
  Fd p2r(p2[0]);
  Fd p2w(p2[1]);
  // first writes p1 and reads p2; second writes p2 and reads p1.
  return {std::make_unique<FdTransport>(loop, std::move(p2r), std::move(p1w), "pipe"),
          std::make_unique<FdTransport>(loop, std::move(p1r), std::move(p2w), "pipe")};
}

}  // namespace tether
