// Channel over real streams: in-memory pipes (and a socketpair), raw peers that write
// hand-made frames, trickled and coalesced deliveries, compressed and empty frames, error and
// EOF paths. Receiving is one API (peek / consume / wait, recv() a helper on top): the receive
// cases run twice, over a transport with try_read (the frame-free wait) and over one that
// reads only through read(). Sending is one API (send(OutFrame)): the no-copy paths, splicing,
// gathered small frames; and the flush rule (FlushHold).

#include "tether/channel/channel.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "channel_test_util.hpp"
#include "frame_test_util.hpp"
#include "stream/stream_test_util.hpp"
#include "test_util.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/gather.hpp"

namespace tether {
namespace {

using testing::header;
using testing::ProbeTransport;
using testing::random_text;
using testing::raw_frame;
using testing::recv_fails;
using testing::reference_compress;
using testing::stream_of;
using testing::zero_bomb;

std::string str(std::span<const std::uint8_t> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

class ChannelTest : public testing::LoopTest {
 protected:
  void TearDown() override {
    channel_.reset();  // before LoopTest checks that the loop is empty
    peer_.reset();
    LoopTest::TearDown();
  }

  /// A Channel on one end of a mem pipe and a plain BufferedStream (the raw peer) on the other;
  /// max_read_chunk = 1 makes the pipe deliver one byte per read. With `try_reads` the
  /// channel's transport offers try_read, else it reads only through read().
  void make_with(bool try_reads, ChannelOptions opts, std::size_t max_read_chunk) {
    auto ends = testing::mem_pipe_ends(loop_, max_read_chunk);
    auto probe = std::make_unique<ProbeTransport>(std::move(ends.a), try_reads);
    probe_ = probe.get();
    channel_ = std::make_unique<Channel>(stream_of(std::move(probe)), opts);
    peer_ = stream_of(std::move(ends.b));
  }
  void make(ChannelOptions opts = {}, std::size_t max_read_chunk = 0) {
    make_with(false, opts, max_read_chunk);
  }

  std::unique_ptr<Channel> channel_;
  std::unique_ptr<BufferedStream> peer_;
  ProbeTransport* probe_ = nullptr;  // owned by channel_'s stream
};

/// The receive cases. Parameter: whether the transport offers try_read.
class ChannelRecvTest : public ChannelTest, public ::testing::WithParamInterface<bool> {
 protected:
  void make(ChannelOptions opts = {}, std::size_t max_read_chunk = 0) {
    make_with(GetParam(), opts, max_read_chunk);
  }
};

// ------------------------------------------------------------------- coroutine helpers

Task<Bytes> recv_one(Channel* ch) {
  Bytes b = co_await ch->recv();
  co_return b;
}

Task<std::vector<std::string>> recv_n(Channel* ch, std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) {
    Bytes b = co_await ch->recv();
    out.emplace_back(b.view());
  }
  co_return out;
}

/// The RPC layer's loop: peek(), else wait(); copies each payload, then consume().
Task<std::vector<std::string>> peek_n(Channel* ch, std::size_t n) {
  std::vector<std::string> out;
  while (out.size() < n) {
    std::optional<std::span<const std::uint8_t>> p = ch->peek();
    if (!p) {
      co_await ch->wait();
      continue;
    }
    out.push_back(str(*p));
    ch->consume();
  }
  co_return out;
}

/// Waits until a frame is buffered (wait() may complete early, so in a loop).
Task<void> wait_one(Channel* ch) {
  while (!ch->peek()) co_await ch->wait();
}

/// Expects wait() to fail with E; returns the message.
template <class E>
Task<std::string> wait_fails(Channel* ch) {
  std::string what;
  try {
    while (!ch->peek()) co_await ch->wait();
    ADD_FAILURE() << "a frame arrived";
  } catch (const E& e) {
    what = e.what();
  }
  co_return what;
}

/// Writes raw bytes from the peer, flushes them, then optionally sends EOF.
Task<void> peer_write(BufferedStream* s, std::string data, bool eof) {
  s->write(std::string_view(data));
  co_await s->flush();
  if (eof) s->write_eof();
}

/// Reads exactly n raw bytes on the peer.
Task<Bytes> peer_read(BufferedStream* s, std::size_t n) {
  Bytes b = co_await s->read_exactly(n);
  co_return b;
}

Task<Bytes> peer_read_all(BufferedStream* s) {
  Bytes b = co_await s->read_until_close();
  co_return b;
}

Task<void> fill_more(BufferedStream* s, std::size_t n) { co_await s->fill(n); }

/// Sends *out and receives one payload, concurrently; returns what arrived. `out` must
/// outlive the task (payloads here are up to 32 MiB: no copies).
Task<Bytes> exchange_one(Channel* ch, const std::string* out) {
  ch->send(OutFrame::copied(*out));
  Bytes in = co_await ch->recv();
  co_await ch->drain();
  co_return in;
}

// ------------------------------------------------------------------- sending

TEST_F(ChannelTest, RoundTripAndStats) {
  auto ends = testing::mem_pipe_ends(loop_);
  Channel a(stream_of(std::move(ends.a)));
  Channel b(stream_of(std::move(ends.b)));
  std::mt19937_64 rng(11);
  const std::string small = "ping";
  const std::string big = random_text(rng, 5000, 4);  // compressed
  a.send(OutFrame::copied(small));
  a.send(OutFrame::copied(big));
  auto got = run(recv_n(&b, 2));
  EXPECT_EQ(got, (std::vector<std::string>{small, big}));
  const ChannelStats sa = a.stats();
  const ChannelStats sb = b.stats();
  EXPECT_EQ(sa.frames_out, 2u);
  EXPECT_EQ(sa.compressed_out, 1u);
  EXPECT_EQ(sa.payload_bytes_out, small.size() + big.size());
  EXPECT_EQ(sa.wire_bytes_out, encode_frame(small).size() + encode_frame(big).size());
  EXPECT_EQ(sb.frames_in, 2u);
  EXPECT_EQ(sb.compressed_in, 1u);
  EXPECT_EQ(sb.payload_bytes_in, sa.payload_bytes_out);
  EXPECT_EQ(sb.wire_bytes_in, sa.wire_bytes_out);
  EXPECT_EQ(sb.frames_out, 0u);
}

TEST_F(ChannelTest, WireBytesEqualEncodeFrame) {
  std::mt19937_64 rng(12);
  for (bool compress : {true, false}) {
    make(ChannelOptions{.compress = compress});
    std::string expected;
    for (std::size_t n : {1u, 5u, 3000u, 3001u, 100000u}) {
      const std::string p = random_text(rng, n, 8);
      expected += encode_frame(p, channel_->options()).view();
      channel_->send(OutFrame::copied(p));  // string_view form
      Buffer b;
      b.append(p);
      channel_->send(OutFrame(std::move(b)));  // Buffer form (head-room path)
      expected += encode_frame(p, channel_->options()).view();
    }
    Bytes wire = run(peer_read(peer_.get(), expected.size()));
    EXPECT_EQ(wire.view(), expected) << "compress=" << compress;
  }
}

TEST_F(ChannelTest, UncompressedPayloadIsNotCopied) {
  make(ChannelOptions{.compress = false});
  std::mt19937_64 rng(13);
  // With a spare byte the whole frame is the caller's buffer: header in the head-room,
  // trailer in the spare byte. Filled exactly, the trailer follows as its own piece.
  for (bool spare : {true, false}) {
    Buffer b;
    b.ensure_writable(100000);  // the payload fills what the buffer has, less the spare byte
    const std::string p = random_text(rng, b.writable_bytes() - (spare ? 1 : 0));
    b.append(p);
    ASSERT_GE(b.prependable_bytes(), kFrameHeaderSize);
    ASSERT_EQ(b.writable_bytes() > 0, spare);
    const std::uint8_t* payload_at = b.peek();
    channel_->send(OutFrame(std::move(b)));
    Bytes wire = run(peer_read(peer_.get(), p.size() + kFrameOverhead));
    EXPECT_EQ(wire.view(), encode_frame(p, channel_->options()).view());
    // The transport was handed the caller's own storage, starting with the header.
    const std::size_t len = p.size() + kFrameHeaderSize + (spare ? 1 : 0);
    bool found = false;
    for (const iovec& c : probe_->chunks()) {
      if (c.iov_base == payload_at - kFrameHeaderSize && c.iov_len == len) found = true;
    }
    EXPECT_TRUE(found) << "no write of the caller's buffer (spare byte: " << spare << ")";
  }
}

TEST_F(ChannelTest, BufferWithoutHeadOrTailRoomIsSentInPieces) {
  make(ChannelOptions{.compress = false});
  std::mt19937_64 rng(14);
  Buffer b;
  b.ensure_writable(4000);
  const std::string p = random_text(rng, b.writable_bytes());  // fills it to the end
  b.append(p);
  b.prepend("12345678", 8);  // uses up the head-room
  ASSERT_EQ(b.prependable_bytes(), 0u);
  ASSERT_EQ(b.writable_bytes(), 0u);
  const std::string sent = "12345678" + p;
  channel_->send(OutFrame(std::move(b)));
  Bytes wire = run(peer_read(peer_.get(), sent.size() + kFrameOverhead));
  EXPECT_EQ(wire.view(), encode_frame(sent, channel_->options()).view());
}

TEST_F(ChannelTest, SplicedFrameIsTheJoinedPayloadWithTheBlockUncopied) {
  make(ChannelOptions{.compress = false});
  std::mt19937_64 rng(15);
  const std::string block_text = random_text(rng, 100000);
  const std::string head_text = random_text(rng, 40);
  // Split before, inside and after the head's bytes.
  for (std::size_t at : {std::size_t{0}, std::size_t{17}, head_text.size()}) {
    Buffer head;
    head.append(head_text);
    Bytes block(block_text);
    const std::uint8_t* block_at = block.data();
    const std::string joined = head_text.substr(0, at) + block_text + head_text.substr(at);
    const std::uint64_t before = channel_->stats().spliced_out;
    const std::size_t seen = probe_->chunks().size();  // only this frame's writes count
    channel_->send(OutFrame::spliced(std::move(head), at, std::move(block)));
    Bytes wire = run(peer_read(peer_.get(), joined.size() + kFrameOverhead));
    EXPECT_EQ(wire.view(), encode_frame(joined, channel_->options()).view()) << "split at " << at;
    EXPECT_EQ(channel_->stats().spliced_out, before + 1);
    bool found = false;  // the transport was handed the block's own storage
    for (std::size_t i = seen; i < probe_->chunks().size(); ++i) {
      const iovec& c = probe_->chunks()[i];
      if (c.iov_base == block_at && c.iov_len == block_text.size()) found = true;
    }
    EXPECT_TRUE(found) << "the block was copied (split at " << at << ")";
  }
}

TEST_F(ChannelTest, SplicedFrameIsCompressedWhole) {
  make();  // compression on, threshold 3000
  std::mt19937_64 rng(16);
  const std::string block_text(50000, 'z');
  const std::string head_text = random_text(rng, 30);
  const std::string joined = head_text.substr(0, 10) + block_text + head_text.substr(10);
  Buffer head;
  head.append(head_text);
  channel_->send(OutFrame::spliced(std::move(head), 10, Bytes(block_text)));
  const Bytes expected = encode_frame(joined, channel_->options());
  ASSERT_LT(expected.size(), joined.size()) << "expected a compressed frame";
  Bytes wire = run(peer_read(peer_.get(), expected.size()));
  EXPECT_EQ(wire.view(), expected.view());
  EXPECT_EQ(channel_->stats().spliced_out, 0u);
  EXPECT_EQ(channel_->stats().compressed_out, 1u);
}

TEST_F(ChannelTest, SpliceAfterTheHeadIsAUsageErrorAndQueuesNothing) {
  make(ChannelOptions{.compress = false});
  Buffer head;
  head.append("abc", 3);
  EXPECT_THROW(channel_->send(OutFrame::spliced(std::move(head), 4, Bytes(std::string(70000, 'b')))),
               UsageError);
  EXPECT_FALSE(channel_->closed());
  EXPECT_EQ(channel_->stats().frames_out, 0u);
  channel_->send(OutFrame::copied("after"));  // the channel still frames correctly
  Bytes wire = run(peer_read(peer_.get(), 5 + kFrameOverhead));
  EXPECT_EQ(wire.view(), encode_frame("after").view());
}

TEST_F(ChannelTest, APieceWiseFrameOverTheWriteLimitIsRefusedWhole) {
  // The stream's limit is checked for the whole frame before any piece is queued, so the
  // refusal leaves the channel open and framing intact (a half-queued frame would close it).
  auto ends = testing::mem_pipe_ends(loop_, 0);
  StreamOptions so;
  so.max_write_buffer_size = 80000;
  channel_ = std::make_unique<Channel>(stream_of(std::move(ends.a), so), ChannelOptions{.compress = false});
  peer_ = stream_of(std::move(ends.b));
  Buffer head;
  head.append("head", 4);
  EXPECT_THROW(channel_->send(OutFrame::spliced(std::move(head), 2, Bytes(std::string(90000, 'b')))),
               LimitExceeded);
  Buffer full;  // filled to the end: header and trailer go as pieces of their own
  full.ensure_writable(85000);
  full.append(std::string(full.writable_bytes(), 'f'));
  full.prepend("12345678", 8);
  EXPECT_THROW(channel_->send(OutFrame(std::move(full))), LimitExceeded);
  EXPECT_FALSE(channel_->closed());
  EXPECT_EQ(channel_->stats().frames_out, 0u);
  EXPECT_EQ(channel_->stream().write_buffer_size(), 0u);
  channel_->send(OutFrame::copied("after"));
  Bytes wire = run(peer_read(peer_.get(), 5 + kFrameOverhead));
  EXPECT_EQ(wire.view(), encode_frame("after").view());
}

TEST_F(ChannelTest, FramesOfOneTurnLeaveInOneWrite) {
  make(ChannelOptions{.compress = false});
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    const std::string p = "frame " + std::to_string(i);
    channel_->send(OutFrame::copied(p));
    expected += encode_frame(p).view();
  }
  Bytes wire = run(peer_read(peer_.get(), expected.size()));
  EXPECT_EQ(wire.view(), expected);
  EXPECT_EQ(probe_->writes(), 1u);
}

TEST_F(ChannelTest, SendingAnEmptyPayloadIsAUsageError) {
  make();
  EXPECT_THROW(channel_->send(OutFrame::copied(std::string_view())), UsageError);
  EXPECT_THROW(channel_->send(OutFrame(Buffer())), UsageError);
  EXPECT_EQ(channel_->stats().frames_out, 0u);
}

TEST_F(ChannelTest, SmallFramesAroundTheGatherLimitMatchEncodeFrame) {
  // Frames of up to BufferedStream::kCoalesceLimit wire bytes are gathered into the tail chunk,
  // larger ones go through a Buffer of their own; the bytes are the same either way.
  make(ChannelOptions{.compress = false});
  std::mt19937_64 rng(34);
  std::string expected;
  const std::size_t edge = BufferedStream::kCoalesceLimit - kFrameOverhead;
  for (std::size_t n :
       {std::size_t{1}, std::size_t{20}, std::size_t{80}, edge - 1, edge, edge + 1, std::size_t{5000}}) {
    const std::string p = random_text(rng, n);
    channel_->send(OutFrame::copied(p));
    expected += encode_frame(p, channel_->options()).view();
  }
  Bytes wire = run(peer_read(peer_.get(), expected.size()));
  EXPECT_TRUE(wire.view() == expected);
  EXPECT_EQ(probe_->writes(), 1u);
  EXPECT_EQ(channel_->stats().wire_bytes_out, expected.size());
}

// ------------------------------------------------------------------- the one send API

TEST_F(ChannelTest, EveryKindOfOutFrameIsOneFrameOfItsPayload) {
  std::mt19937_64 rng(35);
  for (bool compress : {false, true}) {
    make(ChannelOptions{.compress = compress});
    const std::string small = random_text(rng, 40);
    const std::string large = random_text(rng, 80000, 8);  // compressed when compression is on
    const std::string head_text = random_text(rng, 30);
    const std::string joined = head_text.substr(0, 12) + large + head_text.substr(12);

    OutFrame copied = OutFrame::copied(small);
    EXPECT_EQ(copied.size(), small.size());
    Buffer b;
    b.append(large);
    OutFrame owned(std::move(b));
    EXPECT_EQ(owned.size(), large.size());
    Buffer head;
    head.append(head_text);
    OutFrame spliced = OutFrame::spliced(std::move(head), 12, Bytes(large));
    EXPECT_EQ(spliced.size(), joined.size());

    channel_->send(std::move(copied));
    channel_->send(std::move(owned));
    channel_->send(std::move(spliced));
    const std::string expected = std::string(encode_frame(small, channel_->options()).view()) +
                                 std::string(encode_frame(large, channel_->options()).view()) +
                                 std::string(encode_frame(joined, channel_->options()).view());
    Bytes wire = run(peer_read(peer_.get(), expected.size()));
    EXPECT_TRUE(wire.view() == expected) << "compress=" << compress;
    const ChannelStats st = channel_->stats();
    EXPECT_EQ(st.frames_out, 3u);
    EXPECT_EQ(st.payload_bytes_out, small.size() + large.size() + joined.size());
    EXPECT_EQ(st.spliced_out, compress ? 0u : 1u);  // compressed: joined first
    EXPECT_EQ(st.compressed_out, compress ? 2u : 0u);
  }
}

TEST_F(ChannelTest, ACopiedFrameIsCopiedDuringSend) {
  // The frame refers to the caller's bytes until send() returns, no longer: changing them
  // afterwards (before the frame leaves) changes nothing on the wire.
  for (std::size_t n : {std::size_t{100}, std::size_t{5000}}) {  // gathered, or a Buffer of its own
    make(ChannelOptions{.compress = false});
    std::string text(n, 'a');
    channel_->send(OutFrame::copied(text));
    std::fill(text.begin(), text.end(), 'z');
    Bytes wire = run(peer_read(peer_.get(), n + kFrameOverhead));
    EXPECT_EQ(wire.view(), encode_frame(std::string(n, 'a'), channel_->options()).view()) << n;
  }
}

// ------------------------------------------------------------------- the flush rule

TEST_F(ChannelTest, WithoutHoldsFramesLeaveAtTheEndOfTheLoopIteration) {
  make(ChannelOptions{.compress = false});
  for (int i = 0; i < 3; ++i) channel_->send(OutFrame::copied("frame " + std::to_string(i)));
  EXPECT_EQ(probe_->writes(), 0u) << "send() wrote at once";
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(probe_->writes(), 1u);
  EXPECT_EQ(channel_->stream().write_buffer_size(), 0u);
}

TEST_F(ChannelTest, TheLastHoldReleasedWritesAtOnce) {
  make(ChannelOptions{.compress = false});
  Channel::FlushHold a(*channel_);
  Channel::FlushHold b(*channel_);
  EXPECT_EQ(channel_->flush_holds(), 2u);
  channel_->send(OutFrame::copied("first"));
  a.release();
  EXPECT_FALSE(a.holding());
  EXPECT_EQ(channel_->flush_holds(), 1u);
  EXPECT_EQ(probe_->writes(), 0u) << "written while another producer still held the flush";
  channel_->send(OutFrame::copied("second"));
  b.release();  // the last one: both frames now, in one write, outside any loop iteration
  EXPECT_EQ(channel_->flush_holds(), 0u);
  EXPECT_EQ(probe_->writes(), 1u);
  b.release();  // released already: nothing more
  a.release();
  EXPECT_EQ(channel_->flush_holds(), 0u);
  const std::string expected =
      std::string(encode_frame("first").view()) + std::string(encode_frame("second").view());
  Bytes wire = run(peer_read(peer_.get(), expected.size()));
  EXPECT_EQ(wire.view(), expected);
  EXPECT_EQ(probe_->writes(), 1u);
}

TEST_F(ChannelTest, AHoldNeverDelaysAFramePastItsLoopIteration) {
  make(ChannelOptions{.compress = false});
  Channel::FlushHold h(*channel_);
  channel_->send(OutFrame::copied("held"));
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(probe_->writes(), 1u) << "the end of the iteration wrote nothing while a hold was held";
  h.release();  // nothing queued: no write
  EXPECT_EQ(probe_->writes(), 1u);
}

TEST_F(ChannelTest, FlushHoldsMoveAndReleaseOnce) {
  make(ChannelOptions{.compress = false});
  {
    Channel::FlushHold a(*channel_);
    Channel::FlushHold moved(std::move(a));
    EXPECT_FALSE(a.holding());
    EXPECT_TRUE(moved.holding());
    EXPECT_EQ(channel_->flush_holds(), 1u);
    Channel::FlushHold none;
    EXPECT_FALSE(none.holding());
    none.hold(*channel_);
    none.hold(*channel_);  // holding it already: still one hold
    EXPECT_EQ(channel_->flush_holds(), 2u);
    none = std::move(moved);  // lets go of its own, takes the other
    EXPECT_EQ(channel_->flush_holds(), 1u);
    channel_->send(OutFrame::copied("x"));
    EXPECT_EQ(probe_->writes(), 0u);
  }  // the last one destroyed: released, so written now
  EXPECT_EQ(channel_->flush_holds(), 0u);
  EXPECT_EQ(probe_->writes(), 1u);
}

// ------------------------------------------------------------------- receiving

TEST_P(ChannelRecvTest, NothingBufferedIsNullopt) {
  make();
  EXPECT_FALSE(channel_->peek());
  channel_->consume();  // nothing peeked: a no-op
  EXPECT_EQ(channel_->stats().frames_in, 0u);
}

TEST_P(ChannelRecvTest, FramesTrickledOneByteAtATime) {
  make({}, /*max_read_chunk=*/1);
  std::mt19937_64 rng(31);
  const std::vector<std::string> payloads = {"tiny", random_text(rng, 6000, 3), random_text(rng, 200),
                                             random_text(rng, 6000, 3), "tiny"};
  std::string wire;
  for (const auto& p : payloads) wire += encode_frame(p).view();
  run(peer_write(peer_.get(), wire, false));
  // The first three peeked in place, the last two (compressed, raw) by recv().
  auto got = run(peek_n(channel_.get(), 3));
  auto rest = run(recv_n(channel_.get(), 2));
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_EQ(got, payloads);
  EXPECT_GE(probe_->reads(), wire.size());
  const ChannelStats s = channel_->stats();
  EXPECT_EQ(s.frames_in, 5u);
  EXPECT_EQ(s.compressed_in, 2u);
  EXPECT_EQ(s.wire_bytes_in, wire.size());
  std::size_t payload_bytes = 0;
  for (const auto& p : payloads) payload_bytes += p.size();
  EXPECT_EQ(s.payload_bytes_in, payload_bytes);
  EXPECT_TRUE(channel_->stream().buffer().empty());
}

TEST_P(ChannelRecvTest, WaitsUseTryReadWhenTheTransportHasIt) {
  make({}, 7);  // seven bytes per read: frames arrive over many reads and wake-ups
  std::string wire;
  std::vector<std::string> want;
  for (int i = 0; i < 20; ++i) {
    want.push_back("message " + std::to_string(i) + std::string(static_cast<std::size_t>(i) * 13, 'x'));
    wire += raw_frame(0, want.back());
  }
  testing::Background writer(loop_);
  writer.spawn(peer_write(peer_.get(), wire, false));
  auto got = run(peek_n(channel_.get(), want.size()));
  EXPECT_EQ(got, want);
  EXPECT_GE(probe_->reads(), wire.size() / 7);
  if (GetParam()) {
    EXPECT_EQ(probe_->task_reads(), 0u) << "every read was a try_read: no transport read task";
  } else {
    EXPECT_EQ(probe_->task_reads(), probe_->reads());
  }
  run(writer.wait());
}

TEST_P(ChannelRecvTest, CoalescedFramesComeFromOneReadInPlace) {
  make();
  std::mt19937_64 rng(32);
  std::vector<std::string> payloads;
  std::string wire;
  for (int i = 0; i < 100; ++i) {
    payloads.push_back(random_text(rng, 1 + rng() % 200));
    wire += raw_frame(0, payloads.back());
  }
  payloads.push_back(random_text(rng, 3500, 4));  // one compressed among them
  wire += raw_frame(1, reference_compress(payloads.back(), 1));
  ASSERT_LT(wire.size(), StreamOptions{}.read_chunk_size);
  run(peer_write(peer_.get(), wire, false));
  Bytes first = run(recv_one(channel_.get()));
  EXPECT_EQ(first.view(), payloads[0]);
  // Everything else is already buffered: the rest comes without another transport read,
  // half by recv(), half peeked in place.
  Buffer& buf = channel_->stream().buffer();
  EXPECT_EQ(buf.readable_bytes(), wire.size() - payloads[0].size() - kFrameOverhead);
  EXPECT_EQ(probe_->reads(), 1u);
  auto by_recv = run(recv_n(channel_.get(), 49));
  EXPECT_EQ(by_recv, std::vector<std::string>(payloads.begin() + 1, payloads.begin() + 50));
  for (std::size_t i = 50; i < payloads.size(); ++i) {
    auto p = channel_->peek();
    ASSERT_TRUE(p) << i;
    EXPECT_EQ(str(*p), payloads[i]);
    if (i < 100) {
      // A raw payload is the stream's own bytes, just past the frame header.
      EXPECT_EQ(p->data(), buf.peek() + kFrameHeaderSize) << i;
    } else {
      EXPECT_FALSE(p->data() >= buf.peek() && p->data() < buf.peek() + buf.readable_bytes())
          << "an inflated payload lives in the decoder, not the stream buffer";
    }
    channel_->consume();
  }
  EXPECT_FALSE(channel_->peek());
  EXPECT_EQ(probe_->reads(), 1u);
  EXPECT_TRUE(buf.empty());
}

TEST_P(ChannelRecvTest, PeekingAgainShowsTheSameFrameCountedOnce) {
  make();
  run(peer_write(peer_.get(), raw_frame(0, "one") + raw_frame(0, "two"), false));
  run(wait_one(channel_.get()));
  auto a = channel_->peek();
  auto b = channel_->peek();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(str(*a), "one");
  EXPECT_EQ(a->data(), b->data());
  EXPECT_EQ(channel_->stats().frames_in, 1u);
  run(wait_one(channel_.get()));  // a frame is peeked: completes at once
  EXPECT_EQ(channel_->stats().frames_in, 1u);
  // recv() takes the peeked frame, then the next.
  Bytes one = run(channel_->recv());
  EXPECT_EQ(one.view(), "one");
  Bytes two = run(channel_->recv());  // already buffered: no wait
  EXPECT_EQ(two.view(), "two");
  EXPECT_EQ(channel_->stats().frames_in, 2u);
}

TEST_P(ChannelRecvTest, CompressedViewStaysValidUntilConsume) {
  make();
  std::mt19937_64 rng(33);
  const std::string z = random_text(rng, 20000, 4);
  const std::string zwire = std::string(encode_frame(z).view());
  run(peer_write(peer_.get(), zwire, false));
  run(wait_one(channel_.get()));
  auto p = channel_->peek();
  ASSERT_TRUE(p);
  const std::uint8_t* at = p->data();
  // The stream buffers a lot more behind it (its buffer grows and moves); the inflated view
  // does not live there and is unaffected.
  const std::string more =
      std::string(encode_frame(std::string(50000, 'm'), ChannelOptions{.compress = false}).view());
  run(peer_write(peer_.get(), more, false));
  run(fill_more(&channel_->stream(), zwire.size() + more.size()));
  EXPECT_EQ(str(*p), z);
  auto again = channel_->peek();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->data(), at) << "not inflated a second time";
  channel_->consume();
  auto next = channel_->peek();
  ASSERT_TRUE(next);
  EXPECT_EQ(str(*next), std::string(50000, 'm'));
  channel_->consume();
}

