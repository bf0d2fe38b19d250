// RPC benchmarks (issue 5, point 13): tether <-> tether over TCP loopback, each figure beside a
// raw-socket baseline measured in the same run, interleaved (raw, tether, raw, tether, ...),
// medians reported with the ratio. Server and client run on two threads; with --pin they are
// pinned to CPUs 0 and 1 (steadier on an idle machine; on a shared VM a pinned thread queues
// behind whatever else runs on its CPU, so the default is unpinned).
//
//   sync add(1, 2)    vs raw 64-byte ping-pong         (calls/s, p50/p99 µs), twice: over epoll
//                     (non-blocking, edge-triggered: perf-anchors.md's baseline and the aim's),
//                     and over blocking read/write (one system call per message fewer). The
//                     server's root is a hand-written Object: the protocol's own cost.
//   service add(1, 2) the same call to a real Service (Service::expose of a typed C++ function,
//                     served by ServerThread), vs the raw epoll ping-pong: what an application
//                     pays on top, for the typed binding, the session and the server
//   async window 128  vs raw pipelined 32-byte window  (calls/s; the raw side batches: one read
//                     and one write per batch on both ends, as perf-anchors.md's baseline)
//   1 MiB echo        vs raw bulk one way              (MB/s)
//   metrics on/off    the service add(1, 2) figure with ServeOptions::metrics on and off,
//                     interleaved (on/off, then off/on), ratio of the medians (issue 26's cost)
//
// usage: bench_rpc_bench [--seconds S (1) | --calls N] [--rounds N (3)] [--pin] [--only sync|svc|pipe|echo|metrics]
//                        [--no-raw] [--glibc-trim] [--busy-poll-us N] [--no-metrics]
//
// --busy-poll-us N: both tether loops (EventLoop::set_busy_poll, ServerOptions::busy_poll) and
// both ends of the raw epoll ping-pong spin up to N us on non-blocking polls before they sleep,
// so the ratio compares like with like; the blocking and pipelined baselines are unchanged.

#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <list>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"
#include "tether/channel/channel.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/io_watcher.hpp"
#include "tether/rpc/connection.hpp"
#include "tether/rpc/object.hpp"
#include "tether/service/serve.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/fd_transport.hpp"

using namespace tether;
using Clock = std::chrono::steady_clock;

