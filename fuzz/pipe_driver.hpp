#pragma once
// Feeds a byte string through an in-memory pipe (stream/mem_pipe.hpp) in chunks chosen by the
// fuzz input, to a reader on the other end: a chunk is written only when the reader is starved
// (the loop has nothing ready), so each chunk arrives as one read, and the reader sees the
// arrivals at chunk boundaries; after the last chunk the writer shuts down (EOF).

#include <sys/uio.h>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_util.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/stream/mem_pipe.hpp"

namespace tether::fuzz {

/// The one loop of the fuzz process (libFuzzer calls the target on one thread).
inline EventLoop& fuzz_loop() {
  static EventLoop loop;
  return loop;
}

/// Chunk ends in `w` for a chunk plan seed: 0 delivers everything at once, other seeds give
/// chunks of 1..64 bytes from a small generator.
inline std::vector<std::size_t> chunk_ends(std::size_t size, std::uint8_t seed) {
  std::vector<std::size_t> ends;
  std::size_t at = 0;
  std::uint32_t s = seed;
  while (at < size) {
    std::size_t n = size - at;
    if (seed != 0) {
      s = s * 1103515245u + 12345u;
      n = std::min<std::size_t>(n, 1 + ((s >> 16) % 64));
    }
    at += n;
    ends.push_back(at);
  }
  return ends;
}

class PipeDriver {
 public:
  /// `w` must outlive the driver. The reader's end is reader(); take it with take_reader().
  PipeDriver(std::string_view w, std::uint8_t seed)
      : w_(w), ends_(chunk_ends(w.size(), seed)), pipe_(make_mem_pipe(fuzz_loop(), std::size_t{1} << 20)) {
    reader_ = pipe_.second.get();
  }

  std::unique_ptr<MemPipeEnd> take_reader() { return std::move(pipe_.second); }
  /// The writer's end (the driver's): what the reader sends back arrives here.
  [[nodiscard]] MemPipeEnd& writer() noexcept { return *pipe_.first; }
  /// The reader's end, while it lives (owned by whoever took it).
  [[nodiscard]] MemPipeEnd& reader() noexcept { return *reader_; }

  /// Runs `t` to completion, feeding the next chunk (or EOF) whenever the loop runs dry.
  /// A task still waiting after EOF was delivered and the loop ran dry twice is a hang.
  template <class T>
  void run(Task<T>& t) {
    auto h = t.handle();
    h.promise().set_continuation(std::noop_coroutine());
    EventLoop& loop = fuzz_loop();
    loop.schedule(h);
    int dry_after_eof = 0;
    while (!t.done()) {
      loop.run_once(Duration::zero());
      if (t.done() || loop.stats().ready != 0) continue;
      if (!feed()) {
        FUZZ_CHECK(++dry_after_eof < 3);  // a read that never completes
      }
    }
  }

  /// Writes the next chunk, or shuts the writer down after the last; false when both are done.
  bool feed() {
    if (next_ < ends_.size()) {
      const std::size_t from = delivered();
      const std::size_t to = ends_[next_++];
      iovec iov{const_cast<char*>(w_.data() + from), to - from};
      const std::size_t n = pipe_.first->try_write(std::span<const iovec>(&iov, 1));
      FUZZ_CHECK(n == to - from);
      return true;
    }
    if (!eof_sent_) {
      eof_sent_ = true;
      pipe_.first->shutdown_write();
      return true;
    }
    return false;
  }

  /// Bytes written into the pipe so far.
  [[nodiscard]] std::size_t delivered() const noexcept { return next_ == 0 ? 0 : ends_[next_ - 1]; }
  [[nodiscard]] std::size_t chunks_fed() const noexcept { return next_; }
  [[nodiscard]] bool eof_sent() const noexcept { return eof_sent_; }
  [[nodiscard]] const std::vector<std::size_t>& ends() const noexcept { return ends_; }

  /// Turns the loop until nothing is ready (after the reader is gone).
  static void settle() {
    EventLoop& loop = fuzz_loop();
    for (int i = 0; i < 8 && loop.stats().ready != 0; ++i) loop.run_once(Duration::zero());
  }

 private:
  std::string_view w_;
  std::vector<std::size_t> ends_;
  MemPipePair pipe_;
  MemPipeEnd* reader_;
  std::size_t next_ = 0;
  bool eof_sent_ = false;
};

}  // namespace tether::fuzz
