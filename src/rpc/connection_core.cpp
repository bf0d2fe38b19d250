#include "rpc/connection_core.hpp"

#include <algorithm>
#include <new>
#include <utility>

#include "rpc/forwarding.hpp"
#include "tether/base/log.hpp"
#include "tether/brine/codec.hpp"
#include "tether/brine/utf8.hpp"
#include "tether/loop/time.hpp"
#include "tether/rpc/py_error.hpp"

namespace tether::rpc::detail {

using brine::Value;

namespace {

void dump_label(Label l, Buffer& out) { brine::dump_int(static_cast<std::int64_t>(l), out); }

class VoidRoot final : public Object {
 public:
  [[nodiscard]] std::string type_name() const override { return "tether.VoidService"; }
};

}  // namespace

ConnectionCore::ConnectionCore(std::unique_ptr<Channel> channel, ObjectPtr root, ConnectionOptions options)
    : loop_(EventLoop::current_or_throw()),
      channel_(std::move(channel)),
      root_(root ? std::move(root) : std::make_shared<VoidRoot>()),
      opts_(std::move(options)),
      gen_(opts_.generation == Generation::kAuto ? opts_.first_generation : opts_.generation),
      gen_locked_(opts_.generation != Generation::kAuto),
      pending_(loop_),
      writer_(*channel_, exports_, this),
      decoder_(exports_, opts_.limits),
      request_slots_(std::max<std::size_t>(1, opts_.max_concurrent_requests)),
      sched_(loop_, tasks_, *channel_),
      tasks_(loop_, [this](std::exception_ptr e) {
        try {
          std::rethrow_exception(e);
        } catch (...) {
          TETHER_LOG_WARN("rpc connection {}: task failed: {}", opts_.name, describe_current_exception());
        }
      }) {
  if (std::any_of(opts_.interceptors.begin(), opts_.interceptors.end(),
                  [](const auto& i) { return i != nullptr; })) {
    auto chain = std::make_shared<InterceptorChain>();
    for (const auto& i : opts_.interceptors) {
      if (i) chain->push_back(i);
    }
    interceptors_ = std::move(chain);
  }
  writer_.set_generation(gen_);
  writer_.set_foreign_netref([this](const Netref& r) { return forwarding_for(r); });
  writer_.set_classes(opts_.classes.get());
}

ObjectPtr ConnectionCore::forwarding_for(const Netref& foreign) {
  const NetrefState* key = foreign.state().get();
  auto it = forwards_.find(key);
  if (it != forwards_.end()) {
    if (ObjectPtr live = it->second.lock()) return live;
  }
  if (forwards_.size() > 64 && forwards_.size() > 2 * exports_.size()) {
    std::erase_if(forwards_, [](const auto& e) { return e.second.expired(); });
  }
  auto obj = std::make_shared<ForwardingObject>(foreign);
  forwards_[key] = obj;
  return obj;
}

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

ConnectionStats ConnectionCore::stats() const noexcept {
  ConnectionStats s = counters_;
  s.exported = exports_.size();
  s.proxies = proxies_.live();
  s.pending = pending_.size();
  s.uncopied_bytes_out = writer_.uncopied_bytes();
  return s;
}

Task<void> ConnectionCore::wait_closed() { co_await closed_event_.wait(); }

void ConnectionCore::check_open() const {
  if (closed_) throw Disconnected("connection closed");
}

// ------------------------------------------------------------------------------- sending

std::shared_ptr<PendingCall> ConnectionCore::finish_request(Handler h, std::uint64_t seq) {
  auto p = pending_.add(seq, h, self_);
  sent_first_ = true;
  ++counters_.requests_out;
  try {
    writer_.finish();
  } catch (...) {
    pending_.erase(seq);
    throw;
  }
  return p;
}

std::shared_ptr<PendingCall> ConnectionCore::send_request_now(Handler h, std::vector<Any>& args) {
  const std::uint64_t seq = pending_.take_seq();
  Buffer& out = writer_.begin_request(h, seq);
  writer_.boxed_tuple(args, out);
  return finish_request(h, seq);
}

std::shared_ptr<PendingCall> ConnectionCore::send_request(Handler h, std::vector<Any> args) {
  check_open();
  if (interceptors_ && h != Handler::kClose) [[unlikely]]
    return send_request_intercepted(h, args);
  return send_request_now(h, args);
}

std::shared_ptr<PendingCall> ConnectionCore::send_request_intercepted(Handler h, std::vector<Any>& args) {
  CallInfo info = call_info(CallSide::kSent, h);
  describe_items(info, args);
  return sent_under(intercept_sent(std::move(info)), [&] { return send_request_now(h, args); });
}

template <class EncodeArgs>
std::shared_ptr<PendingCall> ConnectionCore::send_callattr_with(const Netref& target, std::string_view name,
                                                                EncodeArgs&& encode_args, Kwargs kwargs) {
  if (auto bad = brine::find_invalid_utf8(name)) {
    throw UsageError(fmt::format("brine str: text is not valid UTF-8 (byte 0x{:02x} at offset {})",
                                 static_cast<unsigned char>(name[*bad]), *bad));
  }
  check_open();
  const std::uint64_t seq = pending_.take_seq();
  Buffer& out = writer_.begin_request(Handler::kCallAttr, seq);
  // (TUPLE, (target, (VALUE, name), args, kwargs)), written without building it.
  brine::dump_tuple_header(2, out);
  dump_label(Label::kTuple, out);
  brine::dump_tuple_header(4, out);
  writer_.netref(target, out);
  brine::dump_tuple_header(2, out);
  dump_label(Label::kValue, out);
  brine::dump_str(name, out);
  encode_args(out);
  if (kwargs.empty()) {
    brine::dump_tuple_header(2, out);
    dump_label(Label::kValue, out);
    brine::dump_tuple_header(0, out);
  } else {
    writer_.boxed(kwargs_tuple(std::move(kwargs)), out);
  }
  return finish_request(Handler::kCallAttr, seq);
}

std::shared_ptr<PendingCall> ConnectionCore::send_callattr(const Netref& target, std::string_view name,
                                                           std::vector<Any>& args, Kwargs kwargs) {
  if (interceptors_) [[unlikely]]
    return send_callattr_intercepted(target, name, args, std::move(kwargs));
  return send_callattr_with(
      target, name, [&](Buffer& out) { writer_.boxed_tuple_owned(args, out); }, std::move(kwargs));
}

std::shared_ptr<PendingCall> ConnectionCore::send_callattr(const Netref& target, std::string_view name,
                                                           std::span<brine::Value> args) {
  if (interceptors_) [[unlikely]]
    return send_callattr_intercepted(target, name, args);
  return send_callattr_with(
      target, name, [&](Buffer& out) { writer_.value_tuple(args, out); }, Kwargs{});
}

std::shared_ptr<PendingCall> ConnectionCore::send_callattr_intercepted(const Netref& target,
                                                                       std::string_view name,
                                                                       std::vector<Any>& args,
                                                                       Kwargs kwargs) {
  CallInfo info = call_info(CallSide::kSent, Handler::kCallAttr);
  describe_callattr(info, name, args, kwargs);
  return sent_under(intercept_sent(std::move(info)), [&] {
    return send_callattr_with(
        target, name, [&](Buffer& out) { writer_.boxed_tuple_owned(args, out); }, std::move(kwargs));
  });
}

std::shared_ptr<PendingCall> ConnectionCore::send_callattr_intercepted(const Netref& target,
                                                                       std::string_view name,
                                                                       std::span<brine::Value> args) {
  CallInfo info = call_info(CallSide::kSent, Handler::kCallAttr);
  describe_callattr(info, name, args);
  return sent_under(intercept_sent(std::move(info)), [&] {
    return send_callattr_with(
        target, name, [&](Buffer& out) { writer_.value_tuple(args, out); }, Kwargs{});
  });
}

AsyncResult ConnectionCore::start_sync(Handler h, std::vector<Any> args) {
  return expire_as_sync(send_request(h, std::move(args)));
}

AsyncResult ConnectionCore::expire_as_sync(std::shared_ptr<PendingCall> p) {
  pending_.expire_after(*p, opts_.sync_request_timeout);
  return AsyncResult(std::move(p));
}

Task<Any> ConnectionCore::sync_request(Handler h, std::vector<Any> args) {
  Any v = co_await start_sync(h, std::move(args));
  co_return v;
}

Task<Netref> ConnectionCore::root() {
  if (!peer_root_) {
    Any r = co_await sync_request(Handler::kGetRoot, {});
    if (!r.is_netref()) throw ProtocolError("GETROOT did not return a reference");
    if (!peer_root_) peer_root_ = r.netref();
  }
  co_return *peer_root_;
}

void ConnectionCore::send_del(const std::string& id_pack_wire, std::uint64_t count) {
  if (closed_) return;
  // (DEL, (TUPLE, ((LOCAL_REF, id_pack), (VALUE, count)))): the reply is dropped as unknown.
  try {
    Buffer& out = writer_.begin_request(Handler::kDel, pending_.take_unreused_seq());
    brine::dump_tuple_header(2, out);
    dump_label(Label::kTuple, out);
    brine::dump_tuple_header(2, out);
    brine::dump_tuple_header(2, out);
    dump_label(Label::kLocalRef, out);
    out.append(id_pack_wire);
    brine::dump_tuple_header(2, out);
    dump_label(Label::kValue, out);
    brine::dump_int(static_cast<std::int64_t>(count), out);
    writer_.finish();
  } catch (...) {
    // A DEL that cannot be sent is moot: the peer drops everything when the connection goes.
  }
}

void ConnectionCore::send_close_request() {
  // (CLOSE, (VALUE, ())): RPyC's close request, arguments an empty tuple; no reply is awaited.
  const std::uint64_t seq = pending_.take_unreused_seq();
  close_seq_ = seq;
  writer_.send(MsgType::kRequest, seq,
               Value::make_tuple(
                   Value(static_cast<std::int64_t>(Handler::kClose)),
                   Value::make_tuple(Value(static_cast<std::int64_t>(Label::kValue)), Value::make_tuple())));
}

void ConnectionCore::send_reply(std::uint64_t seq, Any result) {
  if (closed_) return;
  Buffer& out = writer_.begin(MsgType::kReply, seq);
  writer_.boxed_owned(result, out);
  writer_.finish();
}

void ConnectionCore::send_exception(std::uint64_t seq, std::exception_ptr e, Handler h) {
  if (closed_) return;
  writer_.send(
      MsgType::kException, seq,
      encode_exception(e, gen_, opts_.include_traceback, handler_name(h), opts_.include_local_version));
}

// ------------------------------------------------------------------------------- receiving

Task<void> ConnectionCore::serve_loop() {
  std::exception_ptr failure;
  sched_.begin_pass();
  try {
    while (!closed_) {
      // Each frame is read where it lies in the stream's buffer (no copy, no coroutine frame
      // when one is buffered). handle_payload decodes all of it before it acts on it (acting
      // may close the channel), so the view is not used after anything happened.
      std::optional<std::span<const std::uint8_t>> frame = channel_->peek();
      if (!frame) {
        // Replies this pass wrote itself (DEL, refusals) leave now, before the wait is re-armed,
        // unless requests still running will write theirs (then together): the flush rule.
        sched_.end_pass();
        if (std::coroutine_handle<> held = sched_.take_held()) {
          // The one request this pass decoded runs now, handed the thread directly; this loop
          // re-arms its wait after it (after its reply has gone out, see serve_request).
          co_await ServeScheduler::HandOff{loop_, held};
        } else {
          // A reply this pass decoded woke its caller: when that is all there is to run, it
          // runs now, and its next request leaves at the end of this iteration, before this
          // loop re-arms its wait (in the next). Only after a pass that decoded something: two
          // idle loops must not hand the thread back and forth.
          std::coroutine_handle<> next = sched_.pass_decoded() ? loop_.take_sole_ready() : nullptr;
          if (next) {
            co_await ServeScheduler::HandOff{loop_, next};
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
            co_await channel_->wait();
            waiting_frame_ = false;
          }
        }
        sched_.begin_pass();
        continue;
      }
      sched_.note_decoded();
      try {
        handle_payload(*frame);
      } catch (...) {
        channel_->consume();
        throw;
      }
      channel_->consume();
      if (sched_.turn_over() && !closed_) {
        // Fairness: wait() reads on synchronously while the transport has data, so a
        // peer that keeps the socket full would hold the loop thread here for ever. After
        // this many frames the loop's other work (other connections, timers, I/O) runs first.
        sched_.release_held();
        sched_.end_pass();
        co_await ServeScheduler::HandOff{loop_, std::noop_coroutine()};
        sched_.begin_pass();
      }
      if (request_slots_.available() == 0 && !closed_) {
        // Backpressure: stop reading until a request handler finishes.
        sched_.release_held();
        sched_.end_pass();
        co_await request_slots_.acquire();
        request_slots_.release();
        sched_.begin_pass();
      }
      if (!closed_ && must_pause()) {
        // Backpressure: too much decoded memory in flight, or replies piling up unread.
        sched_.release_held();
        sched_.end_pass();
        co_await wait_unpaused();
        sched_.begin_pass();
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
  sched_.drop_held();
  close_now(failure);
  sched_.end_pass();
}

Generation ConnectionCore::check_generation(std::uint8_t first) {
  Generation seen;
  if (first == 0x12) {
    seen = Generation::k5;
  } else if (first >= 1 && first <= 3) {
    seen = Generation::k6;
  } else {
    throw ProtocolError(fmt::format("invalid message: first byte 0x{:02x}", first));
  }
  if (seen != gen_) {
    if (gen_locked_) {
      throw ProtocolError(fmt::format("peer speaks RPyC {}.x, this connection is set to {}.x",
                                      static_cast<int>(seen), static_cast<int>(gen_)));
    }
    if (sent_first_) {
      throw GenerationMismatch(seen,
                               fmt::format("peer speaks RPyC {}.x (answered our {}.x request with its own "
                                           "generation's message)",
                                           static_cast<int>(seen), static_cast<int>(gen_)));
    }
    gen_ = seen;  // a server learns the generation from the first message
    writer_.set_generation(gen_);
  }
  gen_locked_ = true;
  return gen_;
}

void ConnectionCore::handle_payload(std::span<const std::uint8_t> payload) {
  const Generation gen = check_generation(payload[0]);
  Message m;
  decoder_.decode(payload, gen, m);
  switch (m.type) {
    case MsgType::kRequest: on_request(m); return;
    case MsgType::kReply:
    case MsgType::kException: on_reply(m); return;
  }
}

void ConnectionCore::on_unexpected_reply(std::uint64_t seq) noexcept {
  // A peer that answers our CLOSE (RPyC does not; a reply is allowed) has nothing more to say:
  // the close waits no longer. Any other is late (timed out) or never sent: dropped, as RPyC
  // does.
  if (close_seq_ && *close_seq_ == seq) close_now(nullptr);
}

void ConnectionCore::on_reply(Message& m) {
  std::shared_ptr<PendingCall> p = pending_.take(m.seq);
  if (!p) {
    on_unexpected_reply(m.seq);  // its references are not made into proxies: nothing to DEL
    return;
  }
  if (m.type == MsgType::kException) {
    complete_pending(p, Any(), decode_exception(m.body));
    return;
  }
  for (DeferredRef& d : m.refs) *d.slot = Any(proxies_.make(d.id_pack, self_, this));
  complete_pending(p, std::move(m.value), m.error);
}

void ConnectionCore::on_request(Message& m) {
  ++counters_.requests_in;
  const auto h = static_cast<Handler>(m.handler);
  if (m.error) {
    send_exception(m.seq, m.error, m.handler >= 1 && m.handler <= 20 ? h : Handler::kPing);
    return;
  }
  if (h == Handler::kClose) {
    close_now(nullptr);  // RPyC sends no reply to CLOSE and hangs up at once
    return;
  }
  for (DeferredRef& d : m.refs) *d.slot = Any(proxies_.make(d.id_pack, self_, this));
  if (h == Handler::kDel) {
    handle_del(m.seq, m.args.items());
    return;
  }
  Request req;
  req.handler = h;
  if (m.call.present) {
    req.call = std::move(m.call);
  } else {
    std::span<Any> items = m.args.items();
    req.args.assign(std::make_move_iterator(items.begin()), std::make_move_iterator(items.end()));
  }
  if (interceptors_) [[unlikely]] {
    try {
      req.intercept = intercept_served(req);
    } catch (...) {
      send_exception(m.seq, std::current_exception(), h);
      return;
    }
  }
  // The read loop waits for a free slot before reading the next message, so this succeeds.
  const bool holds_slot = request_slots_.try_acquire();
  inflight_cost_ += m.cost;
  try {
    // Handlers run as tasks started by the scheduler, never on top of this read loop's frame.
    sched_.spawn(serve_request(this, m.seq, std::move(req), holds_slot, m.cost));
  } catch (...) {
    inflight_cost_ -= m.cost;
    if (holds_slot) request_slots_.release();
    throw;
  }
}

void ConnectionCore::handle_del(std::uint64_t seq, std::span<Any> items) {
  // (LOCAL_REF obj[, count]): count optional, 1 unless a positive int.
  try {
    if (items.empty() || items.size() > 2) throw PyError("TypeError", "bad DEL arguments");
    if (!items[0].is_local()) throw PyError("TypeError", "DEL needs a reference to a local object");
    std::uint64_t count = 1;
    if (items.size() > 1 && items[1].is_value() && items[1].value().is_int64() &&
        items[1].value().as_int64() > 0) {
      count = static_cast<std::uint64_t>(items[1].value().as_int64());
    }
    const std::optional<ExportTable::Key> key = exports_.id_of(items[0].object().get());
    if (!key) throw PyError("TypeError", "DEL needs a reference to a lent object");
    items[0] = Any();  // our reference to the object goes before the table may drop its own
    std::optional<ObjectPtr> dying = exports_.release(*key, count);
    dying.reset();  // destroyed now that the table is consistent
    send_reply(seq, Any());
  } catch (...) {
    send_exception(seq, std::current_exception(), Handler::kDel);
  }
}

Task<void> ConnectionCore::serve_request(ConnectionCore* self, std::uint64_t seq, Request req,
                                         bool holds_slot, std::size_t cost) {
  struct SlotGuard {
    ConnectionCore& c;
    bool held;
    std::size_t cost;
    ~SlotGuard() {
      c.sched_.finished();
      if (c.on_idle_ && c.sched_.serving() == 0) c.notify_idle();
      if (held) c.request_slots_.release();
      c.inflight_cost_ -= cost;
      if (cost && c.inflight_cost_ <= c.opts_.max_inflight_decoded_bytes) c.inflight_freed_.set();
    }
  } guard{*self, holds_slot, cost};
  rpc::CallObserver* const observer = self->opts_.observer.get();
  std::int64_t started = 0;
  if (observer) started = observe_start(*observer);
  std::exception_ptr failure;
  Any result;
  try {
    CallContext ctx(*self);
    Any r = co_await self->dispatch(ctx, req);
    result = std::move(r);
  } catch (...) {
    failure = std::current_exception();
  }
  if (self->closed_) co_return;
  try {
    if (failure) {
      self->send_exception(seq, failure, req.handler);
    } else {
      self->send_reply(seq, std::move(result));
    }
  } catch (...) {
    // The result could not be boxed (e.g. a Netref of a closed connection): report that.
    if (req.intercept) req.intercept->after(std::current_exception());
    self->send_exception(seq, std::current_exception(), req.handler);
  }
  if (req.intercept) req.intercept->after(failure);
  if (observer) self->observe_end(*observer, req, started, failure);
  if (self->refusal_) {
    // Refused (Connection::refuse): the answer goes out, then the connection closes.
    self->close_now(std::make_exception_ptr(Disconnected("connection refused")));
    co_return;
  }
  // The reply is queued: the guard's finished() lets go of this request's hold on the flush.
  // The last reply outstanding goes out then, at once, not after the rest of the loop
  // iteration (the peer is waiting for it); with more requests running, it waits for theirs:
  // one writev for the batch (the channel's rule).
}

// In this file, not with the rest of the backpressure (connection_watch.cpp): serve_loop asks
// after every frame, and here it is inlined.
bool ConnectionCore::must_pause() const noexcept {
  if (inflight_cost_ > opts_.max_inflight_decoded_bytes) return true;
  if (!opts_.pause_reading_on_backlog) return false;
  BufferedStream& st = channel_->stream();
  return st.write_buffer_size() > st.options().write_high_water;
}

}  // namespace tether::rpc::detail
