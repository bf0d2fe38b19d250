// FdTransport and the in-memory pipe below BufferedStream: readiness tracking, one-way fds,
// SIGPIPE, shutdown, close while waiting, back-pressure.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <string>

#include "stream_test_util.hpp"
#include "test_util.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/sync.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/detail/wait_slot.hpp"
#include "tether/stream/fd_transport.hpp"
#include "tether/stream/mem_pipe.hpp"

namespace tether::testing {
namespace {

using TransportTest = LoopTest;

iovec iov_of(const std::string& s) {
  return iovec{const_cast<char*>(s.data()), s.size()};
}

Task<void> roundtrip(Transport& a, Transport& b) {
  const std::string msg = "hello transport";
  std::array<iovec, 1> v{iov_of(msg)};
  const std::size_t n = co_await a.write(v);
  EXPECT_EQ(n, msg.size());
  Buffer buf;
  while (buf.readable_bytes() < msg.size()) {
    const std::size_t got = co_await b.read(buf, 4096);
    TETHER_CO_ASSERT(got > 0);
  }
  EXPECT_EQ(buf.view(), msg);
}

TEST_F(TransportTest, SocketpairAndPipesCarryBytes) {
  auto sp = make_socketpair_transports(loop_);
  EXPECT_TRUE(sp.first->is_socket());
  run(roundtrip(*sp.first, *sp.second));
  run(roundtrip(*sp.second, *sp.first));
  auto pp = make_pipe_transports(loop_);
  EXPECT_FALSE(pp.first->is_socket());
  EXPECT_NE(pp.first->fd(), pp.first->write_fd());
  run(roundtrip(*pp.first, *pp.second));
  run(roundtrip(*pp.second, *pp.first));
}

Task<void> write_to_closed_pipe(FdTransport& w) {
  const std::string msg(1000, 'p');
  std::array<iovec, 1> v{iov_of(msg)};
  auto e = co_await capture<Disconnected>(w.write(v));
  EXPECT_TRUE(e.has_value()) << "EPIPE must surface as Disconnected (and not kill the process)";
}

TEST_F(TransportTest, WritingToAPipeWithoutReaderIsDisconnectedNotSigpipe) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ::close(p[0]);
  FdTransport w(loop_, Fd(p[1]), "pipe-w");
  run(write_to_closed_pipe(w));
}

Task<void> one_way(FdTransport& r, FdTransport& w) {
  std::array<iovec, 1> v{iovec{const_cast<char*>("abc"), 3}};
  auto bad_write = co_await capture<StreamClosed>(r.write(v));
  EXPECT_TRUE(bad_write.has_value()) << "a read-only pipe end cannot write";
  Buffer b;
  auto bad_read = co_await capture<StreamClosed>(w.read(b, 10));
  EXPECT_TRUE(bad_read.has_value()) << "a write-only pipe end cannot read";
  const std::size_t n = co_await w.write(v);
  EXPECT_EQ(n, 3u);
  w.shutdown_write();  // closes the write-only end: EOF for the reader
  EXPECT_TRUE(w.closed());
  std::size_t total = 0;
  for (;;) {
    const std::size_t got = co_await r.read(b, 10);
    if (got == 0) break;
    total += got;
  }
  EXPECT_EQ(total, 3u);
  EXPECT_EQ(b.view(), "abc");
}

TEST_F(TransportTest, SinglePipeEndsAreOneWay) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  FdTransport r(loop_, Fd(p[0]));
  FdTransport w(loop_, Fd(p[1]));
  run(one_way(r, w));
}

Task<void> half_close(FdTransport& a, FdTransport& b) {
  a.shutdown_write();
  a.shutdown_write();  // idempotent
  std::array<iovec, 1> v{iovec{const_cast<char*>("x"), 1}};
  auto after = co_await capture<StreamClosed>(a.write(v));
  EXPECT_TRUE(after.has_value());
  Buffer buf;
  const std::size_t eof = co_await b.read(buf, 16);
  EXPECT_EQ(eof, 0u);
  const std::size_t n = co_await b.write(v);  // the other direction still works
  EXPECT_EQ(n, 1u);
  const std::size_t got = co_await a.read(buf, 16);
  EXPECT_EQ(got, 1u);
}

TEST_F(TransportTest, ShutdownWriteKeepsReading) {
  auto sp = make_socketpair_transports(loop_);
  run(half_close(*sp.first, *sp.second));
  auto pp = make_pipe_transports(loop_);
  run(half_close(*pp.first, *pp.second));
}

