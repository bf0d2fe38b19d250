#pragma once
/// \file Channel: RPyC frames (wire spec §2) over a BufferedStream. The rpc layer talks to a
/// Channel and never sees bytes, sockets or zlib.
///
/// Error behaviour (what wait(), peek() and recv() throw and what state they leave):
///  * EOF between frames          -> Disconnected("connection closed by peer"); stream left open.
///  * EOF inside a frame          -> Disconnected("... truncated frame ..."); stream left open.
///  * oversize length, corrupt zlib body, payload inflating past max_payload_size
///                                -> ProtocolError; the Channel first closes its stream at once
///                                   (BufferedStream::close(reason): queued writes dropped,
///                                   stream error() = the ProtocolError), so nothing reads what
///                                   follows the bad frame; later send()/recv() throw
///                                   StreamClosed carrying the protocol error text.
///  * transport failures (reset, I/O error, stream closed) propagate from the stream unchanged.
/// Frames with an empty payload are skipped (RPyC ignores them too), counted in
/// ChannelStats::empty_frames_in. None of these leave the process in a bad state: the caller
/// (the rpc layer) ends the connection.
///
/// Receiving is one API of three pieces: peek() shows the next payload in place (in the
/// stream's read buffer, or in the decoder's inflate storage for a compressed frame), consume()
/// drops it, and wait() waits until peek() has one:
///
///     for (;;) {
///       std::optional<std::span<const std::uint8_t>> p = ch.peek();
///       if (!p) {
///         co_await ch.wait();  // throws on EOF, truncation, a protocol error (see above)
///         continue;
///       }
///       decode(*p);    // reads the span only
///       ch.consume();
///       act();         // may close the channel
///     }
///
/// recv() is that loop for one payload, copied out (a helper: the same three pieces).

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "tether/base/buffer.hpp"
#include "tether/base/bytes.hpp"
#include "tether/base/export.hpp"
#include "tether/channel/frame.hpp"
#include "tether/loop/task.hpp"
#include "tether/stream/buffered_stream.hpp"

namespace tether {

namespace detail {
class Deflater;
}

/// Counters since construction. Plain value.
struct ChannelStats {
  std::uint64_t frames_in = 0;          ///< frames received, empty ones included
  std::uint64_t frames_out = 0;         ///< frames queued for sending
  std::uint64_t payload_bytes_in = 0;   ///< payload bytes received (after decompression)
  std::uint64_t payload_bytes_out = 0;  ///< payload bytes sent (before compression)
  std::uint64_t wire_bytes_in = 0;      ///< header + body + trailer bytes received
  std::uint64_t wire_bytes_out = 0;     ///< header + body + trailer bytes queued
  std::uint64_t compressed_in = 0;      ///< received frames whose flag was non-zero
  std::uint64_t compressed_out = 0;     ///< sent frames that were compressed
  std::uint64_t empty_frames_in = 0;    ///< received frames with an empty payload (skipped)
  std::uint64_t spliced_out = 0;        ///< spliced frames (OutFrame::spliced) sent with their block uncopied
};

/// One outgoing frame's payload, as Channel::send() takes it. A move-only value made in one of
/// three ways, which say who owns the bytes and what send() copies:
///
///  * OutFrame(Buffer&&): takes the Buffer. Sent raw, it is not copied: the 5-byte header goes
///    into its head-room (Buffer::prepend; a Buffer that has allocated storage always has
///    Buffer::kCheapPrepend bytes of it unless the caller retrieved and prepended) and the
///    trailer into its spare capacity, and the Buffer is queued as it is; one without that room
///    is queued as separate pieces, still without copying.
///  * OutFrame::copied(view): refers to the caller's bytes, which send() copies once (a frame
///    of up to BufferedStream::kCoalesceLimit wire bytes straight into the stream's tail chunk,
///    no allocation; a larger one into a Buffer of its own; a compressed one is deflated
///    straight from the caller's memory). The frame does not own them: they must live until
///    send() returns, so make it in the call: `ch.send(OutFrame::copied(text))`.
///  * OutFrame::spliced(head, at, block): the payload is `head`'s first `at` readable bytes,
///    then `block`, then the rest of `head`: a large bytes value framed without copying it.
///    `head` (with the header in its head-room) and `block` are queued as they are; only the
///    bytes of `head` after `at` and the trailer are copied, into a small piece of their own.
///    When the payload is compressed, or `block` is empty, the pieces are joined first (one
///    copy) and sent as a Buffer frame. send() checks `at` (UsageError past `head`).
///
/// Making one never throws and never copies payload bytes.
class TETHER_API OutFrame {
 public:
  explicit OutFrame(Buffer&& payload) noexcept : v_(std::in_place_index<kBuffer>, std::move(payload)) {}
  [[nodiscard]] static OutFrame copied(std::string_view payload) noexcept { return OutFrame(payload); }
  [[nodiscard]] static OutFrame spliced(Buffer&& head, std::size_t at, Bytes block) noexcept {
    return OutFrame(Spliced{std::move(head), std::move(block), at});
  }

