// net_bench: the net layer against raw baselines measured in the same run.
//
//  1. 64 connections ping-pong (64-byte messages) against an echo server on one loop thread:
//     StreamServer + BufferedStream vs a raw epoll echo server. The same raw epoll client
//     drives both, so the ratio isolates the server side. Runs alternate A, B, A, B, ...
//  2. Bulk one-way transfer through tether streams: TLS (TLS 1.3, AES-GCM) vs plain TCP.
//
//   bench_net_bench [seconds-per-run=2] [rounds=3] [bulk-MiB=512]
//
// Client and server run on different threads (the machine has 2 cores; pin with taskset for
// steadier numbers). Figures are medians over the rounds.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bench_util.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/net/connect.hpp"
#include "tether/net/sockets.hpp"
#include "tether/net/stream_server.hpp"

using namespace tether;
using Seconds = std::chrono::duration<double>;

namespace {

constexpr int kConns = 64;
constexpr std::size_t kMsg = 64;

using bench::median;

// ------------------------------------------------------------------ the raw epoll client

/// Drives kConns connections to 127.0.0.1:port, each doing send 64 / recv 64 in a loop, for
/// `seconds`. Returns round trips per second.
double raw_pingpong_client(std::uint16_t port, double seconds) {
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<int> fds;
  std::vector<std::size_t> got(kConns, 0);
  char msg[kMsg];
  std::memset(msg, 'p', sizeof msg);
  for (int i = 0; i < kConns; ++i) {
    int fd = bench::connect_loopback(port);
    if (fd < 0) std::abort();
    ::fcntl(fd, F_SETFL, O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<std::uint32_t>(i);
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    fds.push_back(fd);
  }
  for (int fd : fds) (void)!::send(fd, msg, kMsg, MSG_NOSIGNAL);
  std::uint64_t trips = 0;
  auto start = std::chrono::steady_clock::now();
  auto end = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(Seconds(seconds));
  epoll_event evs[kConns];
  char buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    int n = ::epoll_wait(ep, evs, kConns, 100);
    for (int k = 0; k < n; ++k) {
      std::uint32_t i = evs[k].data.u32;
      ssize_t r = ::recv(fds[i], buf, sizeof buf, 0);
      if (r <= 0) continue;
      got[i] += static_cast<std::size_t>(r);
      while (got[i] >= kMsg) {
        got[i] -= kMsg;
        ++trips;
        (void)!::send(fds[i], msg, kMsg, MSG_NOSIGNAL);
      }
    }
  }
  double elapsed = Seconds(std::chrono::steady_clock::now() - start).count();
  for (int fd : fds) ::close(fd);
  ::close(ep);
  return static_cast<double>(trips) / elapsed;
}

// ------------------------------------------------------------------ the raw epoll server

class RawEchoServer {
 public:
  RawEchoServer() {
    listen_fd_ = bench::listen_loopback(&port_, 1024, SOCK_NONBLOCK);
    if (listen_fd_ < 0) std::abort();
    int p[2];
    if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) std::abort();
    stop_read_ = p[0];
    stop_fd_ = p[1];
    thread_ = std::thread([this] { serve(); });
  }
  ~RawEchoServer() {
    std::uint64_t v = 1;
    (void)!::write(stop_fd_, &v, sizeof v);
    thread_.join();
    ::close(listen_fd_);
    ::close(stop_fd_);
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  void serve() {
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd_;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd_, &ev);
    ev.data.fd = stop_read_;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, stop_read_, &ev);
    std::vector<int> conns;
    char buf[65536];
    epoll_event evs[128];
    bool running = true;
    while (running) {
      int n = ::epoll_wait(ep, evs, 128, -1);
      for (int k = 0; k < n; ++k) {
        int fd = evs[k].data.fd;
        if (fd == stop_read_) {
          running = false;
        } else if (fd == listen_fd_) {
          int c;
          while ((c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
            int one = 1;
            ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            epoll_event cev{};
            cev.events = EPOLLIN;
            cev.data.fd = c;
            ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
            conns.push_back(c);
          }
        } else {
          ssize_t r = ::recv(fd, buf, sizeof buf, 0);
          if (r > 0) {
            (void)!::send(fd, buf, static_cast<std::size_t>(r), MSG_NOSIGNAL);
          } else if (r == 0) {
            ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
            ::close(fd);
            std::erase(conns, fd);
          }
        }
      }
    }
    for (int c : conns) ::close(c);
    ::close(ep);
    ::close(stop_read_);
  }

