#include "rpc/connection_core.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <new>
#include <utility>

#include "tether/base/endian.hpp"
#include "tether/base/log.hpp"
#include "tether/brine/codec.hpp"
#include "tether/brine/utf8.hpp"
#include "tether/loop/time.hpp"
#include "tether/rpc/py_error.hpp"

namespace tether::rpc::detail {

using brine::Value;

namespace {

// Messages up to this size are copied from the reused encode buffer into the stream.
constexpr std::size_t kCopiedMessage = 4096;
// A bytes value this large is not copied into the message it travels in (splice_block).
constexpr std::size_t kSpliceMin = 64 * 1024;
/// Freed sequence numbers kept for reuse, at most.
constexpr std::size_t kMaxFreeSeqs = 1024;

Value label_value(Label l) { return Value(static_cast<std::int64_t>(l)); }
void dump_label(Label l, Buffer& out) { brine::dump_int(static_cast<std::int64_t>(l), out); }
/// Sequence numbers count up from 0 and wrap nowhere near INT64_MAX.
void dump_seq(std::uint64_t seq, Buffer& out) { brine::dump_int(static_cast<std::int64_t>(seq), out); }

std::string id_pack_key(const Value& id_pack) {
  std::string key;
  brine::dump_into(id_pack, key);
  return key;
}

/// Checks the shape (name: str, class_id: int, instance_id: int) of an id_pack.
void check_id_pack(const Value& v) {
  if (!v.is_tuple() || v.as_tuple().size() != 3 || !v.as_tuple()[0].is_str() || !v.as_tuple()[1].is_int() ||
      !v.as_tuple()[2].is_int()) {
    throw PyError("builtins", "ValueError", {Value("invalid id_pack: " + v.repr(200))});
  }
}

std::uint64_t stable_class_id(const std::string& type_name) {
  // FNV-1a: the same C++ type gets the same class id in every process and run.
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : type_name) h = (h ^ c) * 1099511628211ull;
  return (h >> 16) | 1;  // positive, non-zero, CPython-like magnitude
}

}  // namespace

// ---------------------------------------------------------------------------------- PendingCall

PendingCall::~PendingCall() {
  if (expiry && loop) loop->cancel_timer(expiry);
}

void complete_pending(const std::shared_ptr<PendingCall>& p, Any v, std::exception_ptr e) {
  if (p->done) return;
  p->done = true;
  p->value = std::move(v);
  p->error = std::move(e);
  if (p->expiry) {
    p->loop->cancel_timer(p->expiry);
    p->expiry = {};
  }
  p->waiters.wake_all();
  auto callbacks = std::move(p->callbacks);
  AsyncResult r(p);
  for (auto& cb : callbacks) {
    try {
      cb(r);
    } catch (...) {
      TETHER_LOG_ERROR("AsyncResult callback threw: {}", describe_current_exception());
    }
  }
}

// --------------------------------------------------------------------------------- NetrefState

NetrefState::~NetrefState() {
  auto c = core.lock();
  if (!c) return;
  c->forget_proxy(key);
  if (!c->closed()) c->send_del(id_pack, refcount);
}

std::shared_ptr<ConnectionCore> NetrefState::lock() const {
  auto c = core.lock();
  if (!c || c->closed()) throw Disconnected("connection closed");
  return c;
}

// ------------------------------------------------------------------------------ ConnectionCore

namespace {
class VoidRoot final : public Object {
 public:
  [[nodiscard]] std::string type_name() const override { return "tether.VoidService"; }
};
}  // namespace

ConnectionCore::ConnectionCore(std::unique_ptr<Channel> channel, ObjectPtr root, ConnectionOptions options)
    : loop_(EventLoop::current_or_throw()),
      channel_(std::move(channel)),
      splice_ok_(!channel_->options().compress),
      root_(root ? std::move(root) : std::make_shared<VoidRoot>()),
      opts_(std::move(options)),
      gen_(opts_.generation == Generation::kAuto ? opts_.first_generation : opts_.generation),
      gen_locked_(opts_.generation != Generation::kAuto),
      request_slots_(std::max<std::size_t>(1, opts_.max_concurrent_requests)),
      tasks_(loop_, [this](std::exception_ptr e) {
        try {
          std::rethrow_exception(e);
        } catch (...) {
          TETHER_LOG_WARN("rpc connection {}: task failed: {}", opts_.name, describe_current_exception());
        }
      }) {}

ConnectionCore::~ConnectionCore() {
  close_now(nullptr);
  tasks_.cancel_all();
}

void ConnectionCore::start() {
  if (started_) return;
  started_ = true;
  tasks_.spawn(serve_loop());
  if (opts_.idle_timeout > Duration::zero()) arm_watchdog(true);
}

// --- backpressure and watchdogs

bool ConnectionCore::must_pause() const noexcept {
  if (inflight_cost_ > opts_.max_inflight_decoded_bytes) return true;
  if (!opts_.pause_reading_on_backlog) return false;
  BufferedStream& st = channel_->stream();
  return st.write_buffer_size() > st.options().write_high_water;
}

Task<void> ConnectionCore::wait_unpaused() {
  while (!closed_ && must_pause()) {
    if (inflight_cost_ > opts_.max_inflight_decoded_bytes) {
      inflight_freed_.clear();
      co_await inflight_freed_.wait();  // set by serve_request as requests finish
    } else {
      // Until the output is back at the low watermark (the peer reads again), or the stream
      // fails (then the next read says why).
      co_await channel_->drain();
    }
  }
}

void ConnectionCore::arm_watchdog(bool idle) {
  watch_idle_ = idle;
  watch_bytes_ = channel_->stream().stats().bytes_read;
  watch_frames_ = channel_->stats().frames_in;
  const Duration window = idle ? opts_.idle_timeout : opts_.frame_timeout;
  watchdog_ = loop_.call_later(window, [this]() { on_watchdog(); }).id();
}

