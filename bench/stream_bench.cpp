// End-to-end stream benchmark: BufferedStream against raw sockets in the same run.
//
//   1. 64-byte ping-pong over one TCP loopback connection (127.0.0.1, kernel-chosen port):
//      raw epoll (edge-triggered, non-blocking) vs BufferedStream (client write + drain +
//      read_exactly; server read_exactly + write, with drain() or with the end-of-turn flush).
//   2. Bulk transfer (default 1 GiB) one way: raw blocking send/recv (one static chunk sent
//      again and again) vs BufferedStream (sender write(shared chunk) + drain(); receiver
//      fill() + buffer().retrieve_all(), or read()); also a sender that copies every chunk
//      into fresh Bytes (a producer's memcpy).
//   3. User-space memory per idle BufferedStream over socketpairs (mallinfo2), fresh and after
//      one exchange on every pair.
//   4. --only count-ping --calls N: N 64-byte ping-pongs over one socketpair on one loop (client
//      write + read_exactly, server read_exactly + write with the end-of-turn flush), a fixed
//      amount of work for callgrind: run it for two N and divide the difference in instructions
//      by the difference in calls.
//
// Candidates are interleaved (A, B, A, B, ...) and each ratio compares medians from the same
// run. With --pin, server and client threads are pinned to CPUs 0 and 1 (steadier on an idle
// machine; on a shared one a pinned thread waits behind whatever else runs on its CPU, so the
// default is unpinned). Options: --rounds N (5), --seconds S per ping-pong round (1.5),
// --bulk-mib M (1024), --chunk-kib K (1024), --streams N for the memory test (10000),
// --only VARIANT to run one candidate alone (raw-ping, ping, ping-noflush, raw-bulk, bulk,
// bulk-read, memory, count-ping) under strace, perf or callgrind, --calls N for count-ping.

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"
#include "tether/base/error.hpp"
#include "tether/base/fd.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/gather.hpp"
#include "tether/loop/task.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/fd_transport.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using tether::Bytes;
using tether::BufferedStream;
using tether::EventLoop;
using tether::Fd;
using tether::FdTransport;
using tether::Task;

struct Config {
  int rounds = 5;
  double seconds = 1.5;
  std::size_t bulk_bytes = std::size_t{1} << 30;
  std::size_t chunk = 1 << 20;
  int streams = 10000;
  bool pin = false;
  std::string only;  // run one variant (for strace/perf): raw-ping, ping, ping-noflush, raw-bulk, bulk, bulk-read
  long calls = 10000;  // for count-ping
};
Config g_cfg;

constexpr std::size_t kMsg = 64;

void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

void pin_to(int cpu) {
  if (g_cfg.pin) tether::bench::pin_current_thread(cpu);
}