TEST_P(ChannelRecvTest, RawViewIsRepointedAfterTheBufferMoved) {
  make();
  run(peer_write(peer_.get(), raw_frame(0, "first"), false));
  run(wait_one(channel_.get()));
  auto p = channel_->peek();
  ASSERT_TRUE(p);
  EXPECT_EQ(str(*p), "first");
  // More data arrives and the stream's buffer grows (reallocates): peek again for a valid view.
  const std::string big = raw_frame(0, std::string(200000, 'b'));
  peer_->write(std::string_view(big));
  run(fill_more(&channel_->stream(), channel_->stream().buffer().readable_bytes() + big.size()));
  auto q = channel_->peek();
  ASSERT_TRUE(q);
  EXPECT_EQ(str(*q), "first");
  EXPECT_EQ(q->data(), channel_->stream().buffer().peek() + kFrameHeaderSize);
  channel_->consume();
  auto r = channel_->peek();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->size(), 200000u);
  channel_->consume();
}

TEST_P(ChannelRecvTest, EmptyFramesAreSkipped) {
  make();
  const std::string wire = raw_frame(0, "") + raw_frame(1, reference_compress("", 1)) + raw_frame(0, "x") +
                           raw_frame(0, "y") + raw_frame(0, "");
  run(peer_write(peer_.get(), wire, false));
  EXPECT_EQ(run(recv_one(channel_.get())).view(), "x");
  auto got = run(peek_n(channel_.get(), 1));
  EXPECT_EQ(got, std::vector<std::string>{"y"});
  EXPECT_FALSE(channel_->peek());  // the trailing empty frame is skipped too
  EXPECT_EQ(channel_->stats().frames_in, 5u);
  EXPECT_EQ(channel_->stats().empty_frames_in, 3u);
  EXPECT_TRUE(channel_->stream().buffer().empty());
}

