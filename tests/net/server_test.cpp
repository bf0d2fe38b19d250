// StreamServer: life cycle, families, limits, shutdown, threads, bad peers.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <optional>
#include <mutex>
#include <set>
#include <thread>

#include "net_test_util.hpp"
#include "test_util.hpp"
#include "tether/loop/gather.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/net/sockets.hpp"
#include "tether/net/stream_server.hpp"
#include "tether/stream/fd_transport.hpp"

namespace tether {
namespace {

using namespace std::chrono_literals;
using testing::echo_lines;
using testing::echo_once;
using testing::read_to_end;
using testing::round_trip;

class ServerTest : public testing::LoopTest {};

std::string temp_socket_path(const char* tag) {
  return (std::filesystem::temp_directory_path() / fmt::format("tether-{}-{}.sock", tag, ::getpid())).string();
}

Task<std::vector<std::string>> echo_many(std::string host, std::uint16_t port, int n) {
  std::vector<Task<std::string>> tasks;
  for (int i = 0; i < n; ++i) tasks.push_back(echo_once(host, port, fmt::format("hello {}", i)));
  std::vector<std::string> out = co_await gather(std::move(tasks));
  co_return out;
}

TEST_F(ServerTest, PortZeroPicksAFreePortAndEchoes) {
  StreamServer server(echo_lines);
  server.listen(0, "127.0.0.1");
  ASSERT_EQ(server.ports().size(), 1u);
  std::uint16_t port = server.ports()[0];
  EXPECT_NE(port, 0);
  EXPECT_EQ(server.addresses()[0], Address::loopback_v4(port));
  EXPECT_TRUE(server.serving());
  std::string reply = run(echo_once("127.0.0.1", port, "ping"));
  EXPECT_EQ(reply, "ping");
  EXPECT_EQ(server.stats().accepted, 1u);
  server.stop();
  EXPECT_FALSE(server.serving());
}

TEST_F(ServerTest, Ipv6Loopback) {
  StreamServer server(echo_lines);
  try {
    server.listen(0, "::1");
  } catch (const IoError& e) {
    GTEST_SKIP() << "no IPv6 loopback on this kernel: " << e.what();
  }
  std::uint16_t port = server.ports().at(0);
  EXPECT_EQ(server.addresses()[0].family(), Address::Family::kIPv6);
  EXPECT_EQ(run(echo_once("::1", port, "six")), "six");
}

TEST_F(ServerTest, LocalhostTriesEveryResolvedAddress) {
  // Served on IPv4 only: if "localhost" resolves to ::1 first, that attempt is refused and
  // the client must move on to 127.0.0.1.
  StreamServer server(echo_lines);
  server.listen(0, "127.0.0.1");
  EXPECT_EQ(run(echo_once("localhost", server.ports()[0], "name")), "name");
}

TEST_F(ServerTest, UnixPathServerRemovesItsFile) {
  std::string path = temp_socket_path("unix");
  {
    StreamServer server(echo_lines);
    server.listen_unix(path);
    EXPECT_TRUE(std::filesystem::exists(path));
    EXPECT_EQ(server.addresses()[0].to_string(), "unix:" + path);
    ConnectOptions o;
    auto s = run(open_unix_connection(path, o));
    EXPECT_EQ(run(round_trip(*s, "over unix")), "over unix");
    s.reset();
    server.stop();
    EXPECT_FALSE(std::filesystem::exists(path));
  }
}

TEST_F(ServerTest, UnixStaleFileIsReplacedLiveOneRefused) {
  std::string path = temp_socket_path("stale");
  {
    Fd stale = bind_unix_socket(path);  // listening, then closed: the file stays behind
  }
  ASSERT_TRUE(std::filesystem::exists(path));
  StreamServer server(echo_lines);
  server.listen_unix(path);
  auto s = run(open_unix_connection(path));
  EXPECT_EQ(run(round_trip(*s, "fresh")), "fresh");
  // A second server on the same live path is refused.
  StreamServer second(echo_lines);
  EXPECT_THROW(second.listen_unix(path), IoError);
  // A regular file is never removed.
  std::string file = temp_socket_path("file");
  { std::FILE* f = std::fopen(file.c_str(), "w"); std::fclose(f); }
  EXPECT_THROW((void)bind_unix_socket(file), IoError);
  EXPECT_TRUE(std::filesystem::exists(file));
  std::filesystem::remove(file);
}

TEST_F(ServerTest, AbstractUnixName) {
  std::string name = fmt::format("@tether-test-{}", ::getpid());
  StreamServer server(echo_lines);
  server.listen_unix(name);
  EXPECT_TRUE(server.addresses()[0].is_abstract());
  auto s = run(open_unix_connection(name));
  EXPECT_EQ(run(round_trip(*s, "abstract")), "abstract");
}

TEST_F(ServerTest, AddSocketsAndOnListenHook) {
  std::vector<Fd> fds = bind_sockets(0, "127.0.0.1");
  ASSERT_EQ(fds.size(), 1u);
  Address bound = local_address(fds[0].get());
  std::vector<Address> announced;
  StreamServer server(echo_lines);
  server.set_on_listen([&announced](const std::vector<Address>& a) { announced = a; });
  server.add_sockets(std::move(fds));
  ASSERT_EQ(announced.size(), 1u);
  EXPECT_EQ(announced[0], bound);
  EXPECT_EQ(run(echo_once("127.0.0.1", bound.port(), "added")), "added");
}

TEST_F(ServerTest, StartServerShortForm) {
  auto server = start_server(echo_lines, "127.0.0.1", 0);
  EXPECT_EQ(run(echo_once("127.0.0.1", server->ports()[0], "short")), "short");
  std::string path = temp_socket_path("short");
  auto userver = start_unix_server(echo_lines, path);
  auto s = run(open_unix_connection(path));
  EXPECT_EQ(run(round_trip(*s, "unix short")), "unix short");
}

TEST_F(ServerTest, ThousandConcurrentEchoConnections) {
  ASSERT_GE(testing::raise_fd_limit(), 2200u) << "this test needs ~2100 descriptors";
  StreamServer server(echo_lines);
  server.bind(0, "127.0.0.1", /*backlog=*/1024);
  server.start();
  auto started = Clock::now();
  std::vector<std::string> replies = run(echo_many("127.0.0.1", server.ports()[0], 1000), 60s);
  auto elapsed = Clock::now() - started;
  ASSERT_EQ(replies.size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(replies[static_cast<std::size_t>(i)], fmt::format("hello {}", i));
  EXPECT_EQ(server.stats().accepted, 1000u);
  EXPECT_LT(elapsed, 30s);
}

// ---------------------------------------------------------------------- held connections

struct Gate {
  int started = 0;
  int target = 0;
  Event all_started;
  Event release;
  int finished = 0;
};

Task<void> held_handler(std::unique_ptr<BufferedStream> stream, Address, Gate* g) {
  if (++g->started == g->target) g->all_started.set();
  Bytes line = co_await stream->read_until("\n");
  co_await g->release.wait();
  stream->write(std::move(line));
  co_await stream->drain();
  ++g->finished;
}

StreamServer::Handler held(Gate* g) {
  return [g](std::unique_ptr<BufferedStream> s, Address p) { return held_handler(std::move(s), p, g); };
}

Task<std::vector<std::unique_ptr<BufferedStream>>> connect_n(std::uint16_t port, int n) {
  std::vector<std::unique_ptr<BufferedStream>> out;
  for (int i = 0; i < n; ++i) {
    std::unique_ptr<BufferedStream> s = co_await open_connection("127.0.0.1", port);
    s->write(fmt::format("line {}\n", i));
    co_await s->drain();
    out.push_back(std::move(s));
  }
  co_return out;
}

Task<void> wait_event(Event* e) { co_await e->wait(); }

Task<void> shutdown_then_flag(StreamServer* server, Duration grace, bool* done) {
  co_await server->shutdown(grace);
  *done = true;
}

/// Turns the loop until pred() holds (bounded; fails the test on expiry).
template <class Pred>
void turn_until(EventLoop& loop, Pred pred, Duration limit = std::chrono::seconds(10)) {
  auto deadline = Clock::now() + limit;
  while (!pred()) {
    ASSERT_LT(Clock::now(), deadline) << "condition not reached in time";
    loop.run_once(std::chrono::milliseconds(10));
  }
}

TEST_F(ServerTest, MaxConnectionsClosesTheExcess) {
  Gate gate;
  gate.target = 2;
  ServerOptions opts;
  opts.max_connections = 2;
  StreamServer server(held(&gate), opts);
  server.listen(0, "127.0.0.1");
  std::uint16_t port = server.ports()[0];
  auto clients = run(connect_n(port, 2));
  run(wait_event(&gate.all_started));
  EXPECT_EQ(server.active_connections(), 2u);
  // The third is accepted and closed at once: it reads EOF without any reply.
  auto third = run(open_connection("127.0.0.1", port));
  EXPECT_EQ(run(read_to_end(third.get())), "");
  EXPECT_EQ(server.stats().rejected, 1u);
  EXPECT_EQ(gate.started, 2);
  gate.release.set();
  EXPECT_EQ(run(round_trip(*clients[0], "x")), "line 0");
  // A slot is free again once a handler finishes.
  clients.clear();
  third.reset();
}

TEST_F(ServerTest, GracefulShutdownFinishesInFlightWork) {
  Gate gate;
  gate.target = 3;
  StreamServer server(held(&gate));
  server.listen(0, "127.0.0.1");
  std::uint16_t port = server.ports()[0];
  auto clients = run(connect_n(port, 3));
  run(wait_event(&gate.all_started));

  TaskGroup group(loop_);
  bool done = false;
  group.spawn(shutdown_then_flag(&server, 10s, &done));
  loop_.run_once(0ms);  // the group starts it: it stops accepting at once
  EXPECT_FALSE(server.serving());
  EXPECT_FALSE(done) << "shutdown must wait for the handlers";
  EXPECT_THROW(run(open_connection("127.0.0.1", port)), IoError);  // refused now

  gate.release.set();
  for (int i = 0; i < 3; ++i) {
    std::string reply = run(read_to_end(clients[static_cast<std::size_t>(i)].get()));
    EXPECT_EQ(reply, fmt::format("line {}\n", i));
  }
  run(group.wait());
  EXPECT_TRUE(done);
  EXPECT_EQ(gate.finished, 3);
  EXPECT_EQ(server.stats().cancelled, 0u);
  EXPECT_EQ(server.active_connections(), 0u);
}

TEST_F(ServerTest, ShutdownCancelsHandlersAfterGrace) {
  Gate gate;
  gate.target = 2;
  StreamServer server(held(&gate));
  server.listen(0, "127.0.0.1");
  auto clients = run(connect_n(server.ports()[0], 2));
  run(wait_event(&gate.all_started));
  auto t0 = Clock::now();
  run(server.shutdown(50ms));
  EXPECT_GE(Clock::now() - t0, 50ms);
  EXPECT_EQ(server.stats().cancelled, 2u);
  EXPECT_EQ(gate.finished, 0);
  for (auto& c : clients) EXPECT_EQ(run(read_to_end(c.get())), "");
}

// ------------------------------------------------------------------------------- threads

struct ThreadLog {
  std::mutex mu;
  std::set<std::thread::id> ids;
};

Task<void> logging_echo(std::unique_ptr<BufferedStream> s, Address peer, ThreadLog* log) {
  {
    std::lock_guard lock(log->mu);
    log->ids.insert(std::this_thread::get_id());
  }
  co_await echo_lines(std::move(s), peer);
}

TEST_F(ServerTest, TwoThreadsShareTheConnections) {
  ThreadLog log;
  ServerOptions opts;
  opts.threads = 2;
  StreamServer server(
      [&log](std::unique_ptr<BufferedStream> s, Address p) { return logging_echo(std::move(s), p, &log); }, opts);
  server.listen(0, "127.0.0.1");
  auto replies = run(echo_many("127.0.0.1", server.ports()[0], 20));
  EXPECT_EQ(replies.size(), 20u);
  ServerStats st = server.stats();
  ASSERT_EQ(st.per_thread.size(), 2u);
  EXPECT_EQ(st.per_thread[0], 10u);
  EXPECT_EQ(st.per_thread[1], 10u);
  server.close();
  std::lock_guard lock(log.mu);
  EXPECT_EQ(log.ids.size(), 2u);
  EXPECT_EQ(log.ids.count(std::this_thread::get_id()), 0u) << "handlers must run on the server's threads";
}

// ServerOptions::busy_poll reaches every loop that serves connections: both worker threads'
// loops, and with threads == 1 the server's own loop. A negative value is refused up front.
Task<void> reporting_busy_poll(std::unique_ptr<BufferedStream> s, Address, ThreadLog* log, std::atomic<long>* us) {
  us->store(static_cast<long>(
      std::chrono::duration_cast<std::chrono::microseconds>(EventLoop::current_or_throw().busy_poll()).count()));
  co_await logging_echo(std::move(s), Address(), log);
}

TEST_F(ServerTest, BusyPollReachesTheServingLoops) {
  for (std::size_t threads : {std::size_t{2}, std::size_t{1}}) {
    ThreadLog log;
    std::atomic<long> seen{-1};
    ServerOptions opts;
    opts.threads = threads;
    opts.busy_poll = 250us;
    StreamServer server(
        [&](std::unique_ptr<BufferedStream> s, Address p) { return reporting_busy_poll(std::move(s), p, &log, &seen); },
        opts);
    server.listen(0, "127.0.0.1");
    auto replies = run(echo_many("127.0.0.1", server.ports()[0], 4));
    EXPECT_EQ(replies.size(), 4u);
    EXPECT_EQ(seen.load(), 250) << threads << " thread(s)";
    if (threads == 1) {
      EXPECT_EQ(loop_.busy_poll(), std::chrono::duration_cast<Duration>(250us));
    }
    server.close();
    loop_.set_busy_poll(Duration::zero());
  }
  ServerOptions bad;
  bad.busy_poll = -1us;
  StreamServer server(echo_lines, bad);
  EXPECT_THROW(server.listen(0, "127.0.0.1"), UsageError);
  EXPECT_EQ(loop_.busy_poll(), Duration::zero());
}

Task<void> hold_forever(std::unique_ptr<BufferedStream> s, Address) {
  Bytes never = co_await s->read_until("\r\n\r\n");  // the clients send single lines
  s->write(std::move(never));
}

TEST_F(ServerTest, ThreadedShutdownCancelsAcrossThreads) {
  ServerOptions opts;
  opts.threads = 2;
  StreamServer server(hold_forever, opts);
  server.listen(0, "127.0.0.1");
  auto clients = run(connect_n(server.ports()[0], 2));
  turn_until(loop_, [&] { return server.active_connections() == 2; });
  // Both handlers wait for bytes that never come: shutdown cancels them on their threads.
  run(server.shutdown(20ms));
  EXPECT_EQ(server.active_connections(), 0u);
  for (auto& c : clients) EXPECT_EQ(run(read_to_end(c.get())), "");
  EXPECT_EQ(server.stats().cancelled, 2u);
}

// ---------------------------------------------------- close_clients() and the stop token

/// How handlers ended, from any serving thread.
struct Endings {
  std::mutex mu;
  std::atomic<int> reading{0};  // handlers that reached their blocking read
  std::vector<ErrorKind> kinds;
  std::vector<std::string> partials;
  int clean = 0;
  void add(ErrorKind k, std::string partial = {}) {
    std::lock_guard lock(mu);
    kinds.push_back(k);
    partials.push_back(std::move(partial));
  }
};

std::size_t open_fd_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// Reads a line that never ends: the clients send "partial" without a newline.
Task<void> blocked_reader(std::unique_ptr<BufferedStream> s, Address, Endings* out) {
  std::optional<ErrorKind> kind;
  try {
    co_await s->fill(7);  // "partial" is buffered: the read below waits for more
    Task<Bytes> read = s->read_until("\n", 1 << 16);
    out->reading.fetch_add(1);  // the read starts and suspends in this same loop callback
    Bytes never = co_await read;
    s->write(std::move(never));
  } catch (const Error& e) {
    kind = e.kind();
  }
  std::string partial(s->buffer().view());
  if (kind) out->add(*kind, std::move(partial));
  if (kind) throw StreamClosed("rethrown: the server must not count this as a handler error");
}

Task<std::vector<std::unique_ptr<BufferedStream>>> connect_partial(std::uint16_t port, int n) {
  std::vector<std::unique_ptr<BufferedStream>> out;
  for (int i = 0; i < n; ++i) {
    std::unique_ptr<BufferedStream> s = co_await open_connection("127.0.0.1", port);
    s->write(std::string_view("partial"));
    co_await s->drain();
    out.push_back(std::move(s));
  }
  co_return out;
}

TEST_F(ServerTest, CloseClientsEndsBlockedReadsAtOnce) {
  for (std::size_t threads : {std::size_t{1}, std::size_t{3}}) {
    SCOPED_TRACE(fmt::format("{} thread(s)", threads));
    const std::size_t fds_before = open_fd_count();
    {
      Endings endings;
      ServerOptions opts;
      opts.threads = threads;
      StreamServer server(
          [&endings](std::unique_ptr<BufferedStream> s, Address p) { return blocked_reader(std::move(s), p, &endings); },
          opts);
      server.listen(0, "127.0.0.1");
      constexpr int kClients = 6;
      auto clients = run(connect_partial(server.ports()[0], kClients));
      turn_until(loop_, [&] { return endings.reading.load() == kClients; });
      auto t0 = Clock::now();
      server.close_clients();
      turn_until(loop_, [&] { return server.active_connections() == 0; });
      EXPECT_LT(Clock::now() - t0, 5s);
      {
        std::lock_guard lock(endings.mu);
        ASSERT_EQ(endings.kinds.size(), std::size_t{kClients});
        for (std::size_t i = 0; i < endings.kinds.size(); ++i) {
          EXPECT_EQ(endings.kinds[i], ErrorKind::kStreamClosed);
          EXPECT_EQ(endings.partials[i], "partial") << "the bytes that arrived stay readable";
        }
      }
      for (auto& c : clients) EXPECT_EQ(run(read_to_end(c.get())), "") << "the client sees the close";
      ServerStats st = server.stats();
      EXPECT_EQ(st.closed_clients, std::uint64_t{kClients});
      EXPECT_EQ(st.handler_errors, 0u);
      EXPECT_EQ(st.cancelled, 0u);
      if (threads > 1) {
        for (std::uint64_t n : st.per_thread) EXPECT_EQ(n, 2u);
      }
      EXPECT_TRUE(server.serving()) << "close_clients() leaves the listeners alone";
      // Nothing is left to wait for: a long grace period costs nothing.
      auto t1 = Clock::now();
      run(server.shutdown(30s));
      EXPECT_LT(Clock::now() - t1, 5s);
      clients.clear();
      server.close();
    }
    EXPECT_EQ(open_fd_count(), fds_before) << "descriptors leaked";
  }
}

TEST_F(ServerTest, AbortClientsEndsBlockedReadsToo) {
  Endings endings;
  StreamServer server(
      [&endings](std::unique_ptr<BufferedStream> s, Address p) { return blocked_reader(std::move(s), p, &endings); });
  server.listen(0, "127.0.0.1");
  auto clients = run(connect_partial(server.ports()[0], 2));
  turn_until(loop_, [&] { return endings.reading.load() == 2; });
  server.abort_clients();
  server.abort_clients();  // idempotent: counted once
  turn_until(loop_, [&] { return server.active_connections() == 0; });
  EXPECT_EQ(server.stats().closed_clients, 2u);
  EXPECT_EQ(server.stats().handler_errors, 0u);
  std::lock_guard lock(endings.mu);
  EXPECT_EQ(endings.kinds, (std::vector<ErrorKind>{ErrorKind::kStreamClosed, ErrorKind::kStreamClosed}));
}

/// A line echo that waits for each next line with the stop token: on shutdown the wait ends
/// (Cancelled), and the handler says goodbye and closes.
Task<void> stoppable_echo(std::unique_ptr<BufferedStream> s, Address, StreamServer* const* server, Endings* out) {
  StopToken stop = (*server)->stop_token();
  bool stopped = false;
  for (;;) {
    Bytes line;
    try {
      out->reading.fetch_add(1);
      line = co_await stop.unless_stopped(s->read_line(1024));
    } catch (const Cancelled&) {
      stopped = true;
    }
    if (stopped || line.empty()) break;
    s->write(std::move(line));
    co_await s->drain();
  }
  out->add(stopped ? ErrorKind::kCancelled : ErrorKind::kDisconnected, std::string(s->buffer().view()));
  s->write(std::string_view("bye\n"));
  s->close();
  co_await s->wait_closed();
}

TEST_F(ServerTest, StopTokenEndsWaitingHandlersOnShutdown) {
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}}) {
    SCOPED_TRACE(fmt::format("{} thread(s)", threads));
    const std::size_t fds_before = open_fd_count();
    {
      Endings endings;
      StreamServer* self = nullptr;
      ServerOptions opts;
      opts.threads = threads;
      StreamServer server(
          [&endings, &self](std::unique_ptr<BufferedStream> s, Address p) {
            return stoppable_echo(std::move(s), p, &self, &endings);
          },
          opts);
      self = &server;
      server.listen(0, "127.0.0.1");
      constexpr int kClients = 4;
      std::vector<std::unique_ptr<BufferedStream>> clients;
      // Each handler echoes one line and waits for the next (2 reads started each). The first
      // client's write also carries half a line (one small write: it arrives in one piece),
      // which must stay buffered, neither lost nor echoed.
      for (int i = 0; i < kClients; ++i) {
        clients.push_back(run(open_connection("127.0.0.1", server.ports()[0])));
        clients.back()->write(fmt::format("hello {}\n{}", i, i == 0 ? "half a li" : ""));
        run(clients.back()->drain());
        Bytes echoed = run(clients.back()->read_line(1024));
        EXPECT_EQ(echoed.view(), fmt::format("hello {}\n", i));
      }
      turn_until(loop_, [&] { return endings.reading.load() == 2 * kClients; });
      EXPECT_FALSE(server.stopping());
      auto t0 = Clock::now();
      run(server.shutdown(30s));
      EXPECT_LT(Clock::now() - t0, 5s) << "the handlers must not sit through the grace period";
      EXPECT_TRUE(server.stopping());
      EXPECT_EQ(server.active_connections(), 0u);
      for (auto& c : clients) EXPECT_EQ(run(read_to_end(c.get())), "bye\n");
      {
        std::lock_guard lock(endings.mu);
        ASSERT_EQ(endings.kinds.size(), std::size_t{kClients});
        for (ErrorKind k : endings.kinds) EXPECT_EQ(k, ErrorKind::kCancelled);
        EXPECT_EQ(std::count(endings.partials.begin(), endings.partials.end(), "half a li"), 1);
      }
      ServerStats st = server.stats();
      EXPECT_EQ(st.cancelled, 0u) << "ended by the token, not by the grace period";
      EXPECT_EQ(st.handler_errors, 0u);
      clients.clear();
      server.close();
    }
    EXPECT_EQ(open_fd_count(), fds_before) << "descriptors leaked";
  }
}

