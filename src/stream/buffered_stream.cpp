#include "tether/stream/buffered_stream.hpp"

#include <algorithm>
#include <cassert>
#include <utility>

#include <fmt/format.h>

#include "stream/buffer_cache.hpp"
#include "stream/buffered_stream_impl.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/runner.hpp"

namespace tether {

std::string describe_exception(const std::exception_ptr& e) {
  if (!e) return {};
  try {
    std::rethrow_exception(e);
  } catch (...) {
    return describe_current_exception();
  }
}

namespace {

using Impl = BufferedStream::Impl;

/// Empty read buffers up to this capacity are freed when a read completes.
constexpr std::size_t kReleaseReadBufferBelow = 4096;

/// Awaits a transport read that the stream owns (op_task), so that close() can cancel it and
/// wake the reader; destroying the awaiting task cancels the read. Resumes with the byte count,
/// nullopt when close() cancelled it, or the transport's exception.
class ReadOpAwaiter {
 public:
  ReadOpAwaiter(Impl& s, std::size_t max) noexcept : max_(max) { w_.owner = &s; }
  ReadOpAwaiter(const ReadOpAwaiter&) = delete;
  ReadOpAwaiter& operator=(const ReadOpAwaiter&) = delete;
  ~ReadOpAwaiter() {
    if (!suspended_ || resumed_) return;
    // Destroyed while waiting: the task awaiting the read was cancelled.
    if (Impl* s = w_.owner) {
      s->op_task.reset();
      if (s->op_waiter == &w_) s->op_waiter = nullptr;
      if (w_.scheduled) s->loop->unschedule(w_.handle);
    }
  }
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
    Impl& s = *w_.owner;
    assert(!s.op_task.valid() && "one transport read at a time");
    s.op_task = s.transport->read(s.rbuf, max_);
    s.op_cancelled = false;
    s.op_waiter = &w_;
    w_.handle = h;
    suspended_ = true;
    ++s.stats.read_calls;
    s.op_task.handle().promise().set_continuation(h);
    // Start it: data already there completes without a loop turn.
    return detail::transfer(h, s.op_task.handle());
  }
  std::optional<std::size_t> await_resume() {
    resumed_ = true;
    Impl& s = *w_.owner;
    if (s.op_waiter == &w_) s.op_waiter = nullptr;
    if (s.op_cancelled) {
      s.op_cancelled = false;
      return std::nullopt;
    }
    Task<std::size_t> t = std::move(s.op_task);
    return t.take_result();
  }

 private:
  detail::ReadOpWaiter w_;
  std::size_t max_;
  bool suspended_ = false;
  bool resumed_ = false;
};

/// Marks the pending user read for the duration of one read operation.
/// Holds the stream's anchor so that a read Task destroyed after its stream (against the
/// rules, but easy to get wrong in member destruction order) does not touch freed memory.
class ReadScope {
 public:
  explicit ReadScope(Impl& s) {
    s.begin_read();
    anchor_ = detail::AnchorRef(s.anchor);
  }
  ReadScope(const ReadScope&) = delete;
  ReadScope& operator=(const ReadScope&) = delete;
  ~ReadScope() {
    if (Impl* s = anchor_.get()) s->end_read();
  }

