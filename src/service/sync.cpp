#include "tether/service/sync.hpp"

#include "tether/base/log.hpp"

namespace tether {

namespace {
/// Lets deferred clean-up (cancelled tasks, close callbacks) run before a private loop goes.
void settle(EventLoop& loop) {
  for (int i = 0; i < 3; ++i) loop.run_once(Duration::zero());
}

/// The private loop shared by the SyncConnections of a thread that has no loop of its own.
thread_local std::weak_ptr<EventLoop> t_private_loop;

/// A share of the thread's private loop, or null when the thread runs a loop of its own.
std::shared_ptr<EventLoop> acquire_loop() {
  if (auto l = t_private_loop.lock()) return l;
  if (EventLoop::current()) return nullptr;
  auto l = std::make_shared<EventLoop>();
  t_private_loop = l;
  return l;
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

Any SyncNetref::getattr(std::string name) const { return run(ref_.getattr(std::move(name))); }

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
Any SyncNetref::getitem(Any key) const { return run(ref_.getitem(std::move(key))); }

void SyncNetref::setitem(Any key, Any value) const {
  loop().run_until_complete(ref_.setitem(std::move(key), std::move(value)));
}

void SyncNetref::delitem(Any key) const { loop().run_until_complete(ref_.delitem(std::move(key))); }
bool SyncNetref::contains(Any item) const {
  return loop().run_until_complete(ref_.contains(std::move(item)));
}
bool SyncNetref::truth() const { return loop().run_until_complete(ref_.truth()); }
bool SyncNetref::equals(Any other) const { return loop().run_until_complete(ref_.equals(std::move(other))); }
std::vector<Any> SyncNetref::to_list() const { return loop().run_until_complete(ref_.to_list()); }

SyncNetref SyncNetref::iter() const {
  Netref it = loop().run_until_complete(ref_.iter());
  return SyncNetref(std::move(it), loop());
}

std::optional<Any> SyncNetref::next() const { return loop().run_until_complete(ref_.next()); }

// -------------------------------------------------------------------------- SyncConnection

SyncConnection::SyncConnection(std::shared_ptr<EventLoop> own, EventLoop& loop,
                               std::unique_ptr<Connection> conn)
    : own_loop_(std::move(own)), loop_(&loop), conn_(std::move(conn)) {}

SyncConnection::SyncConnection(SyncConnection&& o) noexcept
    : own_loop_(std::move(o.own_loop_)),
      loop_(o.loop_),
      conn_(std::move(o.conn_)),
      root_(std::move(o.root_)) {
  o.loop_ = nullptr;
  o.root_.reset();
}

SyncConnection& SyncConnection::operator=(SyncConnection&& o) noexcept {
  if (this != &o) {
    SyncConnection old(std::move(*this));  // closed when it goes out of scope
    own_loop_ = std::move(o.own_loop_);
    loop_ = o.loop_;
    conn_ = std::move(o.conn_);
    root_ = std::move(o.root_);
    o.loop_ = nullptr;
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
  conn_.reset();
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
  if (!conn_ || conn_->closed()) return;
  root_.reset();
  loop().run_until_complete(conn_->close());
}

bool SyncConnection::closed() const noexcept { return !conn_ || conn_->closed(); }

SyncConnection connect_sync(std::string host, std::uint16_t port, ClientOptions options) {
  std::shared_ptr<EventLoop> own = acquire_loop();
  EventLoop& loop = EventLoop::current_or_throw();
  std::unique_ptr<Connection> conn;
  try {
    conn = loop.run_until_complete(connect(std::move(host), port, std::move(options)));
  } catch (...) {
    if (own) settle(*own);
    throw;
  }
  return SyncConnection(std::move(own), loop, std::move(conn));
}

SyncConnection connect_sync_unix(std::string path, ClientOptions options) {
  std::shared_ptr<EventLoop> own = acquire_loop();
  EventLoop& loop = EventLoop::current_or_throw();
  std::unique_ptr<Connection> conn;
  try {
    conn = loop.run_until_complete(connect_unix(std::move(path), std::move(options)));
  } catch (...) {
    if (own) settle(*own);
    throw;
  }
  return SyncConnection(std::move(own), loop, std::move(conn));
}

}  // namespace tether
