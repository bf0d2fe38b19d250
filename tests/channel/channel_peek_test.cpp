// Channel's zero-copy receive (try_peek / consume / wait_frame) over in-memory pipes and a
// socketpair: trickled and coalesced frames, compressed and empty frames, EOF, protocol errors,
// the lifetime of the view, and the send path's gathered small frames.

#include <gtest/gtest.h>

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
#include "tether/channel/channel.hpp"
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

/// Parameter: whether the transport offers try_read (the frame-free wait) or only read().
class ChannelPeekTest : public testing::LoopTest, public ::testing::WithParamInterface<bool> {
 protected:
  void TearDown() override {
    channel_.reset();
    peer_.reset();
    LoopTest::TearDown();
  }

  /// A Channel on one end of a mem pipe and a raw BufferedStream peer on the other;
  /// max_read_chunk = 1 delivers one byte per read.
  void make(ChannelOptions opts = {}, std::size_t max_read_chunk = 0) {
    auto ends = testing::mem_pipe_ends(loop_, max_read_chunk);
    auto probe = std::make_unique<ProbeTransport>(std::move(ends.a), GetParam());
    probe_ = probe.get();
    channel_ = std::make_unique<Channel>(stream_of(std::move(probe)), opts);
    peer_ = stream_of(std::move(ends.b));
  }

  std::unique_ptr<Channel> channel_;
  std::unique_ptr<BufferedStream> peer_;
  ProbeTransport* probe_ = nullptr;  // owned by channel_'s stream
};

Task<void> peer_write(BufferedStream* s, std::string data, bool eof) {
  s->write(std::string_view(data));
  co_await s->flush();
  if (eof) s->write_eof();
}

Task<Bytes> peer_read(BufferedStream* s, std::size_t n) {
  Bytes b = co_await s->read_exactly(n);
  co_return b;
}

/// The RPC layer's loop: try_peek(), else wait_frame(); copies each payload, then consume().
Task<std::vector<std::string>> peek_n(Channel* ch, std::size_t n) {
  std::vector<std::string> out;
  while (out.size() < n) {
    std::optional<std::span<const std::uint8_t>> p = ch->try_peek();
    if (!p) {
      co_await ch->wait_frame();
      continue;
    }
    out.push_back(str(*p));
    ch->consume();
  }
  co_return out;
}

/// Waits until a frame is buffered (wait_frame() may complete early, so in a loop).
Task<void> wait_one(Channel* ch) {
  while (!ch->try_peek()) co_await ch->wait_frame();
}

/// Expects wait_frame() to fail with E; returns the message.
template <class E>
Task<std::string> wait_fails(Channel* ch) {
  std::string what;
  try {
    while (!ch->try_peek()) co_await ch->wait_frame();
    ADD_FAILURE() << "a frame arrived";
  } catch (const E& e) {
    what = e.what();
  }
  co_return what;
}

TEST_P(ChannelPeekTest, NothingBufferedIsNullopt) {
  make();
  EXPECT_FALSE(channel_->try_peek());
  channel_->consume();  // nothing peeked: a no-op
  EXPECT_EQ(channel_->stats().frames_in, 0u);
}

TEST_P(ChannelPeekTest, FramesTrickledOneByteAtATime) {
  make({}, /*max_read_chunk=*/1);
  std::mt19937_64 rng(31);
  const std::vector<std::string> payloads = {"tiny", random_text(rng, 6000, 3), random_text(rng, 200)};
  std::string wire;
  for (const auto& p : payloads) wire += encode_frame(p).view();
  run(peer_write(peer_.get(), wire, false));
  auto got = run(peek_n(channel_.get(), payloads.size()));
  EXPECT_EQ(got, payloads);
  EXPECT_GE(probe_->reads(), wire.size());
  const ChannelStats s = channel_->stats();
  EXPECT_EQ(s.frames_in, 3u);
  EXPECT_EQ(s.compressed_in, 1u);
  EXPECT_EQ(s.wire_bytes_in, wire.size());
  EXPECT_EQ(s.payload_bytes_in, payloads[0].size() + payloads[1].size() + payloads[2].size());
  EXPECT_TRUE(channel_->stream().buffer().empty());
}