TEST_P(ChannelRecvTest, CleanEofBetweenFramesIsDisconnected) {
  make();
  run(peer_write(peer_.get(), raw_frame(0, "last"), true));
  auto got = run(peek_n(channel_.get(), 1));
  EXPECT_EQ(got, std::vector<std::string>{"last"});
  const std::string what = run(wait_fails<Disconnected>(channel_.get()));
  EXPECT_EQ(what, "connection closed by peer");
  EXPECT_EQ(run(recv_fails<Disconnected>(channel_.get())), what);
  EXPECT_FALSE(channel_->stream().closed()) << "left open: its owner closes it";
}

TEST_P(ChannelRecvTest, EofInsideAFrameIsATruncatedFrame) {
  for (std::size_t cut : {std::size_t{3}, std::size_t{5}, std::size_t{50}, std::size_t{105}}) {
    make();
    const std::string frame = raw_frame(0, std::string(100, 'z'));
    ASSERT_EQ(frame.size(), 106u);
    run(peer_write(peer_.get(), frame.substr(0, cut), true));
    EXPECT_FALSE(channel_->peek());
    const std::string what = run(wait_fails<Disconnected>(channel_.get()));
    EXPECT_NE(what.find("truncated frame: " + std::to_string(cut) + " of"), std::string::npos) << what;
    EXPECT_EQ(run(recv_fails<Disconnected>(channel_.get())), what);
    EXPECT_EQ(channel_->stream().buffer().readable_bytes(), cut) << "the partial frame stays buffered";
  }
}

