#pragma once
// Private: the state of one RPyC connection. The public Connection owns it through a
// shared_ptr; Netrefs and AsyncResults hold weak references, so they fail cleanly with
// "connection closed" once it is gone.

#include <array>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "rpc/pool_alloc.hpp"
#include "tether/brine/reader.hpp"
#include "tether/brine/value.hpp"
#include "tether/channel/channel.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/rpc/any.hpp"
#include "tether/rpc/connection.hpp"
#include "tether/rpc/object.hpp"
#include "tether/rpc/protocol.hpp"

namespace tether::rpc::detail {

class ConnectionCore;

/// One request awaiting its reply.
struct PendingCall {
  std::uint64_t seq = 0;     // on the wire; reused once the reply came (see take_seq)
  std::uint64_t serial = 0;  // unique per request on the connection
  Handler handler = Handler::kPing;
  std::weak_ptr<ConnectionCore> core;
  EventLoop* loop = nullptr;
  bool done = false;
  bool expired = false;
  Any value;
  std::exception_ptr error;
  tether::detail::WaitList waiters;
  std::vector<std::function<void(const AsyncResult&)>> callbacks;
  TimerId expiry{};

  explicit PendingCall(EventLoop* l) : loop(l), waiters(l) {}
  ~PendingCall();
};

/// Marks p done, wakes its waiters and runs its callbacks (once).
void complete_pending(const std::shared_ptr<PendingCall>& p, Any v, std::exception_ptr e);

/// A proxy's shared state: one per (connection, id_pack) while alive.
struct NetrefState {
  std::weak_ptr<ConnectionCore> core;
  const ConnectionCore* owner = nullptr;  // identity only: compared while `core` is unexpired
  brine::Value id_pack;
  std::string type_name;
  std::string key;  // dumped id_pack: the proxy-cache key
  std::uint64_t refcount = 1;
  ~NetrefState();
  /// The live core, or throws Disconnected("connection closed").
  std::shared_ptr<ConnectionCore> lock() const;
};

class ConnectionCore {
 public:
  /// Requests awaiting their reply, by sequence number (nodes from the pool).
  using PendingTable =
      std::unordered_map<std::uint64_t, std::shared_ptr<PendingCall>, std::hash<std::uint64_t>,
                         std::equal_to<>,
                         PoolAllocator<std::pair<const std::uint64_t, std::shared_ptr<PendingCall>>>>;

  ConnectionCore(std::unique_ptr<Channel> channel, ObjectPtr root, ConnectionOptions options);
  ~ConnectionCore();
  ConnectionCore(const ConnectionCore&) = delete;
  ConnectionCore& operator=(const ConnectionCore&) = delete;

  void set_self(const std::shared_ptr<ConnectionCore>& self) { self_ = self; }
  [[nodiscard]] std::shared_ptr<ConnectionCore> shared() const noexcept { return self_.lock(); }
  void start();

  // --- outgoing requests
  std::shared_ptr<PendingCall> send_request(Handler h, std::vector<Any> args);
  /// CALLATTR(target, name, args, kwargs), encoded straight from the pieces.
  /// A large bytes argument is moved out of `args` and sent without a copy (splice_block).
  std::shared_ptr<PendingCall> send_callattr(const Netref& target, std::string_view name,
                                             std::vector<Any>& args, Kwargs kwargs);
  /// The same with plain positional arguments and no keyword arguments: they travel as one
  /// (VALUE, tuple), as RPyC boxes a tuple of plain values (Netref::call's common case).
  std::shared_ptr<PendingCall> send_callattr(const Netref& target, std::string_view name,
                                             std::span<brine::Value> args);
  /// Sends a request whose reply is then awaited under sync_request_timeout. All of them share
  /// one timer through a deadline queue (same timeout for every one, so deadlines come in send
  /// order), instead of arming a timer per call.
  AsyncResult start_sync(Handler h, std::vector<Any> args);
  /// Puts a sent request under sync_request_timeout (the deadline queue).
  AsyncResult expire_as_sync(std::shared_ptr<PendingCall> p);
  /// Sends and waits (sync_request_timeout).
  Task<Any> sync_request(Handler h, std::vector<Any> args);
  Task<Netref> root();
  /// Queues a DEL for a released proxy (no reply awaited).
  void send_del(const brine::Value& id_pack, std::uint64_t count);
  Task<void> close_gracefully();
  /// Closes now; pending requests fail with `reason` (Disconnected if null).
  void close_now(std::exception_ptr reason) noexcept;

