#pragma once
/// \file BufferedStream: asyncio's StreamReader/StreamWriter and tornado's IOStream in one
/// object, over any Transport. docs/streams.md maps every asyncio/tornado name to this API.
///
/// Reading (pull model): bytes are read from the transport only while a read is pending,
/// into one contiguous read Buffer, and every read is satisfied from that buffer without a
/// system call when it can be. At most one read is pending at a time; a second concurrent
/// read throws UsageError. A cancelled read (its Task destroyed) loses nothing: bytes that
/// already arrived stay buffered for the next read. The one exception to "read only when
/// asked" is a stream with a close callback: while no read is pending it keeps reading into
/// the buffer (up to max_buffer_size) so that EOF or a reset is noticed (tornado does this).
///
/// Writing never blocks and never makes a system call per write(): data is queued (small
/// writes are copied into the tail chunk, larger ones are moved in without a copy) and one
/// flush is armed for the next loop turn, so every frame written in one turn leaves in one
/// writev. drain() flushes at once and applies the high/low watermarks; flush() waits until
/// every byte written so far has been handed to the kernel. When the kernel would block, a
/// background flusher owned by the stream waits for writability.
///
/// Closing: close() stops reading at once, lets queued writes go out in the background, then
/// closes the transport; close(reason) and abort() drop the queue and close at once. A write
/// error or a reset closes the stream with that error: error() returns it, later writes throw
/// StreamClosed carrying its text, pending drain()/flush() rethrow it. Peer EOF is not a close
/// (asyncio half-close: writing still works), but it does fire the close callback.
///
/// Thread rules: everything on the loop thread of the transport. Lifetimes: the stream must
/// outlive every Task it returned while that Task runs (a pending Task may still be destroyed
/// after the stream: that only cancels it); string_view arguments are copied before the first
/// suspension.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <coroutine>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "tether/base/buffer.hpp"
#include "tether/base/bytes.hpp"
#include "tether/base/export.hpp"
#include "tether/base/function.hpp"
#include "tether/loop/task.hpp"
#include "tether/stream/transport.hpp"

namespace tether {

class EventLoop;
namespace detail {
struct StreamAnchor;
}  // namespace detail

/// Limits and watermarks (defaults: tornado's buffer sizes, asyncio's write watermarks).
struct StreamOptions {
  /// Read buffer cap: reads needing more fail with LimitExceeded; idle reading (close
  /// callback set) pauses at this size.
  std::size_t max_buffer_size = 100 << 20;
  /// Bytes asked of the transport per read.
  std::size_t read_chunk_size = 64 << 10;
  /// drain() waits, once the write queue went above high water, until it is at or below low.
  std::size_t write_high_water = 64 << 10;
  std::size_t write_low_water = 16 << 10;
  /// 0 = unlimited; otherwise write() throws LimitExceeded (queueing nothing) when the queue
  /// would exceed it.
  std::size_t max_write_buffer_size = 0;
};

/// Counters for tests and benchmarks.
struct StreamStats {
  std::uint64_t bytes_read = 0;              ///< bytes received from the transport
  std::uint64_t bytes_written = 0;           ///< bytes accepted by the transport
  std::uint64_t read_calls = 0;              ///< transport read() operations started
  std::uint64_t write_calls = 0;             ///< transport write() operations (one writev each)
  std::size_t read_buffer_high_water = 0;    ///< largest readable_bytes() after a transport read
  /// Small write chunks and read buffers that got their storage from the thread's pool of
  /// released buffers (no malloc) ...
  std::uint64_t buffers_reused = 0;
  /// ... and those that had to allocate it (the pool was empty or its top buffer too small).
  std::uint64_t buffers_allocated = 0;
};

class TETHER_API BufferedStream {
 public:
  struct Impl;

  /// Writes up to this size are copied into the tail chunk (coalesced); larger ones are moved
  /// in (write(Bytes), write(Buffer&&)) or copied once into a chunk of their own.
  static constexpr std::size_t kCoalesceLimit = 2048;