  /// Payload bytes (before compression).
  [[nodiscard]] std::size_t size() const noexcept {
    if (const auto* view = std::get_if<kView>(&v_)) return view->size();
    if (const auto* buf = std::get_if<kBuffer>(&v_)) return buf->readable_bytes();
    const Spliced& sp = std::get<kSpliced>(v_);
    return sp.head.readable_bytes() + sp.block.size();
  }

 private:
  friend class Channel;
  struct Spliced {
    Buffer head;
    Bytes block;
    std::size_t at;  // where the block goes in the head
  };
  static constexpr std::size_t kView = 0, kBuffer = 1, kSpliced = 2;  // v_'s alternatives
  explicit OutFrame(std::string_view view) noexcept : v_(std::in_place_index<kView>, view) {}
  explicit OutFrame(Spliced&& sp) noexcept : v_(std::in_place_index<kSpliced>, std::move(sp)) {}

  // A view first: the common small frame is made and destroyed without touching a Buffer.
  std::variant<std::string_view, Buffer, Spliced> v_;
};

/// A framed, optionally compressed message pipe over one BufferedStream, which it owns.
///
/// Loop thread only (the stream's loop). Not copyable or movable: coroutines returned by
/// wait(), recv() and drain() refer to it and must finish or be destroyed before it is, and so
/// must its FlushHolds. One wait() or recv() at a time (a second concurrent one is the stream's
/// UsageError); send() may be called at any time, including while one is pending.
class TETHER_API Channel {
 public:
  /// Takes ownership of `stream`; it must be non-null and open.
  explicit Channel(std::unique_ptr<BufferedStream> stream, ChannelOptions opts = {});
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  ~Channel();

  /// Receives one non-empty payload (decompressed), as owning Bytes: peek(), a copy of the
  /// payload (a compressed one's inflated storage is moved out, not copied), consume(); wait()
  /// while nothing is buffered. Frames already buffered are returned without a system call.
  /// Throws what wait() and peek() throw (see the file comment). Destroying the task cancels
  /// the wait; a partly received frame stays buffered for the next receive.
  Task<Bytes> recv();

  /// The payload of the next non-empty frame, in place and without a copy, if a whole one is
  /// buffered (empty frames before it are skipped and counted); else nullopt (then wait()).
  /// Calling it again before consume() returns the same frame again (counted once in
  /// stats()). Throws ProtocolError (closing the channel) on a bad frame, StreamClosed after
  /// close() or a protocol error. Must not be called while a recv() or wait() is pending.
  /// Never suspends, never makes a system call.
  ///
  /// Lifetime: the span points into the stream's read buffer (raw frames) or into the
  /// decoder's inflate storage (compressed frames). It stays valid until consume(), the next
  /// peek()/recv()/wait(), close(), or the caller's next suspension (a
  /// suspended caller lets the stream read more into its buffer, which may move it), whichever
  /// comes first. Read it, copy what must outlive that, then consume().
  std::optional<std::span<const std::uint8_t>> peek();