TEST_P(ChannelPeekTest, WaitsUseTryReadWhenTheTransportHasIt) {
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

TEST_P(ChannelPeekTest, CoalescedFramesArePeekedInPlaceWithoutMoreReads) {
  make();
  std::mt19937_64 rng(32);
  std::vector<std::string> payloads;
  std::string wire;
  for (int i = 0; i < 100; ++i) {
    payloads.push_back(random_text(rng, 1 + rng() % 200));
    wire += raw_frame(0, payloads.back());
  }
  payloads.push_back(random_text(rng, 3500, 4));
  wire += raw_frame(1, reference_compress(payloads.back(), 1));
  run(peer_write(peer_.get(), wire, false));
  run(wait_one(channel_.get()));
  EXPECT_EQ(probe_->reads(), 1u);
  Buffer& buf = channel_->stream().buffer();
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    auto p = channel_->try_peek();
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
  EXPECT_FALSE(channel_->try_peek());
  EXPECT_EQ(probe_->reads(), 1u);
  EXPECT_TRUE(buf.empty());
}

TEST_P(ChannelPeekTest, PeekingAgainShowsTheSameFrameCountedOnce) {
  make();
  run(peer_write(peer_.get(), raw_frame(0, "one") + raw_frame(0, "two"), false));
  run(wait_one(channel_.get()));
  auto a = channel_->try_peek();
  auto b = channel_->try_peek();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(str(*a), "one");
  EXPECT_EQ(a->data(), b->data());
  EXPECT_EQ(channel_->stats().frames_in, 1u);
  run(wait_one(channel_.get()));  // a frame is peeked: completes at once
  EXPECT_EQ(channel_->stats().frames_in, 1u);
  // recv() takes the peeked frame, then the next.
  Bytes one = run(channel_->recv());
  EXPECT_EQ(one.view(), "one");
  auto c = channel_->try_recv();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->view(), "two");
  EXPECT_EQ(channel_->stats().frames_in, 2u);
}

Task<void> fill_more(BufferedStream* s, std::size_t n) { co_await s->fill(n); }

TEST_P(ChannelPeekTest, CompressedViewStaysValidUntilConsume) {
  make();
  std::mt19937_64 rng(33);
  const std::string z = random_text(rng, 20000, 4);
  const std::string zwire = std::string(encode_frame(z).view());
  run(peer_write(peer_.get(), zwire, false));
  run(wait_one(channel_.get()));
  auto p = channel_->try_peek();
  ASSERT_TRUE(p);
  const std::uint8_t* at = p->data();
  // The stream buffers a lot more behind it (its buffer grows and moves); the inflated view
  // does not live there and is unaffected.
  const std::string more =
      std::string(encode_frame(std::string(50000, 'm'), ChannelOptions{.compress = false}).view());
  run(peer_write(peer_.get(), more, false));
  run(fill_more(&channel_->stream(), zwire.size() + more.size()));
  EXPECT_EQ(str(*p), z);
  auto again = channel_->try_peek();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->data(), at) << "not inflated a second time";
  channel_->consume();
  auto next = channel_->try_peek();
  ASSERT_TRUE(next);
  EXPECT_EQ(str(*next), std::string(50000, 'm'));
  channel_->consume();
}

TEST_P(ChannelPeekTest, RawViewIsRepointedAfterTheBufferMoved) {
  make();
  run(peer_write(peer_.get(), raw_frame(0, "first"), false));
  run(wait_one(channel_.get()));
  auto p = channel_->try_peek();
  ASSERT_TRUE(p);
  EXPECT_EQ(str(*p), "first");
  // More data arrives and the stream's buffer grows (reallocates): peek again for a valid view.
  const std::string big = raw_frame(0, std::string(200000, 'b'));
  peer_->write(std::string_view(big));
  run(fill_more(&channel_->stream(), channel_->stream().buffer().readable_bytes() + big.size()));
  auto q = channel_->try_peek();
  ASSERT_TRUE(q);
  EXPECT_EQ(str(*q), "first");
  EXPECT_EQ(q->data(), channel_->stream().buffer().peek() + kFrameHeaderSize);
  channel_->consume();
  auto r = channel_->try_peek();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->size(), 200000u);
  channel_->consume();
}