 private:
  detail::AnchorRef anchor_;
};

std::size_t effective_limit(const Impl& s, std::size_t max_bytes) {
  return max_bytes ? max_bytes : s.opts.max_buffer_size;
}

/// read_until() and read_line(): one search of the buffer for `d` from `from`. Returns the
/// length up to and including the delimiter, or 0 when more data is needed (`from` then
/// advances past the bytes that cannot start it). Throws LimitOverrun past `limit`.
std::size_t find_delimited(Impl& s, std::string_view d, std::size_t limit, std::size_t& from, const char* what) {
  const std::string_view v = s.rbuf.view();
  const std::size_t pos = v.find(d, from);
  if (pos != std::string_view::npos) {
    if (pos + d.size() <= limit) return pos + d.size();
    throw LimitOverrun(fmt::format("{}: delimiter found at offset {}, past max_bytes {}", what, pos, limit), pos);
  }
  from = v.size() >= d.size() ? v.size() - d.size() + 1 : 0;
  if (v.size() >= limit) throw LimitOverrun(fmt::format("{}: no delimiter within max_bytes {}", what, limit), from);
  return 0;
}

/// fill() and try_fill(): the same limit.
void check_fill_size(const Impl& s, std::size_t n) {
  if (n > s.opts.max_buffer_size) {
    throw LimitExceeded(fmt::format("fill({}) exceeds max_buffer_size {}", n, s.opts.max_buffer_size));
  }
}

/// read_exactly(), fill(), try_fill(): the size of the next transport read toward n buffered
/// bytes, with room made for it when more than a spill is missing (big frames are read in
/// place). The room grows with what has arrived — at most as much again as is buffered, at
/// least a chunk — not with `n`: a peer that announces a large frame and sends little of it
/// costs little memory, and an allocation that fails fails only that read.
std::size_t read_size_toward(Impl& s, std::size_t n) {
  const std::size_t need = n - s.rbuf.readable_bytes();
  if (need <= Buffer::kSpillSize) return std::max(s.opts.read_chunk_size, need);
  const std::size_t step = std::min(need, std::max(s.opts.read_chunk_size, s.rbuf.readable_bytes()));
  s.rbuf.ensure_writable(step);
  // Room the buffer already has is used as far as the frame goes (one read for a large frame
  // into a buffer that held one before).
  return std::max({s.opts.read_chunk_size, step, std::min(need, s.rbuf.writable_bytes())});
}

}  // namespace

// ----------------------------------------------------------------------------------- Impl

Impl::Impl(std::unique_ptr<Transport> t, StreamOptions o)
    : transport(std::move(t)),
      loop(&transport->loop()),
      opts(o),
      anchor(new detail::StreamAnchor{this, 1}),
      drain_waiters(loop),
      flush_waiters(loop),
      close_waiters(loop) {
  if (opts.read_chunk_size == 0) opts.read_chunk_size = 64 << 10;
  if (opts.max_buffer_size == 0) opts.max_buffer_size = 100 << 20;
  if (opts.write_low_water > opts.write_high_water) opts.write_low_water = opts.write_high_water / 4;
}

Impl::~Impl() {
  anchor->target = nullptr;
  if (--anchor->refs == 0) delete anchor;
  // Background work belongs to the stream: destroying it cancels them (they are queued or
  // suspended in a transport operation whenever the stream can be destroyed).
  watcher_waiting = true;
  stop_watcher();
  flusher_waiting = true;
  stop_flusher();
  op_task.reset();
  if (op_waiter) {
    if (op_waiter->scheduled) loop->unschedule(op_waiter->handle);
    op_waiter->owner = nullptr;
  }
  if (transport && !transport->closed()) transport->close();
}

void Impl::begin_read() {
  if (reading) throw UsageError("BufferedStream: another read is already pending");
  reading = true;
}

void Impl::end_read() noexcept {
  reading = false;
  // An idle stream keeps no read buffer: a small one that a read left empty is released (a
  // large one is kept, so bulk transfers do not reallocate per read). Released into the
  // thread's buffer pool, where the next read (of any stream on this thread) takes it back:
  // no malloc/free pair per message under request/reply traffic.
  if (rbuf.empty() && rbuf.capacity() != 0 && rbuf.capacity() <= kReleaseReadBufferBelow) {
    detail::release_buffer(rbuf);
  }
  arm_watcher();
}

void Impl::throw_closed() const { throw StreamClosed(cause); }

void Impl::note_read(std::size_t n) noexcept {
  stats.bytes_read += n;
  stats.read_buffer_high_water = std::max(stats.read_buffer_high_water, rbuf.readable_bytes());
}

void Impl::prepare_read_buffer(std::size_t max) noexcept {
  if (rbuf.capacity() != 0) return;
  // The transport would allocate the first storage; take released storage instead.
  if (detail::take_cached_buffer(rbuf, std::min(max, Buffer::kInitialSize - Buffer::kCheapPrepend))) {
    ++stats.buffers_reused;
  } else {
    ++stats.buffers_allocated;
  }
}