  // --- boxing (§5)
  /// Boxing consumes its argument so large payloads move instead of being copied.
  /// Appends RPyC's boxed form of `a` (wire spec §5) to `out`, exporting objects of ours.
  void encode_boxed(const Any& a, Buffer& out);
  void encode_boxed_tuple(const std::vector<Any>& items, Buffer& out);
  /// The same, for items the caller gives up: the first large bytes value among them goes out
  /// uncopied (splice_block).
  void encode_boxed_tuple_owned(std::vector<Any>& items, Buffer& out);
  /// (VALUE, (v, ...)) of `n` plain values, `value_at(i)` the i-th: how a tuple of plain
  /// values is boxed (as RPyC does); the first large bytes value among them goes out uncopied.
  template <class ValueAt>
  void encode_value_tuple(std::size_t n, ValueAt&& value_at, Buffer& out);
  /// If `a` is a plain bytes value of at least kSpliceMin bytes, the message has no block yet
  /// and the channel will not compress: writes its boxing and the bytes header to `out`, moves
  /// the bytes aside for finish_message to hand over uncopied (Channel::send_spliced), and
  /// returns true. Otherwise writes nothing and returns false.
  bool splice_block(Any& a, Buffer& out) {
    if (!splice_ok_ || has_block_ || a.kind() != Any::Kind::kValue) return false;
    brine::Value& v = std::get<0>(a.v_);
    return v.is_bytes() && splice_bytes(v, out, true);
  }
  /// The same for a plain value inside a (VALUE, tuple): only the bytes header is written.
  bool splice_plain(brine::Value& v, Buffer& out) {
    return splice_ok_ && !has_block_ && v.is_bytes() && splice_bytes(v, out, false);
  }
  bool splice_bytes(brine::Value& v, Buffer& out, bool boxed);
  void encode_netref(const Netref& ref, Buffer& out);
  Any unbox(brine::Value boxed);

  // --- state
  [[nodiscard]] bool closed() const noexcept { return closed_; }
  [[nodiscard]] EventLoop& loop() const noexcept { return loop_; }
  [[nodiscard]] Generation generation() const noexcept { return gen_; }
  [[nodiscard]] const ConnectionOptions& options() const noexcept { return opts_; }
  [[nodiscard]] ConnectionStats stats() const noexcept;
  [[nodiscard]] std::exception_ptr error() const noexcept { return error_; }
  Task<void> wait_closed();
  void set_close_callback(std::function<void()> fn) { on_close_ = std::move(fn); }
  /// Tests: off sends every incoming message down the general path (decode_test compares).
  void set_fast_decode(bool on) noexcept { fast_decode_ = on; }
  /// Messages the fast decoder took (the rest went down the general path).
  [[nodiscard]] std::uint64_t fast_decoded() const noexcept { return fast_decoded_; }
  void forget_proxy(const std::string& key) noexcept;
  void forget_pending(std::uint64_t seq) noexcept { pending_.erase(seq); }
  /// The reply to `it` arrived: takes it out of the pending table; its seq may be reused.
  std::shared_ptr<PendingCall> take_pending(
      std::unordered_map<std::uint64_t, std::shared_ptr<PendingCall>>::iterator it);

 private:
  struct Export {
    ObjectPtr obj;
    std::string name;  // id_pack: (name, class_id, instance id)
    std::int64_t class_id = 0;
    std::string wire;  // the id_pack as dumped (sent as is; matched as is, see decode.cpp)
    brine::Reader::Shape wire_shape;
    std::uint64_t extra = 0;  // times sent - 1
  };