void ConnectionCore::on_watchdog() noexcept {
  watchdog_ = {};
  if (closed_) return;
  const std::uint64_t bytes = channel_->stream().stats().bytes_read - watch_bytes_;
  const std::uint64_t frames = channel_->stats().frames_in - watch_frames_;
  const bool partial = waiting_frame_ && channel_->stream().buffer().readable_bytes() > 0;
  if (watch_idle_) {
    if (frames == 0 && bytes == 0 && pending_.empty() && serving_ == 0 && waiting_frame_) {
      TETHER_LOG_INFO("rpc connection {}: closing: idle for {} ms", opts_.name,
                      std::chrono::duration_cast<std::chrono::milliseconds>(opts_.idle_timeout).count());
      close_now(std::make_exception_ptr(Timeout("idle connection closed")));
      return;
    }
  } else if (partial) {
    const double seconds = std::chrono::duration<double>(opts_.frame_timeout).count();
    if (static_cast<double>(bytes) < static_cast<double>(opts_.min_frame_rate) * seconds) {
      TETHER_LOG_WARN("rpc connection {}: closing: a frame stalled ({} bytes in {} ms, below {} bytes/s)",
                      opts_.name, bytes,
                      std::chrono::duration_cast<std::chrono::milliseconds>(opts_.frame_timeout).count(),
                      opts_.min_frame_rate);
      close_now(std::make_exception_ptr(Timeout("frame not received in time (peer too slow or stalled)")));
      return;
    }
  }
  try {
    // Another window: the frame still in progress, or (idle_timeout) the next idle check.
    if (partial && opts_.frame_timeout > Duration::zero()) {
      arm_watchdog(false);
    } else if (opts_.idle_timeout > Duration::zero()) {
      arm_watchdog(true);
    }
  } catch (...) {
    TETHER_LOG_ERROR("rpc connection {}: cannot arm its watchdog: {}", opts_.name, describe_current_exception());
  }
}

ConnectionStats ConnectionCore::stats() const noexcept {
  ConnectionStats s = counters_;
  s.exported = exports_.size();
  s.proxies = 0;
  for (auto& [k, w] : proxies_) s.proxies += w.expired() ? 0 : 1;
  s.pending = pending_.size();
  return s;
}

Task<void> ConnectionCore::wait_closed() { co_await closed_event_.wait(); }

// --- sending

// Messages are encoded straight into scratch_, a buffer kept between messages: the envelope
// and RPyC's boxing are written as brine tuple headers and leaves, with no intermediate Value
// tree (tests/rpc/encode_test.cpp checks the bytes against dump() of that tree).
// begin_message ... finish_message never suspends, so one buffer serves the connection.
Buffer& ConnectionCore::begin_message(MsgType type, std::uint64_t seq) {
  if (closed_) throw Disconnected("connection closed");
  Buffer& out = scratch_;
  out.retrieve_all();
  if (has_block_) {  // left by a message whose encoding failed
    has_block_ = false;
    block_ = Bytes();
  }
  if (gen_ == Generation::k6) {
    const auto t = static_cast<std::uint8_t>(type);
    out.append(&t, 1);
    brine::dump_tuple_header(2, out);
  } else {
    brine::dump_tuple_header(3, out);
    brine::dump_int(static_cast<std::int64_t>(type), out);
  }
  dump_seq(seq, out);
  return out;
}

void ConnectionCore::finish_message() {
  // A small message is copied into the stream's tail chunk (no allocation), a large one hands
  // its storage over (no copy).
  Buffer& out = scratch_;
  if (has_block_) {
    has_block_ = false;
    const std::size_t n = block_.size();
    Buffer head(std::move(out));
    scratch_ = Buffer();
    channel_->send_spliced(std::move(head), block_at_, std::exchange(block_, Bytes()));
    counters_.uncopied_bytes_out += n;
    return;
  }
  if (out.readable_bytes() <= kCopiedMessage) {
    channel_->send(out.view());
    out.retrieve_all();
  } else {
    channel_->send(std::move(out));
    scratch_ = Buffer();
  }
}

void ConnectionCore::send_message(MsgType type, std::uint64_t seq, const Value& body) {
  Buffer& out = begin_message(type, seq);
  brine::dump_into(body, out);
  finish_message();
}

Buffer& ConnectionCore::begin_request(Handler h, std::uint64_t& seq) {
  if (closed_) throw Disconnected("connection closed");
  seq = take_seq();
  Buffer& out = begin_message(MsgType::kRequest, seq);  // body: (handler, boxed args tuple)
  brine::dump_tuple_header(2, out);
  brine::dump_int(static_cast<std::int64_t>(h), out);
  return out;
}

std::uint64_t ConnectionCore::take_seq() noexcept {
  if (free_seqs_.empty()) return next_seq_++;
  const std::uint64_t seq = free_seqs_.back();
  free_seqs_.pop_back();
  return seq;
}

std::shared_ptr<PendingCall> ConnectionCore::finish_request(Handler h, std::uint64_t seq) {
  auto p = std::allocate_shared<PendingCall>(PoolAllocator<PendingCall>{}, &loop_);
  p->seq = seq;
  p->serial = next_serial_++;
  p->handler = h;
  p->core = self_;
  pending_.emplace(seq, p);
  sent_first_ = true;
  ++counters_.requests_out;
  try {
    finish_message();
  } catch (...) {
    pending_.erase(seq);
    throw;
  }
  return p;
}

std::shared_ptr<PendingCall> ConnectionCore::send_request(Handler h, std::vector<Any> args) {
  std::uint64_t seq;
  Buffer& out = begin_request(h, seq);
  encode_boxed_tuple(args, out);
  return finish_request(h, seq);
}