TEST_P(ChannelRecvTest, OversizeFrameIsAProtocolErrorThatClosesTheStream) {
  ChannelOptions opts;
  opts.max_frame_size = 1 << 20;
  make(opts);
  // An oversize header followed by bytes that must never be read as a frame.
  const std::string wire = header((1 << 20) + 1, 0) + raw_frame(0, "after");
  run(peer_write(peer_.get(), wire, false));
  const std::string what = run(wait_fails<ProtocolError>(channel_.get()));
  EXPECT_NE(what.find("max_frame_size"), std::string::npos) << what;
  EXPECT_TRUE(channel_->closed());
  EXPECT_TRUE(channel_->stream().closed());
  EXPECT_TRUE(channel_->stream().error() != nullptr);
  EXPECT_EQ(channel_->error(), what);
  // Later calls report the closed channel with the cause.
  EXPECT_THROW((void)channel_->peek(), StreamClosed);
  channel_->consume();  // harmless
  const std::string again = run(wait_fails<StreamClosed>(channel_.get()));
  EXPECT_NE(again.find("max_frame_size"), std::string::npos) << again;
  const std::string by_recv = run(recv_fails<StreamClosed>(channel_.get()));
  EXPECT_NE(by_recv.find("max_frame_size"), std::string::npos) << by_recv;
  EXPECT_THROW(channel_->send(OutFrame::copied("x")), StreamClosed);
  // The peer sees the connection end.
  Bytes rest = run(peer_read_all(peer_.get()));
  EXPECT_TRUE(rest.empty());
}