  /// Takes the transport (non-null). The stream is bound to transport->loop().
  explicit BufferedStream(std::unique_ptr<Transport> transport, StreamOptions options = {});
  /// Closes at once if still open (queued writes are dropped; the close callback is not
  /// called); cancels the background flusher and reader.
  ~BufferedStream();
  BufferedStream(const BufferedStream&) = delete;
  BufferedStream& operator=(const BufferedStream&) = delete;

  // ------------------------------------------------------------------------------ reads
  // All reads: satisfied from the buffer first; UsageError if another read is pending;
  // StreamClosed(cause) if the stream is closed and the buffer cannot satisfy them;
  // Disconnected/IoError if the transport fails while reading (the stream closes with it).

  /// Up to n bytes: at least 1 unless EOF, then empty (asyncio read(n)). n = 0 returns empty.
  Task<Bytes> read(std::size_t n);
  /// Exactly n bytes (asyncio readexactly, tornado read_bytes). At EOF throws
  /// IncompleteRead{partial, n}, consuming the partial bytes. n > max_buffer_size throws
  /// LimitExceeded at once.
  Task<Bytes> read_exactly(std::size_t n);
  /// Up to and including the first `delim` (asyncio readuntil, tornado read_until).
  /// max_bytes bounds the returned size including the delimiter (0 = max_buffer_size). When
  /// no delimiter ends within max_bytes: LimitOverrun{consumed}, the data stays buffered;
  /// consumed = the delimiter's offset if one was found too late, else the number of leading
  /// bytes that cannot start a delimiter (asyncio's rule). EOF first: IncompleteRead{rest, 0}
  /// consuming the rest. The search resumes where it stopped: bytes are scanned once.
  Task<Bytes> read_until(std::string_view delim, std::size_t max_bytes = 0);
  /// One line, up to and including the next "\n" (asyncio readline): the non-throwing end of
  /// a line loop. At EOF returns what is left: the unterminated last line, or an empty Bytes
  /// when nothing is left (a clean EOF; again on every later call), so a line loop ends when
  /// it reads an empty line. max_bytes and LimitOverrun exactly as read_until (the data stays
  /// buffered; asyncio's readline would discard it). Errors other than EOF as read_until.
  Task<Bytes> read_line(std::size_t max_bytes = 0);
  /// Up to and including the end of the leftmost match of the RE2 `pattern` (tornado
  /// read_until_regex) in the buffered bytes; limits and EOF as read_until. Linear time. A
  /// match may straddle reads; the search resumes at the earliest offset where a match could
  /// still begin (see docs/streams.md, "regex resume rule"). Invalid pattern -> UsageError.
  /// The compiled pattern is cached per stream (one entry).
  Task<Bytes> read_until_regex(std::string_view pattern, std::size_t max_bytes = 0);
  /// Everything until EOF (asyncio read(-1), tornado read_until_close). More than
  /// max_buffer_size -> LimitExceeded (the data stays buffered).
  Task<Bytes> read_until_close();
  /// Streaming form of read_exactly (tornado streaming_callback): delivers the n bytes to
  /// on_chunk as they arrive, buffering at most one chunk. EOF first: IncompleteRead{{}, n}
  /// (what arrived was already delivered). An exception from on_chunk ends the read with it.
  Task<void> read_exactly(std::size_t n, UniqueFunction<void(Bytes)> on_chunk);
  /// Streaming form of read_until_close: chunks until EOF, then completes.
  Task<void> read_until_close(UniqueFunction<void(Bytes)> on_chunk);

  // Zero-copy access for framing layers.
  /// Waits until at least n bytes are buffered (counts as the pending read). At EOF throws
  /// IncompleteRead{copy of what is buffered, n} leaving the buffer untouched.
  /// n > max_buffer_size -> LimitExceeded.
  Task<void> fill(std::size_t n);

