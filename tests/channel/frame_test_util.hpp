#pragma once
// Helpers shared by the channel tests: frames assembled by hand (independently of
// encode_frame), zlib through its own one-shot API, and a cheap zlib bomb.

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "tether/base/endian.hpp"

namespace tether::testing {

inline std::string header(std::uint32_t len, std::uint8_t flag) {
  std::string h(5, '\0');
  store_be32(h.data(), len);
  h[4] = static_cast<char>(flag);
  return h;
}

/// A frame assembled by hand from its fields, independent of encode_frame.
inline std::string raw_frame(std::uint8_t flag, std::string_view body, char trailer = '\n') {
  return header(static_cast<std::uint32_t>(body.size()), flag) + std::string(body) + trailer;
}

/// zlib.compress(data, level) through zlib's one-shot API (not tether's Deflater).
inline std::string reference_compress(std::string_view data, int level) {
  uLongf n = compressBound(data.size());
  std::string out(n, '\0');
  EXPECT_EQ(compress2(reinterpret_cast<Bytef*>(out.data()), &n,
                      reinterpret_cast<const Bytef*>(data.data()), data.size(), level),
            Z_OK);
  out.resize(n);
  return out;
}

/// n pseudo-random bytes drawn from the first `alphabet` byte values (256: incompressible).
/// Eight bytes per generator call: the tests build payloads of tens of MiB.
inline std::string random_text(std::mt19937_64& rng, std::size_t n, int alphabet = 256) {
  std::string s(n, '\0');
  const auto a = static_cast<unsigned>(alphabet);
  std::size_t i = 0;
  while (i < n) {
    std::uint64_t w = rng();
    for (int k = 0; k < 8 && i < n; ++k, w >>= 8) {
      const auto byte = static_cast<unsigned>(w & 0xFF);
      s[i++] = static_cast<char>(a == 256 ? byte : byte % a);
    }
  }
  return s;
}

/// A valid zlib stream of `blocks` × `block` zero bytes, built from one compressed block
/// repeated (a full flush makes every block's bits identical), so a 1 GiB bomb costs only
/// the compression of one block.
inline std::string zero_bomb(std::size_t block, std::size_t blocks) {
  z_stream z{};
  EXPECT_EQ(deflateInit(&z, 9), Z_OK);
  std::string zeros(block, '\0');
  std::string out(deflateBound(&z, block) + 64, '\0');
  auto run = [&](std::size_t in_n, int flush) {
    z.next_in = reinterpret_cast<Bytef*>(zeros.data());
    z.avail_in = static_cast<uInt>(in_n);
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    EXPECT_NE(deflate(&z, flush), Z_STREAM_ERROR);
    EXPECT_EQ(z.avail_in, 0u);
    return out.substr(0, out.size() - z.avail_out);
  };
  const std::string first = run(block, Z_FULL_FLUSH);  // zlib header + block
  const std::string again = run(block, Z_FULL_FLUSH);  // the block alone
  deflateEnd(&z);
  EXPECT_EQ(first.substr(2), again);
  std::string s = first;
  s.reserve(2 + again.size() * blocks + 8);
  for (std::size_t i = 1; i < blocks; ++i) s += again;
  s += std::string("\x03\x00", 2);  // final, empty fixed-Huffman block
  // Adler-32 of n zero bytes: a = 1, b = n mod 65521.
  const std::uint64_t n = static_cast<std::uint64_t>(block) * blocks;
  char sum[4];
  store_be32(sum, static_cast<std::uint32_t>(((n % 65521) << 16) | 1));
  s.append(sum, 4);
  return s;
}

}  // namespace tether::testing