template <class ValueAt>
void ConnectionCore::encode_value_tuple(std::size_t n, ValueAt&& value_at, Buffer& out) {
  brine::dump_tuple_header(2, out);
  dump_label(Label::kValue, out);
  brine::dump_tuple_header(n, out);
  for (std::size_t i = 0; i < n; ++i) {
    brine::Value& v = value_at(i);
    if (!splice_plain(v, out)) brine::dump_into(v, out);
  }
}

template <class EncodeArgs>
std::shared_ptr<PendingCall> ConnectionCore::send_callattr_with(const Netref& target, std::string_view name,
                                                                EncodeArgs&& encode_args, Kwargs kwargs) {
  if (auto bad = brine::find_invalid_utf8(name)) {
    throw UsageError(fmt::format("brine str: text is not valid UTF-8 (byte 0x{:02x} at offset {})",
                                 static_cast<unsigned char>(name[*bad]), *bad));
  }
  std::uint64_t seq;
  Buffer& out = begin_request(Handler::kCallAttr, seq);
  // (TUPLE, (target, (VALUE, name), args, kwargs)), written without building it.
  brine::dump_tuple_header(2, out);
  dump_label(Label::kTuple, out);
  brine::dump_tuple_header(4, out);
  encode_netref(target, out);
  brine::dump_tuple_header(2, out);
  dump_label(Label::kValue, out);
  brine::dump_str(name, out);
  encode_args(out);
  if (kwargs.empty()) {
    brine::dump_tuple_header(2, out);
    dump_label(Label::kValue, out);
    brine::dump_tuple_header(0, out);
  } else {
    encode_boxed(kwargs_tuple(std::move(kwargs)), out);
  }
  return finish_request(Handler::kCallAttr, seq);
}

std::shared_ptr<PendingCall> ConnectionCore::send_callattr(const Netref& target, std::string_view name,
                                                           std::vector<Any>& args, Kwargs kwargs) {
  return send_callattr_with(
      target, name, [&](Buffer& out) { encode_boxed_tuple_owned(args, out); }, std::move(kwargs));
}

std::shared_ptr<PendingCall> ConnectionCore::send_callattr(const Netref& target, std::string_view name,
                                                           std::span<brine::Value> args) {
  return send_callattr_with(
      target, name,
      [&](Buffer& out) {
        encode_value_tuple(
            args.size(), [&](std::size_t i) -> brine::Value& { return args[i]; }, out);
      },
      Kwargs{});
}

AsyncResult ConnectionCore::start_sync(Handler h, std::vector<Any> args) {
  return expire_as_sync(send_request(h, std::move(args)));
}

AsyncResult ConnectionCore::expire_as_sync(std::shared_ptr<PendingCall> p) {
  const Duration timeout = opts_.sync_request_timeout;
  if (timeout < std::chrono::hours(24 * 365 * 100)) {  // longer means never
    sync_deadlines_.push_back(SyncDeadline{loop_.now() + timeout, p->seq, p->serial});
    if (!sync_timer_) arm_sync_timer();
  }
  return AsyncResult(std::move(p));
}

Task<Any> ConnectionCore::sync_request(Handler h, std::vector<Any> args) {
  Any v = co_await start_sync(h, std::move(args));
  co_return v;
}

void ConnectionCore::arm_sync_timer() {
  sync_timer_ = loop_.call_at(sync_deadlines_.front().at, [this]() { on_sync_timer(); }).id();
}

void ConnectionCore::on_sync_timer() noexcept {
  sync_timer_ = {};
  const TimePoint now = loop_.now();
  while (!sync_deadlines_.empty() && sync_deadlines_.front().at <= now) {
    const SyncDeadline d = sync_deadlines_.front();
    sync_deadlines_.pop_front();
    auto it = pending_.find(d.seq);
    if (it == pending_.end() || it->second->serial != d.serial) continue;  // answered
    std::shared_ptr<PendingCall> p = std::move(it->second);
    pending_.erase(it);  // a late reply is dropped
    p->expired = true;
    complete_pending(p, Any(), std::make_exception_ptr(Timeout("result expired")));
  }
  trim_sync_deadlines();
  if (!sync_deadlines_.empty() && !closed_) {
    try {
      arm_sync_timer();
    } catch (...) {
      TETHER_LOG_ERROR("rpc connection {}: cannot arm the request timer: {}", opts_.name,
                       describe_current_exception());
    }
  }
}

bool ConnectionCore::awaiting(const SyncDeadline& d) const noexcept {
  auto it = pending_.find(d.seq);
  return it != pending_.end() && it->second->serial == d.serial;
}

void ConnectionCore::trim_sync_deadlines() noexcept {
  while (!sync_deadlines_.empty() && !awaiting(sync_deadlines_.front())) sync_deadlines_.pop_front();
  // Answered calls behind an unanswered one wait for it to leave the front; when they are most
  // of the queue, sweep them out (amortised O(1): a sweep leaves only pending entries).
  if (sync_deadlines_.size() > 64 && sync_deadlines_.size() > 2 * pending_.size()) {
    std::erase_if(sync_deadlines_, [this](const SyncDeadline& d) { return !awaiting(d); });
  }
}

std::shared_ptr<PendingCall> ConnectionCore::take_pending(PendingTable::iterator it) {
  std::shared_ptr<PendingCall> p = std::move(it->second);
  pending_.erase(it);
  // Its reply came: the seq may serve the next request (bounded: a burst of thousands in
  // flight does not keep thousands of entries).
  if (free_seqs_.size() < kMaxFreeSeqs) {
    try {
      free_seqs_.push_back(p->seq);
    } catch (...) {  // no memory: the seq is just not reused
    }
  }
  trim_sync_deadlines();
  return p;
}

Task<Netref> ConnectionCore::root() {
  if (!peer_root_) {
    Any r = co_await sync_request(Handler::kGetRoot, {});
    if (!r.is_netref()) throw ProtocolError("GETROOT did not return a reference");
    if (!peer_root_) peer_root_ = r.netref();
  }
  co_return *peer_root_;
}

