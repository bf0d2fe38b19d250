// BufferedStream::try_fill / readable(): reading without a coroutine (Transport::try_read) and
// waiting on the transport's readiness slot, over the in-memory pipe, a socketpair and a
// transport without try_read.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <memory>
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

using Poll = BufferedStream::FillPoll;

/// A mem pipe end that hides try_read (reads only through read()): the forwarding base as is.
using ReadOnlyTransport = ForwardingTransport;

class TryFillTest : public LoopTest {
 protected:
  void TearDown() override {
    a_.reset();
    b_.reset();
    LoopTest::TearDown();
  }
  void make(MemPipeOptions o = {}) {
    MemPipePair p = make_mem_pipe(loop_, o);
    a_ = std::make_unique<BufferedStream>(std::move(p.first));
    b_ = std::make_unique<BufferedStream>(std::move(p.second));
  }
  std::unique_ptr<BufferedStream> a_;  // reads
  std::unique_ptr<BufferedStream> b_;  // writes
};

/// try_fill(n), waiting on readable() while it would block: what a framing layer does.
Task<int> fill_by_polling(BufferedStream* s, std::size_t n) {
  int waits = 0;
  for (;;) {
    const Poll p = s->try_fill(n);
    if (p == Poll::kReady) co_return waits;
    EXPECT_EQ(p, Poll::kWouldBlock);
    co_await s->readable();
    ++waits;
  }
}

Task<void> wait_readable(BufferedStream* s) { co_await s->readable(); }

TEST_F(TryFillTest, ReadsWhatIsThereWithoutSuspending) {
  make();
  EXPECT_EQ(a_->try_fill(1), Poll::kWouldBlock);
  b_->write(std::string_view("hello world"));
  loop_.run_once(std::chrono::milliseconds(0));  // the write-out
  EXPECT_EQ(a_->try_fill(5), Poll::kReady);
  EXPECT_EQ(a_->buffer().readable_bytes(), 11u) << "read a whole chunk, not just 5 bytes";
  EXPECT_EQ(a_->try_fill(11), Poll::kReady);
  EXPECT_EQ(a_->try_fill(12), Poll::kWouldBlock);
  EXPECT_EQ(a_->stats().read_calls, 1u);
  EXPECT_EQ(std::string(a_->buffer().view()), "hello world");
}

TEST_F(TryFillTest, WaitsOnReadableUntilEnoughArrives) {
  MemPipeOptions o;
  o.max_read_chunk = 3;  // three bytes per read
  make(o);
  Background writer(loop_);
  writer.spawn([](BufferedStream* b) -> Task<void> {
    for (int i = 0; i < 10; ++i) {
      b->write(std::string_view("0123456789").substr(static_cast<std::size_t>(i), 1));
      co_await yield_now();
    }
  }(b_.get()));
  const int waits = run(fill_by_polling(a_.get(), 10));
  EXPECT_GE(waits, 1) << "bytes trickled in: the reader waited";
  EXPECT_EQ(std::string(a_->buffer().view()), "0123456789");
  run(writer.wait());
}

TEST_F(TryFillTest, EofIsIncompleteReadAndKeepsTheBytes) {
  make();
  b_->write(std::string_view("abc"));
  b_->write_eof();
  loop_.run_once(std::chrono::milliseconds(0));
  try {
    a_->try_fill(10);
    ADD_FAILURE() << "no IncompleteRead";
  } catch (const IncompleteRead& e) {
    EXPECT_EQ(std::string(e.partial().view()), "abc");
  }
  EXPECT_EQ(a_->buffer().readable_bytes(), 3u) << "left buffered, as fill() leaves them";
  EXPECT_EQ(a_->try_fill(3), Poll::kReady);
}

TEST_F(TryFillTest, CloseWakesAPendingReadableAndLaterTriesThrow) {
  make();
  EXPECT_EQ(a_->try_fill(1), Poll::kWouldBlock);
  Background waiter(loop_);
  bool woke = false;
  waiter.spawn([](BufferedStream* s, bool* w) -> Task<void> {
    co_await s->readable();
    *w = true;
  }(a_.get(), &woke));
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_FALSE(woke);
  a_->close();
  run(waiter.wait());
  EXPECT_TRUE(woke);
  EXPECT_THROW(a_->try_fill(1), StreamClosed);
}

TEST_F(TryFillTest, ACancelledWaitFreesTheStreamForTheNextRead) {
  make();
  EXPECT_EQ(a_->try_fill(1), Poll::kWouldBlock);
  EXPECT_THROW(run(wait_readable(a_.get()), std::chrono::milliseconds(20)), Timeout);
  b_->write(std::string_view("after"));
  const Bytes got = run(a_->read_exactly(5));  // no UsageError: the cancelled wait let go
  EXPECT_EQ(std::string(got.view()), "after");
}