Task<std::size_t> Impl::read_some(std::size_t max) {
  if (closed) throw_closed();
  if (eof) co_return 0;
  stop_watcher();
  prepare_read_buffer(max);
  std::optional<std::size_t> got;
  try {
    std::optional<std::size_t> r = co_await ReadOpAwaiter(*this, max);
    got = r;
  } catch (...) {
    if (!closed) close_now(std::current_exception());
    throw;
  }
  if (!got) throw_closed();
  if (*got == 0) {
    eof = true;
    note_closed_or_eof();
    co_return 0;
  }
  note_read(*got);
  co_return *got;
}

detail::StreamRegex& Impl::regex_for(const std::string& pattern) {
  if (!regex || regex->pattern() != pattern) regex = std::make_unique<detail::StreamRegex>(pattern);
  return *regex;
}

// ---------------------------------------------------------------------------- idle watcher

void Impl::arm_watcher() {
  if (!close_cb || close_event || closed || eof || reading || watcher) return;
  if (rbuf.readable_bytes() >= opts.max_buffer_size) return;
  // Queued, not started: a read that begins in the meantime takes it off the queue.
  watcher = detail::start_runner(watch_loop(), detail::RunnerHook{&Impl::on_watcher_done, this});
  loop->schedule(watcher);
}

void Impl::on_watcher_done(void* ctx, std::coroutine_handle<> h, std::exception_ptr) noexcept {
  auto* s = static_cast<Impl*>(ctx);
  if (s->watcher == h) s->watcher = {};
  h.destroy();
}

void Impl::stop_watcher() noexcept {
  if (!watcher) return;
  detail::RunnerHandle h = std::exchange(watcher, {});
  if (!h.promise().started_) {
    loop->unschedule(h);
  } else {
    assert(watcher_waiting && "the watcher is only stopped while it waits");
  }
  watcher_waiting = false;
  h.destroy();  // its awaiter cancels the transport read
}

Task<void> Impl::watch_loop() {
  while (close_cb && !closed && !eof && !reading && rbuf.readable_bytes() < opts.max_buffer_size) {
    std::optional<std::size_t> got;
    prepare_read_buffer(opts.read_chunk_size);
    watcher_waiting = true;
    try {
      std::optional<std::size_t> r = co_await ReadOpAwaiter(*this, opts.read_chunk_size);
      got = r;
    } catch (...) {
      watcher_waiting = false;
      close_now(std::current_exception());
      co_return;
    }
    watcher_waiting = false;
    if (!got) co_return;
    if (*got == 0) {
      eof = true;
      note_closed_or_eof();
      co_return;
    }
    note_read(*got);
  }
}

// ------------------------------------------------------------------------------ lifecycle

void Impl::cancel_read_op() noexcept {
  if (ready_waiting) {
    // A ReadableAwaiter waits on the transport's slot: wake it (its caller's next try_fill
    // then throws StreamClosed).
    if (detail::WaitSlot* slot = transport->read_ready_slot()) slot->notify();
  }
  if (watcher && (watcher_waiting || !watcher.promise().started_)) {
    stop_watcher();
    return;
  }
  if (!op_task.valid()) return;
  op_task.reset();
  op_cancelled = true;
  if (op_waiter && !op_waiter->scheduled) {
    op_waiter->scheduled = true;
    loop->schedule(op_waiter->handle);
  }
}

void Impl::note_closed_or_eof() {
  if (close_event) return;
  close_event = true;
  schedule_close_callback();
}

void Impl::schedule_close_callback() {
  if (!close_event || !close_cb || close_cb_scheduled) return;
  close_cb_scheduled = true;
  loop->call_soon([a = detail::AnchorRef(anchor)]() {
    Impl* s = a.get();
    if (!s) return;
    s->close_cb_scheduled = false;
    UniqueFunction<void()> cb = std::move(s->close_cb);
    s->close_cb = nullptr;
    if (cb) cb();
  });
}

void Impl::close_graceful() {
  if (closed) return;
  closed = true;
  cancel_read_op();
  note_closed_or_eof();
  drain_waiters.wake_all();
  if (queued == 0 && !flusher) {
    finish_close();
  } else {
    start_flusher();  // finish_close() runs when the queue is empty
  }
}

void Impl::close_now(std::exception_ptr reason, bool keep_error_null) {
  if (transport_closed) return;
  if (!error && reason && !keep_error_null) {
    error = reason;
    cause = describe_exception(reason);
  }
  closed = true;
  cancel_read_op();
  stop_flusher();  // unless it is the caller (a write error): then it returns by itself
  drop_write_queue();
  note_closed_or_eof();
  finish_close();
}