void ConnectionCore::send_del(const Value& id_pack, std::uint64_t count) {
  if (closed_) return;
  const std::uint64_t seq = next_seq_++;
  // (DEL, (TUPLE, ((LOCAL_REF, id_pack), (VALUE, count)))) — the reply is dropped as unknown.
  Value args =
      Value::make_tuple(label_value(Label::kTuple),
                        Value::make_tuple(Value::make_tuple(label_value(Label::kLocalRef), id_pack),
                                          Value::make_tuple(label_value(Label::kValue), Value(count))));
  try {
    send_message(MsgType::kRequest, seq,
                 Value::make_tuple(Value(static_cast<std::int64_t>(Handler::kDel)), std::move(args)));
  } catch (...) {
    // A DEL that cannot be sent is moot: the peer drops everything when the connection goes.
  }
}

void ConnectionCore::send_close_request() {
  // (CLOSE, (VALUE, ())): RPyC's close request, arguments an empty tuple; no reply is awaited.
  const std::uint64_t seq = next_seq_++;
  close_seq_ = seq;
  send_message(MsgType::kRequest, seq,
               Value::make_tuple(Value(static_cast<std::int64_t>(Handler::kClose)),
                                 Value::make_tuple(label_value(Label::kValue), Value::make_tuple())));
}

void ConnectionCore::send_reply(std::uint64_t seq, Any result) {
  if (closed_) return;
  Buffer& out = begin_message(MsgType::kReply, seq);
  if (!splice_block(result, out)) encode_boxed(result, out);
  finish_message();
}

void ConnectionCore::send_exception(std::uint64_t seq, std::exception_ptr e, Handler h) {
  if (closed_) return;
  send_message(MsgType::kException, seq, encode_exception(e, gen_, opts_.include_traceback, handler_name(h)));
}

Task<void> ConnectionCore::close_gracefully() {
  if (closed_) co_return;
  bool sent = false;
  try {
    send_close_request();
    sent = true;
  } catch (...) {
  }
  if (sent) {
    try {
      co_await with_timeout(opts_.sync_request_timeout, channel_->drain());
      if (gen_ == Generation::k6 && !closed_) {
        // 6.x waits for the peer to hang up or to reply (handle_reply then closes), bounded by
        // close_grace and the sync timeout.
        co_await with_timeout(std::min(opts_.close_grace, opts_.sync_request_timeout), closed_event_.wait());
      }
    } catch (...) {
    }
  }
  close_now(nullptr);
}

void ConnectionCore::close_now(std::exception_ptr reason) noexcept {
  if (closed_) return;
  closed_ = true;
  error_ = reason;
  try {
    channel_->close();
  } catch (...) {
  }
  auto pending = std::move(pending_);
  pending_.clear();
  sync_deadlines_.clear();
  if (sync_timer_) loop_.cancel_timer(std::exchange(sync_timer_, {}));
  if (watchdog_) loop_.cancel_timer(std::exchange(watchdog_, {}));
  inflight_freed_.set();
  // What pending requests fail with: the kind of the cause. A peer that broke the protocol
  // (malformed or hostile frames, limits) gives ProtocolError/LimitExceeded, a peer that went
  // away Disconnected; anything else (I/O errors) is a disconnection with its text kept.
  std::exception_ptr fail;
  try {
    if (reason) std::rethrow_exception(reason);
    throw Disconnected("connection closed");
  } catch (const Disconnected&) {
    fail = std::current_exception();
  } catch (const ProtocolError&) {
    fail = std::current_exception();
  } catch (const LimitExceeded&) {
    fail = std::current_exception();
  } catch (...) {
    fail = std::make_exception_ptr(Disconnected("connection closed: " + describe_current_exception()));
  }
  for (auto& [seq, p] : pending) complete_pending(p, Any(), fail);
  // Release exported objects (their destructors may drop Netrefs: no DEL is sent now).
  auto exports = std::move(exports_);
  exports_.clear();
  export_ids_.clear();
  recent_refs_.fill(nullptr);
  exports.clear();
  peer_root_.reset();
  closed_event_.set();
  try {
    tasks_.cancel_all_soon();
  } catch (...) {
  }
  if (on_close_) {
    auto fn = std::move(on_close_);
    try {
      loop_.call_soon(std::move(fn));
    } catch (...) {
    }
  }
}

// --- receiving

