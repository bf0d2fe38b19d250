#include "tether/base/buffer.hpp"

#include <sys/uio.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

namespace tether {

Buffer::Buffer(Buffer&& o) noexcept { swap(o); }

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    Buffer tmp;
    tmp.swap(o);
    swap(tmp);
  }
  return *this;
}

Buffer::~Buffer() = default;

void Buffer::swap(Buffer& o) noexcept {
  std::swap(data_, o.data_);
  std::swap(capacity_, o.capacity_);
  std::swap(reader_, o.reader_);
  std::swap(writer_, o.writer_);
}

void Buffer::retrieve(std::size_t n) noexcept {
  assert(n <= readable_bytes());
  if (n < readable_bytes()) {
    reader_ += n;
  } else {
    retrieve_all();
  }
}

void Buffer::retrieve_all() noexcept {
  reader_ = writer_ = (capacity_ ? kCheapPrepend : 0);
}

Bytes Buffer::retrieve_as_bytes(std::size_t n) {
  assert(n <= readable_bytes());
  Bytes out(peek(), n);
  retrieve(n);
  return out;
}

void Buffer::unwrite(std::size_t n) noexcept {
  assert(n <= readable_bytes());
  writer_ -= n;
  if (writer_ == reader_) retrieve_all();
}

void Buffer::make_space(std::size_t n) {
  const std::size_t readable = readable_bytes();
  if (data_ && capacity_ >= kCheapPrepend + readable + n) {
    // Enough room once the readable bytes move back behind the head-room: compact, never grow.
    std::memmove(data_.get() + kCheapPrepend, data_.get() + reader_, readable);
    reader_ = kCheapPrepend;
    writer_ = reader_ + readable;
    return;
  }
  const std::size_t want = kCheapPrepend + readable + n;
  std::size_t cap = capacity_ ? capacity_ * 2 : kInitialSize;
  if (cap < want) cap = want + kGrowSlack;  // a jump past doubling: keep room for a short tail
  auto fresh = std::make_unique_for_overwrite<std::uint8_t[]>(cap);
  if (readable) std::memcpy(fresh.get() + kCheapPrepend, peek(), readable);
  data_ = std::move(fresh);
  capacity_ = cap;
  reader_ = kCheapPrepend;
  writer_ = reader_ + readable;
}

void Buffer::prepend(const void* data, std::size_t n) noexcept {
  assert(n <= prependable_bytes());
  if (n == 0) return;
  reader_ -= n;
  std::memcpy(data_.get() + reader_, data, n);
}

std::optional<std::size_t> Buffer::find(std::uint8_t byte, std::size_t from) const noexcept {
  if (from >= readable_bytes()) return std::nullopt;
  const void* hit = std::memchr(peek() + from, byte, readable_bytes() - from);
  if (!hit) return std::nullopt;
  return static_cast<std::size_t>(static_cast<const std::uint8_t*>(hit) - peek());
}

std::optional<std::size_t> Buffer::find(std::string_view delim, std::size_t from) const noexcept {
  if (delim.empty()) return from <= readable_bytes() ? std::optional<std::size_t>(from) : std::nullopt;
  std::string_view hay = view();
  if (from >= hay.size()) return std::nullopt;
  auto pos = hay.find(delim, from);
  if (pos == std::string_view::npos) return std::nullopt;
  return pos;
}

void Buffer::shrink_to_fit() {
  if (empty()) {
    data_.reset();
    capacity_ = reader_ = writer_ = 0;
    return;
  }
  const std::size_t readable = readable_bytes();
  if (capacity_ == kCheapPrepend + readable) return;
  auto fresh = std::make_unique_for_overwrite<std::uint8_t[]>(kCheapPrepend + readable);
  std::memcpy(fresh.get() + kCheapPrepend, peek(), readable);
  data_ = std::move(fresh);
  capacity_ = kCheapPrepend + readable;
  reader_ = kCheapPrepend;
  writer_ = capacity_;
}

ssize_t Buffer::read_from_fd(int fd, int* saved_errno, std::size_t max_bytes) {
  alignas(16) std::uint8_t spill[kSpillSize];
  if (!data_) ensure_writable(kInitialSize - kCheapPrepend);
  const std::size_t writable = std::min(writable_bytes(), max_bytes);
  iovec vec[2];
  vec[0].iov_base = begin_write();
  vec[0].iov_len = writable;
  vec[1].iov_base = spill;
  vec[1].iov_len = std::min(sizeof spill, max_bytes - writable);
  const int iovcnt = (vec[1].iov_len > 0) ? 2 : 1;
  const ssize_t n = ::readv(fd, vec, iovcnt);
  if (n < 0) {
    *saved_errno = errno;
  } else if (static_cast<std::size_t>(n) <= writable) {
    writer_ += static_cast<std::size_t>(n);
  } else {
    writer_ += writable;
    append(spill, static_cast<std::size_t>(n) - writable);
  }
  return n;
}

}  // namespace tether
