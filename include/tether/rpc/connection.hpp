#pragma once
/// \file Connection: one RPyC connection over a Channel (either side; the protocol is
/// symmetric). It serves the peer's requests — including while one of its own requests
/// waits, so callbacks nest in both directions — and sends requests of its own.
///
/// Loop thread only. Destroying a Connection closes it: pending requests fail with
/// Disconnected, exported objects are released, and Netrefs that outlive it report
/// "connection closed".

#include <any>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/brine/codec.hpp"
#include "tether/brine/value.hpp"
#include "tether/channel/channel.hpp"
#include "tether/loop/task.hpp"
#include "tether/rpc/any.hpp"
#include "tether/rpc/bind.hpp"  // to_any of a callable argument (Netref::call)
#include "tether/rpc/interceptor.hpp"
#include "tether/rpc/object.hpp"
#include "tether/rpc/observer.hpp"
#include "tether/rpc/protocol.hpp"

namespace tether {

class ClassSet;

struct ConnectionOptions {
  /// kAuto: a server detects the peer's generation from its first message; a client that must
  /// speak first uses `first_generation`. Set k5 or k6 to force one.
  rpc::Generation generation = rpc::Generation::kAuto;
  rpc::Generation first_generation = rpc::Generation::k5;
  /// Deadline of sync requests (RPyC's sync_request_timeout).
  Duration sync_request_timeout = std::chrono::seconds(30);
  /// 6.x close(): how long to wait for the peer to hang up after our CLOSE (RPyC 6 waits up to
  /// sync_request_timeout; stock 6.0.2 servers sometimes never hang up, so tether caps it).
  Duration close_grace = std::chrono::seconds(2);
  AccessPolicy policy{};
  /// Put a short C++ description in exception replies' traceback text (no file paths).
  bool include_traceback = true;
  /// Tell the peer our RPyC version in exception replies (`_remote_version`); off sends
  /// "<version denied>" instead. RPyC's include_local_version, on by default as in RPyC.
  bool include_local_version = true;
  /// Limits on decoded brine values.
  brine::Limits limits{};
  /// Most incoming requests served concurrently per connection; more wait (backpressure).
  std::size_t max_concurrent_requests = 1024;
  /// Decoded memory of the requests served at once on this connection, each counted as
  /// brine::Limits::max_decoded_bytes counts it: above this, no further message is read until
  /// requests have finished (backpressure, as for max_concurrent_requests).
  std::size_t max_inflight_decoded_bytes = std::size_t{256} << 20;
  /// Output backpressure: when the stream's unsent output passes its high watermark
  /// (StreamOptions::write_high_water), no further message is read until it has drained to the
  /// low one. A peer that sends requests and never reads the replies then holds a bounded
  /// amount of memory. Servers turn it on for the connections they accept; for a client it is
  /// off (its unsent output is its own requests, and reading the replies is what frees them).
  bool pause_reading_on_backlog = false;
  /// A frame that has begun to arrive must keep arriving: once a whole frame_timeout passes
  /// with fewer than min_frame_rate bytes per second of it received, the connection closes
  /// (a peer trickling a frame a byte at a time holds a connection and its buffers). Zero
  /// turns the check off. Not counted while this side does not read (backpressure).
  Duration frame_timeout = std::chrono::seconds(30);
  std::size_t min_frame_rate = 1024;
  /// Non-zero: a connection on which nothing arrives for this long while no request is
  /// pending or being served in either direction is closed (it closes after one to two
  /// idle_timeouts of silence). Zero (the default): idle connections stay open.
  Duration idle_timeout = Duration::zero();
  /// The classes (rpc/class.hpp) that C++ objects made by to_any(std::shared_ptr<T>) are
  /// exported as on this connection; sending one of a type it has no class for is a UsageError.
  /// serve() and connect() set it to their Service's classes (Service::define_class). Null:
  /// none.
  std::shared_ptr<const ClassSet> classes;
  /// Logged name of the connection.
  std::string name;
  /// The other end's address ("127.0.0.1:50312", "unix:/run/x.sock", "stream"), as
  /// interceptors see it (CallInfo::peer). serve() and connect() set it when empty.
  std::string peer;
  /// Before/after hooks on every request this side serves and sends, run in this order
  /// (tether/rpc/interceptor.hpp; docs/observability.md#interceptors). Empty: none, and no
  /// cost beyond one check per request.
  std::vector<std::shared_ptr<rpc::CallInterceptor>> interceptors;
  /// Most bytes of CallInfo::args (the arguments' repr) an interceptor is shown.
  std::size_t interceptor_repr_limit = 256;
  /// Told about every request this side serves (tether/rpc/observer.hpp); null: nothing is
  /// measured. Servers set one per connection when ServeOptions::metrics is on.
  std::shared_ptr<rpc::CallObserver> observer;
};

/// Counters for tests and monitoring.
struct ConnectionStats {
  std::size_t exported = 0;  ///< objects in the export table
  std::size_t proxies = 0;   ///< live Netrefs to peer objects
  std::size_t pending = 0;   ///< requests awaiting a reply
  std::uint64_t requests_in = 0;
  std::uint64_t requests_out = 0;
  /// Bytes of large bytes values (a reply's result, a CALLATTR argument) handed to the stream
  /// without being copied into the encoded message: see docs/rpc.md#large-payloads.
  std::uint64_t uncopied_bytes_out = 0;
};

/// Raised by a client with generation=kAuto when the peer turns out to speak the other RPyC
/// generation (it answered our first request with its own CLOSE and hung up). connect()
/// reconnects once in the other generation when it sees this. With a forced generation
/// (k5/k6) the same situation is a plain ProtocolError ("peer speaks RPyC N.x"): no fallback.
class TETHER_API GenerationMismatch : public ProtocolError {
 public:
  GenerationMismatch(rpc::Generation peer, const std::string& what) : ProtocolError(what), peer_(peer) {}
  [[nodiscard]] rpc::Generation peer_generation() const noexcept { return peer_; }

