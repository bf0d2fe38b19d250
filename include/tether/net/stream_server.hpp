#pragma once
/// \file StreamServer: tornado's TCPServer life cycle over tether streams (TCP, Unix, TLS),
/// plus asyncio's start_server / start_unix_server short forms. docs/servers.md is the guide.
///
///   listen(port, host)                   bind + attach to the current loop (one call)
///   bind(port, host, backlog, reuse) ... start(n)
///                                        n == 1: attach to the current loop;
///                                        n != 1: fork n worker processes (0 = one per core)
///                                        that each serve the shared sockets; the parent
///                                        supervises them, restarting crashed ones.
///   add_sockets(fds)                     serve sockets made elsewhere (bind_sockets, systemd)
///
/// Each accepted connection becomes a BufferedStream handed to the handler (a callable, or an
/// override of handle_stream()) together with the peer address; the connection lives as long
/// as the handler's task (the handler may keep the stream elsewhere, then it decides).
///
/// Threads: with options.threads = N > 1 the server starts N loop threads of its own; the
/// loop that owns the server only accepts, and hands each connection to the next thread in
/// round-robin order. A connection stays on its thread's loop for life, so the handler (and
/// everything it touches) must be safe to run on N threads at once. threads = 1 (default)
/// runs handlers on the server's own loop.
///
/// Thread rules: every method on the loop that owns the server (the loop current when the
/// sockets were attached). The handler runs on a connection's loop.

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/base/fd.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task.hpp"
#include "tether/net/address.hpp"
#include "tether/net/sockets.hpp"
#include "tether/net/tls.hpp"
#include "tether/stream/buffered_stream.hpp"

namespace tether {

namespace detail {

/// A node of ServerStopState's list: an awaiter to fire when stop is requested.
struct StopWaiter {
  StopWaiter* prev = nullptr;
  StopWaiter* next = nullptr;
  void (*fire)(StopWaiter*) noexcept = nullptr;
};

/// One serving loop's stop signal of a StreamServer. Loop thread only.
class TETHER_API ServerStopState {
 public:
  [[nodiscard]] bool requested() const noexcept { return requested_; }
  /// Sets requested(), wakes wait()ers and fires every linked awaiter (each unlinked first).
  void request();
  Event& event() noexcept { return event_; }
  void link(StopWaiter* w) noexcept;
  void unlink(StopWaiter* w) noexcept;

 private:
  bool requested_ = false;
  Event event_;
  StopWaiter* head_ = nullptr;
};

/// unless_stopped(): runs `inner`; a stop request cancels it (destroys its frame) and resumes
/// the awaiter, which then throws Cancelled.
template <class T>
class StopRaceAwaiter : private StopWaiter {
 public:
  StopRaceAwaiter(ServerStopState* state, Task<T> inner) : state_(state), inner_(std::move(inner)) {}
  StopRaceAwaiter(const StopRaceAwaiter&) = delete;
  StopRaceAwaiter& operator=(const StopRaceAwaiter&) = delete;
  ~StopRaceAwaiter() {
    if (linked_) state_->unlink(this);
  }
  bool await_ready() noexcept {
    stopped_ = state_->requested();
    return stopped_;
  }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> outer) {
    outer_ = outer;
    fire = &on_stop;
    state_->link(this);
    linked_ = true;
    inner_.handle().promise().set_continuation(outer);
    return detail::transfer(outer, inner_.handle());
  }
  T await_resume() {
    if (linked_) {
      state_->unlink(this);
      linked_ = false;
    }
    if (stopped_) throw Cancelled("the server is stopping");
    return inner_.take_result();
  }

 private:
  static void on_stop(StopWaiter* w) noexcept {
    auto* self = static_cast<StopRaceAwaiter*>(w);
    self->linked_ = false;  // request() unlinked it
    self->stopped_ = true;
    self->inner_.reset();  // cancels the inner task and everything it awaits
    detail::resume(self->outer_);
  }