  /// Drops the frame peek() returned (its bytes leave the stream's buffer); the span is
  /// invalid afterwards. A no-op when nothing is peeked, and after close() or a protocol error
  /// (a frame peeked before the close is simply forgotten). Never throws.
  void consume() noexcept;

  /// What wait() returns (an awaiter: no coroutine frame on transports with
  /// Transport::try_read, the common case; a fill() task on the others).
  class TETHER_API FrameWait {
   public:
    explicit FrameWait(Channel& ch) noexcept : ch_(&ch) {}
    FrameWait(const FrameWait&) = delete;
    FrameWait& operator=(const FrameWait&) = delete;
    bool await_ready();
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> h);
    void await_resume();

   private:
    /// Reads what the transport has now until a frame is buffered or EOF (true), or until it
    /// has nothing more (false).
    bool advance();
    Channel* ch_;
    bool eof_ = false;
    bool slow_ = false;
    Task<void> fill_;  // wait_task(), on transports without try_read
    std::optional<BufferedStream::ReadableAwaiter> readable_;
  };

  /// Completes once peek() would return a frame (at once if one is buffered), or, rarely,
  /// after a spurious wake-up with none yet: call peek() again and wait again if it has none
  /// (the loop above). Does not consume the frame.
  /// Throws: Disconnected at EOF between frames or inside one
  /// (truncated frame), ProtocolError on a bad frame (the channel closes), the stream's error
  /// on a transport failure, StreamClosed after close. Destroying the awaiting task cancels
  /// the wait; a partly received frame stays buffered. One at a time, and not beside a recv()
  /// (the stream's UsageError).
  [[nodiscard]] FrameWait wait() noexcept { return FrameWait(*this); }

  /// Queues one frame and returns at once: the one way to send (see OutFrame for what it
  /// takes and what it copies). It never waits and makes no system call; pair it with drain()
  /// for flow control.
  ///
  /// When it leaves (the flush rule): frames queued in one loop turn go out together in one
  /// writev at the end of the loop iteration; while FlushHolds are held, the release of the
  /// last one writes what is queued at once instead (see FlushHold).
  ///
  /// Payloads longer than compress_threshold are compressed into a fresh buffer when
  /// compression is on (a spliced frame is joined first, one copy); shorter ones go raw as
  /// OutFrame describes.
  ///
  /// Throws, queuing nothing: UsageError for an empty payload (never send one: stock peers
  /// ignore it) or a splice point past the head, LimitExceeded if the body would not fit the
  /// u32 length field or the stream's write limit, StreamClosed after close() or a protocol
  /// error. If the stream fails after part of a frame was queued (memory), the channel closes,
  /// since its framing is broken, and the error propagates. The frame's buffers are released
  /// whether or not it was sent.
  void send(OutFrame frame) {
    // Inline, so that a caller's frame kind is known where it is made (no dispatch left).
    check_open();
    if (const auto* view = std::get_if<OutFrame::kView>(&frame.v_)) {
      send_copy(*view);
    } else if (auto* buf = std::get_if<OutFrame::kBuffer>(&frame.v_)) {
      send_buffer(std::move(*buf));
    } else {
      OutFrame::Spliced& sp = *std::get_if<OutFrame::kSpliced>(&frame.v_);
      send_spliced(std::move(sp.head), sp.at, std::move(sp.block));
    }
  }

  /// The flush rule's hold, counted: a producer of frames the others should wait for. While
  /// any hold on the channel is held, a frame queued by one producer does not leave before the
  /// others' (at once), but the end of the loop iteration still writes everything queued in
  /// it, held or not: a hold never delays a frame past its loop turn. Releasing the last hold
  /// writes what is queued at once (BufferedStream::write_now), rather than at the end of the
  /// iteration. The rpc layer holds one per request being served, from its decoding until its
  /// reply is queued, and one for its read loop's pass (released whenever the read loop
  /// suspends): the last outstanding reply goes out at once, and a batch's replies leave in
  /// one writev.
  ///
  /// Each hold_flush() is paired with exactly one release_flush() (FlushHold, below, does the
  /// pairing). Never throws; after close() a release writes nothing (what close() does with
  /// queued frames stands). Loop thread only.
  void hold_flush() noexcept { ++holds_; }
  void release_flush() noexcept {
    if (--holds_ == 0 && !closed_) stream_->write_now();
  }
  /// Holds held now.
  [[nodiscard]] std::size_t flush_holds() const noexcept { return holds_; }