 private:
  rpc::Generation peer_;
};

class Connection;

namespace rpc::detail {
struct ConnectionAccess;
}  // namespace rpc::detail

namespace detail {
/// Connection::callattr's body: a named coroutine owning its arguments (GCC 12 rules).
template <class R>
Task<R> callattr_root(Connection* conn, std::string name, std::vector<Any> args);
}  // namespace detail

class TETHER_API Connection {
 public:
  /// `root` is what the peer gets for GETROOT (null: a void root with no attributes).
  Connection(std::unique_ptr<Channel> channel, ObjectPtr root, ConnectionOptions options = {});
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Starts serving incoming messages in the background.
  void start();

  /// The peer's root object (GETROOT once, then cached).
  Task<Netref> root();
  /// A method of the peer's root, typed: co_await conn.callattr<std::int64_t>("add", 1, 2)
  /// (root(), then one CALLATTR). Arguments as for Netref::callattr<R>.
  template <class R = Any, class... A>
  Task<R> callattr(std::string name, A&&... args) {
    return detail::callattr_root<R>(this, std::move(name), detail::argument_list(std::forward<A>(args)...));
  }
  /// PING with `data`; throws if the echo differs.
  Task<void> ping(std::string data = {});
  /// Sends a request and waits for its reply (sync_request_timeout applies).
  Task<Any> request(rpc::Handler handler, std::vector<Any> args);
  /// Sends a request without waiting.
  AsyncResult async_request(rpc::Handler handler, std::vector<Any> args);
  /// Sends CLOSE and closes. 6.x waits for the peer's EOF (bounded by the sync timeout).
  Task<void> close();
  /// Closes at once without telling the peer.
  void abort();
  /// Refuses the peer: every request from now on is answered with `why` (an exception, e.g.
  /// PyError("PermissionError", "...")), and the connection closes once the first of those
  /// answers is queued (it is flushed first). The service layer uses it when on_connect or
  /// the auth-token check refuses a client, so that the client learns why.
  void refuse(std::exception_ptr why);
  [[nodiscard]] bool closed() const noexcept;
  /// Completes when the connection has closed (peer EOF, CLOSE, error or close()).
  Task<void> wait_closed();
  /// Why it closed (null: closed cleanly).
  [[nodiscard]] std::exception_ptr error() const noexcept;
  /// fn runs once when the connection closes.
  void set_close_callback(std::function<void()> fn);
  /// Requests from the peer being served now (a reply, or an exception, not yet queued).
  [[nodiscard]] std::size_t serving() const noexcept;
  /// fn runs on the loop thread whenever the last request being served finishes (serving()
  /// drops to zero); an empty fn removes it. For a server draining a connection before it
  /// closes it.
  void set_idle_callback(std::function<void()> fn);
  /// A slot for what the layer above keeps with this connection (muduo's
  /// TcpConnection::setContext): the service layer keeps its Session there. Handlers reach it
  /// through CallContext::context(). Loop thread only.
  void set_context(std::any value);
  [[nodiscard]] const std::any& context() const noexcept;

  [[nodiscard]] rpc::Generation generation() const noexcept;
  [[nodiscard]] ConnectionStats stats() const noexcept;
  [[nodiscard]] EventLoop& loop() const noexcept;
  [[nodiscard]] const ConnectionOptions& options() const noexcept;

 private:
  friend struct rpc::detail::ConnectionAccess;  // the rpc layer's own code reaches the state
  std::shared_ptr<rpc::detail::ConnectionCore> core_;
};

namespace detail {
template <class R>
Task<R> callattr_root(Connection* conn, std::string name, std::vector<Any> args) {
  Netref root = co_await conn->root();
  R r = co_await root.callattr<R>(std::move(name), std::move(args));
  co_return r;
}
}  // namespace detail

}  // namespace tether