/// Answers each line after `gate` opens: a request in progress when shutdown begins.
Task<void> gated_stoppable_echo(std::unique_ptr<BufferedStream> s, StreamServer* const* server, Gate* gate) {
  StopToken stop = (*server)->stop_token();
  for (;;) {
    Bytes line;
    bool stopped = false;
    try {
      line = co_await stop.unless_stopped(s->read_line(1024));
    } catch (const Cancelled&) {
      stopped = true;
    }
    if (stopped || line.empty()) break;
    if (++gate->started == gate->target) gate->all_started.set();
    co_await gate->release.wait();  // not wrapped: the stop request does not interrupt it
    EXPECT_TRUE(stop.stop_requested());
    s->write(std::move(line));
    co_await s->drain();
    ++gate->finished;
  }
}

TEST_F(ServerTest, StopTokenLetsWorkInProgressFinish) {
  Gate gate;
  gate.target = 1;
  StreamServer* self = nullptr;
  StreamServer server([&](std::unique_ptr<BufferedStream> s, Address) {
    return gated_stoppable_echo(std::move(s), &self, &gate);
  });
  self = &server;
  server.listen(0, "127.0.0.1");
  auto busy = run(open_connection("127.0.0.1", server.ports()[0]));
  auto idle = run(open_connection("127.0.0.1", server.ports()[0]));
  busy->write(std::string_view("work\n"));
  run(busy->drain());
  run(wait_event(&gate.all_started));
  turn_until(loop_, [&] { return server.active_connections() == 2; });

  TaskGroup group(loop_);
  bool done = false;
  group.spawn(shutdown_then_flag(&server, 30s, &done));
  // The idle connection ends at once; the busy one is still answering.
  EXPECT_EQ(run(read_to_end(idle.get())), "");
  EXPECT_EQ(server.active_connections(), 1u);
  EXPECT_FALSE(done);
  gate.release.set();
  EXPECT_EQ(run(read_to_end(busy.get())), "work\n") << "the answer, then the close at the next wait";
  run(group.wait());
  EXPECT_TRUE(done);
  EXPECT_EQ(gate.finished, 1);
  EXPECT_EQ(server.stats().cancelled, 0u);
}