void Impl::finish_close() noexcept {
  if (transport_closed) return;
  transport_closed = true;
  closed = true;
  transport->close();
  drain_waiters.wake_all();
  flush_waiters.wake_all();
  close_waiters.wake_all();
}

// ----------------------------------------------------------------------- BufferedStream

BufferedStream::BufferedStream(std::unique_ptr<Transport> transport, StreamOptions options) {
  if (!transport) throw UsageError("BufferedStream needs a transport");
  impl_ = std::make_unique<Impl>(std::move(transport), options);
}

BufferedStream::~BufferedStream() = default;

Task<Bytes> BufferedStream::read(std::size_t n) {
  Impl& s = *impl_;
  ReadScope scope(s);
  if (n == 0) co_return Bytes{};
  while (s.rbuf.empty()) {
    const std::size_t got = co_await s.read_some(s.opts.read_chunk_size);
    if (got == 0) co_return Bytes{};
  }
  co_return s.rbuf.retrieve_as_bytes(std::min(n, s.rbuf.readable_bytes()));
}

Task<Bytes> BufferedStream::read_exactly(std::size_t n) {
  Impl& s = *impl_;
  ReadScope scope(s);
  if (n > s.opts.max_buffer_size) {
    throw LimitExceeded(fmt::format("read_exactly({}) exceeds max_buffer_size {}", n, s.opts.max_buffer_size));
  }
  while (s.rbuf.readable_bytes() < n) {
    const std::size_t got = co_await s.read_some(read_size_toward(s, n));
    if (got == 0) throw IncompleteRead(s.rbuf.retrieve_all_as_bytes(), n);
  }
  co_return s.rbuf.retrieve_as_bytes(n);
}

Task<Bytes> BufferedStream::read_until(std::string_view delim, std::size_t max_bytes) {
  Impl& s = *impl_;
  ReadScope scope(s);
  if (delim.empty()) throw UsageError("read_until: empty delimiter");
  const std::string d(delim);
  const std::size_t limit = effective_limit(s, max_bytes);
  std::size_t from = 0;  // bytes before this offset cannot start the delimiter
  for (;;) {
    const std::size_t n = find_delimited(s, d, limit, from, "read_until");
    if (n != 0) co_return s.rbuf.retrieve_as_bytes(n);
    const std::size_t got = co_await s.read_some(s.opts.read_chunk_size);
    if (got == 0) throw IncompleteRead(s.rbuf.retrieve_all_as_bytes(), 0);
  }
}

Task<Bytes> BufferedStream::read_line(std::size_t max_bytes) {
  Impl& s = *impl_;
  ReadScope scope(s);
  const std::size_t limit = effective_limit(s, max_bytes);
  std::size_t from = 0;
  for (;;) {
    const std::size_t n = find_delimited(s, "\n", limit, from, "read_line");
    if (n != 0) co_return s.rbuf.retrieve_as_bytes(n);
    const std::size_t got = co_await s.read_some(s.opts.read_chunk_size);
    // EOF: the unterminated last line, or empty when there is none (asyncio readline).
    if (got == 0) co_return s.rbuf.retrieve_all_as_bytes();
  }
}

Task<Bytes> BufferedStream::read_until_regex(std::string_view pattern, std::size_t max_bytes) {
  Impl& s = *impl_;
  ReadScope scope(s);
  const std::string pat(pattern);
  const std::size_t limit = effective_limit(s, max_bytes);
  std::size_t from = 0;  // the earliest offset where a match can still begin
  for (;;) {
    detail::StreamRegex& re = s.regex_for(pat);
    const std::string_view v = s.rbuf.view();
    const auto step = re.search(v.substr(0, std::min(v.size(), limit)), from);
    if (step.found) co_return s.rbuf.retrieve_as_bytes(step.match_end);
    from = step.resume;
    if (v.size() >= limit) {
      throw LimitOverrun(fmt::format("read_until_regex: no match within max_bytes {}", limit), from);
    }
    const std::size_t got = co_await s.read_some(s.opts.read_chunk_size);
    if (got == 0) throw IncompleteRead(s.rbuf.retrieve_all_as_bytes(), 0);
  }
}