  Task<void> serve_loop();
  void spawn_serve(Task<void> request);
  /// Queues the held request (the order of requests is kept). Loop thread only.
  void release_held();
  /// serve_loop's hand-off to the request it holds (or to the one coroutine its pass woke):
  /// queues serve_loop itself, then resumes that coroutine in its place. A symmetric
  /// transfer: the coroutine does not run on top of serve_loop's frame, so a nested loop in
  /// it can still run serve_loop.
  class HandOff {
   public:
    HandOff(EventLoop& loop, std::coroutine_handle<> to) noexcept : loop_(loop), to_(to) {}
    HandOff(const HandOff&) = delete;
    HandOff& operator=(const HandOff&) = delete;
    ~HandOff();
    [[nodiscard]] bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> self);
    void await_resume() noexcept { resumed_ = true; }

   private:
    EventLoop& loop_;
    std::coroutine_handle<> to_;
    std::coroutine_handle<> self_{};
    bool resumed_ = false;
  };
  /// After each suspension of serve_loop: a new pass, with nothing queued or decoded yet (what
  /// earlier passes queued has started by then: the ready queue is FIFO).
  void begin_pass() noexcept {
    pass_scheduled_ = false;
    pass_decoded_ = false;
  }
  void handle_payload(std::span<const std::uint8_t> payload);
  /// The general path: the whole message as a Value tree, then unboxed (any valid message).
  void handle_payload_slow(std::span<const std::uint8_t> payload, Generation gen);
  /// brine::load, noting what the value costs in next_cost_.
  brine::Value load_counted(std::span<const std::uint8_t> bytes);
  /// The common path (src/rpc/decode.cpp): requests and replies read straight into Any,
  /// without a Value tree. Returns false, having changed nothing, for anything it does not
  /// handle (exception replies, DEL/CLOSE edge cases, unusual shapes, unknown references),
  /// which then take the general path and get its errors; brine errors it throws are the
  /// ones the general path would throw for the same bytes.
  bool handle_payload_fast(std::span<const std::uint8_t> payload, Generation gen);
  /// A reply or exception whose seq has no pending call.
  void on_unexpected_reply(std::uint64_t seq) noexcept;
  void handle_reply(std::uint64_t seq, MsgType type, brine::Value body);
  /// CALLATTR's and CALL's checks and argument conversion, done before the call (by the fast
  /// path at receipt, by serve_request otherwise); also GETATTR's target and checked name (the
  /// fast path only).
  struct PreparedCall {
    ObjectPtr obj;      // null: not prepared
    bool attr = false;  // CALLATTR (name) or CALL
    std::string name;   // CALLATTR's and GETATTR's, as resolve_attr checked it
    std::vector<Any> args;
    Kwargs kwargs;
  };
  PreparedCall prepare_call_attr(std::span<Any> args);
  PreparedCall prepare_call(std::span<Any> args);  // CALL: name stays empty
  /// A request's argument tuple as the fast decoder reads it: up to four items in place (no
  /// allocation for CALLATTR, CALL, GETATTR, DEL ...), more in a vector.
  struct RequestArgs {
    std::array<Any, 4> small;
    std::vector<Any> large;
    std::size_t n = 0;
    RequestArgs() = default;
    RequestArgs(const RequestArgs&) = delete;
    RequestArgs& operator=(const RequestArgs&) = delete;
    ~RequestArgs() {
      for (Any& a : small) a = Any();  // first to last, as a vector releases its items
    }
    void resize(std::size_t count);
    [[nodiscard]] std::span<Any> items() noexcept {
      return n <= small.size() ? std::span<Any>(small.data(), n) : std::span<Any>(large);
    }
  };
  void start_request(std::uint64_t seq, Handler h, std::vector<Any> args);
  void start_call(std::uint64_t seq, Handler h, PreparedCall call);
  static Task<void> serve_request(ConnectionCore* self, std::uint64_t seq, Handler h, std::vector<Any> args,
                                  PreparedCall call, bool holds_slot, std::size_t cost);
  /// What the next request started counts against max_inflight_decoded_bytes (set by the
  /// decoder that read it).
  std::size_t next_cost_ = 0;
  /// Decoded memory of the requests being served (max_inflight_decoded_bytes).
  std::size_t inflight_cost_ = 0;
  Event inflight_freed_;  // set when inflight_cost_ drops to the limit or below
  /// True when serve_loop must stop reading: requests in flight hold too much decoded memory,
  /// or (pause_reading_on_backlog) the unsent output is above the high watermark.
  [[nodiscard]] bool must_pause() const noexcept;
  /// Waits while must_pause() holds.
  Task<void> wait_unpaused();