Task<int> answer_after(Event* e) {
  co_await e->wait();
  co_return 42;
}

TEST_F(ServerTest, StopTokenBasics) {
  // A default token never stops: results and exceptions pass through.
  StopToken none;
  EXPECT_FALSE(none.stop_requested());
  Event ready;
  ready.set();
  EXPECT_EQ(run(none.unless_stopped(answer_after(&ready))), 42);
  // On the serving loop of a threads == 1 server; stop requested by shutdown().
  StreamServer server(echo_lines);
  server.listen(0, "127.0.0.1");
  StopToken token = server.stop_token();
  EXPECT_FALSE(token.stop_requested());
  EXPECT_EQ(run(token.unless_stopped(answer_after(&ready))), 42);
  Event never;
  TaskGroup group(loop_);
  bool cancelled = false;
  bool woke = false;
  auto racer = [](StopToken t, Event* e, bool* flag) -> Task<void> {
    try {
      int v = co_await t.unless_stopped(answer_after(e));
      ADD_FAILURE() << "completed with " << v;
    } catch (const Cancelled& c) {
      *flag = std::string(c.what()).find("stopping") != std::string::npos;
    }
  };
  auto waiter = [](StopToken t, bool* flag) -> Task<void> {
    co_await t.wait();
    *flag = true;
  };
  group.spawn(racer(token, &never, &cancelled));
  group.spawn(waiter(token, &woke));
  loop_.run_once(0ms);
  EXPECT_FALSE(cancelled);
  run(server.shutdown(1s));
  run(group.wait());
  EXPECT_TRUE(cancelled);
  EXPECT_TRUE(woke);
  EXPECT_TRUE(token.stop_requested());
  // After the request, unless_stopped() throws without running the task.
  EXPECT_THROW(run(token.unless_stopped(answer_after(&ready))), Cancelled);
  // A loop that serves none of the server's connections has no token.
  ServerOptions two;
  two.threads = 2;
  StreamServer threaded(echo_lines, two);
  threaded.listen(0, "127.0.0.1");
  EXPECT_THROW((void)threaded.stop_token(), UsageError);
}