Task<void> close_while_reading(Transport& t) {
  Buffer buf;
  Task<std::size_t> r = t.read(buf, 100);
  auto h = r.handle();
  h.promise().set_continuation(std::noop_coroutine());
  detail::resume(h);
  co_await yield_turns(2);
  EXPECT_FALSE(r.done());
  t.close();
  auto done = [&] { return r.done(); };
  const bool finished = co_await turns_until(done);
  TETHER_CO_ASSERT(finished);
  EXPECT_THROW((void)r.take_result(), StreamClosed);
  auto again = co_await capture<StreamClosed>(t.read(buf, 1));
  EXPECT_TRUE(again.has_value());
}

TEST_F(TransportTest, CloseWakesPendingReadWithStreamClosed) {
  auto sp = make_socketpair_transports(loop_);
  run(close_while_reading(*sp.first));
  EXPECT_EQ(sp.first->fd(), -1);
  auto mp = make_mem_pipe(loop_);
  run(close_while_reading(*mp.first));
}

Task<void> readiness(FdTransport& a, FdTransport& b) {
  co_await b.wait_writable();  // a fresh socket is writable
  b.mark_read_blocked();
  EXPECT_FALSE(b.readable());
  Task<void> w = b.wait_readable();
  auto h = w.handle();
  h.promise().set_continuation(std::noop_coroutine());
  detail::resume(h);
  co_await yield_turns(2);
  EXPECT_FALSE(w.done()) << "no data yet";
  std::array<iovec, 1> v{iovec{const_cast<char*>("!"), 1}};
  const std::size_t n = co_await a.write(v);
  EXPECT_EQ(n, 1u);
  auto done = [&] { return w.done(); };
  const bool ok = co_await turns_until(done);
  EXPECT_TRUE(ok);
  EXPECT_TRUE(b.readable());
}

TEST_F(TransportTest, WaitReadableFollowsEdges) {
  auto sp = make_socketpair_transports(loop_);
  run(readiness(*sp.first, *sp.second));
}

Task<void> short_write_then_wait(FdTransport& a, FdTransport& b) {
  // Fill the socket: the write returns short, then one more write must wait for the reader.
  const std::string big(8 << 20, 'w');
  std::array<iovec, 1> v{iov_of(big)};
  const std::size_t first = co_await a.write(v);
  EXPECT_GT(first, 0u);
  EXPECT_LT(first, big.size());
  EXPECT_FALSE(a.writable()) << "a short write clears the writable flag";
  Task<std::size_t> second = a.write(v);
  auto h = second.handle();
  h.promise().set_continuation(std::noop_coroutine());
  detail::resume(h);
  co_await yield_turns(2);
  EXPECT_FALSE(second.done());
  Buffer sink;
  std::size_t drained = 0;
  while (!second.done()) {
    const std::size_t got = co_await b.read(sink, 1 << 20);
    drained += got;
    sink.retrieve_all();
  }
  EXPECT_GT(second.take_result(), 0u);
  EXPECT_GT(drained, 0u);
}

TEST_F(TransportTest, ShortWriteWaitsForWritability) {
  auto sp = make_socketpair_transports(loop_);
  run(short_write_then_wait(*sp.first, *sp.second));
}

Task<void> mem_backpressure(MemPipeEnd& a, MemPipeEnd& b) {
  const std::string data(100, 'm');
  std::array<iovec, 1> v{iov_of(data)};
  const std::size_t n1 = co_await a.write(v);
  EXPECT_EQ(n1, 16u) << "a write takes at most the free room";
  EXPECT_EQ(b.available(), 16u);
  Task<std::size_t> blocked = a.write(v);
  auto h = blocked.handle();
  h.promise().set_continuation(std::noop_coroutine());
  detail::resume(h);
  co_await yield_turns(2);
  EXPECT_FALSE(blocked.done()) << "the writer waits while the peer holds `capacity` unread bytes";
  Buffer buf;
  const std::size_t r1 = co_await b.read(buf, 10);
  EXPECT_EQ(r1, 10u);
  auto done = [&] { return blocked.done(); };
  const bool ok = co_await turns_until(done);
  TETHER_CO_ASSERT(ok);
  EXPECT_EQ(blocked.take_result(), 10u);
  a.abort();
  std::size_t total = r1;
  for (;;) {
    auto r = co_await capture<Disconnected>(b.read(buf, 100));
    if (r) break;  // the reset arrives after the bytes written before it
    total = buf.readable_bytes();
  }
  EXPECT_EQ(total, 26u);
  auto w = co_await capture<Disconnected>(b.write(v));
  EXPECT_TRUE(w.has_value()) << "writing to an aborted peer is a broken pipe";
}

TEST_F(TransportTest, MemPipeBackpressureAndReset) {
  auto mp = make_mem_pipe(loop_, 16);
  run(mem_backpressure(*mp.first, *mp.second));
}

