#include "channel/zlib_codec.hpp"

#include <algorithm>
#include <limits>
#include <new>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "tether/base/error.hpp"

namespace tether::detail {
namespace {

// zlib counts in uInt (32 bits): feed larger inputs and outputs in slices of this size.
constexpr std::size_t kMaxSlice = std::size_t{1} << 30;

uInt slice(std::size_t n) noexcept { return static_cast<uInt>(std::min(n, kMaxSlice)); }

std::string zlib_message(const z_stream& z, int ret) {
  if (z.msg) return z.msg;
  switch (ret) {
    case Z_DATA_ERROR: return "invalid data";
    case Z_NEED_DICT: return "preset dictionary required";
    case Z_MEM_ERROR: return "out of memory";
    case Z_BUF_ERROR: return "truncated stream";
    default: return fmt::format("zlib error {}", ret);
  }
}

}  // namespace

Deflater::Deflater(int level) : level_(level) {
  const int ret = deflateInit(&z_, level);
  if (ret == Z_MEM_ERROR) throw std::bad_alloc();
  if (ret != Z_OK) throw UsageError(fmt::format("invalid zlib compression level {}", level));
}

Deflater::~Deflater() { deflateEnd(&z_); }

std::size_t Deflater::bound(std::size_t n) noexcept { return deflateBound(&z_, n); }

std::size_t Deflater::compress(const std::uint8_t* in, std::size_t n, std::uint8_t* out) {
  deflateReset(&z_);
  std::size_t in_left = n;
  std::size_t out_left = bound(n);
  z_.next_in = const_cast<Bytef*>(in);
  z_.next_out = out;
  for (;;) {
    const uInt give = slice(in_left);
    const uInt room = slice(out_left);
    z_.avail_in = give;
    z_.avail_out = room;
    const int flush = (give == in_left) ? Z_FINISH : Z_NO_FLUSH;
    const int ret = deflate(&z_, flush);
    in_left -= give - z_.avail_in;
    out_left -= room - z_.avail_out;
    if (ret == Z_STREAM_END) break;
    if (ret != Z_OK && ret != Z_BUF_ERROR) {
      throw std::runtime_error("deflate failed: " + zlib_message(z_, ret));
    }
    if (ret == Z_BUF_ERROR && z_.avail_out != 0 && in_left == 0) {
      // Cannot happen with an output of bound(n) bytes; guard against looping forever.
      throw std::runtime_error("deflate made no progress");
    }
  }
  return static_cast<std::size_t>(z_.total_out);
}

Inflater::Inflater() {
  const int ret = inflateInit(&z_);
  if (ret != Z_OK) throw std::bad_alloc();
}

Inflater::~Inflater() { inflateEnd(&z_); }

Bytes Inflater::inflate(const std::uint8_t* in, std::size_t n, std::size_t max_output) {
  std::string out;
  inflate_into(in, n, max_output, out);
  return Bytes(std::move(out));
}

void Inflater::inflate_into(const std::uint8_t* in, std::size_t n, std::size_t max_output, std::string& out) {
  inflateReset(&z_);
  // Output storage grows by doubling up to max_output, in place while out's capacity allows.
  // Each step beyond it allocates exactly the new size (a fresh std::string reserved to it;
  // std::string::resize on a full string would round up to twice its capacity, past the cap).
  std::size_t size = std::min(max_output, std::max<std::size_t>(n * 4, 4096));
  if (out.capacity() < size) {
    std::string fresh;
    fresh.reserve(size);
    out.swap(fresh);
  }
  out.resize(size);
  std::size_t produced = 0;
  std::size_t in_left = n;
  std::uint8_t probe[1];  // once the cap is reached: any byte landing here is one too many
  z_.next_in = const_cast<Bytef*>(in);
  for (;;) {
    bool probing = false;
    if (produced == size) {
      if (size < max_output) {
        std::size_t bigger_size = std::min(max_output, size * 2);
        if (max_output - bigger_size < bigger_size / 2) bigger_size = max_output;  // no sliver step
        if (bigger_size > out.capacity()) {
          std::string bigger;
          bigger.reserve(bigger_size);
          bigger.append(out.data(), produced);
          out.swap(bigger);
        }
        out.resize(bigger_size);
        size = bigger_size;
      } else {
        probing = true;
      }
    }
    const uInt give = slice(in_left);
    const uInt room = probing ? 1 : slice(size - produced);
    z_.avail_in = give;
    z_.next_out = probing ? probe : reinterpret_cast<Bytef*>(out.data() + produced);
    z_.avail_out = room;
    const int ret = ::inflate(&z_, Z_NO_FLUSH);
    const std::size_t used = give - z_.avail_in;
    const std::size_t made = room - z_.avail_out;
    in_left -= used;
    if (probing && made > 0) {
      throw ProtocolError(
          fmt::format("compressed frame inflates past max_payload_size ({} bytes)", max_output));
    }
    produced += probing ? 0 : made;
    if (ret == Z_STREAM_END) break;
    if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR || ret == Z_STREAM_ERROR) {
      throw ProtocolError("corrupt zlib body in compressed frame: " + zlib_message(z_, ret));
    }
    if (ret == Z_MEM_ERROR) throw std::bad_alloc();
    if (in_left == 0 && used == 0 && made == 0) {
      throw ProtocolError("corrupt zlib body in compressed frame: truncated stream");
    }
  }
  if (in_left != 0) {
    throw ProtocolError(
        fmt::format("corrupt zlib body in compressed frame: {} bytes after the end of the stream",
                    in_left));
  }
  out.resize(produced);
  if (out.capacity() > 2 * produced + 65536) out.shrink_to_fit();  // a guess far too large
}

}  // namespace tether::detail