// ------------------------------------------------------------------------------ bad peers

struct SlowStats {
  std::size_t high_water = 0;
  int timeouts = 0;
  int overruns = 0;
};

Task<void> strict_line_handler(std::unique_ptr<BufferedStream> s, Address, SlowStats* st) {
  bool timed_out = false;
  bool overrun = false;
  try {
    Bytes line = co_await with_timeout(200ms, s->read_until("\n", 1024));
    s->write(std::move(line));
    co_await s->drain();
  } catch (const Timeout&) {
    timed_out = true;
  } catch (const LimitOverrun&) {
    overrun = true;
  }
  st->high_water = std::max(st->high_water, s->stats().read_buffer_high_water);
  if (timed_out) ++st->timeouts;
  if (overrun) ++st->overruns;
}

Task<std::string> slow_client(std::uint16_t port, std::string payload) {
  std::unique_ptr<BufferedStream> s = co_await open_connection("127.0.0.1", port);
  s->write(payload);
  try {
    co_await s->drain();
  } catch (const Error&) {
    // The server may reset the connection before it took everything (flood case).
  }
  std::string rest = co_await read_to_end(s.get());
  co_return rest;
}

TEST_F(ServerTest, SlowlorisAndFloodAreBounded) {
  SlowStats st;
  ServerOptions opts;
  opts.stream.read_chunk_size = 4096;
  StreamServer server(
      [&st](std::unique_ptr<BufferedStream> s, Address p) { return strict_line_handler(std::move(s), p, &st); },
      opts);
  server.listen(0, "127.0.0.1");
  std::uint16_t port = server.ports()[0];
  auto t0 = Clock::now();
  // A partial line that never ends: the handler's read timeout drops it.
  EXPECT_EQ(run(slow_client(port, "GET / HTTP/1.1 Host: exa")), "");
  EXPECT_LT(Clock::now() - t0, 5s);
  // A megabyte without a newline: the line limit drops it after at most one extra chunk.
  EXPECT_EQ(run(slow_client(port, std::string(1 << 20, 'x'))), "");
  EXPECT_EQ(st.timeouts, 1);
  EXPECT_EQ(st.overruns, 1);
  EXPECT_LE(st.high_water, 1024u + 4096u);
}