TEST_P(ChannelRecvTest, BadFlagOrTrailerClosesTheStream) {
  struct Case {
    std::string wire;
    const char* word;
  };
  const Case cases[] = {{header(3, 9) + "abc\n", "flag"}, {raw_frame(0, "abc", 'Z'), "trailer"}};
  for (const Case& c : cases) {
    make();
    run(peer_write(peer_.get(), raw_frame(0, "before") + c.wire + raw_frame(0, "after"), false));
    EXPECT_EQ(run(recv_one(channel_.get())).view(), "before");
    const std::string what = run(recv_fails<ProtocolError>(channel_.get()));
    EXPECT_NE(what.find(c.word), std::string::npos) << what;
    EXPECT_TRUE(channel_->stream().closed());
    run(recv_fails<StreamClosed>(channel_.get()));
  }
}

TEST_P(ChannelRecvTest, CorruptZlibClosesTheStream) {
  make();
  const std::string wire = raw_frame(1, "definitely not a zlib stream") + raw_frame(0, "after");
  run(peer_write(peer_.get(), wire, false));
  const std::string what = run(recv_fails<ProtocolError>(channel_.get()));
  EXPECT_NE(what.find("zlib"), std::string::npos) << what;
  EXPECT_TRUE(channel_->stream().closed());
  run(recv_fails<StreamClosed>(channel_.get()));
}