Task<void> ConnectionCore::serve_loop() {
  std::exception_ptr failure;
  try {
    while (!closed_) {
      // Each frame is read where it lies in the stream's buffer (no copy, no coroutine frame
      // when one is buffered). handle_payload decodes all of it before it acts on it (acting
      // may close the channel), so the view is not used after anything happened.
      std::optional<std::span<const std::uint8_t>> frame = channel_->try_peek();
      if (!frame) {
        if (held_start_) {
          // The one request this pass decoded runs now, handed the thread directly; this loop
          // re-arms its wait after it (after its reply has gone out, see serve_request).
          co_await HandOff{loop_, std::exchange(held_start_, {})};
        } else {
          // Replies this pass wrote itself (DEL, refusals) leave before the wait is re-armed,
          // unless requests still running will write theirs (then together).
          if (serving_ == 0) channel_->write_now();
          // A reply this pass decoded woke its caller: when that is all there is to run, it
          // runs now, and its next request leaves at the end of this iteration, before this
          // loop re-arms its wait (in the next). Only after a pass that decoded something: two
          // idle loops must not hand the thread back and forth.
          std::coroutine_handle<> next = pass_decoded_ ? loop_.take_sole_ready() : nullptr;
          if (next) {
            co_await HandOff{loop_, next};
          } else if (must_pause()) {
            co_await wait_unpaused();
          } else {
            // Part of a frame is here: it must keep coming (frame_timeout). The common case,
            // an empty buffer between messages, arms nothing.
            if (!watchdog_ && opts_.frame_timeout > Duration::zero() &&
                channel_->stream().buffer().readable_bytes() > 0) {
              arm_watchdog(false);
            }
            waiting_frame_ = true;
            co_await channel_->wait_frame();
            waiting_frame_ = false;
          }
        }
        begin_pass();
        continue;
      }
      pass_decoded_ = true;
      try {
        handle_payload(*frame);
      } catch (...) {
        channel_->consume();
        throw;
      }
      channel_->consume();
      if (++frames_since_yield_ >= kFramesPerTurn && !closed_) {
        // Fairness: wait_frame() reads on synchronously while the transport has data, so a
        // peer that keeps the socket full (a flood from another thread or host) would hold
        // the loop thread in this loop for ever. After this many frames the loop's other
        // work (other connections, timers, I/O) runs first.
        frames_since_yield_ = 0;
        release_held();
        co_await HandOff{loop_, std::noop_coroutine()};
        begin_pass();
      }
      if (request_slots_.available() == 0 && !closed_) {
        // Backpressure: stop reading until a request handler finishes.
        release_held();
        co_await request_slots_.acquire();
        request_slots_.release();
        begin_pass();
      }
      if (!closed_ && must_pause()) {
        // Backpressure: too much decoded memory in flight, or replies piling up unread.
        release_held();
        co_await wait_unpaused();
        begin_pass();
      }
    }
  } catch (const Disconnected&) {
    failure = std::current_exception();
  } catch (const ProtocolError& e) {
    failure = std::current_exception();
    const bool mismatch = dynamic_cast<const GenerationMismatch*>(&e) != nullptr;
    if (mismatch) {
      // Expected while connect() probes a server of the other generation (it reconnects).
      TETHER_LOG_DEBUG("rpc connection {}: closing: {}", opts_.name, describe_current_exception());
    } else {
      TETHER_LOG_WARN("rpc connection {}: closing: {}", opts_.name, describe_current_exception());
    }
    if (!closed_ && !mismatch) {
      // Like RPyC, send a CLOSE in our own generation before hanging up: a client speaking the
      // other generation recognises it and reconnects in ours (wire spec §11.4, §14.3).
      try {
        send_close_request();
      } catch (...) {
      }
    }
  } catch (const std::bad_alloc&) {
    // Memory ran out while receiving or decoding this peer's message: this connection goes,
    // the others are not touched.
    failure = std::make_exception_ptr(LimitExceeded("out of memory while receiving a message"));
    TETHER_LOG_ERROR("rpc connection {}: closing: out of memory while receiving a message", opts_.name);
  } catch (...) {
    failure = std::current_exception();
    // A recv cut short by our own close (StreamClosed) is not worth a warning.
    if (!closed_) TETHER_LOG_WARN("rpc connection {}: closing: {}", opts_.name, describe_current_exception());
  }
  // A request still held never started: it goes with the connection's other tasks.
  held_start_ = {};
  close_now(failure);
}

void ConnectionCore::handle_payload(std::span<const std::uint8_t> payload) {
  const std::uint8_t first = payload[0];
  Generation seen;
  if (first == 0x12) {
    seen = Generation::k5;
  } else if (first >= 1 && first <= 3) {
    seen = Generation::k6;
  } else {
    throw ProtocolError(fmt::format("invalid message: first byte 0x{:02x}", first));
  }
  if (seen != gen_) {
    if (gen_locked_ || !sent_first_) {
      if (gen_locked_) {
        throw ProtocolError(fmt::format("peer speaks RPyC {}.x, this connection is set to {}.x",
                                        static_cast<int>(seen), static_cast<int>(gen_)));
      }
      gen_ = seen;  // a server learns the generation from the first message
    } else {
      throw GenerationMismatch(seen,
                               fmt::format("peer speaks RPyC {}.x (answered our {}.x request with its own "
                                           "generation's message)",
                                           static_cast<int>(seen), static_cast<int>(gen_)));
    }
  }
  gen_locked_ = true;
  if (fast_decode_ && handle_payload_fast(payload, gen_)) {
    ++fast_decoded_;
  } else {
    handle_payload_slow(payload, gen_);
  }
}

Value ConnectionCore::load_counted(std::span<const std::uint8_t> bytes) {
  brine::Reader r(bytes, opts_.limits);
  Value v;
  r.read(v, 0);
  r.expect_end();
  next_cost_ = r.decoded_bytes();
  return v;
}

void ConnectionCore::handle_payload_slow(std::span<const std::uint8_t> payload, Generation gen) {
  std::uint64_t msg = 0;
  std::uint64_t seq = 0;
  Value body;
  if (gen == Generation::k6) {
    msg = payload[0];
    Value env = load_counted(payload.subspan(1));
    if (!env.is_tuple() || env.as_tuple().size() != 2 || !env.as_tuple()[0].is_int64()) {
      throw ProtocolError("malformed 6.x message envelope");
    }
    auto items = std::move(env).take_tuple();
    seq = static_cast<std::uint64_t>(items[0].as_int64());
    body = std::move(items[1]);
  } else {
    Value env = load_counted(payload);
    if (!env.is_tuple() || env.as_tuple().size() != 3 || !env.as_tuple()[0].is_int64() ||
        !env.as_tuple()[1].is_int64()) {
      throw ProtocolError("malformed 5.x message envelope");
    }
    auto items = std::move(env).take_tuple();
    msg = static_cast<std::uint64_t>(items[0].as_int64());
    seq = static_cast<std::uint64_t>(items[1].as_int64());
    body = std::move(items[2]);
  }

  switch (msg) {
    case 1: {
      if (!body.is_tuple() || body.as_tuple().size() != 2 || !body.as_tuple()[0].is_int64()) {
        throw ProtocolError("malformed request body");
      }
      auto parts = std::move(body).take_tuple();
      const std::int64_t h = parts[0].as_int64();
      ++counters_.requests_in;
      if (h < 1 || h > 20) {
        // Unknown handler: refused like RPyC does, with KeyError(N); the connection stays up.
        send_exception(seq, std::make_exception_ptr(PyError("builtins", "KeyError", {Value(h)})),
                       Handler::kPing);
      } else if (h == static_cast<std::int64_t>(Handler::kDel)) {
        handle_del(seq, parts[1]);
      } else if (h == static_cast<std::int64_t>(Handler::kClose)) {
        close_now(nullptr);  // RPyC sends no reply to CLOSE and hangs up at once
      } else {
        const auto handler = static_cast<Handler>(h);
        std::vector<Any> args;
        try {
          Any args_any = unbox(std::move(parts[1]));
          if (!args_any.is_tuple()) throw PyError("TypeError", "request arguments must be a tuple");
          args = std::move(args_any).take_items();
        } catch (...) {
          send_exception(seq, std::current_exception(), handler);
          break;
        }
        start_request(seq, handler, std::move(args));
      }
      break;
    }
    case 2:
    case 3: handle_reply(seq, static_cast<MsgType>(msg), std::move(body)); break;
    default: throw ProtocolError(fmt::format("invalid message type: {}", msg));
  }
}