Task<Bytes> BufferedStream::read_until_close() {
  Impl& s = *impl_;
  ReadScope scope(s);
  for (;;) {
    if (s.rbuf.readable_bytes() > s.opts.max_buffer_size) {
      throw LimitExceeded(fmt::format("read_until_close: more than max_buffer_size {} bytes",
                                      s.opts.max_buffer_size));
    }
    const std::size_t got = co_await s.read_some(s.opts.read_chunk_size);
    if (got == 0) break;
  }
  co_return s.rbuf.retrieve_all_as_bytes();
}

Task<void> BufferedStream::read_exactly(std::size_t n, UniqueFunction<void(Bytes)> on_chunk) {
  Impl& s = *impl_;
  ReadScope scope(s);
  std::size_t left = n;
  while (left > 0) {
    if (!s.rbuf.empty()) {
      const std::size_t take = std::min(left, s.rbuf.readable_bytes());
      Bytes chunk = s.rbuf.retrieve_as_bytes(take);
      left -= take;
      on_chunk(std::move(chunk));
      continue;
    }
    const std::size_t got = co_await s.read_some(std::min(s.opts.read_chunk_size, left));
    if (got == 0) throw IncompleteRead(Bytes{}, n);
  }
}

Task<void> BufferedStream::read_until_close(UniqueFunction<void(Bytes)> on_chunk) {
  Impl& s = *impl_;
  ReadScope scope(s);
  for (;;) {
    if (!s.rbuf.empty()) on_chunk(s.rbuf.retrieve_all_as_bytes());
    const std::size_t got = co_await s.read_some(s.opts.read_chunk_size);
    if (got == 0) break;
  }
  if (!s.rbuf.empty()) on_chunk(s.rbuf.retrieve_all_as_bytes());
}

Task<void> BufferedStream::fill(std::size_t n) {
  Impl& s = *impl_;
  ReadScope scope(s);
  check_fill_size(s, n);
  while (s.rbuf.readable_bytes() < n) {
    const std::size_t got = co_await s.read_some(read_size_toward(s, n));
    if (got == 0) throw IncompleteRead(Bytes(s.rbuf.view()), n);
  }
}

BufferedStream::FillPoll BufferedStream::try_fill(std::size_t n) {
  Impl& s = *impl_;
  if (s.rbuf.readable_bytes() >= n && !s.reading) return FillPoll::kReady;
  if (!s.reading && !s.closed && !s.eof && n <= s.opts.max_buffer_size && s.transport->read_would_block()) {
    // Nothing new reported since the last read found the kernel buffer empty: no read to try
    // (and no read buffer taken and given back). The caller waits on the transport's slot.
    return FillPoll::kWouldBlock;
  }
  ReadScope scope(s);
  check_fill_size(s, n);
  if (s.closed) s.throw_closed();
  s.stop_watcher();
  while (s.rbuf.readable_bytes() < n) {
    if (s.eof) throw IncompleteRead(Bytes(s.rbuf.view()), n);
    const std::size_t max = read_size_toward(s, n);
    s.prepare_read_buffer(max);
    std::size_t got;
    try {
      got = s.transport->try_read(s.rbuf, max);
    } catch (...) {
      if (!s.closed) s.close_now(std::current_exception());
      throw;
    }
    if (got == Transport::kNotSupported) return FillPoll::kUnsupported;
    if (got == Transport::kWouldBlock) return FillPoll::kWouldBlock;
    ++s.stats.read_calls;
    if (got == 0) {
      s.eof = true;
      s.note_closed_or_eof();
    } else {
      s.note_read(got);
    }
  }
  return FillPoll::kReady;
}

bool BufferedStream::ReadableAwaiter::await_suspend(std::coroutine_handle<> h) {
  Impl& s = *s_;
  detail::WaitSlot* slot = s.transport->read_ready_slot();
  if (!slot || s.closed || s.eof) return false;  // nothing to wait for: the caller's next try sees why
  s.begin_read();                                // UsageError beside another read
  s.stop_watcher();                              // the idle watcher would wait on the same slot
  anchor_ = s.anchor;
  ++anchor_->refs;
  s.ready_waiting = true;
  wait_.emplace(*slot);
  wait_->await_suspend(h);
  return true;
}