TEST_P(ChannelPeekTest, EmptyFramesAreSkipped) {
  make();
  const std::string wire =
      raw_frame(0, "") + raw_frame(1, reference_compress("", 1)) + raw_frame(0, "x") + raw_frame(0, "");
  run(peer_write(peer_.get(), wire, false));
  auto got = run(peek_n(channel_.get(), 1));
  EXPECT_EQ(got, std::vector<std::string>{"x"});
  EXPECT_FALSE(channel_->try_peek());  // the trailing empty frame is skipped too
  EXPECT_EQ(channel_->stats().frames_in, 4u);
  EXPECT_EQ(channel_->stats().empty_frames_in, 3u);
  EXPECT_TRUE(channel_->stream().buffer().empty());
}

TEST_P(ChannelPeekTest, CleanEofIsDisconnectedLikeRecv) {
  make();
  run(peer_write(peer_.get(), raw_frame(0, "last"), true));
  auto got = run(peek_n(channel_.get(), 1));
  EXPECT_EQ(got, std::vector<std::string>{"last"});
  const std::string what = run(wait_fails<Disconnected>(channel_.get()));
  EXPECT_EQ(what, "connection closed by peer");
  EXPECT_EQ(run(recv_fails<Disconnected>(channel_.get())), what);
  EXPECT_FALSE(channel_->stream().closed()) << "left open, as recv() leaves it";
}

TEST_P(ChannelPeekTest, EofInsideAFrameIsATruncatedFrameLikeRecv) {
  for (std::size_t cut : {std::size_t{3}, std::size_t{5}, std::size_t{50}, std::size_t{105}}) {
    make();
    const std::string frame = raw_frame(0, std::string(100, 'z'));
    run(peer_write(peer_.get(), frame.substr(0, cut), true));
    EXPECT_FALSE(channel_->try_peek());
    const std::string what = run(wait_fails<Disconnected>(channel_.get()));
    EXPECT_NE(what.find("truncated frame: " + std::to_string(cut) + " of"), std::string::npos) << what;
    EXPECT_EQ(run(recv_fails<Disconnected>(channel_.get())), what);
    EXPECT_EQ(channel_->stream().buffer().readable_bytes(), cut) << "the partial frame stays buffered";
  }
}

TEST_P(ChannelPeekTest, OversizeFrameClosesTheStream) {
  ChannelOptions opts;
  opts.max_frame_size = 1 << 20;
  make(opts);
  const std::string wire = header((1 << 20) + 1, 0) + raw_frame(0, "after");
  run(peer_write(peer_.get(), wire, false));
  const std::string what = run(wait_fails<ProtocolError>(channel_.get()));
  EXPECT_NE(what.find("max_frame_size"), std::string::npos) << what;
  EXPECT_TRUE(channel_->closed());
  EXPECT_TRUE(channel_->stream().closed());
  EXPECT_TRUE(channel_->stream().error() != nullptr);
  EXPECT_EQ(channel_->error(), what);
  EXPECT_THROW((void)channel_->try_peek(), StreamClosed);
  channel_->consume();  // harmless
  const std::string again = run(wait_fails<StreamClosed>(channel_.get()));
  EXPECT_NE(again.find("max_frame_size"), std::string::npos) << again;
}

TEST_P(ChannelPeekTest, BadFrameAlreadyBufferedFailsTryPeek) {
  make();
  const std::string wire = raw_frame(0, "good") + raw_frame(1, "not a zlib stream") + raw_frame(0, "after");
  run(peer_write(peer_.get(), wire, false));
  auto got = run(peek_n(channel_.get(), 1));
  EXPECT_EQ(got, std::vector<std::string>{"good"});
  EXPECT_THROW((void)channel_->try_peek(), ProtocolError);
  EXPECT_TRUE(channel_->stream().closed());
  EXPECT_THROW((void)channel_->try_peek(), StreamClosed);
  EXPECT_THROW((void)channel_->try_recv(), StreamClosed);
}