namespace {

double g_seconds = 1.0;
// --calls N: run exactly N calls per tether phase instead of for g_seconds (instruction counts
// under callgrind are then deterministic: see docs/rpc.md#performance).
std::uint64_t g_calls = 0;
bool g_pin = false;
bool g_no_raw = false;
bool g_glibc_trim = false;
bool g_no_metrics = false;  // --no-metrics: ServeOptions::metrics off in every service phase

using bench::connect_loopback;
using bench::g_busy_poll;
using bench::median;
using bench::read_full;
using bench::write_full;

void pin(int cpu) {
  if (g_pin) bench::pin_current_thread(cpu);
}

int listen_loopback(std::uint16_t* port) { return bench::listen_loopback(port, 16); }

/// The loop condition of a tether phase: until the deadline, or for exactly g_calls calls.
bool more(Clock::time_point end, std::uint64_t done) {
  return g_calls ? done < g_calls : Clock::now() < end;
}

struct Figure {
  double rate = 0;  // per second
  double p50 = 0, p99 = 0;
};

// ----------------------------------------------------------------------------- raw baselines

/// Blocking echo server: msg-size reads echoed back (ping-pong and pipelined), or a sink; or a
/// ping-pong over non-blocking sockets waiting in epoll on both ends (what an event loop does
/// at the least: epoll_wait, read, write per message — perf-anchors.md's "raw epoll ping-pong").
enum class RawMode { kEcho, kEpollEcho, kSink };

Figure raw_run(RawMode mode, std::size_t msg, std::size_t window) {
  if (g_no_raw) return Figure{1, 0, 0};
  std::uint16_t port = 0;
  int lfd = listen_loopback(&port);
  std::thread server([&] {
    pin(0);
    int c = ::accept(lfd, nullptr, nullptr);
    int one = 1;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::vector<char> buf(mode == RawMode::kSink ? (1 << 20) : std::max<std::size_t>(msg, 64 << 10));
    if (mode == RawMode::kSink) {
      while (::read(c, buf.data(), buf.size()) > 0) {
      }
    } else if (mode == RawMode::kEpollEcho) {
      set_nonblocking(c);
      int ep = bench::make_epoll(c);
      while (bench::epoll_read_exact(ep, c, buf.data(), msg) &&
             bench::epoll_write_all(ep, c, buf.data(), msg)) {
      }
      ::close(ep);
    } else if (window > 1) {
      // Pipelined: echo whatever arrived in one write (what a batching server does).
      ssize_t n;
      while ((n = ::read(c, buf.data(), buf.size())) > 0 && write_full(c, buf.data(), static_cast<std::size_t>(n))) {
      }
    } else {
      while (read_full(c, buf.data(), msg) && write_full(c, buf.data(), msg)) {
      }
    }
    ::close(c);
  });
  pin(1);
  int fd = connect_loopback(port);
  std::vector<char> buf(mode == RawMode::kSink ? (1 << 20) : msg, 'x');
  std::vector<double> lat;
  std::uint64_t count = 0;
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(g_seconds));
  if (mode == RawMode::kSink) {
    while (Clock::now() < end) {
      write_full(fd, buf.data(), buf.size());
      count += buf.size();
    }
  } else if (mode == RawMode::kEpollEcho) {
    set_nonblocking(fd);
    int ep = bench::make_epoll(fd);
    while (Clock::now() < end) {
      auto t0 = Clock::now();
      if (!bench::epoll_write_all(ep, fd, buf.data(), msg) ||
          !bench::epoll_read_exact(ep, fd, buf.data(), msg))
        break;
      lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      ++count;
    }
    ::close(ep);
  } else if (window <= 1) {
    while (Clock::now() < end) {
      auto t0 = Clock::now();
      write_full(fd, buf.data(), msg);
      read_full(fd, buf.data(), msg);
      lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      ++count;
    }
  } else {
    // Pipelined with batching on both sides: `window` messages in flight, every completed
    // message replaced at once, all replacements of one read sent in one write.
    std::vector<char> out(window * msg, 'x');
    std::vector<char> in(window * msg);
    write_full(fd, out.data(), out.size());
    std::size_t partial = 0;  // bytes of an incomplete message already read
    std::size_t outstanding = window * msg;
    while (Clock::now() < end) {
      ssize_t n = ::read(fd, in.data(), in.size());
      if (n <= 0) break;
      outstanding -= static_cast<std::size_t>(n);
      partial += static_cast<std::size_t>(n);
      std::size_t done = partial / msg;
      partial %= msg;
      count += done;
      write_full(fd, out.data(), done * msg);
      outstanding += done * msg;
    }
    while (outstanding > 0) {
      ssize_t n = ::read(fd, in.data(), std::min(in.size(), outstanding));
      if (n <= 0) break;
      outstanding -= static_cast<std::size_t>(n);
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  ::shutdown(fd, SHUT_WR);
  server.join();
  ::close(fd);
  ::close(lfd);
  Figure f;
  f.rate = static_cast<double>(count) / secs;
  if (!lat.empty()) {
    std::sort(lat.begin(), lat.end());
    f.p50 = lat[lat.size() / 2];
    f.p99 = lat[lat.size() * 99 / 100];
  }
  return f;
}

// ----------------------------------------------------------------------------- tether

class BenchRoot : public Object {
 public:
  [[nodiscard]] std::string type_name() const override { return "bench.BenchService"; }
  [[nodiscard]] bool has_attr(std::string_view n) const override { return n == "exposed_add" || n == "exposed_echo"; }
  Task<Any> call_attr(CallContext&, std::string_view name, std::vector<Any> args, Kwargs) override {
    if (name == "exposed_add") {
      co_return Any(brine::Value(args.at(0).value().as_int64() + args.at(1).value().as_int64()));
    }
    co_return std::move(args.at(0));
  }
};

/// A tether server on its own thread and loop; stop() ends it.
class TetherServer {
 public:
  explicit TetherServer(bool compress) : compress_(compress) {
    lfd_ = listen_loopback(&port_);
    thread_ = std::thread([this] { run(); });
    while (!ready_.load()) std::this_thread::yield();
  }
  ~TetherServer() {
    loop_->post([this] { loop_->stop(); });
    thread_.join();
    ::close(lfd_);
  }
  std::uint16_t port() const { return port_; }

 private:
  void run() {
    pin(0);
    EventLoop loop;
    loop.set_busy_poll(g_busy_poll);
    loop_ = &loop;
    set_nonblocking(lfd_);
    std::list<std::unique_ptr<Connection>> conns;
    IoWatcher w(loop, lfd_);
    w.set_handler([&](std::uint32_t) {
      int fd;
      while ((fd = ::accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ChannelOptions co;
        co.compress = compress_;
        auto c = std::make_unique<Connection>(
            std::make_unique<Channel>(std::make_unique<BufferedStream>(std::make_unique<FdTransport>(loop, Fd(fd))),
                                      co),
            std::make_shared<BenchRoot>());
        c->start();
        conns.push_back(std::move(c));
      }
    });
    w.enable_reading();
    ready_ = true;
    loop.run();
    conns.clear();
    loop.run_once(std::chrono::milliseconds(0));
  }

  bool compress_;
  int lfd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> ready_{false};
  EventLoop* loop_ = nullptr;
};

Task<Figure> tether_sync(Connection& c) {
  Netref root = co_await c.root();
  std::vector<double> lat;
  std::uint64_t count = 0;
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(g_seconds));
  while (more(end, count)) {
    auto t0 = Clock::now();
    std::int64_t r = co_await root.callattr<std::int64_t>("add", 1, 2);
    if (r != 3) std::abort();
    lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    ++count;
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(lat.begin(), lat.end());
  co_return Figure{static_cast<double>(count) / secs, lat[lat.size() / 2], lat[lat.size() * 99 / 100]};
}

Task<Figure> tether_pipelined(Connection& c, std::size_t window) {
  Netref root = co_await c.root();
  std::uint64_t count = 0;
  std::deque<AsyncResult> inflight;
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(g_seconds));
  for (std::size_t i = 0; i < window; ++i) {
    inflight.push_back(root.callattr_async("add", make_args(brine::Value(1), brine::Value(2))));
  }
  while (more(end, count)) {
    AsyncResult r = std::move(inflight.front());
    inflight.pop_front();
    Any v = co_await r;
    (void)v;
    ++count;
    inflight.push_back(root.callattr_async("add", make_args(brine::Value(1), brine::Value(2))));
  }
  while (!inflight.empty()) {
    Any v = co_await inflight.front();
    (void)v;
    inflight.pop_front();
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  co_return Figure{static_cast<double>(count) / secs, 0, 0};
}

Task<Figure> tether_echo(Connection& c, std::size_t size) {
  Netref root = co_await c.root();
  std::string data(size, '\0');
  std::uint32_t x = 12345;
  for (auto& ch : data) {  // incompressible, as most bulk data is
    x = x * 1103515245u + 12345u;
    ch = static_cast<char>(x >> 24);
  }
  const Bytes original(data);
  // Each reply is sent as the next request, as a client relaying data does: the payload moves
  // through the calls, and the client makes no copy of its own per call.
  Any payload(brine::Value(Bytes(std::move(data))));
  std::uint64_t bytes = 0;
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(g_seconds));
  for (std::uint64_t calls = 0; more(end, calls); ++calls) {
    payload = co_await root.callattr("echo", make_args(std::move(payload)));
    const std::size_t got = payload.value().as_bytes().size();
    if (got != size) {
      throw std::runtime_error("echo returned " + std::to_string(got) + " bytes, not " +
                               std::to_string(size));
    }
    bytes += got;
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (payload.value().as_bytes() != original) throw std::runtime_error("echo changed the payload");
  co_return Figure{static_cast<double>(bytes) / secs, 0, 0};
}

enum class Kind { kSync, kService, kPipelined, kEcho };

/// The service of the "service" figure: the benchmark's add as an application writes it.
Service bench_service() {
  Service s("BenchService");
  s.expose("add", [](std::int64_t a, std::int64_t b) { return a + b; });
  return s;
}

Figure tether_run(Kind kind, bool compress, bool metrics = true) {
  std::optional<TetherServer> bench_server;
  std::optional<ServerThread> service_server;
  std::uint16_t port = 0;
  if (kind == Kind::kService) {
    ServeOptions so;
    so.host = "127.0.0.1";
    so.port = 0;
    so.channel.compress = compress;
    so.server.busy_poll = g_busy_poll;
    so.metrics = metrics && !g_no_metrics;
    so.on_listen = [](const std::vector<Address>&) { pin(0); };  // on the server's loop thread
    port = service_server.emplace(bench_service(), std::move(so)).port();
  } else {
    port = bench_server.emplace(compress).port();
  }
  pin(1);
  EventLoop loop;
  loop.set_busy_poll(g_busy_poll);
  int fd = connect_loopback(port);
  set_nonblocking(fd);
  ChannelOptions co;
  co.compress = compress;
  Connection conn(std::make_unique<Channel>(
                      std::make_unique<BufferedStream>(std::make_unique<FdTransport>(loop, Fd(fd))), co),
                  nullptr);
  conn.start();
  Figure f;
  switch (kind) {
    case Kind::kSync:
    case Kind::kService: f = loop.run_until_complete(tether_sync(conn)); break;
    case Kind::kPipelined: f = loop.run_until_complete(tether_pipelined(conn, 128)); break;
    case Kind::kEcho: f = loop.run_until_complete(tether_echo(conn, 1 << 20)); break;
  }
  conn.abort();
  loop.run_once(std::chrono::milliseconds(0));
  return f;
}

void report(const char* name, const std::vector<Figure>& raw, const std::vector<Figure>& ours, const char* unit,
            double scale, bool latency) {
  std::vector<double> r, o, rp50, op50, op99, rp99;
  for (auto& f : raw) {
    r.push_back(f.rate);
    rp50.push_back(f.p50);
    rp99.push_back(f.p99);
  }
  for (auto& f : ours) {
    o.push_back(f.rate);
    op50.push_back(f.p50);
    op99.push_back(f.p99);
  }
  double mr = median(r), mo = median(o);
  std::printf("%-34s raw %10.1f %-8s tether %10.1f %-8s ratio %5.1f%%", name, mr / scale, unit, mo / scale, unit,
              100.0 * mo / mr);
  if (latency) {
    std::printf("   p50 raw %.1f / tether %.1f us, p99 raw %.1f / tether %.1f us", median(rp50), median(op50),
                median(rp99), median(op99));
  }
  std::printf("\n");
  std::fflush(stdout);
}

/// Metrics on against off (the same service call), as a ratio of the medians.
void report_metrics(const std::vector<Figure>& off, const std::vector<Figure>& on) {
  std::vector<double> a, b, ap, bp;
  for (auto& f : off) {
    a.push_back(f.rate);
    ap.push_back(f.p50);
  }
  for (auto& f : on) {
    b.push_back(f.rate);
    bp.push_back(f.p50);
  }
  const double moff = median(a), mon = median(b);
  std::printf("%-34s off %10.1f calls/s on %10.1f calls/s ratio %5.1f%%   p50 off %.1f / on %.1f us\n",
              "service add(1,2) metrics on vs off", moff, mon, 100.0 * mon / moff, median(ap), median(bp));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 3;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      g_seconds = std::atof(argv[++i]);
    } else if (a == "--calls" && i + 1 < argc) {
      g_calls = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (a == "--no-raw") {
      g_no_raw = true;  // tether only, for perf/strace
    } else if (a == "--glibc-trim") {
      g_glibc_trim = true;
    } else if (a == "--no-metrics") {
      g_no_metrics = true;
    } else if (a == "--pin") {
      g_pin = true;
    } else if (a == "--busy-poll-us" && i + 1 < argc) {
      g_busy_poll = std::chrono::microseconds(std::max(0L, std::atol(argv[++i])));
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--seconds S | --calls N] [--rounds N] [--pin] [--only sync|svc|pipe|echo|metrics] "
                   "[--no-raw] [--glibc-trim] [--busy-poll-us N] [--no-metrics]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!g_glibc_trim) {
    // glibc returns the top of the heap to the kernel after a large free (dynamic trim and
    // mmap thresholds). On this VM every page fault costs microseconds, and a process whose
    // thresholds were last set by a different allocation pattern (here: the raw baseline's
    // 1 MiB buffers on other threads) then faults in each 1 MiB message afresh: 1 MiB echo
    // fell from ~800 to ~60 MB/s that way. Fixed thresholds keep freed memory for reuse, as
    // jemalloc/tcmalloc do by default; they apply to the raw baselines too. --glibc-trim
    // measures with glibc's defaults.
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
  }
  auto want = [&](const char* k) { return only.empty() || only == k; };
  std::printf("tether rpc benchmark: %d interleaved rounds of %.1f s each, TCP loopback, %s, %s", rounds,
              g_seconds, g_pin ? "pinned to CPUs 0/1" : "unpinned",
              g_glibc_trim ? "glibc malloc defaults" : "malloc trim/mmap thresholds fixed");
  if (g_busy_poll.count() > 0) {
    std::printf(", busy polling %lld us on both ends of tether and of the raw epoll baselines",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(g_busy_poll).count()));
  }
  std::printf("\n");
  std::vector<Figure> raw_pp, raw_epp, t_sync, raw_svc, t_svc, raw_pipe, t_pipe, raw_bulk, t_echo, m_on, m_off;
  for (int i = 0; i < rounds; ++i) {
    if (want("sync")) {
      raw_pp.push_back(raw_run(RawMode::kEcho, 64, 1));
      t_sync.push_back(tether_run(Kind::kSync, true));
      raw_epp.push_back(raw_run(RawMode::kEpollEcho, 64, 1));
    }
    if (want("svc")) {
      t_svc.push_back(tether_run(Kind::kService, true));
      raw_svc.push_back(raw_run(RawMode::kEpollEcho, 64, 1));
    }
    if (want("pipe")) {
      raw_pipe.push_back(raw_run(RawMode::kEcho, 32, 128));
      t_pipe.push_back(tether_run(Kind::kPipelined, true));
    }
    if (want("metrics")) {
      if (i % 2 == 0) m_on.push_back(tether_run(Kind::kService, true, true));
      m_off.push_back(tether_run(Kind::kService, true, false));
      if (i % 2 == 1) m_on.push_back(tether_run(Kind::kService, true, true));
    }
    if (want("echo")) {
      raw_bulk.push_back(raw_run(RawMode::kSink, 0, 0));
      t_echo.push_back(tether_run(Kind::kEcho, false));
    }
  }
  if (want("sync")) {
    report("sync add(1,2) vs raw epoll ping-pong", raw_epp, t_sync, "calls/s", 1, true);
    report("sync add(1,2) vs raw blocking p-p", raw_pp, t_sync, "calls/s", 1, true);
  }
  if (want("svc")) report("service add(1,2) vs raw epoll p-p", raw_svc, t_svc, "calls/s", 1, true);
  if (want("metrics")) report_metrics(m_off, m_on);
  if (want("pipe")) report("async window 128 vs raw pipelined", raw_pipe, t_pipe, "calls/s", 1, false);
  if (want("echo")) {
    report("1 MiB echo (both ways) vs raw bulk", raw_bulk, t_echo, "MB/s", 1e6, false);
    std::printf("(1 MiB echo moves each byte twice, request and reply, with compression off on both sides;"
                " raw bulk moves it once.)\n");
  }
  return 0;
}
