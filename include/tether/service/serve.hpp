#pragma once
/// \file Serving a Service: over TCP, Unix sockets or TLS (Server, serve), over one stream
/// (serve_stream), over stdin/stdout (serve_stdio), or on a thread of its own (ServerThread).
///
/// Each accepted connection becomes Stream -> Channel -> Connection whose root is a fresh
/// per-connection service root (see service.hpp); the RPyC generation (5.x / 6.x) is detected
/// from the client's first message unless ServeOptions::connection.generation forces one.
///
/// Graceful shutdown (Server::shutdown, serve() on SIGINT/SIGTERM): stop accepting; close every
/// connection as soon as no call into the service is running on it (CLOSE is sent, queued
/// replies are flushed); after the grace period the remaining connections are cancelled.
/// "Calls into the service" are calls of the root's functions; a long call on an object the
/// service handed out does not hold the connection open.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/channel/frame.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/net/address.hpp"
#include "tether/net/stream_server.hpp"
#include "tether/rpc/connection.hpp"
#include "tether/rpc/protocol.hpp"
#include "tether/service/http.hpp"
#include "tether/service/metrics.hpp"
#include "tether/service/service.hpp"
#include "tether/stream/buffered_stream.hpp"

namespace tether {

/// What a ServerHook is told when its server starts listening.
struct ServerInfo {
  /// The server's loop: hooks are made, run and destroyed there.
  EventLoop* loop = nullptr;
  /// ServeOptions::host as given ("0.0.0.0", "" or "::" mean every interface).
  std::string host;
  /// The bound addresses (port 0 already replaced by the chosen port; Unix paths for unix_path).
  std::vector<Address> addresses;
  /// get_service_name() and get_service_aliases() (upper-cased; the first is the name).
  std::string service_name;
  std::vector<std::string> aliases;
  /// Connections speak TLS (ServeOptions::server.tls is set).
  bool tls = false;
  /// The RPyC generation the server speaks (kAuto: either, detected per connection).
  rpc::Generation generation = rpc::Generation::kAuto;
  /// The server's figures (null when ServeOptions::metrics is off): a hook reports its state
  /// there (the registry's announcer: ServerMetrics::set_registry / record_announcement).
  std::shared_ptr<ServerMetrics> metrics;
};

/// Behaviour attached to a Server's life by an upper layer (the registry announces the server
/// with one), so that the service layer need not know that layer. A ServerHookFactory makes
/// the hook once the server listens, on the server's loop. A graceful shutdown awaits
/// on_shutdown() before the server stops accepting, then destroys the hook; close() (and the
/// Server's destructor) destroys it at once. Destroying a hook must cancel everything it runs.
class TETHER_API ServerHook {
 public:
  virtual ~ServerHook();
  /// A graceful shutdown begins (server's loop). Should be bounded in time; an exception is
  /// logged and does not stop the shutdown. The default does nothing.
  virtual Task<void> on_shutdown();
};

/// Makes a hook for a server that has just started listening (on the server's loop). An
/// exception leaves Server::start(), which then closes the server.
using ServerHookFactory = std::function<std::unique_ptr<ServerHook>(const ServerInfo& info)>;

struct ServeOptions {
  /// TCP address (port 0: a free port, see Server::port()). Ignored when unix_path is set.
  std::string host = "127.0.0.1";
  std::uint16_t port = 18861;
  /// Set: listen on this Unix socket path instead ('@' prefix: abstract name).
  std::string unix_path;
  /// Network side: `threads` (loop threads serving connections; 1 = the server's loop),
  /// max_connections, tls (a TlsContext::server), socket and stream options.
  ServerOptions server;
  /// RPC side of each connection: generation (kAuto = detect per connection), access policy,
  /// sync_request_timeout, limits ...
  ConnectionOptions connection;
  /// Framing: compression threshold, frame size limits.
  ChannelOptions channel;
  /// Stop reading a connection's requests while its unsent replies are above the stream's
  /// high watermark (ServerOptions::stream.write_high_water, 64 KiB by default) until they
  /// drain to the low one: a client that sends and never reads costs bounded memory
  /// (ConnectionOptions::pause_reading_on_backlog, which this sets for every connection).
  /// serve_stream() and serve_stdio() always do this.
  bool output_backpressure = true;
  /// A shared secret every client must present before the RPyC protocol starts (see
  /// tether/service/auth.hpp): tether clients set ClientOptions::auth_token to the same
  /// value. Tether-to-tether only: a stock RPyC client cannot send it and is refused (its
  /// first request fails with PermissionError). Compared in constant time. Sent in clear text
  /// unless server.tls is set. Empty: no check.
  std::string auth_token;
  /// How long a client may take to send the token (then it is dropped).
  Duration auth_timeout = std::chrono::seconds(10);
  /// How long shutdown() waits for busy connections before cancelling them.
  Duration shutdown_grace = std::chrono::seconds(5);
  /// Called once listening, on the server's loop, with the bound addresses.
  std::function<void(const std::vector<Address>& addresses)> on_listen;
  /// Hooks attached to the server's life (see ServerHook), made in this order after on_listen.
  std::vector<ServerHookFactory> hooks;
  /// Count connections, requests, errors, bytes and latencies (Server::metrics(); see
  /// tether/service/metrics.hpp and docs/observability.md). Cheap enough to stay on.
  bool metrics = true;
  /// The HTTP endpoints (/metrics, /healthz, /readyz, /status.json, the console): on the RPC
  /// port (http.on_rpc_port, off by default) and/or an admin address. Needs metrics on.
  HttpOptions http;
};

/// A listening service (the non-blocking form of serve()). Every method on the loop that was
/// current at start() (the "server's loop"); connections run there too unless
/// options.server.threads > 1.
class TETHER_API Server {
 public:
  /// Takes a snapshot of `service` (later changes to it are not seen).
  Server(const Service& service, ServeOptions options);
  Server(std::shared_ptr<const detail::ServiceDef> service, ServeOptions options);
  /// close().
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds and starts accepting on the current loop, then makes options.hooks. Throws IoError
  /// (address in use ...) or what a hook factory threw (the server is closed again then).
  void start();
  /// The bound TCP port (0 for Unix sockets).
  [[nodiscard]] std::uint16_t port() const;
  [[nodiscard]] std::vector<Address> addresses() const;
  /// Connections currently open (any thread).
  [[nodiscard]] std::size_t connections() const noexcept;
  /// The network server's counters (accepted, rejected, ...).
  [[nodiscard]] ServerStats stats() const;
  [[nodiscard]] EventLoop& loop() const;
  /// The server's figures (null when ServeOptions::metrics is off). Any thread.
  [[nodiscard]] std::shared_ptr<ServerMetrics> metrics() const;
  /// The HTTP admin port (0 when there is no admin listener).
  [[nodiscard]] std::uint16_t admin_port() const;