  int listen_fd_ = -1;
  int stop_fd_ = -1;
  int stop_read_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// ------------------------------------------------------------- tether servers on a thread

Task<void> echo_messages(std::unique_ptr<BufferedStream> s, Address) {
  while (true) {
    Bytes m = co_await s->read(64 << 10);
    if (m.empty()) break;
    s->write(std::move(m));
    co_await s->drain();
  }
}

std::atomic<std::uint64_t> g_sunk{0};

Task<void> sink(std::unique_ptr<BufferedStream> s, Address) {
  std::uint64_t n = 0;
  while (true) {
    Bytes m = co_await s->read(256 << 10);
    if (m.empty()) break;
    n += m.size();
  }
  g_sunk.fetch_add(n);
}

/// A StreamServer running on its own thread and loop (threads = 1: handlers on that loop).
class ServerThread {
 public:
  ServerThread(StreamServer::Handler handler, ServerOptions opts) {
    std::promise<std::uint16_t> port;
    auto f = port.get_future();
    thread_ = std::thread([this, h = std::move(handler), o = std::move(opts), p = &port]() mutable {
      EventLoop loop;
      loop_ = &loop;
      StreamServer server(std::move(h), std::move(o));
      server.listen(0, "127.0.0.1");
      p->set_value(server.ports()[0]);
      loop.run();
      server.close();
    });
    port_ = f.get();
  }
  ~ServerThread() {
    loop_->stop();
    thread_.join();
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  std::thread thread_;
  EventLoop* loop_ = nullptr;
  std::uint16_t port_ = 0;
};

// ---------------------------------------------------------------------- bulk through TLS

struct Certs {
  std::string dir, cert, key;
};

Certs make_self_signed() {
  Certs c;
  std::string tmpl = (std::filesystem::temp_directory_path() / "tether-bench-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) std::abort();
  c.dir = tmpl;
  c.cert = c.dir + "/cert.pem";
  c.key = c.dir + "/key.pem";
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_sign(x, key, EVP_sha256());
  FILE* f = std::fopen(c.cert.c_str(), "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen(c.key.c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(key);
  return c;
}

Task<void> send_bulk(std::uint16_t port, ConnectOptions opts, std::size_t total) {
  std::unique_ptr<BufferedStream> s = co_await open_connection("127.0.0.1", port, std::move(opts));
  const std::size_t chunk = 256 << 10;
  std::string block(chunk, 'b');
  for (std::size_t sent = 0; sent < total; sent += chunk) {
    s->write(std::string_view(block));
    co_await s->drain();
  }
  co_await s->flush();
  s->close();
  co_await s->wait_closed();
}

/// GB/s of one bulk transfer of `mib` MiB to a sink server (TLS when ctx is set).
double bulk_once(std::size_t mib, bool tls, const Certs& certs) {
  ServerOptions so;
  ConnectOptions co;
  if (tls) {
    TlsServerOptions t;
    t.cert_file = certs.cert;
    t.key_file = certs.key;
    so.tls = TlsContext::server(t);
    TlsClientOptions c;
    c.verify_peer = false;  // the bench measures the record layer, not PKI
    co.tls = TlsContext::client(c);
  }
  ServerThread server(sink, so);
  const std::size_t total = mib << 20;
  g_sunk = 0;
  EventLoop loop;
  auto start = std::chrono::steady_clock::now();
  loop.run_until_complete(send_bulk(server.port(), std::move(co), total));
  while (g_sunk.load() < total) std::this_thread::yield();  // the sink finishes reading
  double secs = Seconds(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(total) / secs / 1e9;
}

/// GB/s of the same transfer with plain blocking sockets (the raw baseline).
double raw_bulk_once(std::size_t mib) {
  std::uint16_t port = 0;
  int l = bench::listen_loopback(&port, 1);
  if (l < 0) std::abort();
  const std::size_t total = mib << 20;
  std::thread reader([l, total] {
    int c = ::accept(l, nullptr, nullptr);
    std::vector<char> buf(256 << 10);
    std::size_t got = 0;
    while (got < total) {
      ssize_t r = ::recv(c, buf.data(), buf.size(), 0);
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    ::close(c);
  });
  int fd = bench::connect_loopback(port, /*nodelay=*/false);
  if (fd < 0) std::abort();
  std::vector<char> block(256 << 10, 'b');
  auto start = std::chrono::steady_clock::now();
  for (std::size_t sent = 0; sent < total;) {
    ssize_t w = ::send(fd, block.data(), std::min(block.size(), total - sent), MSG_NOSIGNAL);
    if (w <= 0) break;
    sent += static_cast<std::size_t>(w);
  }
  reader.join();
  double secs = Seconds(std::chrono::steady_clock::now() - start).count();
  ::close(fd);
  ::close(l);
  return static_cast<double>(total) / secs / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
  std::size_t mib = argc > 3 ? static_cast<std::size_t>(std::atol(argv[3])) : 512;

  std::printf("== 64 connections, 64-byte ping-pong, server on one loop thread (%d rounds x %.1f s)\n", rounds,
              seconds);
  std::vector<double> raw, tether_rates, ratios;
  for (int r = 0; r < rounds; ++r) {
    double a, b;
    {
      RawEchoServer s;
      a = raw_pingpong_client(s.port(), seconds);
    }
    {
      ServerThread s(echo_messages, ServerOptions{});
      b = raw_pingpong_client(s.port(), seconds);
    }
    raw.push_back(a);
    tether_rates.push_back(b);
    ratios.push_back(b / a);
    std::printf("   round %d: raw epoll %.0f/s, StreamServer %.0f/s, ratio %.1f%%\n", r + 1, a, b, 100 * b / a);
  }
  std::printf("   median: raw epoll %.0f round trips/s, StreamServer %.0f/s, ratio %.1f%%\n", median(raw),
              median(tether_rates), 100 * median(ratios));

  Certs certs = make_self_signed();
  std::printf("== bulk %zu MiB one way through BufferedStream, 256 KiB writes (%d rounds)\n", mib, rounds);
  std::vector<double> rawv, plain, tls, tratios, pratios;
  for (int r = 0; r < rounds; ++r) {
    double w = raw_bulk_once(mib);
    double p = bulk_once(mib, false, certs);
    double t = bulk_once(mib, true, certs);
    rawv.push_back(w);
    plain.push_back(p);
    tls.push_back(t);
    pratios.push_back(p / w);
    tratios.push_back(t / p);
    std::printf("   round %d: raw sockets %.2f GB/s, tether TCP %.2f GB/s, tether TLS %.2f GB/s\n", r + 1, w, p, t);
  }
  std::printf("   median: raw %.2f GB/s, TCP %.2f GB/s (%.1f%% of raw), TLS %.2f GB/s (%.1f%% of TCP)\n",
              median(rawv), median(plain), 100 * median(pratios), median(tls), 100 * median(tratios));
  std::filesystem::remove_all(certs.dir);
  return 0;
}