  // Frame progress and idleness (frame_timeout, idle_timeout): one timer, armed only when
  // serve_loop waits with part of a frame buffered, or when idle_timeout is set.
  bool waiting_frame_ = false;       // serve_loop is in wait_frame()
  TimerId watchdog_{};
  std::uint64_t watch_bytes_ = 0;    // the stream's bytes_read when the window began
  std::uint64_t watch_frames_ = 0;   // frames_in when the idle window began
  bool watch_idle_ = false;          // the armed window is the idle one
  void arm_watchdog(bool idle);
  void on_watchdog() noexcept;
  /// DEL's bookkeeping for one export: `count` fewer references held by the peer.
  void release_export(std::unordered_map<std::uint64_t, Export>::iterator it, std::uint64_t count);
  Task<Any> dispatch(Handler h, std::vector<Any>& args);
  void handle_del(std::uint64_t seq, const brine::Value& boxed_args);

  // --- the fast decoder's pieces (decode.cpp)
  /// A REMOTE_REF read by the fast decoder; its proxy is made once the whole message decoded.
  struct DeferredRef {
    Any* slot;
    brine::Value id_pack;
  };
  enum class Decoded { kFail, kPlain, kRef };
  Decoded decode_boxed(brine::Reader& r, std::size_t depth, Any& out, std::vector<DeferredRef>& refs);
  /// A boxed tuple into `out` (a tuple of plain values sent as one VALUE too; None as no
  /// items when none_is_empty, as for call arguments).
  bool decode_boxed_items(brine::Reader& r, std::size_t depth, std::vector<Any>& out,
                          std::vector<DeferredRef>& refs, bool none_is_empty);
  bool decode_request_args(brine::Reader& r, Handler h, RequestArgs& args, std::vector<DeferredRef>& refs);
  /// CALLATTR's, CALL's and GETATTR's arguments read straight into `call` when they have the
  /// usual shape (the target one of our exports, the name a str): `name` views the input,
  /// `kwargs` stays None when the peer sent none or an empty tuple. False when the shape is
  /// unusual (then decode_request_args and the checks of prepare_call_attr/prepare_call or
  /// dispatch have the word).
  bool decode_call(brine::Reader& r, Handler h, PreparedCall& call, std::string_view& name, Any& kwargs,
                   std::vector<DeferredRef>& refs);
  void resolve_refs(std::vector<DeferredRef>& refs);

  /// CALLATTR's envelope around `encode_args(out)`, which writes the boxed positional tuple.
  template <class EncodeArgs>
  std::shared_ptr<PendingCall> send_callattr_with(const Netref& target, std::string_view name,
                                                  EncodeArgs&& encode_args, Kwargs kwargs);
  void send_message(MsgType type, std::uint64_t seq, const brine::Value& body);
  Buffer& begin_request(Handler h, std::uint64_t& seq);  // envelope and handler, in scratch_
  std::shared_ptr<PendingCall> finish_request(Handler h, std::uint64_t seq);
  Buffer& begin_message(MsgType type, std::uint64_t seq);  // envelope up to the body, in scratch_
  void finish_message();                                   // frames and queues scratch_
  void send_reply(std::uint64_t seq, Any result);
  void send_close_request();
  void send_exception(std::uint64_t seq, std::exception_ptr e, Handler h);

  /// The object's dumped id_pack (a reference into the export table), exporting it if new.
  const std::string& export_object(const ObjectPtr& obj);
  ObjectPtr lookup_export(const brine::Value& id_pack) const;
  Netref make_proxy(const brine::Value& id_pack);
  std::string resolve_attr(const Object& obj, std::string_view name, bool master_switch) const;
  ObjectPtr local_target(const Any& a, std::string_view what) const;