TEST_P(ChannelRecvTest, BadFrameAlreadyBufferedFailsPeek) {
  make();
  const std::string wire = raw_frame(0, "good") + raw_frame(1, "not a zlib stream") + raw_frame(0, "after");
  run(peer_write(peer_.get(), wire, false));
  auto got = run(peek_n(channel_.get(), 1));
  EXPECT_EQ(got, std::vector<std::string>{"good"});
  EXPECT_THROW((void)channel_->peek(), ProtocolError);
  EXPECT_TRUE(channel_->stream().closed());
  EXPECT_THROW((void)channel_->peek(), StreamClosed);
  run(recv_fails<StreamClosed>(channel_.get()));
}

TEST_P(ChannelRecvTest, ZlibBombIsAProtocolErrorThatClosesTheStream) {
  ChannelOptions opts;
  opts.max_payload_size = 1 << 20;
  make(opts);
  const std::string bomb = zero_bomb(1 << 20, 64);     // 64 MiB of zeros
  ASSERT_GT(bomb.size(), std::size_t{64} << 10);       // more than the pipe holds:
  peer_->write(std::string_view(raw_frame(1, bomb)));  // flushed while the channel reads
  const std::string what = run(recv_fails<ProtocolError>(channel_.get()));
  EXPECT_NE(what.find("max_payload_size"), std::string::npos) << what;
  EXPECT_TRUE(channel_->stream().closed());
}

