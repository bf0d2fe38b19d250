#pragma once
// Private: the state of one RPyC connection. The public Connection owns it through a
// shared_ptr; Netrefs and AsyncResults hold weak references, so they fail cleanly with
// "connection closed" once it is gone.
//
// The pieces, each in a file of its own: PendingCalls (requests awaiting replies),
// ExportTable (objects lent to the peer), ProxyTable (the peer's objects held here),
// MessageWriter (encoding and sending), MessageDecoder (payload -> Message, no side effects),
// the handler table (dispatch.cpp) and ServeScheduler (when requests start and replies leave).
// This class reads frames, acts on the decoded messages and owns the connection's life.

#include <any>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "rpc/export_table.hpp"
#include "rpc/message_reader.hpp"
#include "rpc/message_writer.hpp"
#include "rpc/pending_calls.hpp"
#include "rpc/proxy_table.hpp"
#include "rpc/serve_scheduler.hpp"
#include "tether/brine/value.hpp"
#include "tether/channel/channel.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/rpc/any.hpp"
#include "tether/rpc/connection.hpp"
#include "tether/rpc/object.hpp"
#include "tether/rpc/protocol.hpp"

namespace tether::rpc::detail {

/// A request as its handler gets it (moved out of the decoded Message).
struct Request {
  Handler handler = Handler::kPing;
  std::vector<Any> args;
  CallShape call;  // CALLATTR/CALL/GETATTR in the usual shape (then args is empty)
};

class ConnectionCore {
 public:
  ConnectionCore(std::unique_ptr<Channel> channel, ObjectPtr root, ConnectionOptions options);
  ~ConnectionCore();
  ConnectionCore(const ConnectionCore&) = delete;
  ConnectionCore& operator=(const ConnectionCore&) = delete;

  void set_self(const std::shared_ptr<ConnectionCore>& self) { self_ = self; }
  [[nodiscard]] std::shared_ptr<ConnectionCore> shared() const noexcept { return self_.lock(); }
  void start();

  // --- outgoing requests
  std::shared_ptr<PendingCall> send_request(Handler h, std::vector<Any> args);
  /// CALLATTR(target, name, args, kwargs), encoded straight from the pieces. A large bytes
  /// argument is moved out of `args` and sent without a copy.
  std::shared_ptr<PendingCall> send_callattr(const Netref& target, std::string_view name,
                                             std::vector<Any>& args, Kwargs kwargs);
  /// The same with plain positional arguments and no keyword arguments: one (VALUE, tuple).
  std::shared_ptr<PendingCall> send_callattr(const Netref& target, std::string_view name,
                                             std::span<brine::Value> args);
  /// Sends a request whose reply is then awaited under sync_request_timeout.
  AsyncResult start_sync(Handler h, std::vector<Any> args);
  /// Puts a sent request under sync_request_timeout.
  AsyncResult expire_as_sync(std::shared_ptr<PendingCall> p);
  /// Sends and waits (sync_request_timeout).
  Task<Any> sync_request(Handler h, std::vector<Any> args);
  Task<Netref> root();
  /// Queues a DEL for a released proxy (dumped id_pack; no reply awaited).
  void send_del(const std::string& id_pack_wire, std::uint64_t count);
  Task<void> close_gracefully();
  /// Closes now; pending requests fail with `reason` (Disconnected if null).
  void close_now(std::exception_ptr reason) noexcept;
  /// From now on every request is answered with `why`; the connection closes once the first
  /// such answer is queued (Connection::refuse).
  void refuse(std::exception_ptr why) noexcept { refusal_ = std::move(why); }
  /// A request expired on its own timer (AsyncResult::set_expiry): a late reply is dropped.
  void forget_pending(std::uint64_t seq) noexcept { pending_.erase(seq); }

  // --- state
  [[nodiscard]] bool closed() const noexcept { return closed_; }
  [[nodiscard]] EventLoop& loop() const noexcept { return loop_; }
  [[nodiscard]] Generation generation() const noexcept { return gen_; }
  [[nodiscard]] const ConnectionOptions& options() const noexcept { return opts_; }
  [[nodiscard]] ConnectionStats stats() const noexcept;
  /// Tells the observer a request starts; returns the start time (steady clock, ns).
  static std::int64_t observe_start(rpc::CallObserver& observer) noexcept;
  /// Tells the observer (ConnectionOptions::observer) that `req` finished.
  void observe_end(rpc::CallObserver& observer, const Request& req, std::int64_t started,
                   const std::exception_ptr& failure) const noexcept;
  [[nodiscard]] std::exception_ptr error() const noexcept { return error_; }
  Task<void> wait_closed();
  void set_close_callback(std::function<void()> fn) { on_close_ = std::move(fn); }
  [[nodiscard]] std::size_t serving() const noexcept { return sched_.serving(); }
  void set_idle_callback(std::function<void()> fn) { on_idle_ = std::move(fn); }
  /// The last request being served finished: on_idle_ runs soon (not inside the request).
  void notify_idle() noexcept;
  /// What the layer above keeps with this connection (muduo's TcpConnection::setContext).
  [[nodiscard]] std::any& context() noexcept { return context_; }

