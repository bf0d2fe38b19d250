// Pure framing rules (no stream): encode_frame, FrameDecoder (peek / take_payload / consume:
// frames looked at in place, the inflate storage kept between compressed frames), zlib helpers.

#include "tether/channel/frame.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "alloc_probe.hpp"
#include "frame_test_util.hpp"
#include "tether/base/endian.hpp"
#include "tether/base/error.hpp"

namespace tether {
namespace {

using testing::header;
using testing::random_text;
using testing::raw_frame;
using testing::reference_compress;
using testing::zero_bomb;

std::string reference_decompress(std::string_view data, std::size_t size) {
  std::string out(size, '\0');
  uLongf n = size;
  EXPECT_EQ(uncompress(reinterpret_cast<Bytef*>(out.data()), &n,
                       reinterpret_cast<const Bytef*>(data.data()), data.size()),
            Z_OK);
  out.resize(n);
  return out;
}

Buffer buffer_of(std::string_view s) {
  Buffer b;
  b.append(s);
  return b;
}

/// One frame taken whole, as the Channel's recv() takes it: peek(), the payload as owning
/// Bytes (take_payload), consume().
struct Taken {
  Bytes payload;
  std::uint8_t flag = 0;
  std::size_t wire_size = 0;
  [[nodiscard]] bool compressed() const noexcept { return flag != 0; }
};

std::optional<Taken> take(FrameDecoder& dec, Buffer& in) {
  std::optional<FrameView> v = dec.peek(in);
  if (!v) return std::nullopt;
  Taken t{dec.take_payload(*v), v->flag, v->wire_size};
  dec.consume(in, *v);
  return t;
}

std::vector<Taken> take_all(FrameDecoder& dec, Buffer& in) {
  std::vector<Taken> out;
  while (auto f = take(dec, in)) out.push_back(std::move(*f));
  return out;
}

TEST(FrameEncode, HeaderAndTrailerBytesExact) {
  const Bytes f = encode_frame("hello");
  ASSERT_EQ(f.size(), 5u + 5u + 1u);
  EXPECT_EQ(f[0], 0);
  EXPECT_EQ(f[1], 0);
  EXPECT_EQ(f[2], 0);
  EXPECT_EQ(f[3], 5);
  EXPECT_EQ(f[4], 0);  // flag: raw
  EXPECT_EQ(f.view().substr(5, 5), "hello");
  EXPECT_EQ(f[10], 0x0A);

  // A length with every byte distinct pins the byte order (big-endian).
  std::mt19937_64 rng(1);
  const std::string big = random_text(rng, 0x010203);
  const Bytes g = encode_frame(big, ChannelOptions{.compress = false});
  ASSERT_EQ(g.size(), big.size() + 6);
  EXPECT_EQ(g.view().substr(0, 5), std::string_view("\x00\x01\x02\x03\x00", 5));
  EXPECT_EQ(g.view().substr(5, big.size()), big);
  EXPECT_EQ(g[g.size() - 1], '\n');
}

TEST(FrameEncode, ThresholdIsStrictlyGreater) {
  std::mt19937_64 rng(2);
  const std::string at = random_text(rng, 3000, 4);
  const std::string over = random_text(rng, 3001, 4);

  const Bytes raw = encode_frame(at);
  EXPECT_EQ(raw.view().substr(0, 5), header(3000, 0));
  EXPECT_EQ(raw.view().substr(5, 3000), at);

  const Bytes z = encode_frame(over);
  ASSERT_GT(z.size(), 7u);
  EXPECT_EQ(z[4], 1);  // flag: compressed
  EXPECT_EQ(z[5], 0x78);  // zlib header of a level-1 stream: 78 01
  EXPECT_EQ(z[6], 0x01);
  const std::size_t body = load_be32(z.data());
  ASSERT_EQ(z.size(), body + 6);
  EXPECT_EQ(z[z.size() - 1], '\n');
  EXPECT_LT(body, over.size());  // 4-letter alphabet compresses
  EXPECT_EQ(reference_decompress(z.view().substr(5, body), over.size()), over);
  // Byte-identical to zlib's own one-shot compress at the same level.
  EXPECT_EQ(z.view().substr(5, body), reference_compress(over, 1));
}

TEST(FrameEncode, OptionsChangeThresholdLevelAndSwitch) {
  std::mt19937_64 rng(3);
  const std::string p = random_text(rng, 5000, 3);
  const Bytes off = encode_frame(p, ChannelOptions{.compress = false});
  EXPECT_EQ(off[4], 0);
  EXPECT_EQ(off.size(), p.size() + 6);

  const Bytes low = encode_frame("abcdefghij", ChannelOptions{.compress_threshold = 9});
  EXPECT_EQ(low[4], 1);
  const Bytes nine = encode_frame("abcdefghi", ChannelOptions{.compress_threshold = 9});
  EXPECT_EQ(nine[4], 0);

  const Bytes l9 = encode_frame(p, ChannelOptions{.compress_level = 9});
  EXPECT_EQ(l9[5], 0x78);
  EXPECT_EQ(l9[6], 0xDA);  // level-9 header
  EXPECT_EQ(l9.view().substr(5, l9.size() - 6), reference_compress(p, 9));
  EXPECT_THROW((void)encode_frame(p, ChannelOptions{.compress_level = 42}), UsageError);
}

TEST(FrameDecode, RoundTripsEncodedFrames) {
  std::mt19937_64 rng(4);
  FrameDecoder dec;
  for (std::size_t n : {1u, 2u, 100u, 2999u, 3000u, 3001u, 4096u, 70000u}) {
    for (int alphabet : {2, 256}) {
      const std::string p = random_text(rng, n, alphabet);
      Buffer in = buffer_of(encode_frame(p).view());
      auto f = take(dec, in);
      ASSERT_TRUE(f) << n;
      EXPECT_EQ(f->payload.view(), p) << n;
      EXPECT_EQ(f->compressed(), n > 3000) << n;
      EXPECT_EQ(f->wire_size, encode_frame(p).size());
      EXPECT_TRUE(in.empty());
    }
  }
}

TEST(FrameDecode, FlagOtherThanZeroOrOneIsAProtocolErrorOnTheHeaderAlone) {
  for (int flag : {2, 7, 0x80, 0xFF}) {
    FrameDecoder dec;
    Buffer in = buffer_of(header(24, static_cast<std::uint8_t>(flag)));  // no body yet
    try {
      (void)take(dec, in);
      ADD_FAILURE() << "flag " << flag << " accepted";
    } catch (const ProtocolError& e) {
      EXPECT_NE(std::string(e.what()).find("flag"), std::string::npos) << e.what();
    }
    EXPECT_EQ(in.readable_bytes(), 5u) << "nothing consumed";
  }
}

TEST(FrameDecode, LenientFramingTakesAnyNonZeroFlagAsCompressedLikeRpyc) {
  ChannelOptions opts;
  opts.strict_framing = false;
  const std::string p = "flag seven is still zlib";
  for (int flag : {1, 2, 7, 0x80, 0xFF}) {
    Buffer in = buffer_of(raw_frame(static_cast<std::uint8_t>(flag), reference_compress(p, 6)));
    FrameDecoder dec(opts);
    auto f = take(dec, in);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->flag, flag);
    EXPECT_EQ(f->payload.view(), p);
  }
}

TEST(FrameDecode, CompressedFourBytePayloadAccepted) {
  Buffer in = buffer_of(raw_frame(1, reference_compress("abcd", 1)));
  FrameDecoder dec;
  auto f = take(dec, in);
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->compressed());
  EXPECT_EQ(f->payload.view(), "abcd");
}

