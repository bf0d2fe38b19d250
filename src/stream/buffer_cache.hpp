#pragma once
// Private: a small per-thread pool of the storage of small empty Buffers, shared by every
// BufferedStream on the thread. A stream's write chunks and its small read buffer come and go
// with every message under request/reply traffic; taking them from here instead of malloc,
// and giving them back instead of free, makes that traffic allocation-free while an idle
// stream still holds no buffer at all (the pool belongs to the thread, not the stream, and is
// bounded: docs/streams.md, "Memory").

#include <cstddef>

#include "tether/base/buffer.hpp"

namespace tether::detail {

/// Storage the pool accepts: capacity in [kCachedBufferMin, kCachedBufferMax] ...
inline constexpr std::size_t kCachedBufferMin = Buffer::kInitialSize;
inline constexpr std::size_t kCachedBufferMax = std::size_t{64} << 10;
/// ... at most this many buffers and this many bytes of capacity per thread.
inline constexpr std::size_t kCachedBuffers = 8;
inline constexpr std::size_t kCachedBytes = std::size_t{128} << 10;

/// Moves pooled storage with at least `writable` writable bytes into `b`, which must have no
/// storage (capacity() == 0). Returns false, leaving `b` alone, when the pool has none that
/// large (only the most recently pooled buffer is considered). Loop thread; never throws.
bool take_cached_buffer(Buffer& b, std::size_t writable) noexcept;

/// Empties `b` and takes its storage: into the pool when its capacity is within the bounds
/// above and the pool has room, else it is freed. `b` is left without storage. Never throws.
void release_buffer(Buffer& b) noexcept;

}  // namespace tether::detail
