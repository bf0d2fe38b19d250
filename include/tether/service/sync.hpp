#pragma once
/// \file The blocking client facade: RPyC's synchronous style from plain C++.
///
///   auto conn = tether::connect_sync("127.0.0.1", 18861);
///   std::int64_t sum = conn.callattr<std::int64_t>("add", 1, 2);
///   tether::SyncNetref store = conn.root().attr("store");
///   for (tether::Any key : store) { ... }
///
/// A SyncConnection runs on the calling thread: it uses that thread's EventLoop, or — when the
/// thread has none — a private loop that the thread's SyncConnections own together (made by
/// the first, through std::shared_ptr; each later one takes a share of it, found as the
/// thread's current loop; destroyed with the last). Every blocking call runs the loop
/// (EventLoop::run_until_complete) until its reply arrives, so requests from the peer —
/// callbacks into this process, INSPECT, DEL — are served while it waits, and blocking calls
/// nest: a C++ callback called by the server may itself make blocking calls (each level nests
/// the loop once on the C stack).
///
/// Thread rules: a SyncConnection and its SyncNetrefs belong to the thread that created them.
/// SyncNetrefs must not outlive their SyncConnection (they hold its loop). Errors are those of
/// the coroutine API: RemoteError (a RemoteException) for the peer's exceptions, Timeout,
/// Disconnected.
///
/// Transports: connect_sync (TCP), connect_sync_unix (a Unix socket) and connect_sync_process
/// (a child process's stdin/stdout). TLS is an option of the first two, as in the coroutine
/// connect(): set options.net.tls = TlsContext::client(...) (and, over a Unix socket, the name
/// to verify in options.net.server_hostname); a handshake or verification failure throws
/// TlsError from the connect call.

#include <chrono>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/net/process.hpp"
#include "tether/rpc/any.hpp"
#include "tether/rpc/connection.hpp"
#include "tether/service/client.hpp"

namespace tether {

class SyncNetref;
class SyncIterator;
template <class R>
class SyncRange;

namespace detail {
template <class R>
struct IsSyncNetref : std::is_same<std::remove_cvref_t<R>, SyncNetref> {};

template <class R>
Task<R> typed_result(Any a) {
  R r = co_await from_any<R>(std::move(a));
  co_return r;
}

template <class... A>
std::vector<Any> to_anys(A&&... args) {
  std::vector<Any> v;
  v.reserve(sizeof...(A));
  (v.push_back(to_any(std::forward<A>(args))), ...);
  return v;
}
}  // namespace detail

/// A blocking handle to a remote object (see the file comment).
class TETHER_API SyncNetref {
 public:
  SyncNetref() = default;
  SyncNetref(Netref ref, EventLoop& loop) : ref_(std::move(ref)), loop_(&loop) {}

  [[nodiscard]] const Netref& netref() const noexcept { return ref_; }
  [[nodiscard]] bool valid() const noexcept { return ref_.valid(); }
  [[nodiscard]] const std::string& type_name() const { return ref_.type_name(); }
  [[nodiscard]] EventLoop& loop() const;

  /// GETATTR; the value as R (default Any: a Netref for objects; SyncNetref for a handle):
  /// `std::string v = obj.getattr<std::string>("version")`.
  template <class R = Any>
  [[nodiscard]] R getattr(std::string name) const {
    return finish<R>(ref_.getattr(std::move(name)));
  }
  /// GETATTR of an object attribute.
  [[nodiscard]] SyncNetref attr(std::string name) const;
  void setattr(std::string name, Any value) const;
  void delattr(std::string name) const;

  /// CALL with typed arguments; the result converted to R (SyncNetref for objects).
  template <class R = Any, class... A>
  R call(A&&... args) const {
    return finish<R>(ref_.call(detail::argument_list(std::forward<A>(args)...)));
  }
  /// CALL with keyword arguments.
  template <class R = Any>
  R call_kw(std::vector<Any> args, Kwargs kwargs) const {
    return finish<R>(ref_.call(std::move(args), std::move(kwargs)));
  }
  /// CALLATTR: one request for obj.name(args...).
  template <class R = Any, class... A>
  R callattr(std::string name, A&&... args) const {
    return finish<R>(ref_.callattr(std::move(name), detail::argument_list(std::forward<A>(args)...)));
  }
  template <class R = Any>
  R callattr_kw(std::string name, std::vector<Any> args, Kwargs kwargs) const {
    return finish<R>(ref_.callattr(std::move(name), std::move(args), std::move(kwargs)));
  }