  /// Stops accepting (open connections continue). Idempotent.
  void stop();
  /// Graceful shutdown (see the file comment) with options.shutdown_grace / `grace`: awaits
  /// every hook's on_shutdown() first, then stops accepting and drains. Completes when every
  /// connection is gone. Await on the server's loop.
  Task<void> shutdown();
  Task<void> shutdown(Duration grace);
  /// Destroys the hooks, stops and cancels every connection at once (the destructor calls it).
  void close();

  struct Shared;

 private:
  void start_admin();
  std::shared_ptr<Shared> shared_;
  ServeOptions options_;
  std::unique_ptr<StreamServer> server_;
  std::unique_ptr<StreamServer> admin_;
  std::vector<std::unique_ptr<ServerHook>> hooks_;
};

/// Serves until SIGINT or SIGTERM, then shuts down gracefully and returns. Uses the calling
/// thread's EventLoop, or creates one for the call. Installs handlers for both signals for the
/// duration (blocking them in this thread first, so loop threads started by the server inherit
/// the mask).
TETHER_API void serve(const Service& service, ServeOptions options = ServeOptions());

/// Serves one connection over `stream` (a pipe, a socketpair, a stream accepted elsewhere)
/// until it closes. `peer` names it in the Session. Loop thread of the stream.
TETHER_API Task<void> serve_stream(const Service& service, std::unique_ptr<BufferedStream> stream,
                                   ConnectionOptions options = ConnectionOptions(),
                                   ChannelOptions channel = ChannelOptions(), std::string peer = "stream");

/// Serves one connection over this process's stdin/stdout (a child started with
/// connect_process) until the peer closes it. Blocking; creates an EventLoop if the thread has
/// none. Nothing else may write to stdout meanwhile (tether's log goes to stderr).
TETHER_API void serve_stdio(const Service& service, ConnectionOptions options = ConnectionOptions(),
                            ChannelOptions channel = ChannelOptions());

/// A Server running on a thread (and EventLoop) of its own: for applications whose main
/// thread does something else, and for tests of blocking clients. The constructor returns
/// once the server listens (or rethrows why it could not).
class TETHER_API ServerThread {
 public:
  ServerThread(const Service& service, ServeOptions options);
  /// stop().
  ~ServerThread();
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] const std::vector<Address>& addresses() const noexcept { return addresses_; }
  /// Open connections (any thread).
  [[nodiscard]] std::size_t connections() const noexcept;
  [[nodiscard]] ServerStats stats() const;
  /// Server::metrics() and Server::admin_port() of the running server.
  [[nodiscard]] std::shared_ptr<ServerMetrics> metrics() const { return metrics_; }
  [[nodiscard]] std::uint16_t admin_port() const noexcept { return admin_port_; }
  [[nodiscard]] std::thread::id thread_id() const noexcept { return thread_.get_id(); }
  /// Graceful shutdown (options.shutdown_grace), then joins the thread. Idempotent; any thread
  /// but the server's own.
  void stop();

 private:
  void run(std::shared_ptr<const detail::ServiceDef> def, ServeOptions options, void* ready);

  EventLoop* loop_ = nullptr;
  Server* server_ = nullptr;
  std::shared_ptr<Event> stop_;
  std::uint16_t port_ = 0;
  std::uint16_t admin_port_ = 0;
  std::shared_ptr<ServerMetrics> metrics_;
  std::vector<Address> addresses_;
  std::thread thread_;
};

}  // namespace tether
