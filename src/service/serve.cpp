#include "tether/service/serve.hpp"

#include <unistd.h>

#include <future>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "tether/base/log.hpp"
#include "tether/channel/channel.hpp"
#include "tether/loop/stop_signals.hpp"
#include "tether/loop/time.hpp"
#include "tether/net/tls_transport.hpp"
#include "tether/rpc/protocol.hpp"
#include "tether/rpc/py_error.hpp"
#include "tether/service/auth.hpp"
#include "tether/stream/fd_transport.hpp"

namespace tether {

// ------------------------------------------------------------------------ shared state

/// What every connection handler of one Server shares (any thread).
struct Server::Shared {
  std::shared_ptr<const detail::ServiceDef> def;
  ConnectionOptions connection;
  ChannelOptions channel;
  std::string auth_token;
  Duration auth_timeout{};
  std::shared_ptr<ServerMetrics> metrics;
  HttpOptions http;

  struct Entry {
    std::weak_ptr<Session> session;
    EventLoop* loop;
  };
  mutable std::mutex mu;
  bool draining = false;
  std::unordered_map<const Session*, Entry> sessions;

  /// Registers a live session; starts its drain at once if the server is shutting down.
  void add(const std::shared_ptr<Session>& s, EventLoop& loop) {
    bool drain = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      sessions[s.get()] = Entry{s, &loop};
      drain = draining;
    }
    if (drain) s->begin_drain();
  }
  void remove(const Session* s) {
    std::lock_guard<std::mutex> lock(mu);
    sessions.erase(s);
  }
  std::size_t count() const {
    std::lock_guard<std::mutex> lock(mu);
    return sessions.size();
  }
  /// Asks every session to close once idle (on its own loop thread).
  void drain_all() {
    std::lock_guard<std::mutex> lock(mu);
    draining = true;
    for (auto& [key, e] : sessions) {
      e.loop->post([weak = e.session]() {
        if (auto s = weak.lock()) s->begin_drain();
      });
    }
  }
};