  [[nodiscard]] std::string str() const;
  [[nodiscard]] std::string repr() const;
  [[nodiscard]] std::int64_t len() const;
  [[nodiscard]] std::int64_t hash() const;
  [[nodiscard]] std::vector<std::string> dir() const;
  /// obj[key], converted to R: `store.getitem<std::string>("apple")`.
  template <class R = Any, class K>
  [[nodiscard]] R getitem(K&& key) const {
    return finish<R>(ref_.getitem(to_any(std::forward<K>(key))));
  }
  void setitem(Any key, Any value) const;
  void delitem(Any key) const;
  [[nodiscard]] bool contains(Any item) const;
  [[nodiscard]] bool truth() const;
  [[nodiscard]] bool equals(Any other) const;
  /// Every item (__iter__ + BUFFITER batches), each converted to R.
  template <class R = Any>
  [[nodiscard]] std::vector<R> to_list() const {
    std::vector<Any> items = to_list_any();
    if constexpr (std::is_same_v<R, Any>) {
      return items;
    } else {
      std::vector<R> out;
      out.reserve(items.size());
      for (auto& a : items) out.push_back(convert<R>(std::move(a)));
      return out;
    }
  }
  /// iter(obj) on the peer.
  [[nodiscard]] SyncNetref iter() const;
  /// next(it): the next item converted to R, or nullopt at the end.
  template <class R = Any>
  [[nodiscard]] std::optional<R> next() const {
    std::optional<Any> a = next_any();
    if (!a) return std::nullopt;
    if constexpr (std::is_same_v<R, Any>) {
      return a;
    } else {
      return convert<R>(std::move(*a));
    }
  }

  /// Input iteration: `for (Any x : ref)` — iter() once, then one __next__ request per item.
  using iterator = SyncIterator;
  [[nodiscard]] SyncIterator begin() const;
  [[nodiscard]] SyncIterator end() const;
  /// Typed input iteration: `for (std::string key : store.iterate<std::string>())`.
  template <class R>
  [[nodiscard]] SyncRange<R> iterate() const;

 private:
  template <class R>
  R finish(Task<Any> t) const {
    Any a = run(std::move(t));
    if constexpr (std::is_void_v<R>) {
      (void)a;
    } else if constexpr (std::is_same_v<R, Any>) {
      return a;
    } else if constexpr (detail::IsSyncNetref<R>::value) {
      return wrap(std::move(a));
    } else {
      return convert<R>(std::move(a));
    }
  }
  /// A received value as R (Python lists and dicts are pulled with further requests).
  template <class R>
  R convert(Any a) const {
    if constexpr (detail::IsSyncNetref<R>::value) {
      return wrap(std::move(a));
    } else {
      return loop().run_until_complete(detail::typed_result<R>(std::move(a)));
    }
  }
  [[nodiscard]] std::vector<Any> to_list_any() const;
  [[nodiscard]] std::optional<Any> next_any() const;
  Any run(Task<Any> t) const;
  template <class R>
  friend class SyncRange;
  SyncNetref wrap(Any a) const;

  Netref ref_;
  EventLoop* loop_ = nullptr;
};

/// Input iterator over a remote iterable (see SyncNetref::begin).
class TETHER_API SyncIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = Any;
  using difference_type = std::ptrdiff_t;
  using pointer = const Any*;
  using reference = const Any&;
  SyncIterator() = default;
  explicit SyncIterator(SyncNetref it) : it_(std::move(it)) { advance(); }
  reference operator*() const { return *current_; }
  pointer operator->() const { return &*current_; }
  SyncIterator& operator++() {
    advance();
    return *this;
  }
  void operator++(int) { advance(); }
  friend bool operator==(const SyncIterator& a, const SyncIterator& b) noexcept {
    return !a.current_ && !b.current_;
  }

 private:
  void advance() {
    current_ = it_.next();
    if (!current_) it_ = SyncNetref();
  }
  SyncNetref it_;
  std::optional<Any> current_;
};

inline SyncIterator SyncNetref::begin() const { return SyncIterator(iter()); }
inline SyncIterator SyncNetref::end() const { return SyncIterator(); }

/// The items of a remote iterable converted to R, one __next__ request per item
/// (SyncNetref::iterate<R>()). A single pass: begin() calls iter() on the peer.
template <class R>
class SyncRange {
 public:
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    using pointer = const R*;
    using reference = const R&;
    iterator() = default;
    explicit iterator(SyncNetref it) : it_(std::move(it)) { advance(); }
    reference operator*() const { return *current_; }
    pointer operator->() const { return &*current_; }
    iterator& operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return !a.current_ && !b.current_; }

   private:
    void advance() {
      current_ = it_.template next<R>();
      if (!current_) it_ = SyncNetref();
    }
    SyncNetref it_;
    std::optional<R> current_;
  };

  explicit SyncRange(SyncNetref iterable) : iterable_(std::move(iterable)) {}
  [[nodiscard]] iterator begin() const { return iterator(iterable_.iter()); }
  [[nodiscard]] iterator end() const { return iterator(); }

 private:
  SyncNetref iterable_;
};