  EventLoop& loop_;
  std::unique_ptr<Channel> channel_;
  Buffer scratch_;     // send_message's encode buffer, reused for small messages
  Bytes block_;        // splice_block's bytes, sent after scratch_'s first block_at_ bytes
  std::size_t block_at_ = 0;
  bool has_block_ = false;
  bool splice_ok_;     // the channel does not compress (its options are fixed at construction)
  Buffer id_scratch_;  // export_object's, for dumping an id_pack (it runs while scratch_ fills)
  ObjectPtr root_;
  ConnectionOptions opts_;
  Generation gen_;
  bool gen_locked_ = false;
  bool fast_decode_ = true;
  std::uint64_t fast_decoded_ = 0;
  bool sent_first_ = false;
  std::weak_ptr<ConnectionCore> self_;

  // Sequence numbers. A request's seq is free again once its reply came (nothing else will
  // arrive for it), and is then reused before a new one is taken from the counter: with up to
  // ~160 requests in flight they stay brine's one-byte ints (no decimal text on either side).
  // A seq whose request timed out or was abandoned, and those of requests whose replies are
  // not awaited (DEL, CLOSE), are never reused: a late reply to them is dropped as unknown.
  std::uint64_t next_seq_ = 0;
  // The seq of the CLOSE we sent (6.x close waits for its reply or EOF), when one was sent.
  std::optional<std::uint64_t> close_seq_;
  std::uint64_t next_serial_ = 0;
  std::vector<std::uint64_t> free_seqs_;
  std::uint64_t take_seq() noexcept;
  PendingTable pending_;
  // Sync requests' deadlines, oldest first (entries of answered calls leave from the front
  // when they get there), and the one timer armed for the oldest.
  struct SyncDeadline {
    TimePoint at;
    std::uint64_t seq;
    std::uint64_t serial;  // the seq may belong to a later request by the time this is due
  };
  /// True while the request `d` was made for still awaits its reply.
  [[nodiscard]] bool awaiting(const SyncDeadline& d) const noexcept;
  std::deque<SyncDeadline> sync_deadlines_;
  TimerId sync_timer_{};
  void arm_sync_timer();
  void on_sync_timer() noexcept;
  void trim_sync_deadlines() noexcept;
  std::unordered_map<std::uint64_t, Export> exports_;  // by instance id
  // The exports the peer referred to last (LOCAL_REF), most recent first: their id_packs are
  // recognised by their bytes before any parsing (decode.cpp). Entries leave with the export.
  std::array<const std::pair<const std::uint64_t, Export>*, 4> recent_refs_{};
  void note_recent_ref(const std::pair<const std::uint64_t, Export>* e) noexcept;
  std::unordered_map<const Object*, std::uint64_t> export_ids_;  // object -> instance id
  std::uint64_t next_instance_ = 1;
  std::unordered_map<std::string, std::weak_ptr<NetrefState>> proxies_;  // by dumped id_pack
  std::optional<Netref> peer_root_;

  Semaphore request_slots_;
  std::size_t serving_ = 0;  // serve_request tasks spawned and not finished
  // A request decoded by this serve_loop pass and not queued: serve_loop starts it when the
  // pass ends (spawn_serve, HandOff). pass_scheduled_: this pass queued one already.
  std::coroutine_handle<> held_start_{};
  bool pass_scheduled_ = false;
  bool pass_decoded_ = false;  // this pass of serve_loop handled a frame
  /// Frames serve_loop handled since it last gave the loop back for fairness (kFramesPerTurn).
  std::uint32_t frames_since_yield_ = 0;
  static constexpr std::uint32_t kFramesPerTurn = 256;
  Event closed_event_;
  bool closed_ = false;
  bool started_ = false;
  std::exception_ptr error_;
  std::function<void()> on_close_;
  ConnectionStats counters_;
  // Last: destroyed first, so no task outlives the state it uses.
  TaskGroup tasks_;
};

/// RPyC's kwargs tuple: ((name, value), ...).
Any kwargs_tuple(Kwargs kwargs);
/// The other way: a received kwargs tuple (None: none) as Kwargs; TypeError for anything else.
Kwargs as_kwargs(const Any& a);

/// Builds the exception-reply body (vinegar, §9) for a C++ exception.
brine::Value encode_exception(std::exception_ptr e, Generation gen, bool include_traceback,
                              std::string_view context);
/// Turns an exception-reply body into the C++ exception to throw.
std::exception_ptr decode_exception(const brine::Value& body);

}  // namespace tether::rpc::detail
