#pragma once
/// \file Buffer: muduo's read-side buffer. One contiguous region laid out as
///
///     | head-room (prependable) | readable bytes | writable bytes |
///     0                  reader_index     writer_index        capacity
///
/// The head-room (at least kCheapPrepend bytes) lets a framing layer write a header in
/// front of a payload without copying it. Storage is allocated lazily on the first write,
/// so an idle Buffer costs only its own few words.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <sys/types.h>

#include "tether/base/bytes.hpp"
#include "tether/base/export.hpp"

namespace tether {

/// Not thread-safe; a Buffer belongs to whoever holds it.
class TETHER_API Buffer {
 public:
  static constexpr std::size_t kCheapPrepend = 8;
  static constexpr std::size_t kInitialSize = 1024;
  /// Room a buffer keeps past what was asked for when doubling is not enough to hold it, so
  /// that the few bytes written after a large block (a closing header, a frame trailer) do not
  /// move the block again. Small buffers keep their sizes (kInitialSize, then doubling).
  static constexpr std::size_t kGrowSlack = 256;
  /// read_from_fd reads into the buffer plus this much stack spill in one readv.
  static constexpr std::size_t kSpillSize = 65536;

  Buffer() noexcept = default;
  Buffer(Buffer&&) noexcept;
  Buffer& operator=(Buffer&&) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  [[nodiscard]] std::size_t readable_bytes() const noexcept { return writer_ - reader_; }
  [[nodiscard]] std::size_t writable_bytes() const noexcept { return capacity_ - writer_; }
  [[nodiscard]] std::size_t prependable_bytes() const noexcept { return reader_; }
  [[nodiscard]] bool empty() const noexcept { return writer_ == reader_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  /// Start of the readable bytes (valid until the next mutating call).
  [[nodiscard]] const std::uint8_t* peek() const noexcept { return data_.get() + reader_; }
  [[nodiscard]] std::string_view view() const noexcept {
    return {reinterpret_cast<const char*>(peek()), readable_bytes()};
  }

  /// Consumes n readable bytes (n ≤ readable_bytes()). Resets to the start when emptied.
  void retrieve(std::size_t n) noexcept;
  void retrieve_all() noexcept;
  /// Consumes and returns the first n readable bytes.
  [[nodiscard]] Bytes retrieve_as_bytes(std::size_t n);
  [[nodiscard]] Bytes retrieve_all_as_bytes() { return retrieve_as_bytes(readable_bytes()); }

  void append(const void* data, std::size_t n) {
    if (n == 0) return;
    ensure_writable(n);
    std::memcpy(begin_write(), data, n);
    has_written(n);
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
  /// Makes room for n more bytes: compacts first, grows only if compaction is not enough.
  void ensure_writable(std::size_t n) {
    if (writable_bytes() < n) make_space(n);
  }
  [[nodiscard]] std::uint8_t* begin_write() noexcept { return data_.get() + writer_; }
  /// Marks n bytes after begin_write() as written (n ≤ writable_bytes()).
  void has_written(std::size_t n) noexcept { writer_ += n; }
  /// Drops the last n readable bytes (n ≤ readable_bytes()). Resets to the start when emptied.
  void unwrite(std::size_t n) noexcept;

  /// Writes n bytes in front of the readable bytes; requires prependable_bytes() ≥ n.
  void prepend(const void* data, std::size_t n) noexcept;

  /// Offset (from peek()) of the first `byte` at or after offset `from`.
  [[nodiscard]] std::optional<std::size_t> find(std::uint8_t byte, std::size_t from = 0) const noexcept;
  /// Offset of the first occurrence of `delim` starting at or after `from`. To resume a
  /// search after more data arrives, pass the previous readable_bytes() - delim.size() + 1.
  [[nodiscard]] std::optional<std::size_t> find(std::string_view delim, std::size_t from = 0) const noexcept;

  /// Releases unused capacity: afterwards capacity() == kCheapPrepend + readable_bytes(); an
  /// empty buffer frees its storage entirely.
  void shrink_to_fit();

  /// Reads from fd with one readv into the writable space plus a 64 KiB stack spill, reading
  /// at most `max_bytes`. Returns the byte count, 0 on EOF, or -1 with errno saved in
  /// *saved_errno.
  ssize_t read_from_fd(int fd, int* saved_errno, std::size_t max_bytes = kSpillSize);

  void swap(Buffer& other) noexcept;

 private:
  void make_space(std::size_t n);

  std::unique_ptr<std::uint8_t[]> data_;
  std::size_t capacity_ = 0;
  std::size_t reader_ = 0;
  std::size_t writer_ = 0;
};

}  // namespace tether