  /// One hold_flush() / release_flush() pair as a move-only value: released by release() or
  /// the destructor, once. Must not outlive the channel.
  class TETHER_API FlushHold {
   public:
    FlushHold() noexcept = default;  ///< holds nothing
    explicit FlushHold(Channel& ch) noexcept : ch_(&ch) { ch.hold_flush(); }
    FlushHold(FlushHold&& o) noexcept : ch_(std::exchange(o.ch_, nullptr)) {}
    FlushHold& operator=(FlushHold&& o) noexcept {
      if (this != &o) {
        release();
        ch_ = std::exchange(o.ch_, nullptr);
      }
      return *this;
    }
    ~FlushHold() { release(); }
    /// Lets go (a no-op when not holding); the last hold released writes what is queued now.
    void release() noexcept {
      if (ch_) std::exchange(ch_, nullptr)->release_flush();
    }
    /// Holds `ch`: a no-op if this holds it already; a hold of another channel is let go.
    void hold(Channel& ch) noexcept {
      if (ch_ == &ch) return;
      release();
      ch_ = &ch;
      ch.hold_flush();
    }
    [[nodiscard]] bool holding() const noexcept { return ch_ != nullptr; }

   private:
    Channel* ch_ = nullptr;
  };

  /// Waits until the stream's write queue is at or below its low watermark.
  Task<void> drain();

  /// Graceful close (BufferedStream::close): frames already queued still go out in the
  /// background, then the transport closes. A pending recv() fails with StreamClosed; later
  /// send()/recv() throw StreamClosed. Idempotent.
  void close();
  /// True after close(), after a protocol error, or once the stream itself is closed.
  [[nodiscard]] bool closed() const noexcept;
  /// Why the channel closed itself (the ProtocolError text), or empty.
  [[nodiscard]] const std::string& error() const noexcept { return error_; }

  [[nodiscard]] BufferedStream& stream() noexcept { return *stream_; }
  [[nodiscard]] const ChannelOptions& options() const noexcept { return opts_; }
  [[nodiscard]] ChannelStats stats() const noexcept { return stats_; }

 private:
  void check_open() const {
    if (closed_) throw_closed();
  }
  [[noreturn]] void throw_closed() const;
  bool peek_next();
  void repoint_peeked() noexcept;
  [[noreturn]] void throw_eof();
  Task<void> wait_task();  // FrameWait's path on transports without try_read
  void send_copy(std::string_view payload);
  void send_buffer(Buffer&& payload);
  void send_spliced(Buffer&& head, std::size_t at, Bytes block);
  void send_raw(Buffer&& payload);
  /// Queues one frame of `wire_bytes` as several stream writes (`queue` makes them): the
  /// stream's limits are checked for the whole frame first, and a failure after part of it was
  /// queued (memory) closes the channel, whose framing it broke.
  template <class Queue>
  void queue_pieces(std::size_t wire_bytes, Queue&& queue);
  void count_raw_out(std::size_t n) noexcept;  // the stats of an uncompressed frame sent
  void send_compressed(const std::uint8_t* data, std::size_t n);
  void fail(const std::string& why);

  std::unique_ptr<BufferedStream> stream_;
  Buffer* in_;  // stream_->buffer(), which lives as long as the stream
  ChannelOptions opts_;
  FrameDecoder decoder_;
  std::optional<FrameView> peeked_;             // the frame peek() returned, not yet consumed
  std::unique_ptr<detail::Deflater> deflater_;  // created on the first compressed send
  ChannelStats stats_;
  std::string error_;
  std::size_t holds_ = 0;  // FlushHolds held
  bool closed_ = false;
};

}  // namespace tether