  ServerStopState* state_;
  Task<T> inner_;
  std::coroutine_handle<> outer_;
  bool linked_ = false;
  bool stopped_ = false;
};

/// StopToken::unless_stopped (a free coroutine: the frame must not refer to the token).
template <class T>
Task<T> race_stop(ServerStopState* state, Task<T> task) {
  if constexpr (std::is_void_v<T>) {
    if (state) {
      co_await StopRaceAwaiter<T>(state, std::move(task));
    } else {
      co_await task;
    }
  } else {
    if (state) {
      T value = co_await StopRaceAwaiter<T>(state, std::move(task));
      co_return value;
    }
    T value = co_await task;
    co_return value;
  }
}

}  // namespace detail

/// A connection handler's view of its server stopping: StreamServer::stop_token(), called in
/// the handler. Stop is requested when shutdown() begins (and by close()); every serving loop
/// learns it through its own token, on that loop. Use a token on the loop it was obtained on,
/// while the server exists. A default-constructed token never stops.
class TETHER_API StopToken {
 public:
  StopToken() noexcept = default;
  explicit StopToken(detail::ServerStopState* state) noexcept : state_(state) {}
  /// Stop was requested.
  [[nodiscard]] bool stop_requested() const noexcept { return state_ && state_->requested(); }
  /// Completes once stop is requested (at once if it was).
  Task<void> wait() const;
  /// Runs `task` (typically a read waiting for the next request); if stop is requested before
  /// it finishes — or was already — the task is cancelled (its frame destroyed: a stream read
  /// loses nothing, the bytes that arrived stay buffered) and Cancelled("the server is
  /// stopping") is thrown. Otherwise its result or exception passes through. Work that is not
  /// wrapped (a request being answered) is not interrupted.
  template <class T>
  Task<T> unless_stopped(Task<T> task) const {
    return detail::race_stop<T>(state_, std::move(task));
  }

 private:
  detail::ServerStopState* state_ = nullptr;
};

struct ServerOptions {
  /// Loop threads serving connections (see the file comment). 1 = the server's own loop.
  std::size_t threads = 1;
  /// Open connections allowed at once (0 = unlimited). Excess connections are accepted and
  /// closed at once, and counted in ServerStats::rejected.
  std::size_t max_connections = 0;
  /// Set: every connection speaks TLS with this server context.
  std::optional<TlsContext> tls;
  /// Limit for a TLS handshake; a client that stalls it is dropped (ServerStats::handshake_failures).
  Duration tls_handshake_timeout = std::chrono::seconds(10);
  /// Limit for a whole connection's handler (zero: none). Expiry cancels the handler, which
  /// closes its stream (ServerStats::handler_timeouts). Per-read limits belong in the handler
  /// (with_timeout around a read); this is the backstop against peers that trickle bytes.
  Duration handler_timeout = Duration::zero();
  /// Options applied to each accepted socket (TCP_NODELAY on by default).
  SocketOptions socket;
  /// Limits of each connection's BufferedStream (max_buffer_size bounds what a peer can make
  /// the server buffer).
  StreamOptions stream;
  /// On EMFILE/ENFILE the server sheds the pending connection with a reserved descriptor; if
  /// that is not possible it stops accepting for this long.
  Duration accept_pause = std::chrono::milliseconds(100);
  /// Connections accepted per listener wake-up before other work gets a turn.
  int accept_batch = 64;
  /// start(n > 1): how many times crashed workers are restarted before the supervisor gives up.
  int max_restarts = 100;
  /// Busy polling of every loop that serves connections (EventLoop::set_busy_poll): the worker
  /// threads' loops, and the server's own loop when threads == 1. Default: adaptive up to
  /// 200 us -- a loop spins before it sleeps only while requests have been arriving in quick
  /// succession, so a busy peer (a Python client above all) finds the server awake, and an idle
  /// or lightly used server spends no CPU on it. A Duration sets a fixed spin; zero
  /// (BusyPoll::off()) turns it off (the server then leaves its loops' setting alone).
  BusyPoll busy_poll = BusyPoll::adaptive_default();
  /// Non-zero: the size of the worker pool (EventLoop::set_worker_threads) of every loop that
  /// serves connections, for blocking work such as RPC bindings made with expose_blocking. Zero
  /// keeps the loop's default (max(4, cores)). On the server's own loop (threads == 1) it must
  /// be set before that loop's pool is first used.
  std::size_t worker_threads = 0;
};