template <class R>
SyncRange<R> SyncNetref::iterate() const {
  return SyncRange<R>(*this);
}

/// A blocking connection (see the file comment). Movable; closing is graceful (close()), the
/// destructor closes too.
class TETHER_API SyncConnection {
 public:
  SyncConnection() = default;
  SyncConnection(SyncConnection&&) noexcept;
  SyncConnection& operator=(SyncConnection&&) noexcept;
  ~SyncConnection();

  /// The server's root object.
  [[nodiscard]] SyncNetref root();
  /// root().callattr<R>(name, args...): a method of the root, in one CALLATTR request.
  template <class R = Any, class... A>
  R callattr(std::string name, A&&... args) {
    return root().callattr<R>(std::move(name), std::forward<A>(args)...);
  }
  /// The earlier name of callattr.
  template <class R = Any, class... A>
  [[deprecated("use SyncConnection::callattr")]] R call_sync(std::string name, A&&... args) {
    return callattr<R>(std::move(name), std::forward<A>(args)...);
  }
  /// PING; throws if the peer does not answer in time or echoes something else.
  void ping();
  /// Sends CLOSE and closes (6.x waits for the server's EOF). Idempotent. For a child process
  /// it then waits for the child to exit (up to kChildExitGrace, then SIGKILL) and reaps it;
  /// exit_status() tells how it ended.
  void close();
  [[nodiscard]] bool closed() const noexcept;

  /// The child process of a connect_sync_process() connection (null otherwise, and after
  /// close() has reaped it).
  [[nodiscard]] ChildProcess* process() noexcept { return process_.get(); }
  /// How that child ended, once close() has reaped it (nullopt before, and for sockets).
  [[nodiscard]] const std::optional<ExitStatus>& exit_status() const noexcept { return exit_status_; }

  /// The underlying connection and loop (for the coroutine API).
  [[nodiscard]] Connection& connection();
  [[nodiscard]] EventLoop& loop();

  /// Runs any task on this connection's loop until it completes.
  template <class T>
  T run(Task<T> task) {
    return loop().run_until_complete(std::move(task));
  }

 private:
  friend SyncConnection connect_sync(std::string host, std::uint16_t port, ClientOptions options);
  friend SyncConnection connect_sync_unix(std::string path, ClientOptions options);
  friend SyncConnection connect_sync_process(std::vector<std::string> argv, ClientOptions options,
                                             ProcessOptions process_options);
  friend SyncConnection connect_sync(Task<std::unique_ptr<Connection>> connecting);
  SyncConnection(std::shared_ptr<EventLoop> own, EventLoop& loop, std::unique_ptr<Connection> conn,
                 std::unique_ptr<ChildProcess> process = nullptr);
  /// Waits (bounded) for the child to exit, kills it past the grace, reaps it.
  void reap_child();

  std::shared_ptr<EventLoop> own_loop_;  // a share of the loop when shared-owned (the private one), destroyed last
  EventLoop* loop_ = nullptr;
  std::unique_ptr<Connection> conn_;
  std::unique_ptr<ChildProcess> process_;  // connect_sync_process only; destroyed before conn_
  std::optional<ExitStatus> exit_status_;
  std::optional<Netref> root_;
};

/// How long SyncConnection::close() waits for a child process to exit after the connection
/// has closed (its stdin is then at EOF) before it kills it with SIGKILL.
inline constexpr Duration kChildExitGrace = std::chrono::seconds(5);

/// Blocking connect over TCP (see client.hpp for options and the generation fallback).
TETHER_API SyncConnection connect_sync(std::string host, std::uint16_t port,
                                       ClientOptions options = ClientOptions());
/// The blocking form of any coroutine that makes a Connection (the registry's
/// connect_by_service, for one): runs the not yet started task `connecting` on this thread's
/// loop, or on the private loop the thread's SyncConnections share, and wraps its connection.
/// Its errors are rethrown.
TETHER_API SyncConnection connect_sync(Task<std::unique_ptr<Connection>> connecting);
/// Blocking connect over a Unix socket.
TETHER_API SyncConnection connect_sync_unix(std::string path, ClientOptions options = ClientOptions());
/// Blocking connect to a child process serving RPyC on its stdin/stdout (argv as for
/// connect_process; e.g. a program running tether::serve_stdio). The child is probed with
/// GETROOT before this returns: one that exits or closes its stdout first is reaped and
/// Disconnected is thrown, naming the program and its exit status. The SyncConnection owns the
/// child: close() (or the destructor) closes its stdio and reaps it. Errors also: IoError (the
/// program cannot be started), UsageError (empty argv), Timeout (no answer within
/// options.connection.sync_request_timeout; the child is then killed).
TETHER_API SyncConnection connect_sync_process(std::vector<std::string> argv,
                                               ClientOptions options = ClientOptions(),
                                               ProcessOptions process_options = ProcessOptions());

}  // namespace tether
