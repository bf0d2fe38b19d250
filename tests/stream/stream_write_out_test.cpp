// BufferedStream's end-of-iteration write-out: what a loop iteration queued goes out through
// Transport::try_write without a coroutine while the transport has room; the rest through the
// flusher (Transport::write). Over a scripted wrapper of the in-memory pipe and a socketpair.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>

#include "forwarding_transport.hpp"
#include "stream_test_util.hpp"
#include "test_util.hpp"
#include "tether/base/error.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/fd_transport.hpp"
#include "tether/stream/mem_pipe.hpp"
#include "tether/stream/transport.hpp"

namespace tether::testing {
namespace {

/// A mem pipe end whose try_write takes at most `budget` bytes per call (0: always
/// kWouldBlock), or throws once `fail` is set; counts both kinds of write.
class ScriptedTransport final : public ForwardingTransport {
 public:
  using ForwardingTransport::ForwardingTransport;

  Task<std::size_t> write(std::span<const iovec> chunks) override {
    ++writes;
    return inner().write(chunks);
  }
  std::size_t try_write(std::span<const iovec> chunks) override {
    ++try_writes;
    if (fail) throw Disconnected("scripted: connection reset");
    std::size_t left = budget;
    std::size_t cut = 0;
    iovec part[64];
    for (const iovec& c : chunks) {
      if (left == 0 || cut == 64) break;
      part[cut] = c;
      part[cut].iov_len = std::min(left, c.iov_len);
      left -= part[cut].iov_len;
      ++cut;
    }
    if (budget == 0) return kWouldBlock;
    return inner().try_write(std::span<const iovec>(part, cut));
  }
  void shutdown_write() override {
    ++shutdowns;
    inner().shutdown_write();
  }

  std::size_t budget = std::size_t(-1);
  bool fail = false;
  int writes = 0;
  int try_writes = 0;
  int shutdowns = 0;
};

class WriteOutTest : public LoopTest {
 protected:
  void TearDown() override {
    tx_.reset();
    rx_.reset();
    LoopTest::TearDown();
  }

  void make(std::size_t pipe_capacity = std::size_t{1} << 20) {
    MemPipePair p = make_mem_pipe(loop_, pipe_capacity);
    auto t = std::make_unique<ScriptedTransport>(std::move(p.first));
    tr_ = t.get();
    tx_ = std::make_unique<BufferedStream>(std::move(t));
    rx_ = std::make_unique<BufferedStream>(std::move(p.second));
  }