TEST(FrameDecode, BadTrailerIsAProtocolErrorConsumingNothing) {
  for (char trailer : {'X', '\0', '\r'}) {
    for (std::uint8_t flag : {std::uint8_t{0}, std::uint8_t{1}}) {
      FrameDecoder dec;
      const std::string body = flag ? reference_compress("payload", 1) : std::string("payload");
      Buffer in = buffer_of(raw_frame(flag, body, trailer));
      try {
        (void)take(dec, in);
        ADD_FAILURE() << "trailer " << int(trailer) << " accepted";
      } catch (const ProtocolError& e) {
        EXPECT_NE(std::string(e.what()).find("trailer"), std::string::npos) << e.what();
      }
      EXPECT_EQ(in.readable_bytes(), body.size() + kFrameOverhead);
    }
  }
  // The frame before a bad one is still delivered whole.
  FrameDecoder dec;
  Buffer in = buffer_of(raw_frame(0, "good") + raw_frame(0, "bad", 'X'));
  auto f = take(dec, in);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload.view(), "good");
  EXPECT_THROW((void)take(dec, in), ProtocolError);
}

TEST(FrameDecode, LenientFramingDoesNotCheckTheTrailerLikeRpyc) {
  ChannelOptions opts;
  opts.strict_framing = false;
  Buffer in = buffer_of(raw_frame(0, "payload", 'X') + raw_frame(0, "next", '\0'));
  FrameDecoder dec(opts);
  auto frames = take_all(dec, in);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].payload.view(), "payload");
  EXPECT_EQ(frames[1].payload.view(), "next");
}