/// Counters (a consistent-enough snapshot; each field is read atomically).
struct ServerStats {
  std::uint64_t accepted = 0;            ///< connections handed to a handler
  std::uint64_t rejected = 0;            ///< closed at once because of max_connections
  std::uint64_t fd_exhausted = 0;        ///< accept() failures with EMFILE/ENFILE
  std::uint64_t shed = 0;                ///< connections closed through the reserved descriptor
  std::uint64_t accept_pauses = 0;       ///< times accepting paused for accept_pause
  std::uint64_t accept_errors = 0;       ///< other accept() failures
  std::uint64_t handshake_failures = 0;  ///< TLS handshakes that failed or timed out
  std::uint64_t handler_errors = 0;      ///< handlers that ended with an exception
  std::uint64_t handler_timeouts = 0;    ///< handlers cancelled by handler_timeout
  std::uint64_t cancelled = 0;           ///< handlers cancelled by shutdown()/close()
  std::uint64_t closed_clients = 0;      ///< connections closed by close_clients()/abort_clients()
  std::size_t active = 0;                ///< connections open now
  std::vector<std::uint64_t> per_thread;  ///< connections accepted per loop thread
};

class TETHER_API StreamServer {
 public:
  /// The coroutine that serves one connection. Called on the connection's loop.
  using Handler = std::function<Task<void>(std::unique_ptr<BufferedStream> stream, Address peer)>;
  /// Called on the server's loop with the listening addresses each time sockets are attached.
  using ListenHook = std::function<void(const std::vector<Address>& addresses)>;

  /// start(n > 1) returns this in the supervising parent once every worker has exited.
  static constexpr int kSupervisor = -1;

  /// A server whose connections go to handle_stream() (override it in a subclass).
  explicit StreamServer(ServerOptions options = {});
  /// A server whose connections go to `handler`.
  explicit StreamServer(Handler handler, ServerOptions options = {});
  /// close(). A subclass overriding handle_stream() must call close() in its own destructor
  /// (handlers may still be running on other threads until then).
  virtual ~StreamServer();
  StreamServer(const StreamServer&) = delete;
  StreamServer& operator=(const StreamServer&) = delete;

  /// bind(port, host) + start(1). Port 0 picks a free port: read it with ports().
  void listen(std::uint16_t port, const std::string& host = "");
  /// bind_unix(path) + start(1).
  void listen_unix(const std::string& path);
  /// Creates listening sockets (bind_sockets) without serving them yet. Blocking resolve.
  void bind(std::uint16_t port, const std::string& host = "", int backlog = 128, bool reuse_port = false);
  /// Creates a listening Unix socket (stale file removed; the file is removed again on close).
  void bind_unix(const std::string& path, int backlog = 128);

  /// Starts serving the bound sockets.
  ///  * processes == 1: on the current loop (EventLoop::current(), which must exist); returns 0.
  ///  * processes != 1 (0 = one per core): forks. Must be called before any EventLoop exists
  ///    on this thread and before other threads are started (UsageError otherwise). In each
  ///    child, start() creates the child's loop (owned by the server: loop()), attaches the
  ///    sockets there and returns the worker's index (0 .. n-1): run loop().run() next. The
  ///    parent supervises: a worker that dies from a signal or exits non-zero is restarted
  ///    (up to options.max_restarts in total, then the rest are terminated and Error is
  ///    thrown); one that exits 0 is not. SIGINT/SIGTERM/SIGHUP sent to the parent are
  ///    forwarded (as SIGTERM) to the workers; once all have exited start() returns
  ///    kSupervisor in the parent.
  int start(int processes = 1);