void ConnectionCore::on_unexpected_reply(std::uint64_t seq) noexcept {
  // A peer that answers our CLOSE (RPyC does not; a reply is allowed) has nothing more to say:
  // the close waits no longer. Any other is late (timed out) or never sent: dropped, as RPyC
  // does.
  if (close_seq_ && *close_seq_ == seq) close_now(nullptr);
}

void ConnectionCore::handle_reply(std::uint64_t seq, MsgType type, Value body) {
  auto it = pending_.find(seq);
  if (it == pending_.end()) {
    on_unexpected_reply(seq);
    return;
  }
  auto p = take_pending(it);
  if (type == MsgType::kReply) {
    Any v;
    std::exception_ptr e;
    try {
      v = unbox(std::move(body));
    } catch (...) {
      // The peer's reply breaks the boxing rules (§5): a protocol error of the peer's, which
      // the caller gets as such (the connection stays up, as the request was answered).
      e = std::make_exception_ptr(ProtocolError("malformed reply: " + describe_current_exception()));
    }
    complete_pending(p, std::move(v), e);
  } else {
    complete_pending(p, Any(), decode_exception(body));
  }
}

void ConnectionCore::start_request(std::uint64_t seq, Handler h, std::vector<Any> args) {
  // serve_loop waits for a free slot before reading the next message, so this succeeds.
  const bool holds_slot = request_slots_.try_acquire();
  const std::size_t cost = std::exchange(next_cost_, 0);
  inflight_cost_ += cost;
  // Handlers run as tasks started from the ready queue, so a handler that blocks in a nested
  // loop (blocking facade) never runs on top of this read loop's frame.
  spawn_serve(serve_request(this, seq, h, std::move(args), PreparedCall{}, holds_slot, cost));
}

void ConnectionCore::start_call(std::uint64_t seq, Handler h, PreparedCall call) {
  const bool holds_slot = request_slots_.try_acquire();
  const std::size_t cost = std::exchange(next_cost_, 0);
  inflight_cost_ += cost;
  spawn_serve(serve_request(this, seq, h, std::vector<Any>{}, std::move(call), holds_slot, cost));
}

void ConnectionCore::spawn_serve(Task<void> request) {
  // Counted from now, not from when the task first runs: requests decoded in one batch all
  // count before the first of them replies (serve_request's write_now waits for the last).
  ++serving_;
  try {
    if (!held_start_ && !pass_scheduled_) {
      // Perhaps the only request of this pass: serve_loop starts it itself once the pass ends,
      // in this loop iteration rather than the next (see HandOff).
      held_start_ = tasks_.adopt(std::move(request));
      return;
    }
    // Another one: both go through the ready queue, in the order they came.
    release_held();
    tasks_.spawn(std::move(request));
    pass_scheduled_ = true;
  } catch (...) {
    --serving_;
    throw;
  }
}

void ConnectionCore::release_held() {
  if (!held_start_) return;
  loop_.schedule(held_start_);
  held_start_ = {};
  pass_scheduled_ = true;
}

ConnectionCore::HandOff::~HandOff() {
  // Destroyed while queued (the connection's tasks were cancelled): off the queue.
  if (self_ && !resumed_) loop_.unschedule(self_);
}

std::coroutine_handle<> ConnectionCore::HandOff::await_suspend(std::coroutine_handle<> self) {
  loop_.schedule(self);  // serve_loop goes on after what is queued already
  self_ = self;
  return to_;
}