/// A connected TCP loopback pair: {client, server}, blocking, TCP_NODELAY on.
std::pair<Fd, Fd> tcp_pair() {
  std::uint16_t port = 0;
  Fd lst(tether::bench::listen_loopback(&port, 1));
  if (!lst) die("listen");
  Fd cli(tether::bench::connect_loopback(port));
  if (!cli) die("connect");
  Fd srv(::accept4(lst.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!srv) die("accept");
  int one = 1;
  ::setsockopt(srv.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return {std::move(cli), std::move(srv)};
}

using tether::bench::median;

struct PingResult {
  double calls_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
  double cpu_us_per_call = 0;  // client + server thread CPU (user + system) per round trip
};

/// CPU time (user + system) of the calling thread, in microseconds.
double thread_cpu_us() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

PingResult summarize(std::vector<double>& lat_ns, double elapsed_s) {
  PingResult r;
  r.calls_per_s = static_cast<double>(lat_ns.size()) / elapsed_s;
  std::sort(lat_ns.begin(), lat_ns.end());
  if (!lat_ns.empty()) {
    r.p50_us = lat_ns[lat_ns.size() / 2] / 1000.0;
    r.p99_us = lat_ns[lat_ns.size() * 99 / 100] / 1000.0;
  }
  return r;
}

// ------------------------------------------------------------------------- raw epoll ping-pong

PingResult raw_pingpong() {
  auto [cli, srv] = tcp_pair();
  tether::set_nonblocking(cli.get());
  tether::set_nonblocking(srv.get());
  double server_cpu = 0;
  std::thread server([fd = srv.get(), &server_cpu] {
    pin_to(0);
    const double c0 = thread_cpu_us();
    int ep = tether::bench::make_epoll(fd);
    char buf[kMsg];
    while (tether::bench::epoll_read_exact(ep, fd, buf, kMsg) &&
           tether::bench::epoll_write_all(ep, fd, buf, kMsg)) {
    }
    ::close(ep);
    server_cpu = thread_cpu_us() - c0;
  });
  pin_to(1);
  const double c0 = thread_cpu_us();
  int ep = tether::bench::make_epoll(cli.get());
  char msg[kMsg];
  std::memset(msg, 'p', sizeof msg);
  char in[kMsg];
  std::vector<double> lat;
  lat.reserve(200000);
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration<double>(g_cfg.seconds);
  for (;;) {
    const auto t0 = Clock::now();
    if (t0 >= stop_at) break;
    if (!tether::bench::epoll_write_all(ep, cli.get(), msg, kMsg) ||
        !tether::bench::epoll_read_exact(ep, cli.get(), in, kMsg))
      die("raw ping");
    lat.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double client_cpu = thread_cpu_us() - c0;
  ::shutdown(cli.get(), SHUT_WR);
  server.join();
  ::close(ep);
  PingResult r = summarize(lat, elapsed);
  r.cpu_us_per_call = (client_cpu + server_cpu) / static_cast<double>(std::max<std::size_t>(1, lat.size()));
  return r;
}

// --------------------------------------------------------------------- tether ping-pong

Task<void> echo_server(BufferedStream& s, bool drain) {
  for (;;) {
    Bytes m;
    try {
      m = co_await s.read_exactly(kMsg);
    } catch (const tether::IncompleteRead&) {
      break;
    }
    s.write(std::move(m));
    if (drain) co_await s.drain();
  }
}

Task<void> ping_client(BufferedStream& s, std::vector<double>* lat, double* elapsed) {
  const Bytes msg = Bytes::filled(kMsg, 'p');
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration<double>(g_cfg.seconds);
  for (;;) {
    const auto t0 = Clock::now();
    if (t0 >= stop_at) break;
    s.write(msg.view());
    co_await s.drain();
    Bytes r = co_await s.read_exactly(kMsg);
    if (r.size() != kMsg) die("short pong");
    lat->push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
  }
  *elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  s.write_eof();
  co_await s.flush();
}

PingResult tether_pingpong(bool server_drains) {
  auto [cli, srv] = tcp_pair();
  double server_cpu = 0;
  std::thread server([fd = srv.release(), server_drains, &server_cpu]() mutable {
    pin_to(0);
    const double c0 = thread_cpu_us();
    {
      EventLoop loop;
      BufferedStream s(std::make_unique<FdTransport>(loop, Fd(fd), "srv"));
      loop.run_until_complete(echo_server(s, server_drains));
    }
    server_cpu = thread_cpu_us() - c0;
  });
  pin_to(1);
  std::vector<double> lat;
  lat.reserve(200000);
  double elapsed = 0;
  const double c0 = thread_cpu_us();
  {
    EventLoop loop;
    BufferedStream s(std::make_unique<FdTransport>(loop, std::move(cli), "cli"));
    loop.run_until_complete(ping_client(s, &lat, &elapsed));
  }
  const double client_cpu = thread_cpu_us() - c0;
  server.join();
  PingResult r = summarize(lat, elapsed);
  r.cpu_us_per_call = (client_cpu + server_cpu) / static_cast<double>(std::max<std::size_t>(1, lat.size()));
  return r;
}

// ---------------------------------------------------------------------------------- bulk

struct BulkResult {
  double gbs = 0;
  double cpu_s_per_gib = 0;  // sender + receiver thread CPU per GiB
};

BulkResult bulk_result(double secs, double cpu_us) {
  BulkResult r;
  r.gbs = static_cast<double>(g_cfg.bulk_bytes) / secs / 1e9;
  r.cpu_s_per_gib = cpu_us / 1e6 / (static_cast<double>(g_cfg.bulk_bytes) / (1u << 30));
  return r;
}

BulkResult raw_bulk() {
  auto [cli, srv] = tcp_pair();
  std::atomic<std::size_t> received{0};
  double rx_cpu = 0;
  std::thread rx([fd = srv.get(), &received, &rx_cpu] {
    pin_to(0);
    const double c0 = thread_cpu_us();
    std::vector<char> buf(g_cfg.chunk);
    std::size_t total = 0;
    for (;;) {
      ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
      if (r <= 0) break;
      total += static_cast<std::size_t>(r);
    }
    received = total;
    rx_cpu = thread_cpu_us() - c0;
  });
  pin_to(1);
  std::vector<char> chunk(g_cfg.chunk, 'b');
  const double c0 = thread_cpu_us();
  const auto start = Clock::now();
  for (std::size_t sent = 0; sent < g_cfg.bulk_bytes;) {
    const std::size_t n = std::min(chunk.size(), g_cfg.bulk_bytes - sent);
    ssize_t w = ::send(cli.get(), chunk.data(), n, MSG_NOSIGNAL);
    if (w <= 0) die("raw send");
    sent += static_cast<std::size_t>(w);
  }
  ::shutdown(cli.get(), SHUT_WR);
  const double tx_cpu = thread_cpu_us() - c0;
  rx.join();
  const double s = std::chrono::duration<double>(Clock::now() - start).count();
  if (received != g_cfg.bulk_bytes) die("raw bulk: byte count");
  return bulk_result(s, tx_cpu + rx_cpu);
}

Task<void> bulk_sender(BufferedStream& s, bool copy) {
  // Like the raw sender, the same chunk goes out again and again: shared by reference (zero
  // copy), or (copy = true) as fresh owned Bytes per chunk, i.e. with the producer's memcpy.
  const auto src = std::make_shared<const Bytes>(Bytes::filled(g_cfg.chunk, 'b'));
  for (std::size_t sent = 0; sent < g_cfg.bulk_bytes;) {
    const std::size_t n = std::min(src->size(), g_cfg.bulk_bytes - sent);
    if (copy || n != src->size()) {
      s.write(Bytes(src->view().substr(0, n)));
    } else {
      s.write(src);
    }
    co_await s.drain();
    sent += n;
  }
  s.write_eof();
  co_await s.flush();
}

Task<void> bulk_receiver_fill(BufferedStream& s, std::size_t* total) {
  for (;;) {
    try {
      co_await s.fill(1);
    } catch (const tether::IncompleteRead&) {
      break;
    }
    *total += s.buffer().readable_bytes();
    s.buffer().retrieve_all();
  }
}

Task<void> bulk_receiver_read(BufferedStream& s, std::size_t* total) {
  for (;;) {
    Bytes b = co_await s.read(g_cfg.chunk);
    if (b.empty()) break;
    *total += b.size();
  }
}

BulkResult tether_bulk(bool zero_copy, bool copy_sender = false) {
  auto [cli, srv] = tcp_pair();
  std::size_t received = 0;
  double rx_cpu = 0;
  std::thread rx([fd = srv.release(), zero_copy, &received, &rx_cpu]() mutable {
    pin_to(0);
    const double c0 = thread_cpu_us();
    EventLoop loop;
    tether::StreamOptions o;
    o.read_chunk_size = g_cfg.chunk;
    BufferedStream s(std::make_unique<FdTransport>(loop, Fd(fd), "rx"), o);
    if (zero_copy) {
      loop.run_until_complete(bulk_receiver_fill(s, &received));
    } else {
      loop.run_until_complete(bulk_receiver_read(s, &received));
    }
    rx_cpu = thread_cpu_us() - c0;
  });
  pin_to(1);
  const double c0 = thread_cpu_us();
  const auto start = Clock::now();
  {
    EventLoop loop;
    BufferedStream s(std::make_unique<FdTransport>(loop, std::move(cli), "tx"));
    loop.run_until_complete(bulk_sender(s, copy_sender));
  }
  const double tx_cpu = thread_cpu_us() - c0;
  rx.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (received != g_cfg.bulk_bytes) die("tether bulk: byte count");
  return bulk_result(secs, tx_cpu + rx_cpu);
}

// --------------------------------------------------------------------------------- memory

Task<void> exchange_all(std::vector<std::unique_ptr<BufferedStream>>& streams) {
  for (std::size_t i = 0; i + 1 < streams.size(); i += 2) {
    streams[i]->write(std::string_view("ping"));
    co_await streams[i]->flush();
    Bytes got = co_await streams[i + 1]->read_exactly(4);
    if (got.size() != 4) die("memory exchange");
  }
}

void idle_memory() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  const rlim_t want = static_cast<rlim_t>(g_cfg.streams) + 64;
  if (rl.rlim_cur < want) {
    rl.rlim_cur = std::min(want, rl.rlim_max);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  const int pairs = static_cast<int>(std::min<rlim_t>(static_cast<rlim_t>(g_cfg.streams), rl.rlim_cur - 64) / 2);
  EventLoop loop;
  std::vector<tether::TransportPair> transports;
  transports.reserve(static_cast<std::size_t>(pairs));
  for (int i = 0; i < pairs; ++i) transports.push_back(tether::make_socketpair_transports(loop));
  std::vector<std::unique_ptr<BufferedStream>> streams;
  streams.reserve(2 * static_cast<std::size_t>(pairs));
  const std::size_t before = mallinfo2().uordblks;
  for (auto& t : transports) {
    streams.push_back(std::make_unique<BufferedStream>(std::move(t.first)));
    streams.push_back(std::make_unique<BufferedStream>(std::move(t.second)));
  }
  const std::size_t with_streams = mallinfo2().uordblks;
  loop.run_until_complete(exchange_all(streams));
  const std::size_t after_traffic = mallinfo2().uordblks;
  const double n = static_cast<double>(streams.size());
  std::printf(
      "idle memory: %zu BufferedStreams over socketpairs: %.0f bytes each, %.0f after one exchange "
      "(stream + FdTransport + watcher + wake cells, malloc overhead included); target <= 1024\n",
      streams.size(), static_cast<double>(with_streams - before) / n,
      static_cast<double>(after_traffic - before) / n);
}

// ----------------------------------------------------------------- fixed-count ping-pong

Task<void> count_server(BufferedStream& s, long calls) {
  for (long i = 0; i < calls; ++i) {
    Bytes m = co_await s.read_exactly(kMsg);
    s.write(std::move(m));  // leaves with the end-of-turn flush
  }
}

Task<void> count_client(BufferedStream& s, long calls) {
  const Bytes msg = Bytes::filled(kMsg, 'p');
  for (long i = 0; i < calls; ++i) {
    s.write(msg.view());
    Bytes r = co_await s.read_exactly(kMsg);
    if (r.size() != kMsg) die("short pong");
  }
}

void count_pingpong() {
  EventLoop loop;
  tether::TransportPair t = tether::make_socketpair_transports(loop);
  BufferedStream cli(std::move(t.first));
  BufferedStream srv(std::move(t.second));
  std::vector<Task<void>> both;
  both.push_back(count_server(srv, g_cfg.calls));
  both.push_back(count_client(cli, g_cfg.calls));
  loop.run_until_complete(tether::gather(std::move(both)));
  const tether::StreamStats a = cli.stats();
  const tether::StreamStats b = srv.stats();
  std::printf("count-ping: %ld calls; buffers reused %llu, allocated %llu (both streams)\n", g_cfg.calls,
              static_cast<unsigned long long>(a.buffers_reused + b.buffers_reused),
              static_cast<unsigned long long>(a.buffers_allocated + b.buffers_allocated));
}

void parse_args(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : "0"; };
    if (a == "--rounds") g_cfg.rounds = std::atoi(next());
    else if (a == "--seconds") g_cfg.seconds = std::atof(next());
    else if (a == "--bulk-mib") g_cfg.bulk_bytes = static_cast<std::size_t>(std::atol(next())) << 20;
    else if (a == "--chunk-kib") g_cfg.chunk = static_cast<std::size_t>(std::atol(next())) << 10;
    else if (a == "--streams") g_cfg.streams = std::atoi(next());
    else if (a == "--no-pin") g_cfg.pin = false;
    else if (a == "--pin") g_cfg.pin = true;
    else if (a == "--only") g_cfg.only = next();
    else if (a == "--calls")
      g_cfg.calls = std::atol(next());
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      std::exit(2);
    }
  }
}

}  // namespace