  /// fill(n) without suspending or a coroutine, for framing layers' hot paths: reads what the
  /// transport has now (Transport::try_read) until n bytes are buffered. kReady: they are;
  /// kWouldBlock: more must arrive first (await readable(), then try again); kUnsupported: the
  /// transport reads only through read() (use fill()). Throws what fill() throws (IncompleteRead
  /// at EOF, LimitExceeded, StreamClosed, the transport's error after closing the stream).
  enum class FillPoll { kReady, kWouldBlock, kUnsupported };
  FillPoll try_fill(std::size_t n);

  /// What readable() returns: suspends until the transport may have more to read, the stream
  /// is closed, or spuriously; never reads, never throws on resumption. Counts as the pending
  /// read while suspended (UsageError beside another read); destroying the waiting task
  /// cancels the wait. Resumes at once when the transport has no read_ready_slot().
  class TETHER_API ReadableAwaiter {
   public:
    explicit ReadableAwaiter(BufferedStream& s) noexcept : s_(s.impl_.get()) {}
    ReadableAwaiter(const ReadableAwaiter&) = delete;
    ReadableAwaiter& operator=(const ReadableAwaiter&) = delete;
    ~ReadableAwaiter();
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h);
    void await_resume() noexcept { finish(); }

   private:
    void finish() noexcept;
    Impl* s_;
    detail::StreamAnchor* anchor_ = nullptr;  // held while suspended: is the stream still there?
    std::optional<detail::WaitSlot::Awaiter> wait_;
  };
  /// For use after try_fill() returned kWouldBlock: `co_await stream.readable();`.
  ReadableAwaiter readable() noexcept { return ReadableAwaiter(*this); }

  /// The read buffer: peek()/view()/retrieve() directly. Do not append to it.
  Buffer& buffer() noexcept;
  /// EOF was received and the buffer is empty (asyncio at_eof).
  [[nodiscard]] bool at_eof() const noexcept;
  /// EOF was received (bytes may still be buffered).
  [[nodiscard]] bool eof_received() const noexcept;

  // ------------------------------------------------------------------------------ writes
  /// Queues data. Throws StreamClosed(cause) after close, UsageError after write_eof(),
  /// LimitExceeded if max_write_buffer_size would be exceeded. Never blocks, never a syscall.
  void write(Bytes data);
  void write(std::string_view data);
  /// Queues the concatenation of `pieces` (a frame's header, payload and trailer, say) in one
  /// call, exactly as write(string_view) of the joined bytes would: the same accounting, limit
  /// check (all or nothing) and errors, copied straight into the tail chunk when the total is
  /// at most kCoalesceLimit (no intermediate copy), else into one chunk of its own. The pieces
  /// need only live for the call.
  void write_gather(std::span<const std::string_view> pieces);
  /// Moves the buffer's readable bytes in (no copy unless small enough to coalesce).
  void write(Buffer&& data);
  /// Throws what a write of n bytes would throw now (StreamClosed, UsageError after
  /// write_eof(), LimitExceeded), queueing nothing: a writer that queues one message in several
  /// pieces checks the total first, so that none of them fails for these reasons halfway.
  void check_writable(std::size_t n) const;
  /// Queues shared immutable bytes without copying them (beyond the 2 KiB coalescing rule):
  /// the same payload can go to many streams, or repeatedly to one (tornado keeps a reference
  /// to the bytes object the same way). The bytes must not be modified while queued. Null is
  /// a UsageError.
  void write(std::shared_ptr<const Bytes> data);
  /// Starts a flush at once, then waits while the queue is paused above the high watermark
  /// until it drops to the low one (asyncio drain). Rethrows the error that closed the stream;
  /// StreamClosed after a clean close.
  Task<void> drain();
  /// Waits until every byte written before the call has been accepted by the transport
  /// (tornado's write future). Errors as drain().
  Task<void> flush();
  /// Writes what is queued now, as far as the transport takes it without waiting (the rest
  /// goes to the background flusher), instead of at the end of this loop iteration: for the
  /// last reply of a batch, so that it leaves before the clean-up work after it. A no-op
  /// when nothing is queued or the stream is closed; a write error closes the stream as a
  /// background flush's would.
  void write_now() noexcept;
  /// Sends EOF once the queued bytes are out (asyncio write_eof). Reading continues.
  /// Idempotent; StreamClosed if closed.
  void write_eof();
  [[nodiscard]] bool can_write_eof() const noexcept { return true; }
  /// Bytes queued and not yet accepted by the transport.
  [[nodiscard]] std::size_t write_buffer_size() const noexcept;
  /// Sets the drain() watermarks; low = 0 means high / 4. low > high -> UsageError.
  void set_write_buffer_limits(std::size_t high, std::size_t low = 0);