namespace {

/// Ends a ReadableAwaiter's wait: gives back the anchor reference it took and, if the stream
/// is still there, frees it for the next read.
void end_ready_wait(detail::StreamAnchor*& anchor) noexcept {
  detail::StreamAnchor* a = std::exchange(anchor, nullptr);
  Impl* s = a->target;
  if (--a->refs == 0) delete a;
  if (s) {
    s->ready_waiting = false;
    s->end_read();
  }
}

}  // namespace

void BufferedStream::ReadableAwaiter::finish() noexcept {
  if (!anchor_) return;
  if (wait_) wait_->await_resume();
  end_ready_wait(anchor_);
}

BufferedStream::ReadableAwaiter::~ReadableAwaiter() {
  // Destroyed while suspended (the waiting task was cancelled): wait_'s destructor then takes
  // the wake-up back; the stream, if still there, is free for the next read.
  if (anchor_) end_ready_wait(anchor_);
}

Buffer& BufferedStream::buffer() noexcept { return impl_->rbuf; }
bool BufferedStream::at_eof() const noexcept { return impl_->eof && impl_->rbuf.empty(); }
bool BufferedStream::eof_received() const noexcept { return impl_->eof; }

void BufferedStream::close() { impl_->close_graceful(); }

void BufferedStream::close(std::exception_ptr reason) {
  impl_->close_now(std::move(reason), false);
}

void BufferedStream::abort() { impl_->close_now(nullptr, true); }

// ------------------------------------------------------------------------------- WeakRef

BufferedStream::WeakRef::WeakRef(detail::StreamAnchor* a) noexcept : a_(a) {
  if (a_) ++a_->refs;
}
BufferedStream::WeakRef::WeakRef(const WeakRef& o) noexcept : WeakRef(o.a_) {}
BufferedStream::WeakRef& BufferedStream::WeakRef::operator=(const WeakRef& o) noexcept {
  if (this != &o) {
    if (o.a_) ++o.a_->refs;
    reset();
    a_ = o.a_;
  }
  return *this;
}
BufferedStream::WeakRef::WeakRef(WeakRef&& o) noexcept : a_(std::exchange(o.a_, nullptr)) {}
BufferedStream::WeakRef& BufferedStream::WeakRef::operator=(WeakRef&& o) noexcept {
  if (this != &o) {
    reset();
    a_ = std::exchange(o.a_, nullptr);
  }
  return *this;
}
BufferedStream::WeakRef::~WeakRef() { reset(); }

void BufferedStream::WeakRef::reset() noexcept {
  if (a_ && --a_->refs == 0) delete a_;
  a_ = nullptr;
}

bool BufferedStream::WeakRef::expired() const noexcept { return !a_ || !a_->target; }

bool BufferedStream::WeakRef::close() {
  if (expired() || a_->target->closed) return false;
  a_->target->close_graceful();
  return true;
}

bool BufferedStream::WeakRef::abort() {
  if (expired() || a_->target->transport_closed) return false;
  a_->target->close_now(nullptr, true);
  return true;
}

BufferedStream::WeakRef BufferedStream::weak_ref() const noexcept { return WeakRef(impl_->anchor); }

Task<void> BufferedStream::wait_closed() {
  Impl& s = *impl_;
  while (!s.transport_closed) co_await s.close_waiters.wait();
}

bool BufferedStream::closed() const noexcept { return impl_->closed; }
bool BufferedStream::reading() const noexcept { return impl_->reading; }
bool BufferedStream::writing() const noexcept { return impl_->queued > 0; }

void BufferedStream::set_close_callback(UniqueFunction<void()> fn) {
  Impl& s = *impl_;
  s.close_cb = std::move(fn);
  if (s.close_event) {
    s.schedule_close_callback();
  } else {
    s.arm_watcher();
  }
}

const std::exception_ptr& BufferedStream::error() const noexcept { return impl_->error; }
Transport& BufferedStream::transport() noexcept { return *impl_->transport; }
EventLoop& BufferedStream::loop() const noexcept { return *impl_->loop; }
const StreamOptions& BufferedStream::options() const noexcept { return impl_->opts; }
const StreamStats& BufferedStream::stats() const noexcept { return impl_->stats; }

}  // namespace tether
