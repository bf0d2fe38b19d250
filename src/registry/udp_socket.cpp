#include "registry/udp_socket.hpp"

#include <sys/socket.h>

#include <cerrno>

#include "tether/base/error.hpp"
#include "tether/loop/time.hpp"
#include "tether/net/sockets.hpp"

namespace tether::registry::detail {

UdpSocket::UdpSocket(EventLoop& loop, const Address& local) : loop_(loop) {
  loop_.assert_in_loop_thread();
  fd_ = Fd(::socket(local.os_family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_) throw IoError(errno, "registry: UDP socket for " + local.to_string());
  int on = 1;
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (::bind(fd_.get(), local.sockaddr_ptr(), local.sockaddr_len()) < 0) {
    throw IoError(errno, "registry: bind UDP " + local.to_string());
  }
  watcher_ = std::make_unique<IoWatcher>(loop_, fd_.get());
  watcher_->set_handler([this](std::uint32_t) {
    if (on_readable_) {
      on_readable_();
    } else {
      watcher_->disable_reading();
      ready_.set();
    }
  });
}

UdpSocket::~UdpSocket() { watcher_.reset(); }  // off the loop before the Fd closes

void UdpSocket::set_broadcast(bool on) {
  int v = on ? 1 : 0;
  if (::setsockopt(fd_.get(), SOL_SOCKET, SO_BROADCAST, &v, sizeof v) < 0) {
    throw IoError(errno, "registry: SO_BROADCAST");
  }
}

bool UdpSocket::send_to(std::span<const std::uint8_t> data, const Address& to) {
  ssize_t n;
  do {
    n = ::sendto(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL, to.sockaddr_ptr(), to.sockaddr_len());
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    last_error_ = errno;
    return false;
  }
  return true;
}

std::optional<UdpSocket::Datagram> UdpSocket::try_receive(std::size_t max) {
  Datagram d;
  std::string buf(max, '\0');
  sockaddr_storage from{};
  socklen_t len = sizeof from;
  ssize_t n;
  do {
    // MSG_TRUNC: the real size of a datagram larger than the buffer (then cut).
    n = ::recvfrom(fd_.get(), buf.data(), buf.size(), MSG_TRUNC, reinterpret_cast<sockaddr*>(&from), &len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    last_error_ = errno;
    return std::nullopt;
  }
  d.size = static_cast<std::size_t>(n);
  buf.resize(std::min(d.size, max));
  d.data = Bytes(std::move(buf));
  d.from = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&from), len);
  return d;
}

Task<bool> UdpSocket::readable(Duration timeout) {
  ready_.clear();
  watcher_->enable_reading();
  bool ok = true;
  try {
    co_await with_timeout(timeout, ready_.wait());
  } catch (const Timeout&) {
    ok = false;
  }
  watcher_->disable_reading();
  co_return ok;
}

void UdpSocket::on_readable(UniqueFunction<void()> fn) {
  on_readable_ = std::move(fn);
  if (on_readable_) {
    watcher_->enable_reading();
  } else {
    watcher_->disable_reading();
  }
}

Address UdpSocket::local_address() const { return tether::local_address(fd_.get()); }

}  // namespace tether::registry::detail
