#pragma once
// A TCP relay on 127.0.0.1 that delays every byte by a fixed latency and re-chunks the stream:
// bytes that arrive within the same instant are merged, then written out in pieces of random
// size (1 byte to 1.5 KB, TCP_NODELAY), so frames reach the peer split at arbitrary points and
// several frames arrive in one read. Order is kept (TCP's guarantee); nothing is lost.
//
// Blocking sockets and plain threads: per connection and direction one reader (stamps each
// chunk with "now + latency") and one writer (waits for the stamp, merges what is due, writes it
// in random pieces). EOF is passed on as shutdown(SHUT_WR); an error closes both sides.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>

namespace tether::testing {

class DelayRelay {
 public:
  DelayRelay(std::uint16_t target_port, std::chrono::milliseconds latency, std::uint32_t seed = 1)
      : target_port_(target_port), latency_(latency), seed_(seed) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::runtime_error("relay: socket");
    sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ::close(listen_fd_);
      throw std::runtime_error("relay: bind/listen");
    }
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~DelayRelay() {
    stop_ = true;
    acceptor_.join();
    ::close(listen_fd_);
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& link : links_) link->stop();
    links_.clear();
  }
  DelayRelay(const DelayRelay&) = delete;
  DelayRelay& operator=(const DelayRelay&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

 private:
  using Clock = std::chrono::steady_clock;

  static sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
  }

  /// One direction: from `in` to `out`.
  struct Pump {
    int in = -1;
    int out = -1;
    std::chrono::milliseconds latency{0};
    std::mt19937 rng;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::pair<Clock::time_point, std::string>> queue;  // empty string: EOF
    bool failed = false;
    bool stopping = false;
    std::thread reader;
    std::thread writer;

    void read_loop() {
      char buf[4096];
      for (;;) {
        pollfd p{in, POLLIN, 0};
        const int r = ::poll(&p, 1, 50);
        if (stopped()) return;
        if (r <= 0) continue;
        const ssize_t n = ::recv(in, buf, sizeof buf, 0);
        std::lock_guard<std::mutex> lock(mu);
        if (n < 0) {
          failed = true;  // reset: the writer resets its side too
          queue.emplace_back(Clock::now(), std::string());
        } else {
          queue.emplace_back(Clock::now() + latency, std::string(buf, static_cast<std::size_t>(n)));
        }
        cv.notify_all();
        if (n <= 0) return;
      }
    }
    void write_loop() {
      std::uniform_int_distribution<std::size_t> piece(1, 1500);
      for (;;) {
        std::string out_bytes;
        bool eof = false;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return stopping || !queue.empty(); });
          if (stopping) return;
          const Clock::time_point due = queue.front().first;
          // Waiting for the due time is the latency being simulated, not synchronisation.
          if (cv.wait_until(lock, due, [&] { return stopping; })) return;
          const Clock::time_point now = Clock::now();
          while (!queue.empty() && queue.front().first <= now) {
            if (queue.front().second.empty()) {
              eof = true;
              queue.pop_front();
              break;
            }
            out_bytes += queue.front().second;
            queue.pop_front();
          }
        }
        std::size_t off = 0;
        while (off < out_bytes.size()) {
          const std::size_t n = std::min(piece(rng), out_bytes.size() - off);
          const ssize_t w = ::send(out, out_bytes.data() + off, n, MSG_NOSIGNAL);
          if (w <= 0) return;
          off += static_cast<std::size_t>(w);
        }
        if (eof) {
          bool reset = false;
          {
            std::lock_guard<std::mutex> lock(mu);
            reset = failed;
          }
          if (reset) {
            linger l{1, 0};
            ::setsockopt(out, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            ::shutdown(out, SHUT_RDWR);
          } else {
            ::shutdown(out, SHUT_WR);
          }
          return;
        }
      }
    }
    bool stopped() {
      std::lock_guard<std::mutex> lock(mu);
      return stopping;
    }
    void start() {
      reader = std::thread([this] { read_loop(); });
      writer = std::thread([this] { write_loop(); });
    }
    void stop() {
      {
        std::lock_guard<std::mutex> lock(mu);
        stopping = true;
        cv.notify_all();
      }
      if (reader.joinable()) reader.join();
      if (writer.joinable()) writer.join();
    }
  };

  struct Link {
    int client = -1;
    int server = -1;
    Pump up;    // client -> server
    Pump down;  // server -> client
    void stop() {
      up.stop();
      down.stop();
      ::close(client);
      ::close(server);
    }
  };

  void accept_loop() {
    std::uint32_t n = 0;
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a = loopback(target_port_);
      if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(c);
        if (s >= 0) ::close(s);
        continue;
      }
      const int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto link = std::make_unique<Link>();
      link->client = c;
      link->server = s;
      for (Pump* pump : {&link->up, &link->down}) {
        pump->latency = latency_;
        pump->rng.seed(seed_ + n++);
      }
      link->up.in = c;
      link->up.out = s;
      link->down.in = s;
      link->down.out = c;
      link->up.start();
      link->down.start();
      std::lock_guard<std::mutex> lock(mu_);
      links_.push_back(std::move(link));
    }
  }

  std::uint16_t target_port_;
  std::chrono::milliseconds latency_;
  std::uint32_t seed_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::list<std::unique_ptr<Link>> links_;
};

}  // namespace tether::testing