Task<void> mem_peer_destroyed(std::unique_ptr<MemPipeEnd> a, MemPipeEnd& b) {
  const std::string s = "bye";
  std::array<iovec, 1> v{iov_of(s)};
  co_await a->write(v);
  a.reset();  // destroying an end closes it: EOF after its bytes
  Buffer buf;
  std::size_t got = co_await b.read(buf, 100);
  EXPECT_EQ(got, 3u);
  got = co_await b.read(buf, 100);
  EXPECT_EQ(got, 0u);
}

TEST_F(TransportTest, MemPipeEndDestroyedIsEof) {
  auto mp = make_mem_pipe(loop_);
  run(mem_peer_destroyed(std::move(mp.first), *mp.second));
  EXPECT_THROW(make_mem_pipe(loop_, 0), UsageError);
}

}  // namespace
}  // namespace tether::testing

namespace tether::testing {
namespace {

Task<void> wait_slot_once(detail::WaitSlot& slot, int* woke) {
  co_await slot.wait();
  ++*woke;
}

Task<void> wait_list_once(detail::WaitList& q, int* woke) {
  co_await q.wait();
  ++*woke;
}

template <class T>
void start_by_hand(Task<T>& t) {
  t.handle().promise().set_continuation(std::noop_coroutine());
  detail::resume(t.handle());
}

// A waiter woken (queued on the ready queue) and cancelled before the queue runs must not be
// resumed: that is the with_timeout-expires-in-the-same-turn case. ASan catches a violation.
TEST_F(TransportTest, WokenThenCancelledWaiterIsNeverResumed) {
  detail::WaitSlot slot(loop_);
  detail::WaitList queue(&loop_);
  int woke = 0;
  Task<void> a = wait_slot_once(slot, &woke);
  Task<void> b = wait_list_once(queue, &woke);
  Task<void> c = wait_list_once(queue, &woke);
  start_by_hand(a);
  start_by_hand(b);
  start_by_hand(c);
  EXPECT_TRUE(slot.waiting());
  EXPECT_TRUE(slot.notify());
  EXPECT_FALSE(slot.notify()) << "one wake-up per wait";
  EXPECT_EQ(queue.wake_all(), 2u);
  a.reset();
  b.reset();
  for (int i = 0; i < 3; ++i) loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(woke, 1) << "only the task that was not cancelled runs";
  EXPECT_TRUE(c.done());
}

// The stream's waits are broadcast waits on the loop's WaitList: a waiter woken and cancelled
// after its list is gone (a stream closed, then destroyed, before the waiting task is) drops
// its resumption without touching the list. ASan catches a violation.
TEST_F(TransportTest, WokenWaiterCancelledAfterItsListIsGoneIsNeverResumed) {
  int woke = 0;
  auto queue = std::make_unique<detail::WaitList>(&loop_);
  Task<void> a = wait_list_once(*queue, &woke);
  Task<void> b = wait_list_once(*queue, &woke);
  start_by_hand(a);
  start_by_hand(b);
  EXPECT_EQ(queue->size(), 2u);
  EXPECT_EQ(queue->wake_all(), 2u);
  queue.reset();
  a.reset();
  for (int i = 0; i < 3; ++i) loop_.run_once(std::chrono::milliseconds(0));
  EXPECT_EQ(woke, 1);
  EXPECT_TRUE(b.done());
}

TEST_F(TransportTest, StreamDestroyedOrReadCancelledAfterCloseWokeTheReader) {
  auto sp = make_socketpair_transports(loop_);
  auto s = std::make_unique<BufferedStream>(std::move(sp.first));
  Task<Bytes> r = s->read_exactly(10);
  start_by_hand(r);
  EXPECT_TRUE(s->reading());
  s->close();  // queues the reader's wake-up...
  r.reset();   // ...which is cancelled before it runs
  EXPECT_FALSE(s->reading());
  Task<Bytes> r2 = s->read(1);
  start_by_hand(r2);
  EXPECT_TRUE(r2.done());
  EXPECT_THROW((void)r2.take_result(), StreamClosed);
  r2.reset();
  // A stream destroyed while a read waits: the read can still be destroyed afterwards.
  auto mp = make_mem_pipe(loop_);
  auto s2 = std::make_unique<BufferedStream>(std::move(mp.first));
  Task<Bytes> r3 = s2->read(1);
  start_by_hand(r3);
  s2.reset();
  r3.reset();
  for (int i = 0; i < 3; ++i) loop_.run_once(std::chrono::milliseconds(0));
}

}  // namespace
}  // namespace tether::testing
