#include "tether/net/sockets.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "net/readiness.hpp"
#include "net/socket_ops.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/time.hpp"

namespace tether {

namespace detail {

Fd new_socket(int family) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw IoError(errno, "socket");
  return Fd(fd);
}

void set_flag(int fd, int level, int opt, bool on, const char* what) {
  int v = on ? 1 : 0;
  if (::setsockopt(fd, level, opt, &v, sizeof v) < 0) throw IoError(errno, what);
}

}  // namespace detail

bool apply_socket_options(int fd, const SocketOptions& o) noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return false;
  bool tcp = ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
  auto set = [fd](int level, int opt, int v) { return ::setsockopt(fd, level, opt, &v, sizeof v) == 0; };
  bool ok = true;
  if (tcp) {
    ok = ok && set(IPPROTO_TCP, TCP_NODELAY, o.tcp_nodelay ? 1 : 0);
    if (o.keepalive) {
      ok = ok && set(SOL_SOCKET, SO_KEEPALIVE, 1);
      if (o.keepalive_idle.count() > 0) ok = ok && set(IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(o.keepalive_idle.count()));
      if (o.keepalive_interval.count() > 0) {
        ok = ok && set(IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(o.keepalive_interval.count()));
      }
      if (o.keepalive_count > 0) ok = ok && set(IPPROTO_TCP, TCP_KEEPCNT, o.keepalive_count);
    }
  }
  if (o.send_buffer > 0) ok = ok && set(SOL_SOCKET, SO_SNDBUF, o.send_buffer);
  if (o.recv_buffer > 0) ok = ok && set(SOL_SOCKET, SO_RCVBUF, o.recv_buffer);
  return ok;
}

Address local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return {};
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

Address peer_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return {};
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

std::vector<Fd> bind_sockets(std::uint16_t port, const std::string& host, int backlog, bool reuse_port) {
  std::vector<Address> addrs = resolve_blocking(host, port, AddressFamily::kAny, /*passive=*/true);
  std::vector<Fd> out;
  std::uint16_t chosen = port;
  for (Address a : addrs) {
    if (chosen != 0) a = a.with_port(chosen);
    Fd fd = detail::new_socket(a.os_family());
    detail::set_flag(fd.get(), SOL_SOCKET, SO_REUSEADDR, true, "setsockopt(SO_REUSEADDR)");
    if (reuse_port) detail::set_flag(fd.get(), SOL_SOCKET, SO_REUSEPORT, true, "setsockopt(SO_REUSEPORT)");
    if (a.family() == Address::Family::kIPv6) {
      // One socket per family: keep the IPv6 one from also claiming the IPv4 port.
      detail::set_flag(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, true, "setsockopt(IPV6_V6ONLY)");
    }
    if (::bind(fd.get(), a.sockaddr_ptr(), a.sockaddr_len()) < 0) {
      throw IoError(errno, fmt::format("bind {}", a.to_string()));
    }
    if (::listen(fd.get(), backlog) < 0) throw IoError(errno, fmt::format("listen {}", a.to_string()));
    if (chosen == 0) chosen = local_address(fd.get()).port();
    out.push_back(std::move(fd));
  }
  return out;
}

Fd bind_unix_socket(const std::string& path, int backlog) {
  Address a = Address::unix_socket(path);
  if (!a.is_abstract()) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        throw IoError(EADDRINUSE, fmt::format("bind unix:{}: a file that is not a socket exists there", path));
      }
      // A socket file: live if something accepts on it, stale otherwise.
      Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!probe) throw IoError(errno, "socket");
      if (::connect(probe.get(), a.sockaddr_ptr(), a.sockaddr_len()) == 0) {
        throw IoError(EADDRINUSE, fmt::format("bind unix:{}: a server is already listening there", path));
      }
      if (errno == ECONNREFUSED || errno == ENOENT) {
        ::unlink(path.c_str());
      }
    }
  }
  Fd fd = detail::new_socket(AF_UNIX);
  if (::bind(fd.get(), a.sockaddr_ptr(), a.sockaddr_len()) < 0) {
    throw IoError(errno, fmt::format("bind {}", a.to_string()));
  }
  if (::listen(fd.get(), backlog) < 0) throw IoError(errno, fmt::format("listen {}", a.to_string()));
  return fd;
}

namespace {

// Waits until the in-progress connect on fd finishes; returns SO_ERROR.
Task<int> finish_connect(int fd) {
  detail::Readiness r(EventLoop::current_or_throw(), fd);
  r.clear(detail::Readiness::kWrite);
  co_await r.wait(detail::Readiness::kWrite);
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  co_return err;
}

}  // namespace

Task<Fd> connect_socket(Address addr, Duration timeout, SocketOptions opts) {
  if (addr.empty()) throw UsageError("connect_socket: empty address");
  Fd fd = detail::new_socket(addr.os_family());
  int err = 0;
  if (::connect(fd.get(), addr.sockaddr_ptr(), addr.sockaddr_len()) < 0) err = errno;
  if (err == EINPROGRESS || err == EAGAIN) {
    bool timed_out = false;
    if (timeout > Duration::zero()) {
      try {
        err = co_await with_timeout(timeout, finish_connect(fd.get()));
      } catch (const Timeout&) {
        timed_out = true;
      }
    } else {
      err = co_await finish_connect(fd.get());
    }
    if (timed_out) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
      throw Timeout(fmt::format("connect to {} timed out after {} ms", addr.to_string(), ms));
    }
  }
  if (err != 0) throw IoError(err, fmt::format("connect to {}", addr.to_string()));
  apply_socket_options(fd.get(), opts);
  co_return fd;
}

}  // namespace tether