TEST(FrameDecode, EmptyPayloadsAreFramesToo) {
  Buffer in = buffer_of(raw_frame(0, "") + encode_frame("").str() + raw_frame(1, reference_compress("", 1)));
  FrameDecoder dec;
  auto frames = take_all(dec, in);
  ASSERT_EQ(frames.size(), 3u);
  for (auto& f : frames) EXPECT_TRUE(f.payload.empty());
  EXPECT_EQ(frames[0].wire_size, 6u);
}

TEST(FrameDecode, IncrementalByteByByte) {
  std::mt19937_64 rng(5);
  const std::string a = random_text(rng, 10);
  const std::string b = random_text(rng, 5000, 3);  // compressed
  const std::string wire = std::string(encode_frame(a).view()) + std::string(encode_frame(b).view());
  const std::size_t first = a.size() + 6;
  FrameDecoder dec;
  Buffer in;
  std::vector<std::string> got;
  for (std::size_t i = 0; i < wire.size(); ++i) {
    in.append(wire.data() + i, 1);
    const std::size_t have = in.readable_bytes();
    auto f = take(dec, in);
    if (f) {
      got.emplace_back(f->payload.view());
      EXPECT_EQ(i + 1, got.size() == 1 ? first : wire.size());
      continue;
    }
    EXPECT_EQ(in.readable_bytes(), have);  // nothing consumed
    const std::size_t pos_in_frame = have;
    const std::size_t frame_size = got.empty() ? first : wire.size() - first;
    EXPECT_EQ(dec.bytes_needed(in), pos_in_frame < 5 ? 5u : frame_size);
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], a);
  EXPECT_EQ(got[1], b);
  EXPECT_TRUE(in.empty());
}

TEST(FrameDecode, ManyFramesInOneBuffer) {
  std::mt19937_64 rng(6);
  std::vector<std::string> payloads;
  std::string wire;
  for (int i = 0; i < 500; ++i) {
    payloads.push_back(random_text(rng, 1 + rng() % 6000, 1 + rng() % 255));
    wire += encode_frame(payloads.back()).view();
  }
  Buffer in = buffer_of(wire);
  FrameDecoder dec;
  auto frames = take_all(dec, in);
  ASSERT_EQ(frames.size(), payloads.size());
  for (std::size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(frames[i].payload.view(), payloads[i]);
}

TEST(FrameDecode, SeededRandomSplits) {
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    ChannelOptions opts;
    opts.compress = rng() % 2;
    opts.compress_threshold = rng() % 200;
    std::vector<std::string> payloads;
    std::string wire;
    for (int i = 0; i < 30; ++i) {
      payloads.push_back(random_text(rng, rng() % 1000, 1 + rng() % 256));
      wire += encode_frame(payloads.back(), opts).view();
    }
    FrameDecoder dec(opts);
    Buffer in;
    std::vector<std::string> got;
    std::size_t pos = 0;
    while (pos < wire.size()) {
      const std::size_t n = std::min<std::size_t>(wire.size() - pos, 1 + rng() % 300);
      in.append(wire.data() + pos, n);
      pos += n;
      for (auto& f : take_all(dec, in)) got.emplace_back(f.payload.view());
    }
    EXPECT_EQ(got, payloads) << "seed " << seed;
    EXPECT_TRUE(in.empty());
  }
}

TEST(FrameDecode, MaxFrameSizeCheckedOnTheHeaderAlone) {
  ChannelOptions opts;
  opts.max_frame_size = 1000;
  FrameDecoder dec(opts);
  // Exactly the limit is fine.
  Buffer ok = buffer_of(raw_frame(0, std::string(1000, 'a')));
  auto f = take(dec, ok);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload.size(), 1000u);
  // One more byte is refused as soon as the header is there, body or not.
  Buffer bad = buffer_of(header(1001, 0));
  EXPECT_THROW((void)take(dec, bad), ProtocolError);
  EXPECT_EQ(bad.readable_bytes(), 5u);  // nothing consumed
  // The default limit (64 MiB) against a hostile 4 GiB - 1 announcement.
  FrameDecoder def;
  Buffer huge = buffer_of(header(0xFFFFFFFFu, 1));
  try {
    (void)take(def, huge);
    ADD_FAILURE() << "no error";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("max_frame_size"), std::string::npos) << e.what();
  }
}