  // ------------------------------------------------------------------------------ lifecycle
  /// Graceful close: a pending read fails with StreamClosed, new writes fail, queued bytes
  /// are flushed in the background and then the transport is closed. Idempotent.
  void close();
  /// Closes at once with `reason` (error() returns it; null = like abort()): queued writes
  /// are dropped, pending reads/drains fail.
  void close(std::exception_ptr reason);
  /// Closes at once, dropping queued writes; error() stays null.
  void abort();
  /// Completes once the transport is closed (after the final flush of close()). Never throws;
  /// see error().
  Task<void> wait_closed();
  [[nodiscard]] bool closed() const noexcept;
  /// A read is pending.
  [[nodiscard]] bool reading() const noexcept;
  /// Bytes are queued for writing.
  [[nodiscard]] bool writing() const noexcept;
  /// fn runs once, through call_soon on the loop thread, when the stream closes or the peer's
  /// EOF is seen, whichever comes first; at once (next turn) if that already happened. While
  /// it is set, an idle stream keeps reading to notice EOF/reset. Not called if the stream is
  /// destroyed before it runs. Replaces an earlier callback.
  void set_close_callback(UniqueFunction<void()> fn);
  /// What closed the stream: the transport error, the close(reason) argument, or null.
  [[nodiscard]] const std::exception_ptr& error() const noexcept;

  /// A weak reference to a stream, for code that does not own it but may have to close it (a
  /// server closing its clients while their handlers own the streams): close()/abort() act on
  /// the stream if it still exists and do nothing once it was destroyed. Copyable; use it
  /// (and copy or destroy it) on the stream's loop thread only.
  class TETHER_API WeakRef {
   public:
    WeakRef() noexcept = default;
    WeakRef(const WeakRef& o) noexcept;
    WeakRef& operator=(const WeakRef& o) noexcept;
    WeakRef(WeakRef&& o) noexcept;
    WeakRef& operator=(WeakRef&& o) noexcept;
    ~WeakRef();
    /// The stream was destroyed (or this reference is empty).
    [[nodiscard]] bool expired() const noexcept;
    /// BufferedStream::close() if the stream still exists and is not closed yet; returns
    /// whether it closed it.
    bool close();
    /// BufferedStream::abort() if the stream still exists and its transport is still open
    /// (a graceful close may still be flushing); returns whether it aborted it.
    bool abort();

   private:
    friend class BufferedStream;
    explicit WeakRef(detail::StreamAnchor* a) noexcept;
    void reset() noexcept;
    detail::StreamAnchor* a_ = nullptr;
  };
  /// A weak reference to this stream.
  [[nodiscard]] WeakRef weak_ref() const noexcept;

  [[nodiscard]] Transport& transport() noexcept;
  [[nodiscard]] EventLoop& loop() const noexcept;
  [[nodiscard]] const StreamOptions& options() const noexcept;
  [[nodiscard]] const StreamStats& stats() const noexcept;


 private:
  std::unique_ptr<Impl> impl_;
};

/// Two BufferedStreams over the two ends of a transport pair.
struct StreamPair {
  std::unique_ptr<BufferedStream> first;
  std::unique_ptr<BufferedStream> second;
};

}  // namespace tether
