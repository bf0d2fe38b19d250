// FrameDecoder::peek / take_payload / consume: frames looked at in place, the same rules as
// decode(), and the inflate storage kept between compressed frames.

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "alloc_probe.hpp"
#include "frame_test_util.hpp"
#include "tether/base/error.hpp"
#include "tether/channel/frame.hpp"

namespace tether {
namespace {

using testing::header;
using testing::random_text;
using testing::raw_frame;
using testing::reference_compress;
using testing::zero_bomb;

Buffer buffer_of(std::string_view s) {
  Buffer b;
  b.append(s);
  return b;
}

TEST(FramePeek, RawPayloadIsAViewIntoTheBufferAndNothingIsConsumed) {
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

TEST(FramePeek, IncompleteFramesGiveNothingByteByByte) {
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

TEST(FramePeek, SameLimitsAndErrorsAsDecodeWithTheBufferUntouched) {
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
  // At the limits: accepted, as by decode().
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

TEST(FramePeek, DecodeIsPeekTakeConsume) {
  std::mt19937_64 rng(22);
  std::string wire;
  std::vector<std::string> payloads;
  for (int i = 0; i < 50; ++i) {
    payloads.push_back(random_text(rng, rng() % 3 == 0 ? 3001 + rng() % 20000 : 1 + rng() % 300, 6));
    wire += encode_frame(payloads.back()).view();
  }
  Buffer a = buffer_of(wire);
  Buffer b = buffer_of(wire);
  FrameDecoder da;
  FrameDecoder db;
  for (const std::string& p : payloads) {
    auto f = da.decode(a);
    ASSERT_TRUE(f);
    auto v = db.peek(b);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->view(), p);
    EXPECT_EQ(v->flag, f->flag);
    EXPECT_EQ(v->wire_size, f->wire_size);
    Bytes taken = db.take_payload(*v);
    EXPECT_EQ(taken, f->payload);
    db.consume(b, *v);
    EXPECT_EQ(a.readable_bytes(), b.readable_bytes());
  }
  EXPECT_TRUE(a.empty());
}

TEST(FramePeek, InflateStorageIsReusedBetweenCompressedFrames) {
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

TEST(FramePeek, LargeInflateStorageIsReleasedOnConsume) {
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

TEST(FramePeek, TakePayloadMovesTheInflatedStorageOut) {
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

TEST(FramePeek, ZlibBombStopsAtTheCapWithoutAllocatingMore) {
  const std::string bomb = zero_bomb(std::size_t{16} << 20, 64);  // 1 GiB of zeros
  ChannelOptions opts;
  opts.max_payload_size = std::size_t{8} << 20;
  FrameDecoder dec(opts);
  Buffer in = buffer_of(raw_frame(1, bomb));
  testing::AllocProbe probe;
  try {
    (void)dec.peek(in);
    ADD_FAILURE() << "bomb accepted";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("max_payload_size"), std::string::npos) << e.what();
  }
  EXPECT_LE(probe.largest(), opts.max_payload_size + 1);
  EXPECT_LE(probe.total(), 2 * opts.max_payload_size + (std::size_t{1} << 20));
  // The decoder stays usable, and its storage never exceeds the cap either.
  Buffer good = buffer_of(encode_frame(std::string(5000, 'g')).view());
  auto f = dec.peek(good);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->view(), std::string(5000, 'g'));
}

}  // namespace
}  // namespace tether
