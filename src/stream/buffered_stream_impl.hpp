#pragma once
// BufferedStream's private state, shared by buffered_stream.cpp (reads, lifecycle) and
// buffered_stream_write.cpp (the write queue and its flusher).

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stream/stream_regex.hpp"
#include "tether/base/buffer.hpp"
#include "tether/base/bytes.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/runner.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/detail/wait_slot.hpp"

namespace tether {

namespace detail {

/// Lets call_soon callbacks and awaiters find the stream, or learn that it is gone.
struct StreamAnchor {
  BufferedStream::Impl* target = nullptr;
  std::uint32_t refs = 1;
};

class AnchorRef {
 public:
  AnchorRef() noexcept = default;
  explicit AnchorRef(StreamAnchor* a) noexcept : a_(a) { ++a_->refs; }
  AnchorRef(AnchorRef&& o) noexcept : a_(std::exchange(o.a_, nullptr)) {}
  AnchorRef& operator=(AnchorRef&& o) noexcept {
    if (this != &o) {
      reset();
      a_ = std::exchange(o.a_, nullptr);
    }
    return *this;
  }
  AnchorRef(const AnchorRef&) = delete;
  AnchorRef& operator=(const AnchorRef&) = delete;
  ~AnchorRef() { reset(); }
  [[nodiscard]] BufferedStream::Impl* get() const noexcept { return a_ ? a_->target : nullptr; }
  void reset() noexcept {
    if (a_ && --a_->refs == 0) delete a_;
    a_ = nullptr;
  }

 private:
  StreamAnchor* a_ = nullptr;
};

/// The part of a reader suspended on the stream's transport read that close() needs to wake it.
struct ReadOpWaiter {
  BufferedStream::Impl* owner = nullptr;  // null once the stream is gone
  std::coroutine_handle<> handle{};
  bool scheduled = false;
};

using RunnerHandle = std::coroutine_handle<RunnerPromise>;

/// One entry of the write queue: a coalescing/moved-in Buffer, or moved-in Bytes (always
/// longer than the small-string size, so its bytes live on the heap and never move).
struct WriteChunk {
  Bytes bytes;
  Buffer buffer;
  std::shared_ptr<const Bytes> shared;  // used instead of `bytes` when set
  std::size_t offset = 0;               // consumed prefix of `bytes` / `*shared`
  bool is_buffer = false;
  bool coalescing = false;  // the tail that small writes are copied into

  [[nodiscard]] const Bytes& owned_bytes() const noexcept { return shared ? *shared : bytes; }
  [[nodiscard]] const std::uint8_t* data() const noexcept {
    return is_buffer ? buffer.peek() : owned_bytes().data() + offset;
  }
  [[nodiscard]] std::size_t size() const noexcept {
    return is_buffer ? buffer.readable_bytes() : owned_bytes().size() - offset;
  }
  void consume(std::size_t n) noexcept {
    if (is_buffer) {
      buffer.retrieve(n);
    } else {
      offset += n;
    }
  }
};

}  // namespace detail

struct BufferedStream::Impl {
  Impl(std::unique_ptr<Transport> t, StreamOptions o);
  ~Impl();

  // ---- reads (buffered_stream.cpp)
  /// One transport read into rbuf (max bytes). 0 = EOF. Throws StreamClosed when closed (also
  /// when close() cancels it) and the transport's error after closing the stream with it.
  Task<std::size_t> read_some(std::size_t max);
  /// Gives an empty read buffer without storage pooled storage before a transport read.
  void prepare_read_buffer(std::size_t max) noexcept;
  void begin_read();  // UsageError if a read is pending
  void end_read() noexcept;
  [[noreturn]] void throw_closed() const;
  void note_read(std::size_t n) noexcept;
  detail::StreamRegex& regex_for(const std::string& pattern);

  // ---- idle reading while a close callback is set
  void arm_watcher();
  void stop_watcher() noexcept;
  Task<void> watch_loop();
  static void on_watcher_done(void* ctx, std::coroutine_handle<> h, std::exception_ptr e) noexcept;

