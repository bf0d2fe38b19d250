#include "tether/net/stream_server.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <future>

#include "net/server_impl.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/time.hpp"
#include "tether/net/tls_transport.hpp"
#include "tether/stream/fd_transport.hpp"

namespace tether {

namespace {

Fd open_spare() { return Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

bool quiet_error_kind(ErrorKind k) {
  return k == ErrorKind::kDisconnected || k == ErrorKind::kStreamClosed || k == ErrorKind::kIncompleteRead;
}

/// Accounts for a connection when its serving task ends, however it ends.
struct ConnectionGuard {
  explicit ConnectionGuard(StreamServer::Impl* server) noexcept : s(server) {}
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;
  ~ConnectionGuard() {
    if (!finished) s->cancelled.fetch_add(1, std::memory_order_relaxed);
    s->connection_done();
  }
  StreamServer::Impl* s;
  bool finished = false;
};

/// Keeps a connection in its worker's client list while its serving task lives.
struct ClientSlot {
  ClientSlot(StreamServer::Impl::Worker* worker, BufferedStream& stream) : w(worker) {
    it = w->clients.emplace(w->clients.end());
    it->stream = stream.weak_ref();
  }
  ClientSlot(const ClientSlot&) = delete;
  ClientSlot& operator=(const ClientSlot&) = delete;
  ~ClientSlot() { w->clients.erase(it); }
  StreamServer::Impl::Worker* w;
  std::list<StreamServer::Impl::Worker::Client>::iterator it;
};

Task<void> wait_forever() {
  Event never;
  co_await never.wait();
}

void worker_main(StreamServer::Impl::Worker* w, BusyPoll busy_poll, std::size_t worker_threads,
                 std::promise<void>* ready) {
  EventLoop loop;
  loop.set_busy_poll(busy_poll);
  if (worker_threads != 0) loop.set_worker_threads(worker_threads);
  TaskGroup group(loop);
  w->loop = &loop;
  w->group = &group;
  ready->set_value();
  loop.run();
  group.cancel_all();
  for (int i = 0; i < 3; ++i) loop.run_once(Duration::zero());
}

}  // namespace

// ------------------------------------------------------------------------------------- Impl

StreamServer::Impl::~Impl() {
  notifier->impl = nullptr;
  close_listeners();
  cancel_handlers();
  stop_workers();
}

void StreamServer::Impl::attach_to_current_loop() {
  EventLoop& current = EventLoop::current_or_throw();
  if (loop) {
    if (loop != &current) throw UsageError("StreamServer is already attached to another loop");
    return;
  }
  if (closed) throw UsageError("StreamServer is closed");
  loop = &current;
  notifier->impl = this;
  idle_waiters.emplace(&current);
  spare = open_spare();
  start_workers();
}

void StreamServer::Impl::start_workers() {
  if (opts.busy_poll.spin < Duration::zero()) throw UsageError("ServerOptions::busy_poll must not be negative");
  std::size_t n = opts.threads == 0 ? 1 : opts.threads;
  if (n == 1) {
    if (opts.busy_poll.enabled()) loop->set_busy_poll(opts.busy_poll);
    if (opts.worker_threads != 0) loop->set_worker_threads(opts.worker_threads);
    auto w = std::make_unique<Worker>();
    w->loop = loop;
    w->inline_group = std::make_unique<TaskGroup>(*loop);
    w->group = w->inline_group.get();
    workers.push_back(std::move(w));
    return;
  }
  for (std::size_t i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>();
    std::promise<void> ready;
    auto started = ready.get_future();
    w->thread = std::thread(worker_main, w.get(), opts.busy_poll, opts.worker_threads, &ready);
    started.wait();
    workers.push_back(std::move(w));
  }
}

void StreamServer::Impl::serve_pending() {
  if (pending.empty()) return;
  std::vector<Address> now;
  for (auto& lp : pending) {
    Listener& l = *lp;
    l.watcher = std::make_unique<IoWatcher>(*loop, l.fd.get());
    l.watcher->set_handler([this, &l](std::uint32_t) { on_acceptable(l); });
    if (!paused) l.watcher->enable_reading();
    now.push_back(l.addr);
    served_addresses.push_back(l.addr);
    listeners.push_back(std::move(lp));
  }
  pending.clear();
  if (on_listen) on_listen(now);
}

void StreamServer::Impl::on_acceptable(Listener& l) {
  for (int i = 0; i < opts.accept_batch; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int c = ::accept4(l.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      // Failures of one pending connection: skip it.
      if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM) continue;
      if (err == EMFILE || err == ENFILE) {
        fd_exhausted.fetch_add(1, std::memory_order_relaxed);
        int shed_result = shed_one(l);
        if (shed_result > 0) continue;  // one pending connection closed; look for more
        if (shed_result == 0) return;   // the backlog is empty
        TETHER_LOG_WARN("accept on {}: out of file descriptors; pausing accepts", l.addr.to_string());
      } else {
        accept_errors.fetch_add(1, std::memory_order_relaxed);
        TETHER_LOG_WARN("accept on {} failed: {}", l.addr.to_string(), std::strerror(err));
      }
      // Level-triggered: returning with the backlog unchanged would spin. Wait a little.
      pause_accepting();
      return;
    }
    Fd conn(c);
    Address peer = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    if (peer.empty()) peer = l.addr;
    if (opts.max_connections && active.load(std::memory_order_relaxed) >= opts.max_connections) {
      rejected.fetch_add(1, std::memory_order_relaxed);
      continue;  // closed at once by conn's destructor
    }
    active.fetch_add(1, std::memory_order_relaxed);
    accepted.fetch_add(1, std::memory_order_relaxed);
    dispatch(std::move(conn), peer);
  }
}

int StreamServer::Impl::shed_one(Listener& l) {
  // The reserve-descriptor trick: free one slot, accept the connection into it, close it, and
  // take the slot back. The client sees a closed connection instead of hanging in the backlog.
  if (!spare) return -1;
  spare.reset();
  int c = ::accept4(l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
  int err = errno;
  if (c >= 0) {
    ::close(c);
    shed.fetch_add(1, std::memory_order_relaxed);
  }
  spare = open_spare();
  if (c >= 0) return 1;
  return (err == EAGAIN || err == EWOULDBLOCK) ? 0 : -1;
}

void StreamServer::Impl::pause_accepting() {
  if (paused) return;
  paused = true;
  accept_pauses.fetch_add(1, std::memory_order_relaxed);
  for (auto& l : listeners) l->watcher->disable_reading();
  pause_timer = loop->call_later(opts.accept_pause, [this]() {
    pause_timer = {};
    resume_accepting();
  });
}

void StreamServer::Impl::resume_accepting() {
  paused = false;
  if (!spare) spare = open_spare();
  for (auto& l : listeners) l->watcher->enable_reading();
}

void StreamServer::Impl::dispatch(Fd conn, Address peer) {
  Worker* w = workers[next_worker++ % workers.size()].get();
  w->accepted.fetch_add(1, std::memory_order_relaxed);
  if (w->loop == loop) {
    w->group->spawn(serve_connection(this, w, std::move(conn), std::move(peer)));
    return;
  }
  w->loop->post([this, w, c = std::move(conn), p = std::move(peer)]() mutable {
    w->group->spawn(serve_connection(this, w, std::move(c), std::move(p)));
  });
}

Task<void> StreamServer::Impl::serve_connection(Impl* s, Worker* w, Fd fd, Address peer) {
  ConnectionGuard guard{s};
  apply_socket_options(fd.get(), s->opts.socket);
  std::unique_ptr<Transport> transport;
  if (s->opts.tls) {
    std::unique_ptr<TlsTransport> tls;
    bool ok = true;
    try {
      tls = co_await TlsTransport::server(std::move(fd), *s->opts.tls, s->opts.tls_handshake_timeout);
    } catch (const Error& e) {
      ok = false;
      TETHER_LOG_DEBUG("TLS handshake with {} failed: {}", peer.to_string(), e.what());
    }
    if (!ok) {
      s->handshake_failures.fetch_add(1, std::memory_order_relaxed);
      guard.finished = true;
      co_return;
    }
    transport = std::move(tls);
  } else {
    transport = std::make_unique<FdTransport>(*w->loop, std::move(fd), peer.to_string());
  }
  auto stream = std::make_unique<BufferedStream>(std::move(transport), s->opts.stream);
  ClientSlot client(w, *stream);
  const Duration limit = s->opts.handler_timeout;
  const TimePoint started = w->loop->now();
  try {
    Task<void> handler = s->owner->handle_stream(std::move(stream), peer);
    if (limit > Duration::zero()) {
      co_await with_timeout(limit, std::move(handler));
    } else {
      co_await handler;
    }
  } catch (const Timeout& e) {
    if (limit > Duration::zero() && w->loop->now() - started >= limit) {
      s->handler_timeouts.fetch_add(1, std::memory_order_relaxed);
      TETHER_LOG_DEBUG("handler for {} cancelled after handler_timeout", peer.to_string());
    } else {
      s->handler_errors.fetch_add(1, std::memory_order_relaxed);
      TETHER_LOG_DEBUG("handler for {} ended: {}", peer.to_string(), e.what());
    }
  } catch (const Error& e) {
    // A handler ended by the server's own close_clients() or stop request is not a failure.
    const bool by_server = client.it->closed_by_server || w->stop->requested();
    if (by_server && (quiet_error_kind(e.kind()) || e.kind() == ErrorKind::kCancelled)) {
      TETHER_LOG_DEBUG("handler for {} ended as the server closed it: {}", peer.to_string(), e.what());
      guard.finished = true;
      co_return;
    }
    s->handler_errors.fetch_add(1, std::memory_order_relaxed);
    if (quiet_error_kind(e.kind())) {
      TETHER_LOG_DEBUG("handler for {} ended: {}", peer.to_string(), e.what());
    } else {
      TETHER_LOG_WARN("handler for {} failed: {}: {}", peer.to_string(), to_string(e.kind()), e.what());
    }
  } catch (...) {
    s->handler_errors.fetch_add(1, std::memory_order_relaxed);
    TETHER_LOG_WARN("handler for {} failed: {}", peer.to_string(), describe_current_exception());
  }
  guard.finished = true;
}

void StreamServer::Impl::connection_done() {
  std::size_t left = active.fetch_sub(1, std::memory_order_acq_rel) - 1;
  if (left != 0 || !loop) return;
  if (loop->in_loop_thread()) {
    if (notifier->impl) idle_waiters->wake_all();
    return;
  }
  loop->post([n = notifier]() {
    if (n->impl) n->impl->idle_waiters->wake_all();
  });
}

Task<void> StreamServer::Impl::wait_idle(Impl* s) {
  while (s->active.load(std::memory_order_acquire) > 0) {
    co_await s->idle_waiters->wait();
  }
}

void StreamServer::Impl::close_listeners() {
  pause_timer.cancel();
  paused = false;
  for (auto* list : {&listeners, &pending}) {
    for (auto& l : *list) {
      l->watcher.reset();
      if (!l->unix_path.empty()) {
        struct stat st{};
        if (::stat(l->unix_path.c_str(), &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino) {
          ::unlink(l->unix_path.c_str());
        }
      }
    }
    list->clear();
  }
}

void StreamServer::Impl::cancel_handlers() {
  for (auto& w : workers) {
    if (w->inline_group) {
      w->inline_group->cancel_all();
    } else if (w->thread.joinable()) {
      TaskGroup* g = w->group;
      w->loop->post([g]() { g->cancel_all(); });
    }
  }
}

void StreamServer::Impl::request_stop() {
  if (stopping.exchange(true)) return;
  for (auto& w : workers) {
    std::shared_ptr<detail::ServerStopState> st = w->stop;
    if (w->inline_group) {
      // On the next turn, not inside shutdown(): the woken handlers resume from the loop.
      loop->call_soon([st]() { st->request(); });
    } else if (w->thread.joinable()) {
      w->loop->post([st]() { st->request(); });
    }
  }
}

void StreamServer::Impl::close_worker_clients(Worker& w, bool abort) {
  for (Worker::Client& c : w.clients) {
    const bool done = abort ? c.stream.abort() : c.stream.close();
    if (done) {
      if (!c.closed_by_server) closed_clients.fetch_add(1, std::memory_order_relaxed);
      c.closed_by_server = true;
    }
  }
}

void StreamServer::Impl::close_clients(bool abort) {
  for (auto& w : workers) {
    if (w->inline_group) {
      close_worker_clients(*w, abort);
    } else if (w->thread.joinable()) {
      Worker* wp = w.get();
      w->loop->post([this, wp, abort]() { close_worker_clients(*wp, abort); });
    }
  }
}

void StreamServer::Impl::stop_workers() {
  for (auto& w : workers) {
    if (!w->thread.joinable()) continue;
    EventLoop* lp = w->loop;
    TaskGroup* g = w->group;
    lp->post([lp, g]() {
      g->cancel_all();
      lp->stop();
    });
  }
  for (auto& w : workers) {
    if (w->thread.joinable()) w->thread.join();
  }
}

// ------------------------------------------------------------------------------- StreamServer

StreamServer::StreamServer(ServerOptions options) : impl_(std::make_unique<Impl>(this, Handler{}, std::move(options))) {}

StreamServer::StreamServer(Handler handler, ServerOptions options)
    : impl_(std::make_unique<Impl>(this, std::move(handler), std::move(options))) {}

StreamServer::~StreamServer() { close(); }

void StreamServer::listen(std::uint16_t port, const std::string& host) {
  impl_->attach_to_current_loop();
  bind(port, host);
  impl_->serve_pending();
}

void StreamServer::listen_unix(const std::string& path) {
  impl_->attach_to_current_loop();
  bind_unix(path);
  impl_->serve_pending();
}

void StreamServer::bind(std::uint16_t port, const std::string& host, int backlog, bool reuse_port) {
  if (impl_->closed) throw UsageError("StreamServer is closed");
  std::vector<Fd> fds = bind_sockets(port, host, backlog, reuse_port);
  for (Fd& fd : fds) {
    auto l = std::make_unique<Impl::Listener>();
    l->addr = local_address(fd.get());
    l->fd = std::move(fd);
    impl_->pending.push_back(std::move(l));
  }
}

void StreamServer::bind_unix(const std::string& path, int backlog) {
  if (impl_->closed) throw UsageError("StreamServer is closed");
  auto l = std::make_unique<Impl::Listener>();
  l->fd = bind_unix_socket(path, backlog);
  l->addr = Address::unix_socket(path);
  if (!l->addr.is_abstract()) {
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0) {
      l->unix_path = path;
      l->dev = st.st_dev;
      l->ino = st.st_ino;
    }
  }
  impl_->pending.push_back(std::move(l));
}

int StreamServer::start(int processes) {
  if (processes == 1) {
    impl_->attach_to_current_loop();
    impl_->serve_pending();
    return impl_->worker_id;
  }
  return impl_->fork_and_supervise(processes);
}

void StreamServer::add_sockets(std::vector<Fd> sockets) {
  impl_->attach_to_current_loop();
  for (Fd& fd : sockets) {
    if (!fd) throw UsageError("add_sockets: invalid descriptor");
    if (!set_nonblocking(fd.get())) throw IoError(errno, "add_sockets: fcntl");
    auto l = std::make_unique<Impl::Listener>();
    l->addr = local_address(fd.get());
    l->fd = std::move(fd);
    impl_->pending.push_back(std::move(l));
  }
  impl_->serve_pending();
}

void StreamServer::add_socket(Fd socket) {
  std::vector<Fd> v;
  v.push_back(std::move(socket));
  add_sockets(std::move(v));
}

void StreamServer::stop() { impl_->close_listeners(); }

Task<void> StreamServer::shutdown(Duration grace) {
  Impl* s = impl_.get();
  stop();
  if (!s->loop) co_return;
  s->request_stop();
  if (s->active.load() > 0 && grace > Duration::zero()) {
    try {
      co_await with_timeout(grace, Impl::wait_idle(s));
    } catch (const Timeout&) {
      TETHER_LOG_INFO("shutdown: {} connection(s) still open after the grace period; cancelling", s->active.load());
    }
  }
  if (s->active.load() > 0) {
    s->cancel_handlers();
    co_await Impl::wait_idle(s);
  }
}

void StreamServer::close() {
  Impl& s = *impl_;
  if (s.closed) return;
  s.closed = true;
  s.stopping.store(true);
  s.close_listeners();
  s.cancel_handlers();
  s.stop_workers();
}

void StreamServer::close_clients() { impl_->close_clients(false); }
void StreamServer::abort_clients() { impl_->close_clients(true); }

StopToken StreamServer::stop_token() const {
  EventLoop* current = EventLoop::current();
  for (const auto& w : impl_->workers) {
    if (current && w->loop == current) return StopToken(w->stop.get());
  }
  throw UsageError("StreamServer::stop_token(): call it on a loop that serves this server's connections");
}

bool StreamServer::stopping() const noexcept { return impl_->stopping.load(); }

// ---------------------------------------------------------------------------- StopToken

Task<void> StopToken::wait() const {
  if (!state_) return wait_forever();
  return state_->event().wait();
}

void detail::ServerStopState::request() {
  if (requested_) return;
  requested_ = true;
  event_.set();
  // One at a time: a resumed handler may cancel (and so unlink) others.
  while (StopWaiter* w = head_) {
    unlink(w);
    w->fire(w);
  }
}

void detail::ServerStopState::link(StopWaiter* w) noexcept {
  w->prev = nullptr;
  w->next = head_;
  if (head_) head_->prev = w;
  head_ = w;
}

void detail::ServerStopState::unlink(StopWaiter* w) noexcept {
  if (w->prev) {
    w->prev->next = w->next;
  } else if (head_ == w) {
    head_ = w->next;
  }
  if (w->next) w->next->prev = w->prev;
  w->prev = w->next = nullptr;
}

std::vector<Address> StreamServer::addresses() const {
  std::vector<Address> out = impl_->served_addresses;
  for (auto& l : impl_->pending) out.push_back(l->addr);
  return out;
}

std::vector<std::uint16_t> StreamServer::ports() const {
  std::vector<std::uint16_t> out;
  for (const Address& a : addresses()) {
    if (a.is_ip()) out.push_back(a.port());
  }
  return out;
}

ServerStats StreamServer::stats() const {
  const Impl& s = *impl_;
  ServerStats st;
  st.accepted = s.accepted.load();
  st.rejected = s.rejected.load();
  st.fd_exhausted = s.fd_exhausted.load();
  st.shed = s.shed.load();
  st.accept_pauses = s.accept_pauses.load();
  st.accept_errors = s.accept_errors.load();
  st.handshake_failures = s.handshake_failures.load();
  st.handler_errors = s.handler_errors.load();
  st.handler_timeouts = s.handler_timeouts.load();
  st.cancelled = s.cancelled.load();
  st.closed_clients = s.closed_clients.load();
  st.active = s.active.load();
  for (const auto& w : s.workers) st.per_thread.push_back(w->accepted.load());
  return st;
}

bool StreamServer::serving() const noexcept { return !impl_->listeners.empty(); }
std::size_t StreamServer::active_connections() const noexcept { return impl_->active.load(); }

EventLoop& StreamServer::loop() const {
  if (!impl_->loop) throw UsageError("StreamServer is not attached to a loop yet");
  return *impl_->loop;
}

int StreamServer::worker_id() const noexcept { return impl_->worker_id; }
const ServerOptions& StreamServer::options() const noexcept { return impl_->opts; }
void StreamServer::set_on_listen(ListenHook hook) { impl_->on_listen = std::move(hook); }

Task<void> StreamServer::handle_stream(std::unique_ptr<BufferedStream> stream, Address peer) {
  if (!impl_->handler) throw UsageError("StreamServer has no handler: pass one or override handle_stream()");
  return impl_->handler(std::move(stream), std::move(peer));
}

std::unique_ptr<StreamServer> start_server(StreamServer::Handler handler, const std::string& host,
                                           std::uint16_t port, ServerOptions options) {
  auto server = std::make_unique<StreamServer>(std::move(handler), std::move(options));
  server->listen(port, host);
  return server;
}

std::unique_ptr<StreamServer> start_unix_server(StreamServer::Handler handler, const std::string& path,
                                                ServerOptions options) {
  auto server = std::make_unique<StreamServer>(std::move(handler), std::move(options));
  server->listen_unix(path);
  return server;
}

}  // namespace tether