  /// Serves already-listening sockets on the current loop (made non-blocking here).
  void add_sockets(std::vector<Fd> sockets);
  void add_socket(Fd socket);

  /// Stops accepting and closes the listening sockets (removing Unix socket files). Open
  /// connections are not touched. Idempotent.
  void stop();
  /// stop(), requests stop on every serving loop (StopToken: handlers waiting in
  /// unless_stopped() end at once), then waits up to `grace` for handlers to finish; the ones
  /// still running are cancelled (their streams close) and shutdown() completes once every
  /// connection is gone. Await it on the server's loop, not from inside a handler.
  Task<void> shutdown(Duration grace);
  /// stop() + cancel every handler at once + stop and join the loop threads. Synchronous;
  /// the destructor calls it. Not from inside a handler.
  void close();
  /// asyncio 3.13 Server.close_clients(): closes every open connection's stream
  /// (BufferedStream::close(): a read pending in a handler fails at once with StreamClosed,
  /// bytes already queued are still flushed), each on its own loop (posted to the other
  /// threads: the closes happen soon after the call, not during it). The handlers then end
  /// as their streams fail them; listening is not affected. Connections still in their TLS
  /// handshake are not closed. With stop(), then shutdown(grace), it ends every connection
  /// at once instead of after the grace period.
  void close_clients();
  /// asyncio 3.13 Server.abort_clients(): as close_clients() with BufferedStream::abort()
  /// (queued bytes are dropped).
  void abort_clients();
  /// What a handler awaits or races its reads against to learn that the server is stopping
  /// (see StopToken). Call it on the connection's loop (inside the handler); UsageError on a
  /// loop that serves no connections of this server.
  [[nodiscard]] StopToken stop_token() const;
  /// shutdown() or close() has begun (any thread).
  [[nodiscard]] bool stopping() const noexcept;

  /// Listening addresses (bound or serving; port 0 already replaced by the chosen port).
  [[nodiscard]] std::vector<Address> addresses() const;
  /// The IP ports of addresses() (Unix sockets skipped).
  [[nodiscard]] std::vector<std::uint16_t> ports() const;
  [[nodiscard]] ServerStats stats() const;
  /// True while listening sockets are being served.
  [[nodiscard]] bool serving() const noexcept;
  /// Number of open connections (any thread may read it).
  [[nodiscard]] std::size_t active_connections() const noexcept;
  /// The loop the server is attached to. Throws UsageError before attaching.
  [[nodiscard]] EventLoop& loop() const;
  /// Worker index after start(n > 1) in a child; 0 otherwise.
  [[nodiscard]] int worker_id() const noexcept;
  [[nodiscard]] const ServerOptions& options() const noexcept;

  /// Hook for upper layers (the registry announces the server with it). Set before serving.
  void set_on_listen(ListenHook hook);

 protected:
  /// Serves one connection; the default calls the handler given to the constructor (or
  /// throws UsageError if there is none). Runs on the connection's loop; with threads > 1,
  /// concurrently on several threads.
  virtual Task<void> handle_stream(std::unique_ptr<BufferedStream> stream, Address peer);

 public:
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// asyncio.start_server: a listening StreamServer on the current loop serving host:port with
/// `handler` (port 0: read server->ports()).
TETHER_API std::unique_ptr<StreamServer> start_server(StreamServer::Handler handler, const std::string& host,
                                                      std::uint16_t port, ServerOptions options = {});
/// asyncio.start_unix_server.
TETHER_API std::unique_ptr<StreamServer> start_unix_server(StreamServer::Handler handler, const std::string& path,
                                                           ServerOptions options = {});

}  // namespace tether
