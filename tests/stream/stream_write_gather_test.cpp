// BufferedStream::write_gather (several pieces appended in one call) and the reuse of small
// write chunks and read buffers through the thread's buffer pool, over the in-memory pipe.
#include <gtest/gtest.h>
#include <sys/uio.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "forwarding_transport.hpp"
#include "stream_test_util.hpp"
#include "test_util.hpp"
#include "tether/base/error.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/mem_pipe.hpp"
#include "tether/stream/transport.hpp"

namespace tether::testing {
namespace {

/// Forwards to a mem pipe end, recording the iovecs of every write().
class RecordingTransport final : public ForwardingTransport {
 public:
  using ForwardingTransport::ForwardingTransport;

  Task<std::size_t> write(std::span<const iovec> chunks) override {
    ++writes_;
    for (const iovec& c : chunks) chunks_.push_back(c);
    return inner().write(chunks);
  }

  [[nodiscard]] std::size_t writes() const noexcept { return writes_; }
  [[nodiscard]] const std::vector<iovec>& chunks() const noexcept { return chunks_; }

 private:
  std::size_t writes_ = 0;
  std::vector<iovec> chunks_;
};

class WriteGatherTest : public LoopTest {
 protected:
  void TearDown() override {
    tx_.reset();
    rx_.reset();
    LoopTest::TearDown();
  }

  void make(StreamOptions tx_opts = {}) {
    MemPipePair p = make_mem_pipe(loop_, std::size_t{1} << 20);
    auto rec = std::make_unique<RecordingTransport>(std::move(p.first));
    rec_ = rec.get();
    tx_ = std::make_unique<BufferedStream>(std::move(rec), tx_opts);
    rx_ = std::make_unique<BufferedStream>(std::move(p.second));
  }