  // --- the pieces (tests and the rest of the rpc layer)
  [[nodiscard]] ProxyTable& proxies() noexcept { return proxies_; }
  [[nodiscard]] ExportTable& exports() noexcept { return exports_; }
  [[nodiscard]] MessageWriter& writer() noexcept { return writer_; }
  [[nodiscard]] MessageDecoder& decoder() noexcept { return decoder_; }
  [[nodiscard]] const ObjectPtr& root_object() const noexcept { return root_; }

  // --- the handlers (dispatch.cpp)
  /// RPyC's attribute access check (§12.2): the name `name` resolves to, or AttributeError.
  std::string resolve_attr(const Object& obj, std::string_view name, bool master_switch) const;
  /// The names DIR lists: only those a GETATTR could reach.
  [[nodiscard]] std::vector<std::string> reachable_names(const Object& obj) const;

 private:
  Task<void> serve_loop();
  /// Decodes one payload and acts on it.
  void handle_payload(std::span<const std::uint8_t> payload);
  /// Settles the generation from a message's first byte (a server learns it; a client checks).
  Generation check_generation(std::uint8_t first);
  void on_reply(Message& m);
  void on_request(Message& m);
  /// DEL (one path, in the read loop: no reply latency, no task).
  void handle_del(std::uint64_t seq, std::span<Any> items);
  /// A reply or exception whose seq has no pending call.
  void on_unexpected_reply(std::uint64_t seq) noexcept;
  static Task<void> serve_request(ConnectionCore* self, std::uint64_t seq, Request req, bool holds_slot,
                                  std::size_t cost);
  /// The handler's result for `req` (the handler table in dispatch.cpp).
  Task<Any> dispatch(CallContext& ctx, Request& req);

  std::shared_ptr<PendingCall> finish_request(Handler h, std::uint64_t seq);
  template <class EncodeArgs>
  std::shared_ptr<PendingCall> send_callattr_with(const Netref& target, std::string_view name,
                                                  EncodeArgs&& encode_args, Kwargs kwargs);
  void send_reply(std::uint64_t seq, Any result);
  void send_close_request();
  void send_exception(std::uint64_t seq, std::exception_ptr e, Handler h);
  /// Not closed, or Disconnected.
  void check_open() const;

  // --- backpressure and watchdogs
  /// True when serve_loop must stop reading: requests in flight hold too much decoded memory,
  /// or (pause_reading_on_backlog) the unsent output is above the high watermark.
  [[nodiscard]] bool must_pause() const noexcept;
  Task<void> wait_unpaused();
  void arm_watchdog(bool idle);
  void on_watchdog() noexcept;

  EventLoop& loop_;
  std::unique_ptr<Channel> channel_;
  ObjectPtr root_;
  ConnectionOptions opts_;
  Generation gen_;
  bool gen_locked_ = false;
  bool sent_first_ = false;
  std::weak_ptr<ConnectionCore> self_;

  ExportTable exports_;
  ProxyTable proxies_;
  /// Proxies of other connections lent to this peer (forwarding.hpp), by proxy state: the same
  /// proxy is lent as the same object while the peer holds it.
  std::unordered_map<const NetrefState*, std::weak_ptr<Object>> forwards_;
  ObjectPtr forwarding_for(const Netref& foreign);
  PendingCalls pending_;
  MessageWriter writer_;
  MessageDecoder decoder_;
  std::optional<Netref> peer_root_;
  // The seq of the CLOSE we sent (6.x close waits for its reply or EOF), when one was sent.
  std::optional<std::uint64_t> close_seq_;

  Semaphore request_slots_;
  std::size_t inflight_cost_ = 0;  // decoded memory of the requests being served
  Event inflight_freed_;           // set when inflight_cost_ drops to the limit or below

  // Frame progress and idleness (frame_timeout, idle_timeout): one timer, armed only when
  // serve_loop waits with part of a frame buffered, or when idle_timeout is set.
  bool waiting_frame_ = false;
  TimerId watchdog_{};
  std::uint64_t watch_bytes_ = 0;
  std::uint64_t watch_frames_ = 0;
  bool watch_idle_ = false;

  Event closed_event_;
  bool closed_ = false;
  bool started_ = false;
  std::exception_ptr error_;
  std::exception_ptr refusal_;
  std::function<void()> on_close_;
  std::function<void()> on_idle_;
  std::any context_;
  ConnectionStats counters_;
  ServeScheduler sched_;  // refers to tasks_ (constructed later): stores the reference only
  // Last: destroyed first, so no task outlives the state it uses.
  TaskGroup tasks_;
};

/// A public Connection's state, for the rpc layer's own code and its white-box tests (the
/// decoder's fast path, the writer); not part of the public API.
struct ConnectionAccess {
  static ConnectionCore& core(const Connection& c) noexcept { return *c.core_; }
};

/// The other way: a received kwargs tuple (None: none) as Kwargs; TypeError for anything else.
Kwargs as_kwargs(const Any& a);

/// Builds the exception-reply body (vinegar, §9) for a C++ exception.
brine::Value encode_exception(std::exception_ptr e, Generation gen, bool include_traceback,
                              std::string_view context, bool include_local_version = true);
/// Turns an exception-reply body into the C++ exception to throw.
std::exception_ptr decode_exception(const brine::Value& body);

}  // namespace tether::rpc::detail
