#include "tether/service/sync.hpp"

#include <csignal>

#include "tether/base/log.hpp"
#include "tether/loop/time.hpp"

namespace tether {

namespace {
/// Lets deferred clean-up (cancelled tasks, close callbacks) run before a private loop goes.
void settle(EventLoop& loop) {
  for (int i = 0; i < 3; ++i) loop.run_once(Duration::zero());
}

/// The loop a new SyncConnection runs on, as a share of its ownership: a new private loop when
/// the thread has none; the thread's loop when it is shared-owned (the private loop an earlier
/// SyncConnection of the thread made, which the SyncConnections then own together); null when
/// the thread runs a loop the application owns otherwise (borrowed, not owned).
std::shared_ptr<EventLoop> acquire_loop() {
  if (EventLoop* current = EventLoop::current()) return current->weak_from_this().lock();
  return std::make_shared<EventLoop>();
}

/// Runs a connect task on the loop of `own` (or the thread's own loop); if it fails, lets a
/// private loop settle before the error leaves.
template <class T>
T run_connect(const std::shared_ptr<EventLoop>& own, EventLoop& loop, Task<T> connecting) {
  try {
    return loop.run_until_complete(std::move(connecting));
  } catch (...) {
    if (own) settle(*own);
    throw;
  }
}
}  // namespace

// ----------------------------------------------------------------------------- SyncNetref

EventLoop& SyncNetref::loop() const {
  if (!loop_) throw UsageError("empty SyncNetref");
  return *loop_;
}

Any SyncNetref::run(Task<Any> t) const { return loop().run_until_complete(std::move(t)); }

SyncNetref SyncNetref::wrap(Any a) const {
  if (a.is_none()) return SyncNetref();
  if (!a.is_netref()) throw PyError("TypeError", "expected an object reference, got " + a.repr());
  return SyncNetref(a.netref(), loop());
}

SyncNetref SyncNetref::attr(std::string name) const {
  Netref r = loop().run_until_complete(ref_.attr(std::move(name)));
  return SyncNetref(std::move(r), loop());
}

void SyncNetref::setattr(std::string name, Any value) const {
  loop().run_until_complete(ref_.setattr(std::move(name), std::move(value)));
}

void SyncNetref::delattr(std::string name) const { loop().run_until_complete(ref_.delattr(std::move(name))); }

std::string SyncNetref::str() const { return loop().run_until_complete(ref_.str()); }
std::string SyncNetref::repr() const { return loop().run_until_complete(ref_.repr()); }
std::int64_t SyncNetref::len() const { return loop().run_until_complete(ref_.len()); }
std::int64_t SyncNetref::hash() const { return loop().run_until_complete(ref_.hash()); }
std::vector<std::string> SyncNetref::dir() const { return loop().run_until_complete(ref_.dir()); }
void SyncNetref::setitem(Any key, Any value) const {
  loop().run_until_complete(ref_.setitem(std::move(key), std::move(value)));
}

void SyncNetref::delitem(Any key) const { loop().run_until_complete(ref_.delitem(std::move(key))); }
bool SyncNetref::contains(Any item) const {
  return loop().run_until_complete(ref_.contains(std::move(item)));
}
bool SyncNetref::truth() const { return loop().run_until_complete(ref_.truth()); }
bool SyncNetref::equals(Any other) const { return loop().run_until_complete(ref_.equals(std::move(other))); }
std::vector<Any> SyncNetref::to_list_any() const { return loop().run_until_complete(ref_.to_list()); }

SyncNetref SyncNetref::iter() const {
  Netref it = loop().run_until_complete(ref_.iter());
  return SyncNetref(std::move(it), loop());
}

std::optional<Any> SyncNetref::next_any() const { return loop().run_until_complete(ref_.next()); }

// -------------------------------------------------------------------------- SyncConnection

SyncConnection::SyncConnection(std::shared_ptr<EventLoop> own, EventLoop& loop,
                               std::unique_ptr<Connection> conn, std::unique_ptr<ChildProcess> process)
    : own_loop_(std::move(own)), loop_(&loop), conn_(std::move(conn)), process_(std::move(process)) {}

SyncConnection::SyncConnection(SyncConnection&& o) noexcept
    : own_loop_(std::move(o.own_loop_)),
      loop_(o.loop_),
      conn_(std::move(o.conn_)),
      process_(std::move(o.process_)),
      exit_status_(std::move(o.exit_status_)),
      root_(std::move(o.root_)) {
  o.loop_ = nullptr;
  o.exit_status_.reset();
  o.root_.reset();
}

SyncConnection& SyncConnection::operator=(SyncConnection&& o) noexcept {
  if (this != &o) {
    SyncConnection old(std::move(*this));  // closed when it goes out of scope
    own_loop_ = std::move(o.own_loop_);
    loop_ = o.loop_;
    conn_ = std::move(o.conn_);
    process_ = std::move(o.process_);
    exit_status_ = std::move(o.exit_status_);
    root_ = std::move(o.root_);
    o.loop_ = nullptr;
    o.exit_status_.reset();
    o.root_.reset();
  }
  return *this;
}

SyncConnection::~SyncConnection() {
  if (!loop_) return;
  try {
    close();
  } catch (...) {
    TETHER_LOG_DEBUG("SyncConnection: close failed: {}", describe_current_exception());
  }
  root_.reset();
  conn_.reset();      // closes the child's stdio if close() failed half-way
  process_.reset();   // a child still running then is killed and reaped (ChildProcess)
  if (own_loop_ && own_loop_.use_count() == 1) settle(*own_loop_);
}

Connection& SyncConnection::connection() {
  if (!conn_) throw UsageError("SyncConnection is empty");
  return *conn_;
}

EventLoop& SyncConnection::loop() {
  if (!loop_) throw UsageError("SyncConnection is empty");
  return *loop_;
}

SyncNetref SyncConnection::root() {
  if (!root_) root_ = loop().run_until_complete(connection().root());
  return SyncNetref(*root_, loop());
}

void SyncConnection::ping() { loop().run_until_complete(connection().ping()); }

void SyncConnection::close() {
  if (conn_ && !conn_->closed()) {
    root_.reset();
    try {
      loop().run_until_complete(conn_->close());
    } catch (...) {
      reap_child();
      throw;
    }
  }
  reap_child();
}

void SyncConnection::reap_child() {
  if (!process_) return;
  // The connection is closed, so is the child's stdin: a stdio server sees EOF and exits.
  if (conn_ && !conn_->closed()) conn_->abort();
  std::unique_ptr<ChildProcess> child = std::move(process_);
  try {
    exit_status_ = loop().run_until_complete(with_timeout(kChildExitGrace, child->wait()));
    return;
  } catch (const Timeout&) {
    TETHER_LOG_WARN("SyncConnection: child {} still running {} ms after close; killing it", child->pid(),
                    std::chrono::duration_cast<std::chrono::milliseconds>(kChildExitGrace).count());
  }
  child->send_signal(SIGKILL);
  exit_status_ = loop().run_until_complete(child->wait());
}

bool SyncConnection::closed() const noexcept { return !conn_ || conn_->closed(); }

// The connect tasks below are made before the loop they run on exists: Tasks are lazy, and
// their bodies (which look the loop up) start inside run_connect.
SyncConnection connect_sync(std::string host, std::uint16_t port, ClientOptions options) {
  return connect_sync(connect(std::move(host), port, std::move(options)));
}

SyncConnection connect_sync(Task<std::unique_ptr<Connection>> connecting) {
  std::shared_ptr<EventLoop> own = acquire_loop();
  EventLoop& loop = EventLoop::current_or_throw();
  std::unique_ptr<Connection> conn = run_connect(own, loop, std::move(connecting));
  return SyncConnection(std::move(own), loop, std::move(conn));
}

SyncConnection connect_sync_unix(std::string path, ClientOptions options) {
  return connect_sync(connect_unix(std::move(path), std::move(options)));
}

SyncConnection connect_sync_process(std::vector<std::string> argv, ClientOptions options,
                                    ProcessOptions process_options) {
  if (argv.empty()) throw UsageError("tether::connect_sync_process: empty argv");
  std::string program = argv.front();
  std::shared_ptr<EventLoop> own = acquire_loop();
  EventLoop& loop = EventLoop::current_or_throw();
  ProcessConnection pc =
      run_connect(own, loop, connect_process(std::move(argv), std::move(options), std::move(process_options)));
  SyncConnection sync(std::move(own), loop, std::move(pc.connection), std::move(pc.process));
  // Probe: without it a child that exited at once would only show up at the first call.
  std::exception_ptr failure;
  try {
    (void)sync.root();
  } catch (...) {
    failure = std::current_exception();
  }
  if (!failure) return sync;
  pid_t pid = sync.process_->pid();
  sync.reap_child();  // aborts the connection first: the child sees EOF
  std::string status = sync.exit_status_ ? sync.exit_status_->to_string() : std::string("unknown status");
  try {
    std::rethrow_exception(failure);
  } catch (const Disconnected& e) {
    throw Disconnected("tether::connect_sync_process: " + program + " (pid " + std::to_string(pid) +
                       ") closed its stdio before answering; it " + status + " (" + e.what() + ")");
  }
}

}  // namespace tether