  // ---- writes (buffered_stream_write.cpp)
  void check_writable(std::size_t n) const;
  void append_small(const void* data, std::size_t n);
  /// The coalescing tail chunk's buffer, with room for n more bytes: the current tail when it
  /// can take them, else a new chunk (its storage from the thread's buffer pool if possible).
  Buffer& tail_for(std::size_t n);
  /// Queues the concatenation of pieces (n bytes in all) as one owned chunk.
  [[gnu::noinline]] void push_joined(std::span<const std::string_view> pieces, std::size_t n);
  void push_chunk(detail::WriteChunk&& c);
  void after_enqueue(std::size_t n);
  void arm_flush();
  void disarm_flush() noexcept;
  static void on_end_of_turn(void* ctx) noexcept;
  void start_flusher();
  /// Writes the queue through Transport::try_write while it takes bytes; starts the flusher
  /// for the rest. Then EOF / the end of a graceful close when the queue is empty.
  void write_out();
  void stop_flusher() noexcept;
  Task<void> flush_loop();
  static void on_flusher_done(void* ctx, std::coroutine_handle<> h, std::exception_ptr e) noexcept;
  std::size_t build_iov(iovec* iov, std::size_t max_iov);
  void consume_written(std::size_t n) noexcept;
  void drop_write_queue() noexcept;
  void send_eof();
  void rethrow_write_state() const;

  // ---- lifecycle
  void close_graceful();
  void close_now(std::exception_ptr reason, bool keep_error_null = false);
  void finish_close() noexcept;
  void cancel_read_op() noexcept;
  void note_closed_or_eof();
  void schedule_close_callback();

  std::unique_ptr<Transport> transport;  // first member: destroyed last
  EventLoop* loop;
  StreamOptions opts;
  StreamStats stats;
  detail::StreamAnchor* anchor;

  // read side
  Buffer rbuf;
  bool eof = false;
  bool reading = false;
  Task<std::size_t> op_task;                  // the transport read in flight (user read or watcher)
  detail::ReadOpWaiter* op_waiter = nullptr;  // who awaits op_task, woken when close() cancels it
  bool op_cancelled = false;
  std::unique_ptr<detail::StreamRegex> regex;
  bool ready_waiting = false;  // a ReadableAwaiter waits on the transport's read_ready_slot()

  // idle watcher: a runner, queued (not started) or suspended in its transport read
  detail::RunnerHandle watcher{};
  bool watcher_waiting = false;

  // write side
  std::vector<detail::WriteChunk> wq;
  std::size_t wq_head = 0;
  std::size_t inflight_chunks = 0;  // chunks from wq_head that the pending writev points into
  std::size_t queued = 0;
  std::uint64_t written_total = 0;  // bytes ever queued
  std::uint64_t flushed_total = 0;  // bytes ever accepted by the transport
  bool paused = false;
  // the end-of-iteration write-out is requested (EventLoop::at_end_of_iteration)
  bool flush_armed = false;
  // the flusher: a runner writing what try_write could not, running or waiting for room
  detail::RunnerHandle flusher{};
  bool flusher_waiting = false;
  bool eof_requested = false;
  bool eof_sent = false;
  detail::WaitList drain_waiters;  // woken when the queue drops to low water, and on close
  detail::WaitList flush_waiters;  // woken on every write progress, and on close

  // lifecycle
  bool closed = false;            // close requested / failed: no new reads or writes
  bool transport_closed = false;  // the transport is closed (wait_closed completes)
  std::exception_ptr error;
  std::string cause;  // describe(error), for StreamClosed
  UniqueFunction<void()> close_cb;
  bool close_event = false;  // closed or EOF seen: the callback is due
  bool close_cb_scheduled = false;
  detail::WaitList close_waiters;
};

/// "Kind: message" of an exception_ptr.
std::string describe_exception(const std::exception_ptr& e);

}  // namespace tether