TEST_F(TryFillTest, ReadableBesideAnotherReadIsAUsageError) {
  make();
  Background reader(loop_);
  reader.spawn([](BufferedStream* s) -> Task<void> {
    Bytes b = co_await s->read_exactly(2);
    EXPECT_EQ(std::string(b.view()), "ok");
  }(a_.get()));
  loop_.run_once(std::chrono::milliseconds(0));  // the reader is waiting now
  EXPECT_THROW(run(wait_readable(a_.get())), UsageError);
  EXPECT_THROW(a_->try_fill(1), UsageError);
  b_->write(std::string_view("ok"));
  run(reader.wait());
}

TEST_F(TryFillTest, LimitsAsFill) {
  StreamOptions opts;
  opts.max_buffer_size = 64;
  MemPipePair p = make_mem_pipe(loop_);
  a_ = std::make_unique<BufferedStream>(std::move(p.first), opts);
  b_ = std::make_unique<BufferedStream>(std::move(p.second));
  EXPECT_THROW(a_->try_fill(65), LimitExceeded);
}

TEST_F(TryFillTest, ATransportWithoutTryReadIsUnsupported) {
  MemPipePair p = make_mem_pipe(loop_);
  a_ = std::make_unique<BufferedStream>(std::make_unique<ReadOnlyTransport>(std::move(p.first)));
  b_ = std::make_unique<BufferedStream>(std::move(p.second));
  EXPECT_EQ(a_->try_fill(1), Poll::kUnsupported);
  b_->write(std::string_view("x"));
  run(a_->fill(1));  // fill() still works
  EXPECT_EQ(a_->try_fill(1), Poll::kReady) << "buffered bytes need no transport";
  run(wait_readable(a_.get()));  // no readiness slot: completes at once
}

/// An FdTransport that counts try_read() calls and forwards its readiness.
class CountingReads final : public ForwardingTransport {
 public:
  using ForwardingTransport::ForwardingTransport;
  std::size_t try_read(Buffer& buf, std::size_t max_bytes) override {
    ++try_reads;
    return inner().try_read(buf, max_bytes);
  }
  detail::WaitSlot* read_ready_slot() noexcept override { return inner().read_ready_slot(); }
  [[nodiscard]] bool read_would_block() const noexcept override { return inner().read_would_block(); }
  int try_reads = 0;
};

TEST_F(LoopTest, TryFillSkipsTheReadWhileNothingNewWasReported) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  auto fd = std::make_unique<FdTransport>(loop_, Fd(sv[0]));
  FdTransport* raw = fd.get();
  auto counting = std::make_unique<CountingReads>(std::move(fd));
  CountingReads* probe = counting.get();
  BufferedStream a(std::move(counting));
  BufferedStream b(std::make_unique<FdTransport>(loop_, Fd(sv[1])));
  EXPECT_FALSE(raw->read_would_block()) << "a fresh transport tries first";
  b.write(std::string_view("abc"));
  loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(a.try_fill(3), BufferedStream::FillPoll::kReady);
  EXPECT_EQ(probe->try_reads, 1);
  EXPECT_TRUE(raw->read_would_block()) << "a short read proved the kernel buffer empty";
  EXPECT_EQ(a.try_fill(10), BufferedStream::FillPoll::kWouldBlock);
  EXPECT_EQ(probe->try_reads, 1) << "no read tried: nothing was reported since";
  b.write(std::string_view("defghij"));
  loop_.run_once(std::chrono::milliseconds(0));    // b's write-out
  const int waits = run(fill_by_polling(&a, 10));  // readiness arrives through the loop
  EXPECT_LE(waits, 1);
  EXPECT_EQ(std::string(a.buffer().view()), "abcdefghij");
  EXPECT_EQ(probe->try_reads, 2);
  raw->close();
  EXPECT_FALSE(raw->read_would_block()) << "closed: a try reports it";
  EXPECT_THROW((void)a.try_fill(11), StreamClosed);
}

TEST_F(LoopTest, TryFillOverASocketpair) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  BufferedStream a(std::make_unique<FdTransport>(loop_, Fd(sv[0])));
  BufferedStream b(std::make_unique<FdTransport>(loop_, Fd(sv[1])));
  const std::string data(1 << 20, 'k');
  b.write(std::string_view(data));
  const int waits = run(fill_by_polling(&a, data.size()));
  EXPECT_GE(waits, 1) << "1 MiB does not fit the socket buffer at once";
  EXPECT_EQ(a.buffer().readable_bytes(), data.size());
  EXPECT_TRUE(std::string(a.buffer().view()) == data);
  b.close();
  a.buffer().retrieve_all();
  EXPECT_THROW(run(fill_by_polling(&a, 1)), IncompleteRead);
}

}  // namespace
}  // namespace tether::testing