Task<void> ConnectionCore::serve_request(ConnectionCore* self, std::uint64_t seq, Handler h,
                                         std::vector<Any> args, PreparedCall call, bool holds_slot,
                                         std::size_t cost) {
  struct SlotGuard {
    ConnectionCore& c;
    bool held;
    std::size_t cost;
    ~SlotGuard() {
      --c.serving_;
      if (held) c.request_slots_.release();
      c.inflight_cost_ -= cost;
      if (cost && c.inflight_cost_ <= c.opts_.max_inflight_decoded_bytes) c.inflight_freed_.set();
    }
  } guard{*self, holds_slot, cost};
  std::exception_ptr failure;
  Any result;
  try {
    // The common requests are awaited here directly: no dispatch frame.
    if (!call.obj && h == Handler::kCallAttr) call = self->prepare_call_attr(args);
    if (!call.obj && h == Handler::kCall) call = self->prepare_call(args);  // a Python `root.f(...)`
    if (call.obj) {
      CallContext ctx(*self);
      if (h == Handler::kGetAttr) {
        result = call.obj->get_attr(ctx, call.name);  // prepared by the fast decoder
      } else if (call.attr) {
        result = co_await call.obj->call_attr(ctx, call.name, std::move(call.args), std::move(call.kwargs));
      } else {
        result = co_await call.obj->call(ctx, std::move(call.args), std::move(call.kwargs));
      }
    } else {
      result = co_await self->dispatch(h, args);
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (self->closed_) co_return;
  try {
    if (failure) {
      self->send_exception(seq, failure, h);
    } else {
      self->send_reply(seq, std::move(result));
    }
  } catch (...) {
    // The result could not be boxed (e.g. a Netref of another connection): report that.
    self->send_exception(seq, std::current_exception(), h);
  }
  // The last reply outstanding goes out now, not after this frame's clean-up and the rest of
  // the loop iteration (the peer is waiting for it). With more requests running, the reply
  // waits for theirs: one writev for the batch.
  if (self->serving_ == 1) self->channel_->write_now();
}

void ConnectionCore::handle_del(std::uint64_t seq, const Value& boxed_args) {
  try {
    // (TUPLE, ((LOCAL_REF, id_pack), (VALUE, count)))  — count optional (default 1)
    if (!boxed_args.is_tuple() || boxed_args.as_tuple().size() != 2)
      throw PyError("TypeError", "bad DEL arguments");
    const auto& outer = boxed_args.as_tuple();
    const auto& items = outer[1];
    if (!items.is_tuple() || items.as_tuple().empty()) throw PyError("TypeError", "bad DEL arguments");
    const auto& ref = items.as_tuple()[0];
    if (!ref.is_tuple() || ref.as_tuple().size() != 2 || ref.as_tuple()[0] != Value(3)) {
      throw PyError("TypeError", "DEL needs a reference to a local object");
    }
    const Value& id_pack = ref.as_tuple()[1];
    check_id_pack(id_pack);
    std::uint64_t count = 1;
    if (items.as_tuple().size() > 1) {
      const auto& c = items.as_tuple()[1];
      if (c.is_tuple() && c.as_tuple().size() == 2 && c.as_tuple()[1].is_int64() &&
          c.as_tuple()[1].as_int64() > 0) {
        count = static_cast<std::uint64_t>(c.as_tuple()[1].as_int64());
      }
    }
    const auto iid = static_cast<std::uint64_t>(id_pack.as_tuple()[2].as_int64());
    auto it = exports_.find(iid);
    if (it == exports_.end()) throw PyError("builtins", "KeyError", {id_pack});
    release_export(it, count);
    send_reply(seq, Any());
  } catch (...) {
    send_exception(seq, std::current_exception(), Handler::kDel);
  }
}

void ConnectionCore::release_export(std::unordered_map<std::uint64_t, Export>::iterator it,
                                    std::uint64_t count) {
  if (it->second.extra < count) {
    std::replace(recent_refs_.begin(), recent_refs_.end(), &*it, static_cast<decltype(&*it)>(nullptr));
    ObjectPtr dying = std::move(it->second.obj);  // destroyed after the tables are consistent
    export_ids_.erase(dying.get());
    exports_.erase(it);
  } else {
    it->second.extra -= count;
  }
}

// --- boxing

void ConnectionCore::encode_boxed_tuple(const std::vector<Any>& items, Buffer& out) {
  brine::dump_tuple_header(2, out);
  dump_label(Label::kTuple, out);
  brine::dump_tuple_header(items.size(), out);
  for (const Any& item : items) encode_boxed(item, out);
}

void ConnectionCore::encode_boxed_tuple_owned(std::vector<Any>& items, Buffer& out) {
  if (std::all_of(items.begin(), items.end(), [](const Any& a) { return a.kind() == Any::Kind::kValue; })) {
    // A tuple of plain values is itself a plain value: shorter on the wire and quicker to
    // unbox at either kind of peer than a TUPLE of VALUEs.
    encode_value_tuple(
        items.size(), [&](std::size_t i) -> brine::Value& { return std::get<0>(items[i].v_); }, out);
    return;
  }
  brine::dump_tuple_header(2, out);
  dump_label(Label::kTuple, out);
  brine::dump_tuple_header(items.size(), out);
  for (Any& item : items) {
    if (!splice_block(item, out)) encode_boxed(item, out);
  }
}

bool ConnectionCore::splice_bytes(brine::Value& v, Buffer& out, bool boxed) {
  const std::size_t n = v.as_bytes().size();
  if (n < kSpliceMin || n > std::numeric_limits<std::uint32_t>::max()) return false;
  // (VALUE, bytes) when boxed: the boxing, then BYTES_L4 and the length; the bytes themselves
  // follow in the frame, after the block_at_ bytes written so far.
  if (boxed) {
    brine::dump_tuple_header(2, out);
    dump_label(Label::kValue, out);
  }
  std::uint8_t header[5] = {brine::tag::kBytesL4};
  store_be32(header + 1, static_cast<std::uint32_t>(n));
  out.append(header, sizeof header);
  block_at_ = out.readable_bytes();
  block_ = std::move(v).take_bytes();
  has_block_ = true;
  return true;
}

void ConnectionCore::encode_boxed(const Any& a, Buffer& out) {
  switch (a.kind()) {
    case Any::Kind::kValue:
      brine::dump_tuple_header(2, out);
      dump_label(Label::kValue, out);
      brine::dump_into(std::get<0>(a.v_), out);
      return;
    case Any::Kind::kTuple: encode_boxed_tuple(std::get<1>(a.v_), out); return;
    case Any::Kind::kLocal: {
      const std::string& id_pack = export_object(std::get<2>(a.v_));
      brine::dump_tuple_header(2, out);
      dump_label(Label::kRemoteRef, out);
      out.append(id_pack);
      return;
    }
    case Any::Kind::kRemote: encode_netref(std::get<3>(a.v_), out); return;
  }
  throw UsageError("invalid Any");
}

void ConnectionCore::encode_netref(const Netref& ref, Buffer& out) {
  brine::dump_tuple_header(2, out);
  if (!ref.valid()) {
    dump_label(Label::kValue, out);
    brine::dump_none(out);
    return;
  }
  const NetrefState& st = *ref.state();
  if (st.owner != this || st.core.expired()) {
    throw UsageError("a Netref can only be sent back over the connection it came from");
  }
  dump_label(Label::kLocalRef, out);
  out.append(st.key);  // the id_pack as dumped
}

Any kwargs_tuple(Kwargs kwargs) {
  std::vector<Any> pairs;
  pairs.reserve(kwargs.size());
  for (auto& [k, v] : kwargs) pairs.push_back(Any::tuple(make_args(Value(k), std::move(v))));
  return Any::tuple(std::move(pairs));
}

Any ConnectionCore::unbox(Value boxed) {
  if (!boxed.is_tuple() || boxed.as_tuple().size() != 2 || !boxed.as_tuple()[0].is_int64()) {
    throw PyError("ValueError", "invalid boxed value " + boxed.repr(100));
  }
  Value::Tuple pair = std::move(boxed).take_tuple();
  switch (pair[0].as_int64()) {
    case 1: return Any(std::move(pair[1]));
    case 2: {
      if (!pair[1].is_tuple()) throw PyError("ValueError", "label 2 needs a tuple");
      Value::Tuple members = std::move(pair[1]).take_tuple();
      std::vector<Any> items;
      items.reserve(members.size());
      for (auto& item : members) items.push_back(unbox(std::move(item)));
      return Any::tuple(std::move(items));
    }
    case 3: {
      check_id_pack(pair[1]);
      return Any(lookup_export(pair[1]));
    }
    case 4: {
      check_id_pack(pair[1]);
      return Any(make_proxy(pair[1]));
    }
    default: throw PyError("ValueError", fmt::format("invalid label {}", pair[0].as_int64()));
  }
}

const std::string& ConnectionCore::export_object(const ObjectPtr& obj) {
  static const std::string kNone = id_pack_key(Value());
  if (!obj) return kNone;
  auto found = export_ids_.find(obj.get());
  if (found != export_ids_.end()) {
    Export& e = exports_.at(found->second);
    ++e.extra;
    return e.wire;
  }
  const std::uint64_t iid = next_instance_++;
  Export e;
  e.obj = obj;
  e.name = obj->type_name();
  if (auto bad = brine::find_invalid_utf8(e.name)) {
    throw UsageError(
        fmt::format("type_name() of an exported object is not valid UTF-8 (byte 0x{:02x} at offset {})",
                    static_cast<unsigned char>(e.name[*bad]), *bad));
  }
  e.class_id = static_cast<std::int64_t>(stable_class_id(e.name));
  // dump((name, class_id, iid)), written from its pieces into a buffer kept for this (one
  // allocation per connection, not per export).
  Buffer& b = id_scratch_;
  b.retrieve_all();
  brine::dump_tuple_header(3, b);
  brine::dump_str(e.name, b);
  brine::dump_int(e.class_id, b);
  brine::dump_int(static_cast<std::int64_t>(iid), b);
  e.wire = std::string(b.view());
  auto int_chars = [](std::int64_t i) -> std::size_t {  // both are positive
    if (i >= brine::tag::kImmMin && i <= brine::tag::kImmMax) return 0;
    std::size_t n = 1;
    for (auto u = static_cast<std::uint64_t>(i); u >= 10; u /= 10) ++n;
    return n;
  };
  e.wire_shape = brine::Reader::Shape{
      4, 1, 3, std::max(int_chars(e.class_id), int_chars(static_cast<std::int64_t>(iid)))};
  auto placed = exports_.emplace(iid, std::move(e));
  export_ids_.emplace(obj.get(), iid);
  // A fresh export is usually named back soon (a method just fetched is called next): its
  // id_pack is then recognised by its bytes from the first time (decode.cpp).
  note_recent_ref(&*placed.first);
  return placed.first->second.wire;
}

ObjectPtr ConnectionCore::lookup_export(const Value& id_pack) const {
  const auto& t = id_pack.as_tuple();
  if (t[2].is_int64() && t[2].as_int64() > 0) {
    auto it = exports_.find(static_cast<std::uint64_t>(t[2].as_int64()));
    if (it != exports_.end() && t[0].is_str() && t[0].as_str() == it->second.name && t[1].is_int64() &&
        t[1].as_int64() == it->second.class_id) {
      return it->second.obj;
    }
  }
  throw PyError("builtins", "KeyError", {id_pack});
}

void ConnectionCore::note_recent_ref(const std::pair<const std::uint64_t, Export>* e) noexcept {
  if (recent_refs_[0] == e) return;
  auto slot = std::find(recent_refs_.begin(), recent_refs_.end(), e);
  if (slot == recent_refs_.end()) slot = recent_refs_.end() - 1;
  std::move_backward(recent_refs_.begin(), slot, slot + 1);
  recent_refs_[0] = e;
}

Netref ConnectionCore::make_proxy(const Value& id_pack) {
  std::string key = id_pack_key(id_pack);
  auto it = proxies_.find(key);
  if (it != proxies_.end()) {
    if (auto live = it->second.lock()) {
      ++live->refcount;
      return Netref(std::move(live));
    }
  }
  auto st = std::allocate_shared<NetrefState>(PoolAllocator<NetrefState>{});
  st->core = self_;
  st->owner = this;
  st->id_pack = id_pack;
  st->type_name = id_pack.as_tuple()[0].as_str();
  st->key = key;
  proxies_[std::move(key)] = st;
  return Netref(std::move(st));
}

void ConnectionCore::forget_proxy(const std::string& key) noexcept {
  auto it = proxies_.find(key);
  if (it != proxies_.end() && it->second.expired()) proxies_.erase(it);
}

}  // namespace tether::rpc::detail