  std::unique_ptr<BufferedStream> tx_;
  std::unique_ptr<BufferedStream> rx_;
  RecordingTransport* rec_ = nullptr;  // owned by tx_
};

Task<Bytes> read_n(BufferedStream* s, std::size_t n) {
  Bytes b = co_await s->read_exactly(n);
  co_return b;
}

Task<void> flush_of(BufferedStream* s) { co_await s->flush(); }

void gather(BufferedStream& s, std::initializer_list<std::string_view> pieces) {
  s.write_gather(std::span<const std::string_view>(pieces.begin(), pieces.size()));
}

TEST_F(WriteGatherTest, QueuesTheConcatenationWithTheSameAccounting) {
  make();
  gather(*tx_, {"head", "", "payload", "!"});
  EXPECT_EQ(tx_->write_buffer_size(), 12u);
  EXPECT_TRUE(tx_->writing());
  gather(*tx_, {"", ""});  // nothing to queue
  gather(*tx_, {});
  EXPECT_EQ(tx_->write_buffer_size(), 12u);
  EXPECT_EQ(rec_->writes(), 0u) << "queued, not written, until the end of the turn";
  Bytes got = run(read_n(rx_.get(), 12));
  EXPECT_EQ(got.view(), "headpayload!");
  EXPECT_EQ(tx_->stats().bytes_written, 12u);
  EXPECT_EQ(tx_->write_buffer_size(), 0u);
}

TEST_F(WriteGatherTest, PiecesOfEverySmallSizeArriveIntact) {
  make();
  std::string expected;
  std::vector<std::string> pieces;
  for (std::size_t n = 0; n <= 40; ++n) pieces.push_back(std::string(n, static_cast<char>('a' + n % 26)));
  for (std::size_t i = 0; i + 2 < pieces.size(); ++i) {
    const std::string_view v[] = {pieces[i], pieces[i + 1], pieces[i + 2]};
    tx_->write_gather(v);
    expected += pieces[i] + pieces[i + 1] + pieces[i + 2];
  }
  Bytes got = run(read_n(rx_.get(), expected.size()));
  EXPECT_EQ(got.view(), expected);
}

TEST_F(WriteGatherTest, CoalescesWithNeighbouringWritesIntoOneChunk) {
  make();
  tx_->write(std::string_view("<"));
  gather(*tx_, {"a", "bb", "ccc"});
  tx_->write(Bytes(std::string_view("dd")));
  gather(*tx_, {"e"});
  tx_->write(std::string_view(">"));
  Bytes got = run(read_n(rx_.get(), 11));
  EXPECT_EQ(got.view(), "<abbcccdde>");
  EXPECT_EQ(rec_->writes(), 1u);
  ASSERT_EQ(rec_->chunks().size(), 1u) << "one contiguous tail chunk";
  EXPECT_EQ(rec_->chunks()[0].iov_len, 11u);
}

TEST_F(WriteGatherTest, KeepsItsOrderAmongLargeWrites) {
  make();
  const std::string big(10000, 'B');
  const std::string huge(BufferedStream::kCoalesceLimit + 1, 'H');  // a gather past the limit
  std::string expected;
  tx_->write(Bytes(std::string_view(big)));
  expected += big;
  gather(*tx_, {"1", "22"});
  expected += "122";
  gather(*tx_, {"[", huge, "]"});
  expected += "[" + huge + "]";
  tx_->write(std::string_view("tail"));
  expected += "tail";
  gather(*tx_, {"x", "yz"});
  expected += "xyz";
  EXPECT_EQ(tx_->write_buffer_size(), expected.size());
  Bytes got = run(read_n(rx_.get(), expected.size()));
  EXPECT_TRUE(got.view() == expected);
  EXPECT_EQ(rec_->writes(), 1u);
  // big | "122" | "[huge]" (its own chunk) | "tailxyz"
  ASSERT_EQ(rec_->chunks().size(), 4u);
  EXPECT_EQ(rec_->chunks()[1].iov_len, 3u);
  EXPECT_EQ(rec_->chunks()[2].iov_len, huge.size() + 2);
  EXPECT_EQ(rec_->chunks()[3].iov_len, 7u);
}

TEST_F(WriteGatherTest, TotalAtTheCoalesceLimitIsCopiedIntoTheTail) {
  make();
  const std::string half(BufferedStream::kCoalesceLimit / 2, 'h');
  tx_->write(std::string_view("a"));
  gather(*tx_, {half, std::string_view(half).substr(1)});  // limit - 1 bytes
  gather(*tx_, {half, half});                              // exactly the limit
  const std::size_t total = 1 + 2 * BufferedStream::kCoalesceLimit - 1;
  Bytes got = run(read_n(rx_.get(), total));
  EXPECT_EQ(got.size(), total);
  ASSERT_EQ(rec_->chunks().size(), 1u) << "both gathers coalesced with the first write";
}

TEST_F(WriteGatherTest, LimitIsAllOrNothing) {
  StreamOptions o;
  o.max_write_buffer_size = 10;
  make(o);
  gather(*tx_, {"12345", "678"});
  EXPECT_THROW(gather(*tx_, {"ab", "c"}), LimitExceeded);
  EXPECT_EQ(tx_->write_buffer_size(), 8u) << "nothing of the refused gather was queued";
  gather(*tx_, {"9", "0"});  // exactly at the limit
  EXPECT_EQ(tx_->write_buffer_size(), 10u);
  EXPECT_THROW(gather(*tx_, {"x"}), LimitExceeded);
  const std::string big(100, 'x');
  EXPECT_THROW(gather(*tx_, {big}), LimitExceeded);
  Bytes got = run(read_n(rx_.get(), 10));
  EXPECT_EQ(got.view(), "1234567890");
  gather(*tx_, {"again"});
  EXPECT_EQ(tx_->write_buffer_size(), 5u);
  run(flush_of(tx_.get()));
}

TEST_F(WriteGatherTest, ErrorsAfterCloseAndAfterWriteEof) {
  make();
  tx_->write_eof();
  EXPECT_THROW(gather(*tx_, {"x"}), UsageError);
  make();
  tx_->close();
  EXPECT_THROW(gather(*tx_, {"x", "y"}), StreamClosed);
  EXPECT_THROW(gather(*tx_, {""}), StreamClosed) << "as write(string_view) of nothing";
  EXPECT_EQ(tx_->write_buffer_size(), 0u);
  make();
  tx_->close(std::make_exception_ptr(IoError(5, "boom")));
  try {
    gather(*tx_, {"x"});
    ADD_FAILURE() << "gather after close(reason) accepted";
  } catch (const StreamClosed& e) {
    EXPECT_NE(std::string(e.what()).find("boom"), std::string::npos) << e.what();
  }
}

// ------------------------------------------------------------------ buffer reuse

Task<void> exchanges(BufferedStream* tx, BufferedStream* rx, int n) {
  for (int i = 0; i < n; ++i) {
    tx->write(std::string_view("request-request-request-request"));
    co_await tx->flush();
    Bytes got = co_await rx->read_exactly(31);
    EXPECT_EQ(got.size(), 31u);
  }
}

TEST_F(WriteGatherTest, WritesAfterAFlushReuseTheChunkStorage) {
  make();
  run(exchanges(tx_.get(), rx_.get(), 1));  // warm: at most one allocation per side
  const StreamStats tx0 = tx_->stats();
  const StreamStats rx0 = rx_->stats();
  EXPECT_LE(tx0.buffers_allocated, 1u);
  run(exchanges(tx_.get(), rx_.get(), 20));
  const StreamStats tx1 = tx_->stats();
  const StreamStats rx1 = rx_->stats();
  // Every write chunk after the first took the storage the previous flush released.
  EXPECT_EQ(tx1.buffers_allocated, tx0.buffers_allocated);
  EXPECT_EQ(tx1.buffers_reused - tx0.buffers_reused, 20u);
  // Every read_exactly() released its emptied read buffer and the next read took it back.
  EXPECT_EQ(rx1.buffers_allocated, rx0.buffers_allocated);
  EXPECT_EQ(rx1.buffers_reused - rx0.buffers_reused, 20u);
}

Task<void> write_all_then_flush(std::vector<std::unique_ptr<BufferedStream>>* streams) {
  for (auto& s : *streams) s->write(std::string_view("x"));
  for (auto& s : *streams) co_await s->flush();
}

TEST_F(WriteGatherTest, ThePoolIsBounded) {
  // 20 streams each flush a chunk at once: the pool keeps at most 8 of them, so the next
  // round of 20 chunks reuses at most 8 and allocates the rest.
  std::vector<std::unique_ptr<BufferedStream>> tx;
  std::vector<std::unique_ptr<BufferedStream>> rx;
  for (int i = 0; i < 20; ++i) {
    MemPipePair p = make_mem_pipe(loop_);
    tx.push_back(std::make_unique<BufferedStream>(std::move(p.first)));
    rx.push_back(std::make_unique<BufferedStream>(std::move(p.second)));
  }
  run(write_all_then_flush(&tx));
  std::uint64_t reused_before = 0;
  for (auto& s : tx) reused_before += s->stats().buffers_reused;
  run(write_all_then_flush(&tx));
  std::uint64_t reused = 0;
  std::uint64_t allocated = 0;
  for (auto& s : tx) {
    reused += s->stats().buffers_reused;
    allocated += s->stats().buffers_allocated;
  }
  EXPECT_EQ(reused - reused_before, 8u);
  EXPECT_EQ(reused + allocated, 40u);
  tx.clear();
  rx.clear();
}

}  // namespace
}  // namespace tether::testing