Task<void> forever_reader(std::unique_ptr<BufferedStream> s, Address) {
  Bytes never = co_await s->read_until("\n");  // the peer never ends the line
  s->write(std::move(never));
}

TEST_F(ServerTest, HandlerTimeoutIsTheBackstop) {
  ServerOptions opts;
  opts.handler_timeout = 100ms;
  StreamServer server(forever_reader, opts);
  server.listen(0, "127.0.0.1");
  auto t0 = Clock::now();
  EXPECT_EQ(run(slow_client(server.ports()[0], "no newline, ever")), "");
  EXPECT_GE(Clock::now() - t0, 100ms);
  EXPECT_EQ(server.stats().handler_timeouts, 1u);
}

// -------------------------------------------------------------------------------- connect

TEST_F(ServerTest, ConnectRefusedNamesTheAddress) {
  // Bound but not listening: the port is ours and refuses connections.
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  Address any = Address::loopback_v4(0);
  ASSERT_EQ(::bind(fd.get(), any.sockaddr_ptr(), any.sockaddr_len()), 0);
  std::uint16_t port = local_address(fd.get()).port();
  try {
    run(open_connection("127.0.0.1", port));
    FAIL() << "connect should fail";
  } catch (const IoError& e) {
    EXPECT_EQ(e.code(), ECONNREFUSED);
    EXPECT_NE(std::string(e.what()).find(fmt::format("127.0.0.1:{}", port)), std::string::npos) << e.what();
  }
}

TEST_F(ServerTest, ConnectTimeoutAgainstAFullBacklog) {
  // A listener that never accepts, with its backlog filled: further SYNs are dropped.
  Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  Address any = Address::loopback_v4(0);
  ASSERT_EQ(::bind(listener.get(), any.sockaddr_ptr(), any.sockaddr_len()), 0);
  ASSERT_EQ(::listen(listener.get(), 0), 0);
  Address target = local_address(listener.get());
  std::vector<Fd> fillers;
  for (int i = 0; i < 4; ++i) {
    Fd f(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    (void)::connect(f.get(), target.sockaddr_ptr(), target.sockaddr_len());
    fillers.push_back(std::move(f));
  }
  ConnectOptions o;
  o.connect_timeout = 100ms;
  auto t0 = Clock::now();
  try {
    run(open_connection("127.0.0.1", target.port(), o));
    FAIL() << "connect should time out";
  } catch (const Timeout& e) {
    EXPECT_NE(std::string(e.what()).find(target.to_string()), std::string::npos) << e.what();
  }
  EXPECT_GE(Clock::now() - t0, 100ms);
  EXPECT_LT(Clock::now() - t0, 5s);
}

}  // namespace
}  // namespace tether