TEST(FrameDecode, MaxPayloadSizeAppliesToRawAndCompressed) {
  ChannelOptions opts;
  opts.max_payload_size = 4000;
  FrameDecoder dec(opts);
  Buffer raw_ok = buffer_of(raw_frame(0, std::string(4000, 'x')));
  EXPECT_TRUE(take(dec, raw_ok));
  Buffer raw_bad = buffer_of(raw_frame(0, std::string(4001, 'x')));
  EXPECT_THROW((void)take(dec, raw_bad), ProtocolError);
  Buffer z_ok = buffer_of(raw_frame(1, reference_compress(std::string(4000, 'x'), 1)));
  EXPECT_TRUE(take(dec, z_ok));
  Buffer z_bad = buffer_of(raw_frame(1, reference_compress(std::string(4001, 'x'), 1)));
  EXPECT_THROW((void)take(dec, z_bad), ProtocolError);
}

TEST(FrameDecode, CorruptZlibIsAProtocolError) {
  std::mt19937_64 rng(7);
  const std::string p = random_text(rng, 20000, 16);
  const std::string z = reference_compress(p, 1);
  std::vector<std::string> bodies;
  bodies.push_back("");                                  // empty body with flag set
  bodies.push_back("not zlib at all");                   // bad header
  bodies.push_back(z.substr(0, z.size() / 2));           // truncated
  bodies.push_back(z.substr(0, z.size() - 1));           // adler-32 cut
  std::string bad_sum = z;
  bad_sum.back() ^= 0x55;                                // adler-32 mismatch
  bodies.push_back(bad_sum);
  bodies.push_back(z + "trailing");                      // bytes after the stream
  std::string flipped = z;
  for (std::size_t i = 2; i < flipped.size(); i += 97) flipped[i] ^= 0xA5;
  bodies.push_back(flipped);
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    FrameDecoder dec;
    Buffer in = buffer_of(raw_frame(1, bodies[i]));
    const std::size_t before = in.readable_bytes();
    try {
      (void)take(dec, in);
      ADD_FAILURE() << "body " << i << " accepted";
    } catch (const ProtocolError& e) {
      EXPECT_NE(std::string(e.what()).find("zlib"), std::string::npos) << e.what();
    }
    EXPECT_EQ(in.readable_bytes(), before) << "body " << i;
  }
  // The decoder object stays usable for a fresh, valid input.
  FrameDecoder dec;
  Buffer bad = buffer_of(raw_frame(1, "garbage"));
  EXPECT_THROW((void)take(dec, bad), ProtocolError);
  Buffer good = buffer_of(encode_frame(p).view());
  auto f = take(dec, good);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload.view(), p);
}

TEST(FrameDecode, ZeroBombBuilderIsAValidStream) {
  const std::string bomb = zero_bomb(1 << 16, 9);
  const Bytes out = zlib_decompress(bomb, 1 << 20);
  EXPECT_EQ(out.size(), 9u << 16);
  EXPECT_EQ(std::count(out.view().begin(), out.view().end(), '\0'), 9 << 16);
}

TEST(FrameDecode, ZlibBombStopsAtTheCapWithoutAllocatingMore) {
  const std::string bomb = zero_bomb(std::size_t{16} << 20, 64);  // 1 GiB of zeros
  ASSERT_LT(bomb.size(), std::size_t{2} << 20);
  ChannelOptions opts;
  opts.max_payload_size = std::size_t{8} << 20;
  FrameDecoder dec(opts);
  Buffer in = buffer_of(raw_frame(1, bomb));
  testing::AllocProbe probe;
  try {
    (void)take(dec, in);
    ADD_FAILURE() << "bomb accepted";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("max_payload_size"), std::string::npos) << e.what();
  }
  // The largest single allocation is the capped output (+1 for the string terminator);
  // the output never held more than the cap.
  EXPECT_LE(probe.largest(), opts.max_payload_size + 1);
  EXPECT_GE(probe.largest(), opts.max_payload_size);  // the probe did see the output
  EXPECT_LE(probe.total(), 2 * opts.max_payload_size + (std::size_t{1} << 20));
  // The decoder stays usable, and its storage never exceeds the cap either.
  Buffer good = buffer_of(encode_frame(std::string(5000, 'g')).view());
  auto f = dec.peek(good);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->view(), std::string(5000, 'g'));
}