TEST_P(ChannelRecvTest, ConsumeAfterCloseIsHarmless) {
  make();
  run(peer_write(peer_.get(), raw_frame(0, "a") + raw_frame(0, "b"), false));
  run(wait_one(channel_.get()));
  auto p = channel_->peek();
  ASSERT_TRUE(p);
  channel_->close();
  channel_->consume();  // forgotten, nothing touched
  channel_->consume();
  EXPECT_THROW((void)channel_->peek(), StreamClosed);
  EXPECT_THROW(run(wait_one(channel_.get())), StreamClosed);
}

Task<std::size_t> serve_closing_on(Channel* ch, std::string stop) {
  // The RPC layer's order: decode (read the span), consume, act; acting may close the channel.
  std::size_t handled = 0;
  for (;;) {
    std::optional<std::span<const std::uint8_t>> p = ch->peek();
    if (!p) {
      co_await ch->wait();
      continue;
    }
    const std::string msg = str(*p);
    ch->consume();
    ++handled;
    if (msg == stop) {
      ch->close();
      co_return handled;
    }
  }
}

TEST_P(ChannelRecvTest, ActingMayCloseTheChannel) {
  make();
  run(peer_write(peer_.get(), raw_frame(0, "1") + raw_frame(0, "quit") + raw_frame(0, "never"), false));
  EXPECT_EQ(run(serve_closing_on(channel_.get(), "quit")), 2u);
  EXPECT_TRUE(channel_->closed());
}

TEST_P(ChannelRecvTest, CancelledWaitOrRecvKeepsThePartialFrame) {
  make();
  const std::string frame = std::string(encode_frame(std::string(300, 'q')).view());
  run(peer_write(peer_.get(), frame.substr(0, 100), false));
  // The frame cannot complete, so the timeout fires and destroys (cancels) the pending wait,
  // then the pending recv.
  EXPECT_THROW(run(wait_one(channel_.get()), std::chrono::milliseconds(20)), Timeout);
  EXPECT_EQ(channel_->stream().buffer().readable_bytes(), 100u);
  EXPECT_THROW(run(recv_one(channel_.get()), std::chrono::milliseconds(20)), Timeout);
  EXPECT_EQ(channel_->stream().buffer().readable_bytes(), 100u);
  run(peer_write(peer_.get(), frame.substr(100), false));
  Bytes got = run(recv_one(channel_.get()));
  EXPECT_EQ(got.view(), std::string(300, 'q'));
}