namespace {

/// Unregisters a session however its handler ends.
struct Registration {
  std::shared_ptr<Server::Shared> shared;
  const Session* key;
  Registration(std::shared_ptr<Server::Shared> sh, const std::shared_ptr<Session>& s, EventLoop& loop)
      : shared(std::move(sh)), key(s.get()) {
    if (shared) shared->add(s, loop);
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;
  ~Registration() {
    if (shared) shared->remove(key);
  }
};

/// A connection's figures (ServeOptions::metrics): opened with the session, closed with it.
struct Observed {
  std::shared_ptr<ServerMetrics> metrics;
  std::shared_ptr<rpc::CallObserver> observer;
  /// Why the connection closed; a session cancelled before it could say is "cancelled".
  std::string_view reason = metrics::close_reason::kCancelled;
  Observed(const std::shared_ptr<Server::Shared>& shared, EventLoop& loop, const std::string& peer) {
    if (shared && shared->metrics) {
      metrics = shared->metrics;
      observer = metrics->open_connection(loop, peer);
    }
  }
  Observed(const Observed&) = delete;
  Observed& operator=(const Observed&) = delete;
  ~Observed() {
    if (metrics) metrics->close_connection(observer, reason);
  }
};

/// Why a connection closed, from how it ended (metrics::close_reason).
std::string_view close_reason_of(const Connection& conn, bool refused, bool drained) {
  namespace reason = metrics::close_reason;
  if (refused) return reason::kRefused;
  if (drained) return reason::kShutdown;
  const std::exception_ptr error = conn.error();
  if (!error) return reason::kPeerClose;
  try {
    std::rethrow_exception(error);
  } catch (const Timeout& e) {
    // The connection's two watchdogs (connection_core.cpp) say which fired.
    return std::string_view(e.what()).starts_with("idle") ? reason::kIdleTimeout : reason::kFrameTimeout;
  } catch (const Disconnected&) {
    return reason::kDisconnected;
  } catch (const ProtocolError&) {
    return reason::kProtocolError;
  } catch (const LimitExceeded&) {
    return reason::kLimitExceeded;
  } catch (...) {
  }
  return reason::kIoError;
}

/// Runs on_disconnect if the handler is cancelled before it could.
struct Finisher {
  Session* session;
  ~Finisher() { session->finish(true); }
};

/// How long a refused client may take to send the request its refusal answers.
constexpr Duration kRefusalLinger = std::chrono::seconds(10);

/// What a client refused by on_connect is told: a PyError as thrown, anything else as a
/// PermissionError that reveals nothing of the service's reasons (those are logged).
std::exception_ptr refusal_for(const std::exception_ptr& error) {
  try {
    if (error) std::rethrow_exception(error);
  } catch (const PyError&) {
    return error;
  } catch (...) {
  }
  return std::make_exception_ptr(PyError("PermissionError", "connection refused by the service"));
}

/// Aborts a refused connection whose client sends nothing.
struct LingerTimer {
  EventLoop& loop;
  TimerHandle timer;
  ~LingerTimer() { timer.cancel(); }
};

/// Serves one connection: Channel -> Connection with a fresh service root, until it closes or
/// the drain protocol closes it. `refusal` set: the connection is refused from the start (the
/// auth-token check failed) and on_connect does not run.
Task<void> run_session(std::shared_ptr<const detail::ServiceDef> def, ConnectionOptions options,
                       ChannelOptions channel_options, std::unique_ptr<BufferedStream> stream,
                       std::string peer, std::shared_ptr<Server::Shared> shared,
                       std::exception_ptr refusal = nullptr) {
  EventLoop& loop = EventLoop::current_or_throw();
  auto session = std::make_shared<Session>(def, peer, loop);
  if (auto* tls = dynamic_cast<TlsTransport*>(&stream->transport())) {
    session->set_peer_certificate(tls->peer_certificate());
  }
  if (options.name.empty()) options.name = peer;
  if (options.peer.empty()) options.peer = peer;
  Observed observed(shared, loop, peer);
  options.observer = observed.observer;
  options.classes = std::shared_ptr<const ClassSet>(def, &def->classes);
  auto channel = std::make_unique<Channel>(std::move(stream), channel_options);
  ObjectPtr root;
  try {
    root = make_service_root(def, session, options.policy.exposed_prefix);
  } catch (...) {
    // A custom root's factory failed: the client is refused as by on_connect.
    TETHER_LOG_WARN("service {}: no root for {}: {}", def->name, peer, describe_current_exception());
    if (!refusal) refusal = refusal_for(std::current_exception());
  }
  auto conn = std::make_unique<Connection>(std::move(channel), std::move(root), std::move(options));
  session->attach(*conn);
  std::weak_ptr<Session> weak = session;
  conn->set_close_callback([weak]() {
    if (auto s = weak.lock()) s->wake();
  });
  Finisher finisher{session.get()};
  Registration registration(std::move(shared), session, loop);
  conn->start();
  if (!refusal && !session->run_on_connect()) refusal = refusal_for(session->connect_error());
  if (refusal && observed.metrics) observed.metrics->count_refused();
  std::optional<LingerTimer> linger;
  bool drained = false;
  if (refusal) {
    // The client's first request is answered with the refusal, then the connection closes
    // (Connection::refuse); a client that sends nothing is dropped after kRefusalLinger.
    conn->refuse(refusal);
    Connection* c = conn.get();
    linger.emplace(LingerTimer{loop, loop.call_later(kRefusalLinger, [c]() { c->abort(); })});
  }
  while (!conn->closed()) {
    co_await session->wait_wake();
    if (!conn->closed() && session->should_close()) {
      drained = true;
      // Like a 5.x peer's close: CLOSE goes out after the replies already queued, then the
      // socket closes (no waiting for the client, which may not be reading).
      try {
        AsyncResult closing = conn->async_request(rpc::Handler::kClose, {});
        (void)closing;
      } catch (...) {
      }
      conn->abort();
    }
  }
  observed.reason = close_reason_of(*conn, refusal != nullptr, drained);
  session->finish(true);
}

/// The auth-token preamble (tether/service/auth.hpp). kAccepted, kRefused (a wrong token:
/// answered, the connection is to close), or kNoPreamble (the client started with something
/// else, e.g. a stock RPyC request; nothing consumed).
enum class AuthOutcome { kAccepted, kRefused, kNoPreamble };

Task<AuthOutcome> check_auth(BufferedStream& stream, std::string token) {
  co_await stream.fill(auth::kMagic.size());
  const auto* p = reinterpret_cast<const char*>(stream.buffer().peek());
  if (std::string_view(p, auth::kMagic.size()) != auth::kMagic) co_return AuthOutcome::kNoPreamble;
  Bytes head = co_await stream.read_exactly(auth::kMagic.size() + 3);
  const auto* h = reinterpret_cast<const unsigned char*>(head.data());
  const std::size_t len = (std::size_t{h[5]} << 8) | h[6];
  bool ok = h[4] == auth::kVersion && len > 0 && len <= auth::kMaxTokenSize;
  if (ok) {
    Bytes given = co_await stream.read_exactly(len);
    ok = auth::constant_time_equal(given.view(), token);
  }
  std::string reply(auth::kMagic);
  reply.push_back(static_cast<char>(ok ? auth::kAccepted : auth::kRefused));
  stream.write(reply);
  co_return ok ? AuthOutcome::kAccepted : AuthOutcome::kRefused;
}

/// A server connection: the auth-token check if configured, then the session.
Task<void> serve_connection(std::shared_ptr<Server::Shared> shared, std::unique_ptr<BufferedStream> stream,
                            std::string peer) {
  if (shared->http.on_rpc_port && shared->metrics) {
    // An HTTP request line cannot start an RPyC frame (http::starts_request): answer it.
    // A client idle before its first byte is left alone, as on the RPC path; once a first
    // byte has come, the rest of the four must follow within frame_timeout, as a begun RPC
    // frame must (else a peer sending one byte would be held for ever).
    bool http = false;
    try {
      co_await stream->fill(1);
      const Duration limit = shared->connection.frame_timeout;
      if (limit > Duration::zero()) {
        co_await with_timeout(limit, stream->fill(4));
      } else {
        co_await stream->fill(4);
      }
      const auto* p = reinterpret_cast<const char*>(stream->buffer().peek());
      http = http::starts_request(std::string_view(p, 4));
    } catch (...) {
      co_return;  // gone, or stalled, before sending 4 bytes
    }
    if (http) {
      co_await http::serve(*stream, shared->metrics, shared->http);
      co_return;
    }
  }
  std::exception_ptr refusal;
  if (!shared->auth_token.empty()) {
    AuthOutcome outcome = AuthOutcome::kRefused;
    bool failed = false;
    try {
      outcome = co_await with_timeout(shared->auth_timeout, check_auth(*stream, shared->auth_token));
    } catch (...) {
      TETHER_LOG_WARN("service {}: {} sent no auth token: {}", shared->def->name, peer,
                      describe_current_exception());
      failed = true;
    }
    if (failed) co_return;  // timed out or went away: the stream closes with this frame
    if (outcome == AuthOutcome::kRefused) {
      if (shared->metrics) shared->metrics->count_refused();
      TETHER_LOG_WARN("service {}: {} sent a wrong auth token", shared->def->name, peer);
      stream->close();  // the refusal byte is flushed first
      co_await stream->wait_closed();
      co_return;
    }
    if (outcome == AuthOutcome::kNoPreamble) {
      TETHER_LOG_WARN(
          "service {}: {} did not send the auth token (not a tether client with "
          "ClientOptions::auth_token); refusing it",
          shared->def->name, peer);
      refusal = std::make_exception_ptr(PyError("PermissionError",
                                                "this server requires an auth token (a tether client's "
                                                "ClientOptions::auth_token); connection refused"));
    }
  }
  co_await run_session(shared->def, shared->connection, shared->channel, std::move(stream), std::move(peer),
                       shared, refusal);
}

/// An admin connection: HTTP only (owns its stream).
Task<void> serve_http_stream(std::unique_ptr<BufferedStream> stream, std::shared_ptr<ServerMetrics> metrics,
                             HttpOptions options) {
  co_await http::serve(*stream, std::move(metrics), std::move(options));
}

}  // namespace

// ------------------------------------------------------------------------------- Server

Server::Server(const Service& service, ServeOptions options)
    : Server(service.snapshot(), std::move(options)) {}

Server::Server(std::shared_ptr<const detail::ServiceDef> service, ServeOptions options)
    : shared_(std::make_shared<Shared>()), options_(std::move(options)) {
  shared_->def = std::move(service);
  shared_->connection = options_.connection;
  shared_->connection.pause_reading_on_backlog = options_.output_backpressure;
  shared_->channel = options_.channel;
  shared_->auth_token = options_.auth_token;
  shared_->auth_timeout = options_.auth_timeout;
  shared_->http = options_.http;
  if (options_.metrics) {
    shared_->metrics = std::make_shared<ServerMetrics>(
        shared_->def->aliases.empty() ? shared_->def->name : shared_->def->aliases.front(),
        options_.connection.policy.exposed_prefix);
  }
}

Server::~Server() { close(); }

void Server::start() {
  if (server_) throw UsageError("tether::Server::start: already started");
  std::shared_ptr<Shared> shared = shared_;
  StreamServer::Handler handler = [shared](std::unique_ptr<BufferedStream> stream, Address peer) {
    return serve_connection(shared, std::move(stream), peer.to_string());
  };
  server_ = std::make_unique<StreamServer>(std::move(handler), options_.server);
  if (!options_.unix_path.empty()) {
    server_->listen_unix(options_.unix_path);
  } else {
    server_->listen(options_.port, options_.host);
  }
  if (shared_->metrics) {
    start_admin();
    shared_->metrics->watch_loop(server_->loop());
    shared_->metrics->set_listening(true);
  }
  if (options_.on_listen) options_.on_listen(server_->addresses());
  if (options_.hooks.empty()) return;
  ServerInfo info;
  info.loop = &server_->loop();
  info.host = options_.host;
  info.addresses = server_->addresses();
  info.service_name = shared_->def->aliases.empty() ? shared_->def->name : shared_->def->aliases.front();
  info.aliases = shared_->def->aliases;
  info.tls = options_.server.tls.has_value();
  info.generation = options_.connection.generation;
  info.metrics = shared_->metrics;
  try {
    for (const ServerHookFactory& make : options_.hooks) {
      if (std::unique_ptr<ServerHook> hook = make(info)) hooks_.push_back(std::move(hook));
    }
  } catch (...) {
    close();
    throw;
  }
}

std::uint16_t Server::port() const {
  if (!server_) return 0;
  auto ports = server_->ports();
  return ports.empty() ? 0 : ports.front();
}

std::vector<Address> Server::addresses() const {
  return server_ ? server_->addresses() : std::vector<Address>{};
}

std::size_t Server::connections() const noexcept { return shared_->count(); }

ServerStats Server::stats() const { return server_ ? server_->stats() : ServerStats{}; }

std::shared_ptr<ServerMetrics> Server::metrics() const { return shared_->metrics; }

std::uint16_t Server::admin_port() const {
  if (!admin_) return 0;
  auto ports = admin_->ports();
  return ports.empty() ? 0 : ports.front();
}

void Server::start_admin() {
  const HttpOptions& http = options_.http;
  if (http.admin_port == 0 && !http.admin_port_any) return;
  std::shared_ptr<ServerMetrics> metrics = shared_->metrics;
  StreamServer::Handler handler = [metrics, http](std::unique_ptr<BufferedStream> stream, Address) {
    return serve_http_stream(std::move(stream), metrics, http);
  };
  admin_ = std::make_unique<StreamServer>(std::move(handler), ServerOptions{});
  admin_->listen(http.admin_port, http.admin_host);
}

EventLoop& Server::loop() const {
  if (!server_) throw UsageError("tether::Server: not started");
  return server_->loop();
}

void Server::stop() {
  if (server_) server_->stop();
}

Task<void> Server::shutdown() { return shutdown(options_.shutdown_grace); }

Task<void> Server::shutdown(Duration grace) {
  if (!server_) co_return;
  if (shared_->metrics) shared_->metrics->set_draining(true);  // /readyz answers 503 from now
  // The hooks move into this frame: a close() meanwhile cannot destroy one that is running.
  std::vector<std::unique_ptr<ServerHook>> hooks = std::move(hooks_);
  for (std::unique_ptr<ServerHook>& hook : hooks) {
    try {
      co_await hook->on_shutdown();
    } catch (...) {
      TETHER_LOG_WARN("tether::Server: a hook's on_shutdown failed: {}", describe_current_exception());
    }
  }
  hooks.clear();
  server_->stop();
  shared_->drain_all();
  co_await server_->shutdown(grace);
  if (shared_->metrics) shared_->metrics->set_listening(false);
  if (admin_) admin_->close();
}

void Server::close() {
  hooks_.clear();
  if (server_) server_->close();
  if (admin_) admin_->close();
  if (shared_->metrics) shared_->metrics->set_listening(false);
}

ServerHook::~ServerHook() = default;

Task<void> ServerHook::on_shutdown() { co_return; }

// ------------------------------------------------------------------------------- serve

namespace {

Task<void> serve_until_signal(Server& server, StopSignals& signals) {
  co_await signals.wait();
  TETHER_LOG_INFO("tether::serve: signal received, shutting down");
  co_await server.shutdown();
}

}  // namespace

void serve(const Service& service, ServeOptions options) {
  std::unique_ptr<EventLoop> own;
  if (!EventLoop::current()) own = std::make_unique<EventLoop>();
  EventLoop& loop = EventLoop::current_or_throw();
  // Installed before the server starts its loop threads, which inherit the blocked mask.
  StopSignals signals(loop);
  Server server(service, std::move(options));
  server.start();
  loop.run_until_complete(serve_until_signal(server, signals));
  server.close();
  for (int i = 0; i < 3; ++i) loop.run_once(Duration::zero());
}

// Not a coroutine (GCC 12 bit-copies class-type default arguments of coroutines).
Task<void> serve_stream(const Service& service, std::unique_ptr<BufferedStream> stream,
                        ConnectionOptions options, ChannelOptions channel, std::string peer) {
  options.pause_reading_on_backlog = true;  // serving: see ServeOptions::output_backpressure
  return run_session(service.snapshot(), std::move(options), channel, std::move(stream), std::move(peer),
                     nullptr);
}

void serve_stdio(const Service& service, ConnectionOptions options, ChannelOptions channel) {
  std::unique_ptr<EventLoop> own;
  if (!EventLoop::current()) own = std::make_unique<EventLoop>();
  EventLoop& loop = EventLoop::current_or_throw();
  Fd in(::dup(STDIN_FILENO));
  Fd out(::dup(STDOUT_FILENO));
  if (!in.valid() || !out.valid()) throw IoError(errno, "serve_stdio: dup");
  auto transport = std::make_unique<FdTransport>(loop, std::move(in), std::move(out), "stdio");
  auto stream = std::make_unique<BufferedStream>(std::move(transport));
  loop.run_until_complete(serve_stream(service, std::move(stream), std::move(options), channel, "stdio"));
  for (int i = 0; i < 3; ++i) loop.run_once(Duration::zero());
}

// --------------------------------------------------------------------------- ServerThread

namespace {
struct ThreadReady {
  std::promise<void> promise;
};

Task<void> wait_and_shutdown(Server& server, std::shared_ptr<Event> stop) {
  co_await stop->wait();
  co_await server.shutdown();
}
}  // namespace

ServerThread::ServerThread(const Service& service, ServeOptions options) : stop_(std::make_shared<Event>()) {
  ThreadReady ready;
  std::future<void> started = ready.promise.get_future();
  thread_ = std::thread(&ServerThread::run, this, service.snapshot(), std::move(options), &ready);
  try {
    started.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

ServerThread::~ServerThread() { stop(); }

void ServerThread::run(std::shared_ptr<const detail::ServiceDef> def, ServeOptions options, void* ready_ptr) {
  auto* ready = static_cast<ThreadReady*>(ready_ptr);
  EventLoop loop;
  Server server(std::move(def), std::move(options));
  try {
    server.start();
  } catch (...) {
    ready->promise.set_exception(std::current_exception());
    return;
  }
  loop_ = &loop;
  server_ = &server;
  port_ = server.port();
  admin_port_ = server.admin_port();
  metrics_ = server.metrics();
  addresses_ = server.addresses();
  ready->promise.set_value();  // `ready` is gone after this
  try {
    loop.run_until_complete(wait_and_shutdown(server, stop_));
  } catch (...) {
    TETHER_LOG_ERROR("tether::ServerThread: {}", describe_current_exception());
  }
  server.close();
  for (int i = 0; i < 3; ++i) loop.run_once(Duration::zero());
}

std::size_t ServerThread::connections() const noexcept { return server_ ? server_->connections() : 0; }

ServerStats ServerThread::stats() const {
  if (!loop_ || !thread_.joinable()) return {};
  std::promise<ServerStats> p;
  std::future<ServerStats> f = p.get_future();
  loop_->post([&p, this]() { p.set_value(server_->stats()); });
  return f.get();
}

void ServerThread::stop() {
  if (!thread_.joinable()) return;
  if (std::this_thread::get_id() == thread_.get_id())
    throw UsageError("ServerThread::stop from its own thread");
  loop_->post([stop = stop_]() { stop->set(); });
  thread_.join();
}

}  // namespace tether