TEST(FrameDecode, PayloadExactlyAtTheCapIsAccepted) {
  const std::string bomb = zero_bomb(1 << 20, 8);  // 8 MiB
  EXPECT_EQ(zlib_decompress(bomb, 8u << 20).size(), 8u << 20);
  EXPECT_THROW((void)zlib_decompress(bomb, (8u << 20) - 1), ProtocolError);
}

TEST(FrameDecode, RawPayloadIsAViewIntoTheBufferAndNothingIsConsumed) {
  FrameDecoder dec;
  Buffer in = buffer_of(raw_frame(0, "hello") + raw_frame(0, "world"));
  const std::size_t total = in.readable_bytes();
  std::optional<FrameView> f;
  {
    testing::AllocProbe probe;
    f = dec.peek(in);
    EXPECT_EQ(probe.total(), 0u) << "peeking a raw frame allocates nothing";
  }
  ASSERT_TRUE(f);
  EXPECT_EQ(f->view(), "hello");
  EXPECT_EQ(f->payload.data(), in.peek() + kFrameHeaderSize);
  EXPECT_EQ(f->wire_size, 5 + kFrameOverhead);
  EXPECT_FALSE(f->compressed());
  EXPECT_EQ(in.readable_bytes(), total);
  // Peeking again shows the same frame.
  auto again = dec.peek(in);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->payload.data(), f->payload.data());
  dec.consume(in, *f);
  EXPECT_EQ(in.readable_bytes(), total - f->wire_size);
  auto next = dec.peek(in);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->view(), "world");
  dec.consume(in, *next);
  EXPECT_TRUE(in.empty());
  EXPECT_FALSE(dec.peek(in));
}

TEST(FrameDecode, IncompleteFramesGiveNothingByteByByte) {
  std::mt19937_64 rng(21);
  const std::string raw = std::string(encode_frame("abc").view());
  const std::string z = std::string(encode_frame(random_text(rng, 5000, 4)).view());
  for (const std::string& wire : {raw, z}) {
    FrameDecoder dec;
    Buffer in;
    for (std::size_t i = 0; i + 1 < wire.size(); ++i) {
      in.append(wire.substr(i, 1));
      EXPECT_FALSE(dec.peek(in)) << "at " << i;
      EXPECT_EQ(in.readable_bytes(), i + 1);
    }
    in.append(wire.substr(wire.size() - 1));
    auto f = dec.peek(in);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->wire_size, wire.size());
  }
}

TEST(FrameDecode, EveryLimitAndErrorLeavesTheBufferUntouched) {
  ChannelOptions opts;
  opts.max_frame_size = 100;
  opts.max_payload_size = 50;
  FrameDecoder dec(opts);
  Buffer oversize = buffer_of(header(101, 0));  // the header alone is enough
  EXPECT_THROW((void)dec.peek(oversize), ProtocolError);
  EXPECT_EQ(oversize.readable_bytes(), 5u);
  Buffer raw_big = buffer_of(raw_frame(0, std::string(51, 'r')));
  EXPECT_THROW((void)dec.peek(raw_big), ProtocolError);
  EXPECT_EQ(raw_big.readable_bytes(), 51 + kFrameOverhead);
  Buffer z_big = buffer_of(raw_frame(1, reference_compress(std::string(51, 'z'), 1)));
  EXPECT_THROW((void)dec.peek(z_big), ProtocolError);
  Buffer bad_flag = buffer_of(header(4, 2));  // the header alone is enough
  EXPECT_THROW((void)dec.peek(bad_flag), ProtocolError);
  EXPECT_EQ(bad_flag.readable_bytes(), 5u);
  Buffer bad_trailer = buffer_of(raw_frame(0, "abcd", 'X'));
  EXPECT_THROW((void)dec.peek(bad_trailer), ProtocolError);
  EXPECT_EQ(bad_trailer.readable_bytes(), 4 + kFrameOverhead);
  Buffer corrupt = buffer_of(raw_frame(1, "not zlib"));
  EXPECT_THROW((void)dec.peek(corrupt), ProtocolError);
  EXPECT_EQ(corrupt.readable_bytes(), 8 + kFrameOverhead);
  // At the limits: accepted.
  Buffer ok = buffer_of(raw_frame(0, std::string(50, 'r')) +
                        raw_frame(1, reference_compress(std::string(50, 'z'), 1)));
  auto a = dec.peek(ok);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->payload.size(), 50u);
  dec.consume(ok, *a);
  auto b = dec.peek(ok);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->view(), std::string(50, 'z'));
}

