#pragma once
// Helpers shared by the ratio benchmarks (stream_bench, net_bench, rpc_bench): loopback
// sockets for the raw baselines, blocking full reads/writes and their epoll (non-blocking,
// edge-triggered) counterparts, thread pinning and the median.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

namespace tether::bench {

/// Median of v (the mean of the two middle values for an even count; 0 when empty).
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/// Pins the calling thread to `cpu` (modulo the CPU count); does nothing on one CPU.
inline void pin_current_thread(int cpu) {
  const unsigned n = std::thread::hardware_concurrency();
  if (n < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<unsigned>(cpu) % n, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/// A listening TCP socket on 127.0.0.1 with a kernel-chosen port (written to *port).
/// `flags` are extra socket() type flags (e.g. SOCK_NONBLOCK). Returns -1 on failure.
inline int listen_loopback(std::uint16_t* port, int backlog, int flags = 0) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

/// A blocking TCP connection to 127.0.0.1:port (TCP_NODELAY on unless `nodelay` is false).
/// Returns -1 on failure (reported with perror).
inline int connect_loopback(std::uint16_t port, bool nodelay = true) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("connect");
    ::close(fd);
    return -1;
  }
  if (nodelay) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

/// Blocking read of exactly n bytes; false on EOF or error.
inline bool read_full(int fd, void* p, std::size_t n) {
  auto* c = static_cast<char*>(p);
  while (n) {
    ssize_t r = ::read(fd, c, n);
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

/// Blocking write of all n bytes; false on error.
inline bool write_full(int fd, const void* p, std::size_t n) {
  auto* c = static_cast<const char*>(p);
  while (n) {
    ssize_t r = ::write(fd, c, n);
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

/// An epoll instance watching `fd` edge-triggered for input, output and peer hang-up (the raw
/// epoll baselines: what an event loop does, with nothing else in the way).
inline int make_epoll(int fd) {
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP;
  ev.data.fd = fd;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  return ep;
}

/// Busy polling (--busy-poll-us): how long the raw epoll baselines spin on non-blocking polls
/// before they block, and what the benchmarks give EventLoop::set_busy_poll for tether's loops.
/// Zero, the default, waits in epoll_wait at once.
inline std::chrono::nanoseconds g_busy_poll{0};

/// Waits for an event on `ep`: first non-blocking polls for up to g_busy_poll, then blocking.
inline void epoll_wait_one(int ep) {
  epoll_event ev;
  if (g_busy_poll.count() > 0) {
    const auto until = std::chrono::steady_clock::now() + g_busy_poll;
    do {
      if (::epoll_wait(ep, &ev, 1, 0) > 0) return;
    } while (std::chrono::steady_clock::now() < until);
  }
  while (::epoll_wait(ep, &ev, 1, -1) < 0 && errno == EINTR) {
  }
}

/// Reads exactly n bytes from a non-blocking fd, waiting in epoll (`ep`, from make_epoll) when
/// it is empty; false on EOF or error.
inline bool epoll_read_exact(int ep, int fd, void* p, std::size_t n) {
  auto* buf = static_cast<char*>(p);
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, buf + got, n - got);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
      continue;
    }
    if (r == 0 || errno != EAGAIN) return false;
    epoll_wait_one(ep);
  }
  return true;
}

/// Writes all n bytes to a non-blocking fd, waiting in epoll when the kernel buffer is full;
/// false on error.
inline bool epoll_write_all(int ep, int fd, const void* p, std::size_t n) {
  auto* buf = static_cast<const char*>(p);
  std::size_t done = 0;
  while (done < n) {
    ssize_t r = ::send(fd, buf + done, n - done, MSG_NOSIGNAL);
    if (r > 0) {
      done += static_cast<std::size_t>(r);
      continue;
    }
    if (r < 0 && errno != EAGAIN) return false;
    epoll_wait_one(ep);
  }
  return true;
}

}  // namespace tether::bench