INSTANTIATE_TEST_SUITE_P(Reads, ChannelRecvTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "TryRead" : "ReadOnly";
                         });

// ------------------------------------------------------------------- both ways

TEST_F(ChannelTest, ConcurrentSendWhileRecvPending) {
  auto ends = testing::mem_pipe_ends(loop_);
  Channel a(stream_of(std::move(ends.a)));
  Channel b(stream_of(std::move(ends.b)));
  const std::string from_a = "from a";
  const std::string from_b = "from b";
  auto both = run(gather(exchange_one(&a, &from_a), exchange_one(&b, &from_b)));
  EXPECT_EQ(std::get<0>(both).view(), from_b);
  EXPECT_EQ(std::get<1>(both).view(), from_a);
}

struct BigCase {
  std::size_t size;
  bool compress;
  int alphabet;  // 256: random bytes (zlib cannot shrink them), 4: compressible
};

class ChannelBigTest : public ChannelTest, public ::testing::WithParamInterface<BigCase> {};

TEST_P(ChannelBigTest, BothWaysAtOnce) {
  const BigCase c = GetParam();
  ChannelOptions opts;
  opts.compress = c.compress;
  auto ends = testing::mem_pipe_ends(loop_);
  Channel a(stream_of(std::move(ends.a)), opts);
  Channel b(stream_of(std::move(ends.b)), opts);
  std::mt19937_64 rng(c.size + c.alphabet);
  const std::string pa = random_text(rng, c.size, c.alphabet);
  const std::string pb = random_text(rng, c.size, c.alphabet);
  auto both = run(gather(exchange_one(&a, &pa), exchange_one(&b, &pb)), std::chrono::seconds(60));
  EXPECT_TRUE(std::get<0>(both).view() == pb);
  EXPECT_TRUE(std::get<1>(both).view() == pa);
  EXPECT_EQ(a.stats().compressed_out, c.compress ? 1u : 0u);
  EXPECT_EQ(b.stats().compressed_in, c.compress ? 1u : 0u);
  if (c.compress && c.alphabet == 4) {
    EXPECT_LT(a.stats().wire_bytes_out, c.size / 2);
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, ChannelBigTest,
                         ::testing::Values(BigCase{1 << 20, false, 256}, BigCase{1 << 20, true, 256},
                                           BigCase{1 << 20, true, 4}, BigCase{32 << 20, false, 256},
                                           BigCase{32 << 20, true, 256}, BigCase{32 << 20, true, 4}));

TEST_F(ChannelTest, OverASocketpair) {
  auto ends = testing::socketpair_ends(loop_);
  Channel a(stream_of(std::move(ends.a)));
  Channel b(stream_of(std::move(ends.b)));
  std::mt19937_64 rng(17);
  const std::string big = random_text(rng, 3 << 20, 16);
  const std::string small = "small";
  auto both = run(gather(exchange_one(&a, &big), exchange_one(&b, &small)));
  EXPECT_EQ(std::get<0>(both).view(), small);
  EXPECT_TRUE(std::get<1>(both).view() == big);
  a.close();
  const std::string what = run(recv_fails<Disconnected>(&b));
  EXPECT_EQ(what, "connection closed by peer");
}

Task<void> echo_peeked(Channel* ch, std::size_t n) {
  for (std::size_t i = 0; i < n;) {
    std::optional<std::span<const std::uint8_t>> p = ch->peek();
    if (!p) {
      co_await ch->wait();
      continue;
    }
    ch->send(OutFrame::copied(
        std::string_view(reinterpret_cast<const char*>(p->data()), p->size())));  // from the view
    ch->consume();
    ++i;
  }
  co_await ch->drain();
}

Task<std::size_t> echo_counted(Channel* ch, std::size_t n) {
  co_await echo_peeked(ch, n);
  co_return n;
}

Task<std::vector<std::string>> ping(Channel* ch, const std::vector<std::string>* msgs) {
  std::vector<std::string> out;
  for (const std::string& m : *msgs) {
    ch->send(OutFrame::copied(m));
    std::vector<std::string> one = co_await peek_n(ch, 1);
    out.push_back(one[0]);
  }
  co_return out;
}

TEST_F(ChannelTest, EchoFromThePeekedViewOverASocketpair) {
  auto ends = testing::socketpair_ends(loop_);
  Channel a(stream_of(std::move(ends.a)));
  Channel b(stream_of(std::move(ends.b)));
  std::mt19937_64 rng(35);
  std::vector<std::string> msgs;
  for (int i = 0; i < 50; ++i) msgs.push_back(random_text(rng, 20 + rng() % 60));
  msgs.push_back(random_text(rng, 5000, 4));       // compressed
  msgs.push_back(random_text(rng, 3 << 20, 256));  // 3 MiB, compressed (incompressible)
  msgs.push_back("last");
  auto both = run(gather(ping(&a, &msgs), echo_counted(&b, msgs.size())));
  EXPECT_EQ(std::get<0>(both), msgs);
  EXPECT_EQ(std::get<1>(both), msgs.size());
  a.close();
  const std::string what = run(wait_fails<Disconnected>(&b));
  EXPECT_EQ(what, "connection closed by peer");
}

}  // namespace
}  // namespace tether