TEST(FrameDecode, TakePayloadIsTheViewAndConsumeRetrievesTheWireSize) {
  std::mt19937_64 rng(22);
  std::string wire;
  std::vector<std::string> payloads;
  for (int i = 0; i < 50; ++i) {
    payloads.push_back(random_text(rng, rng() % 3 == 0 ? 3001 + rng() % 20000 : 1 + rng() % 300, 6));
    wire += encode_frame(payloads.back()).view();
  }
  Buffer b = buffer_of(wire);
  FrameDecoder db;
  for (const std::string& p : payloads) {
    auto v = db.peek(b);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->view(), p);
    EXPECT_EQ(v->flag, p.size() > 3000 ? 1 : 0);
    EXPECT_EQ(v->wire_size, encode_frame(p).size());
    const std::size_t before = b.readable_bytes();
    Bytes taken = db.take_payload(*v);
    EXPECT_EQ(taken.view(), p);
    EXPECT_EQ(b.readable_bytes(), before) << "take_payload consumes nothing";
    db.consume(b, *v);
    EXPECT_EQ(b.readable_bytes(), before - encode_frame(p).size());
  }
  EXPECT_TRUE(b.empty());
}

TEST(FrameDecode, InflateStorageIsReusedBetweenCompressedFrames) {
  std::mt19937_64 rng(23);
  // Four-letter text compresses to at least a quarter, so the first guess (four times the
  // body) already holds p1 and stays below kKeepInflated; p2 is smaller.
  const std::string p1 = random_text(rng, 8000, 4);
  const std::string p2 = random_text(rng, 7000, 4);
  FrameDecoder dec;
  Buffer in = buffer_of(std::string(encode_frame(p1).view()) + std::string(encode_frame(p2).view()));
  auto f1 = dec.peek(in);
  ASSERT_TRUE(f1);
  EXPECT_EQ(f1->view(), p1);
  const std::uint8_t* storage = f1->payload.data();
  dec.consume(in, *f1);
  std::optional<FrameView> f2;
  {
    testing::AllocProbe probe;
    f2 = dec.peek(in);
    EXPECT_EQ(probe.total(), 0u) << "the second frame inflated into the kept storage";
  }
  ASSERT_TRUE(f2);
  EXPECT_EQ(f2->view(), p2);
  EXPECT_EQ(f2->payload.data(), storage);
  dec.consume(in, *f2);
}

TEST(FrameDecode, LargeInflateStorageIsReleasedOnConsume) {
  std::mt19937_64 rng(24);
  const std::string big = random_text(rng, 1 << 20, 4);  // inflates into ~1 MiB of storage
  const std::string small = random_text(rng, 4000, 4);
  FrameDecoder dec;
  Buffer in = buffer_of(std::string(encode_frame(big).view()) + std::string(encode_frame(small).view()));
  auto f = dec.peek(in);
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->view() == big);
  dec.consume(in, *f);  // above kKeepInflated: freed
  testing::AllocProbe probe;
  auto g = dec.peek(in);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->view(), small);
  EXPECT_GT(probe.total(), 0u) << "fresh storage after the large one was released";
  EXPECT_LE(probe.largest(), FrameDecoder::kKeepInflated);
}

TEST(FrameDecode, TakePayloadMovesTheInflatedStorageOut) {
  std::mt19937_64 rng(25);
  const std::string p = random_text(rng, 30000, 4);
  FrameDecoder dec;
  Buffer in = buffer_of(encode_frame(p).view());
  auto f = dec.peek(in);
  ASSERT_TRUE(f);
  const std::uint8_t* storage = f->payload.data();
  testing::AllocProbe probe;
  Bytes taken = dec.take_payload(*f);
  EXPECT_EQ(probe.total(), 0u) << "moved, not copied";
  EXPECT_EQ(taken.data(), storage);
  EXPECT_EQ(taken.view(), p);
  dec.consume(in, *f);
  EXPECT_TRUE(in.empty());
}

TEST(Zlib, CompressMatchesZlibOneShot) {
  std::mt19937_64 rng(8);
  for (std::size_t n : {0u, 1u, 3001u, 100000u}) {
    const std::string p = random_text(rng, n, 5);
    for (int level : {1, 6, 9}) {
      const Bytes z = zlib_compress(p, level);
      EXPECT_EQ(z.view(), reference_compress(p, level));
      EXPECT_EQ(zlib_decompress(z.view(), n).view(), p);
    }
  }
}

}  // namespace
}  // namespace tether