TEST_P(ChannelPeekTest, ZlibBombClosesTheStream) {
  ChannelOptions opts;
  opts.max_payload_size = 1 << 20;
  make(opts);
  const std::string bomb = zero_bomb(1 << 20, 64);  // 64 MiB of zeros, more than the pipe holds
  peer_->write(std::string_view(raw_frame(1, bomb)));
  const std::string what = run(wait_fails<ProtocolError>(channel_.get()));
  EXPECT_NE(what.find("max_payload_size"), std::string::npos) << what;
  EXPECT_TRUE(channel_->stream().closed());
}

TEST_P(ChannelPeekTest, ConsumeAfterCloseIsHarmless) {
  make();
  run(peer_write(peer_.get(), raw_frame(0, "a") + raw_frame(0, "b"), false));
  run(wait_one(channel_.get()));
  auto p = channel_->try_peek();
  ASSERT_TRUE(p);
  channel_->close();
  channel_->consume();  // forgotten, nothing touched
  channel_->consume();
  EXPECT_THROW((void)channel_->try_peek(), StreamClosed);
  EXPECT_THROW(run(wait_one(channel_.get())), StreamClosed);
}

Task<std::size_t> serve_closing_on(Channel* ch, std::string stop) {
  // The RPC layer's order: decode (read the span), consume, act; acting may close the channel.
  std::size_t handled = 0;
  for (;;) {
    std::optional<std::span<const std::uint8_t>> p = ch->try_peek();
    if (!p) {
      co_await ch->wait_frame();
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

TEST_P(ChannelPeekTest, ActingMayCloseTheChannel) {
  make();
  run(peer_write(peer_.get(), raw_frame(0, "1") + raw_frame(0, "quit") + raw_frame(0, "never"), false));
  EXPECT_EQ(run(serve_closing_on(channel_.get(), "quit")), 2u);
  EXPECT_TRUE(channel_->closed());
}

TEST_P(ChannelPeekTest, CancelledWaitKeepsThePartialFrame) {
  make();
  const std::string frame = std::string(encode_frame(std::string(300, 'q')).view());
  run(peer_write(peer_.get(), frame.substr(0, 100), false));
  EXPECT_THROW(run(wait_one(channel_.get()), std::chrono::milliseconds(20)), Timeout);
  EXPECT_EQ(channel_->stream().buffer().readable_bytes(), 100u);
  run(peer_write(peer_.get(), frame.substr(100), false));
  auto got = run(peek_n(channel_.get(), 1));
  EXPECT_EQ(got, std::vector<std::string>{std::string(300, 'q')});
}

TEST_P(ChannelPeekTest, SmallFramesAroundTheGatherLimitMatchEncodeFrame) {
  // Frames of up to BufferedStream::kCoalesceLimit wire bytes are gathered into the tail chunk,
  // larger ones go through a Buffer of their own; the bytes are the same either way.
  make(ChannelOptions{.compress = false});
  std::mt19937_64 rng(34);
  std::string expected;
  const std::size_t edge = BufferedStream::kCoalesceLimit - kFrameOverhead;
  for (std::size_t n :
       {std::size_t{1}, std::size_t{20}, std::size_t{80}, edge - 1, edge, edge + 1, std::size_t{5000}}) {
    const std::string p = random_text(rng, n);
    channel_->send(p);
    expected += encode_frame(p, channel_->options()).view();
  }
  Bytes wire = run(peer_read(peer_.get(), expected.size()));
  EXPECT_TRUE(wire.view() == expected);
  EXPECT_EQ(probe_->writes(), 1u);
  EXPECT_EQ(channel_->stats().wire_bytes_out, expected.size());
}

Task<void> echo_peeked(Channel* ch, std::size_t n) {
  for (std::size_t i = 0; i < n;) {
    std::optional<std::span<const std::uint8_t>> p = ch->try_peek();
    if (!p) {
      co_await ch->wait_frame();
      continue;
    }
    ch->send(std::string_view(reinterpret_cast<const char*>(p->data()), p->size()));  // from the view
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
    ch->send(m);
    std::vector<std::string> one = co_await peek_n(ch, 1);
    out.push_back(one[0]);
  }
  co_return out;
}

TEST_P(ChannelPeekTest, OverASocketpair) {
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
INSTANTIATE_TEST_SUITE_P(Reads, ChannelPeekTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "TryRead" : "ReadOnly";
                         });

}  // namespace tether