  std::unique_ptr<BufferedStream> tx_;
  std::unique_ptr<BufferedStream> rx_;
  ScriptedTransport* tr_ = nullptr;  // owned by tx_
};

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return s;
}

TEST_F(WriteOutTest, OneIterationsWritesGoOutInOneTryWriteAtItsEnd) {
  make();
  tx_->write(std::string_view("alpha "));
  tx_->write(std::string_view("beta "));
  tx_->write(Bytes(pattern(5000, 1)));  // a moved-in chunk among the copied ones
  EXPECT_EQ(tr_->try_writes, 0) << "nothing is written before the iteration ends";
  EXPECT_EQ(tx_->write_buffer_size(), 11u + 5000u);
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(tr_->try_writes, 1);
  EXPECT_EQ(tr_->writes, 0) << "no flusher coroutine when the transport takes everything";
  EXPECT_EQ(tx_->write_buffer_size(), 0u);
  EXPECT_EQ(tx_->stats().write_calls, 1u);
  const Bytes got = run(rx_->read_exactly(11 + 5000));
  EXPECT_EQ(std::string(got.view()), "alpha beta " + pattern(5000, 1));
}

TEST_F(WriteOutTest, WhatTryWriteLeavesGoesThroughTheFlusherInOrder) {
  make();
  tr_->budget = 1000;  // every try_write takes 1000 bytes at most
  const std::string data = pattern(300000, 2);
  for (std::size_t at = 0; at < data.size(); at += 30000)
    tx_->write(std::string_view(data).substr(at, 30000));
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_GE(tr_->try_writes, 1);
  EXPECT_LT(tx_->write_buffer_size(), data.size()) << "try_write wrote its part at once";
  const Bytes got = run(rx_->read_exactly(data.size()));
  EXPECT_EQ(std::string(got.view()), data);
  EXPECT_EQ(tx_->write_buffer_size(), 0u);
}

TEST_F(WriteOutTest, ATransportWithNoRoomHandsEverythingToTheFlusher) {
  make();
  tr_->budget = 0;
  tx_->write(std::string_view("queued while the transport is full"));
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(tr_->try_writes, 1);
  EXPECT_EQ(tr_->writes, 1) << "the flusher took over";
  const Bytes got = run(rx_->read_exactly(34));
  EXPECT_EQ(std::string(got.view()), "queued while the transport is full");
}

TEST_F(WriteOutTest, AFullPipeMakesTheFlusherWaitForTheReader) {
  make(4096);  // the peer holds at most 4 KiB unread
  const std::string data = pattern(100000, 3);
  tx_->write(std::string_view(data));
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(tx_->write_buffer_size(), data.size() - 4096) << "try_write filled the pipe";
  EXPECT_EQ(tr_->writes, 1) << "the flusher waits for room";
  const Bytes got = run(rx_->read_exactly(data.size()));
  EXPECT_EQ(std::string(got.view()), data);
}

TEST_F(WriteOutTest, TryWriteFailureClosesTheStreamWithItsError) {
  make();
  tr_->fail = true;
  tx_->write(std::string_view("lost"));
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_TRUE(tx_->closed());
  EXPECT_EQ(tx_->write_buffer_size(), 0u) << "the queue is dropped with the connection";
  try {
    tx_->write(std::string_view("more"));
    ADD_FAILURE() << "write after the failure did not throw";
  } catch (const StreamClosed& e) {
    EXPECT_NE(std::string(e.what()).find("connection reset"), std::string::npos) << e.what();
  }
  auto caught = run(capture<Disconnected>(tx_->drain()));
  ASSERT_TRUE(caught.has_value()) << "drain() rethrows the write error";
  EXPECT_NE(std::string(caught->what()).find("connection reset"), std::string::npos) << caught->what();
}

TEST_F(WriteOutTest, DrainWritesAtOnceAndWithdrawsTheEndOfIterationWrite) {
  make();
  auto body = [&]() -> Task<void> {
    tx_->write(std::string_view("now"));
    EXPECT_EQ(tr_->try_writes, 0);
    co_await tx_->drain();
    EXPECT_EQ(tr_->try_writes, 1) << "drain() wrote within the same iteration";
    EXPECT_EQ(tx_->write_buffer_size(), 0u);
  };
  run(body());
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(tr_->try_writes, 1) << "no second write-out for the withdrawn request";
  const Bytes got = run(rx_->read_exactly(3));
  EXPECT_EQ(std::string(got.view()), "now");
}

TEST_F(WriteOutTest, WriteNowWritesAtOnceAndWithdrawsTheEndOfIterationWrite) {
  make();
  tx_->write_now();  // nothing queued: nothing to do
  EXPECT_EQ(tr_->try_writes, 0);
  tx_->write(std::string_view("reply "));
  tx_->write(std::string_view("now"));
  tx_->write_now();
  EXPECT_EQ(tr_->try_writes, 1) << "write_now() wrote outside any loop iteration";
  EXPECT_EQ(tx_->write_buffer_size(), 0u);
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(tr_->try_writes, 1) << "no second write-out for the withdrawn request";
  const Bytes got = run(rx_->read_exactly(9));
  EXPECT_EQ(std::string(got.view()), "reply now");
}

TEST_F(WriteOutTest, WriteNowLeavesWhatTheTransportRefusesToTheFlusher) {
  make(4);  // the pipe holds 4 bytes until the reader takes them
  tx_->write(std::string_view("0123456789"));
  tx_->write_now();
  EXPECT_GE(tr_->try_writes, 1);
  EXPECT_EQ(tx_->write_buffer_size(), 6u) << "the first 4 bytes went at once";
  const Bytes got = run(rx_->read_exactly(10));
  EXPECT_EQ(std::string(got.view()), "0123456789");
  EXPECT_EQ(tx_->write_buffer_size(), 0u);
  tx_->close();
  tx_->write_now();  // closed: a no-op, not an error
}

TEST_F(WriteOutTest, WriteEofAndCloseFollowTheQueuedBytes) {
  make();
  tx_->write(std::string_view("last words"));
  tx_->write_eof();
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(tr_->shutdowns, 1) << "EOF sent right after the write-out emptied the queue";
  EXPECT_EQ(tr_->writes, 0);
  const Bytes got = run(rx_->read_until_close());
  EXPECT_EQ(std::string(got.view()), "last words");
}

TEST_F(WriteOutTest, DestroyingTheStreamWithAWriteOutPendingIsSafe) {
  make();
  tx_->write(std::string_view("never sent"));
  tx_.reset();  // the end-of-iteration request goes with the stream
  loop_.run_once(std::chrono::milliseconds(0));
  const Bytes got = run(rx_->read_until_close());
  EXPECT_EQ(got.size(), 0u) << "destroying a stream drops its unsent bytes";
}

TEST_F(WriteOutTest, GracefulCloseWritesOutThenClosesTheTransport) {
  make();
  tx_->write(std::string_view("goodbye"));
  tx_->close();
  EXPECT_EQ(tr_->try_writes, 1) << "close() writes at once";
  run(tx_->wait_closed());
  const Bytes got = run(rx_->read_until_close());
  EXPECT_EQ(std::string(got.view()), "goodbye");
}

// The same over a socketpair (FdTransport::try_write): enough data to fill the kernel buffer,
// so both the direct writes and the flusher's waits for EPOLLOUT happen.
TEST_F(LoopTest, SocketpairWriteOutSurvivesAFullKernelBuffer) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  BufferedStream tx(std::make_unique<FdTransport>(loop_, Fd(sv[0])));
  BufferedStream rx(std::make_unique<FdTransport>(loop_, Fd(sv[1])));
  const std::string data = pattern(8 << 20, 4);
  for (std::size_t at = 0; at < data.size(); at += 100000)
    tx.write(std::string_view(data).substr(at, 100000));
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_GT(tx.write_buffer_size(), 0u) << "8 MiB does not fit a socket buffer";
  EXPECT_LT(tx.write_buffer_size(), data.size()) << "the write-out wrote what fitted at once";
  const Bytes got = run(rx.read_exactly(data.size()));
  EXPECT_TRUE(std::string(got.view()) == data);
  run(tx.drain());
  EXPECT_EQ(tx.write_buffer_size(), 0u);
}

}  // namespace
}  // namespace tether::testing