int run_only(const std::string& v) {
  if (v == "raw-ping" || v == "ping" || v == "ping-noflush") {
    PingResult r = v == "raw-ping" ? raw_pingpong() : tether_pingpong(v == "ping");
    std::printf("%s: %.0f calls/s p50 %.1f us p99 %.1f us, CPU %.2f us per call\n", v.c_str(), r.calls_per_s, r.p50_us,
                r.p99_us, r.cpu_us_per_call);
    return 0;
  }
  if (v == "raw-bulk" || v == "bulk" || v == "bulk-read" || v == "bulk-copy") {
    const BulkResult g = v == "raw-bulk" ? raw_bulk() : tether_bulk(v != "bulk-read", v == "bulk-copy");
    std::printf("%s: %.2f GB/s, CPU %.3f s per GiB\n", v.c_str(), g.gbs, g.cpu_s_per_gib);
    return 0;
  }
  if (v == "memory") {
    idle_memory();
    return 0;
  }
  if (v == "count-ping") {
    count_pingpong();
    return 0;
  }
  std::fprintf(stderr, "unknown variant %s\n", v.c_str());
  return 2;
}

int main(int argc, char** argv) {
  parse_args(argc, argv);
  if (!g_cfg.only.empty()) return run_only(g_cfg.only);
  std::printf("stream_bench: %d interleaved rounds, %.1f s ping-pong rounds, %zu MiB bulk in %zu KiB chunks, %s\n",
              g_cfg.rounds, g_cfg.seconds, g_cfg.bulk_bytes >> 20, g_cfg.chunk >> 10,
              g_cfg.pin ? "threads pinned to CPUs 0 (server) and 1 (client)" : "threads unpinned");

  // 1. ping-pong
  std::vector<double> raw_rate, t_rate, tn_rate, raw_p50, t_p50, tn_p50, raw_p99, t_p99, tn_p99, raw_cpu, t_cpu,
      tn_cpu;
  for (int r = 0; r < g_cfg.rounds; ++r) {
    PingResult a = raw_pingpong();
    PingResult b = tether_pingpong(true);
    PingResult c = tether_pingpong(false);
    raw_rate.push_back(a.calls_per_s);
    t_rate.push_back(b.calls_per_s);
    tn_rate.push_back(c.calls_per_s);
    raw_p50.push_back(a.p50_us);
    t_p50.push_back(b.p50_us);
    tn_p50.push_back(c.p50_us);
    raw_p99.push_back(a.p99_us);
    t_p99.push_back(b.p99_us);
    tn_p99.push_back(c.p99_us);
    raw_cpu.push_back(a.cpu_us_per_call);
    t_cpu.push_back(b.cpu_us_per_call);
    tn_cpu.push_back(c.cpu_us_per_call);
    std::printf("  round %d ping-pong: raw %.0f/s (p50 %.1f us, cpu %.2f us/call) | stream+drain %.0f/s (p50 %.1f us, "
                "cpu %.2f, %.1f%%) | stream end-of-turn flush %.0f/s (p50 %.1f us, cpu %.2f, %.1f%%)\n",
                r + 1, a.calls_per_s, a.p50_us, a.cpu_us_per_call, b.calls_per_s, b.p50_us, b.cpu_us_per_call,
                100 * b.calls_per_s / a.calls_per_s, c.calls_per_s, c.p50_us, c.cpu_us_per_call,
                100 * c.calls_per_s / a.calls_per_s);
  }
  std::printf("ping-pong 64 B, 1 TCP connection (medians): raw epoll %.0f calls/s p50 %.1f p99 %.1f us, "
              "CPU %.2f us per call (both threads)\n",
              median(raw_rate), median(raw_p50), median(raw_p99), median(raw_cpu));
  std::printf("  BufferedStream, server write+drain:       %.0f calls/s p50 %.1f p99 %.1f us CPU %.2f us  ratio %.1f%% "
              "(target >= 90%%)\n",
              median(t_rate), median(t_p50), median(t_p99), median(t_cpu), 100 * median(t_rate) / median(raw_rate));
  std::printf("  BufferedStream, server end-of-turn flush: %.0f calls/s p50 %.1f p99 %.1f us CPU %.2f us  ratio %.1f%%\n",
              median(tn_rate), median(tn_p50), median(tn_p99), median(tn_cpu), 100 * median(tn_rate) / median(raw_rate));

  // 2. bulk
  std::vector<double> raw_gbs, fill_gbs, read_gbs, copy_gbs, raw_c, fill_c, read_c, copy_c;
  const int bulk_rounds = std::max(1, g_cfg.rounds);
  for (int r = 0; r < bulk_rounds; ++r) {
    const BulkResult a = raw_bulk();
    const BulkResult b = tether_bulk(true);
    const BulkResult c = tether_bulk(false);
    const BulkResult d = tether_bulk(true, true);
    copy_gbs.push_back(d.gbs);
    copy_c.push_back(d.cpu_s_per_gib);
    raw_gbs.push_back(a.gbs);
    fill_gbs.push_back(b.gbs);
    read_gbs.push_back(c.gbs);
    raw_c.push_back(a.cpu_s_per_gib);
    fill_c.push_back(b.cpu_s_per_gib);
    read_c.push_back(c.cpu_s_per_gib);
    std::printf("  round %d bulk: raw %.2f GB/s (cpu %.3f s/GiB) | stream fill+retrieve %.2f GB/s (cpu %.3f, %.1f%%) | "
                "stream read() %.2f GB/s (cpu %.3f, %.1f%%) | copying sender %.2f GB/s (cpu %.3f, %.1f%%)\n",
                r + 1, a.gbs, a.cpu_s_per_gib, b.gbs, b.cpu_s_per_gib, 100 * b.gbs / a.gbs, c.gbs, c.cpu_s_per_gib,
                100 * c.gbs / a.gbs, d.gbs, d.cpu_s_per_gib, 100 * d.gbs / a.gbs);
  }
  std::printf("bulk %zu MiB one way, TCP loopback (medians): raw blocking %.2f GB/s, CPU %.3f s per GiB (both threads)\n",
              g_cfg.bulk_bytes >> 20, median(raw_gbs), median(raw_c));
  std::printf("  BufferedStream write+drain -> fill+retrieve: %.2f GB/s CPU %.3f s/GiB ratio %.1f%% (target >= 85%%)\n",
              median(fill_gbs), median(fill_c), 100 * median(fill_gbs) / median(raw_gbs));
  std::printf("  BufferedStream write+drain -> read():        %.2f GB/s CPU %.3f s/GiB ratio %.1f%%\n", median(read_gbs),
              median(read_c), 100 * median(read_gbs) / median(raw_gbs));
  std::printf("  same, sender copying each chunk into Bytes:  %.2f GB/s CPU %.3f s/GiB ratio %.1f%%\n", median(copy_gbs),
              median(copy_c), 100 * median(copy_gbs) / median(raw_gbs));

  // 3. memory
  idle_memory();
  return 0;
}
