#pragma once
// The typed stream suite: every BufferedStream behaviour, run over every stream type.
//
// Instantiate it for a factory (see stream_factories.hpp) with
//   INSTANTIATE_TYPED_TEST_SUITE_P(Tcp, StreamSuite, ::testing::Types<MyTcpFactory>,
//                                  tether::testing::FactoryNames);
// A factory may define `static constexpr std::size_t kBulkBytes` to shrink the 64 MiB bulk
// transfer (used for the one-byte-per-read pipe).

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "stream_factories.hpp"
#include "stream_test_util.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/gather.hpp"
#include "tether/loop/time.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "test_util.hpp"

namespace tether::testing {

template <class F>
constexpr std::size_t bulk_bytes() {
  if constexpr (requires { F::kBulkBytes; }) {
    return F::kBulkBytes;
  } else {
    return std::size_t{64} << 20;
  }
}

/// n, or less for factories whose transfers are slow by design (one byte per read).
template <class F>
constexpr std::size_t cap(std::size_t n) {
  return std::min(n, bulk_bytes<F>());
}

struct FactoryNames {
  template <class F>
  static std::string GetName(int) {
    return F::kName;
  }
};

template <class F>
class StreamSuite : public LoopTest {
 protected:
  StreamPair make(StreamOptions a = {}, StreamOptions b = {}) { return run(F::make(loop_, a, b)); }
};

TYPED_TEST_SUITE_P(StreamSuite);

namespace suite {

using std::chrono::milliseconds;

// Writes `data` in pieces of `piece` bytes, flushing each and yielding a turn in between.
inline Task<void> write_slowly(BufferedStream& s, std::string data, std::size_t piece) {
  for (std::size_t i = 0; i < data.size(); i += piece) {
    s.write(std::string_view(data).substr(i, piece));
    co_await s.flush();
    co_await yield_now();
  }
}

inline Task<void> read_basic(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  Bytes none = co_await b.read(0);
  EXPECT_TRUE(none.empty());
  a.write(std::string_view("hello"));
  std::string got;
  while (got.size() < 5) {
    Bytes part = co_await b.read(100);
    TETHER_CO_ASSERT(!part.empty());
    got += part.view();
  }
  EXPECT_EQ(got, "hello");
  a.write(std::string_view("abcdef"));
  co_await a.flush();
  Bytes two = co_await b.read(2);  // at most n
  EXPECT_LE(two.size(), 2u);
  EXPECT_GE(two.size(), 1u);
  a.write_eof();
  Bytes rest = co_await b.read_until_close();
  EXPECT_EQ(std::string(two.view()) + std::string(rest.view()), "abcdef");
  Bytes eof = co_await b.read(10);
  EXPECT_TRUE(eof.empty());
  EXPECT_TRUE(b.at_eof());
}

inline Task<void> read_not_ready_until_data(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  Task<Bytes> pending = b.read_exactly(4);
  EventLoop& loop = b.loop();
  auto h = pending.handle();
  h.promise().set_continuation(std::noop_coroutine());
  detail::resume(h);  // starts the read; it must suspend (no data)
  co_await yield_turns(5);
  EXPECT_FALSE(pending.done()) << "read completed without data";
  EXPECT_TRUE(b.reading());
  a.write(std::string_view("ping"));
  auto done = [&] { return pending.done(); };
  const bool ok = co_await turns_until(done);
  TETHER_CO_ASSERT(ok);
  EXPECT_EQ(pending.take_result().view(), "ping");
  EXPECT_FALSE(b.reading());
  (void)loop;
}

inline Task<void> read_exactly_paths(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  a.write(std::string_view("0123"));
  co_await a.flush();
  co_await yield_turns(2);
  a.write(std::string_view("456789xyz"));
  Bytes ten = co_await b.read_exactly(10);
  EXPECT_EQ(ten.view(), "0123456789");
  auto too_big = co_await capture<LimitExceeded>(b.read_exactly(b.options().max_buffer_size + 1));
  EXPECT_TRUE(too_big.has_value());
  a.write_eof();
  auto inc = co_await capture<IncompleteRead>(b.read_exactly(5));
  TETHER_CO_ASSERT(inc.has_value());
  EXPECT_EQ(inc->partial().view(), "xyz");
  EXPECT_EQ(inc->expected(), 5u);
  EXPECT_TRUE(b.at_eof());
  Bytes zero = co_await b.read_exactly(0);
  EXPECT_TRUE(zero.empty());
}

inline Task<void> read_until_paths(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  // The delimiter split over two deliveries.
  a.write(std::string_view("line one\r"));
  co_await a.flush();
  co_await yield_turns(3);
  a.write(std::string_view("\nline two\r\n0123456789abcdef"));
  Bytes l1 = co_await b.read_until("\r\n");
  EXPECT_EQ(l1.view(), "line one\r\n");
  Bytes l2 = co_await b.read_until("\r\n");
  EXPECT_EQ(l2.view(), "line two\r\n");
  // No delimiter within max_bytes: LimitOverrun, the data stays.
  auto over = co_await capture<LimitOverrun>(b.read_until("\n", 8));
  TETHER_CO_ASSERT(over.has_value());
  EXPECT_GT(over->consumed(), 0u);
  EXPECT_LE(over->consumed(), 16u);
  // A delimiter that ends past max_bytes: consumed = its offset.
  a.write(std::string_view("\n"));
  co_await b.fill(17);
  auto late = co_await capture<LimitOverrun>(b.read_until("\n", 8));
  TETHER_CO_ASSERT(late.has_value());
  EXPECT_EQ(late->consumed(), 16u);
  Bytes kept = co_await b.read_until("\n");
  EXPECT_EQ(kept.view(), "0123456789abcdef\n");
  // Exactly max_bytes including the delimiter is allowed.
  a.write(std::string_view("1234567\n"));
  Bytes exact = co_await b.read_until("\n", 8);
  EXPECT_EQ(exact.view(), "1234567\n");
  auto empty_delim = co_await capture<UsageError>(b.read_until(""));
  EXPECT_TRUE(empty_delim.has_value());
  // EOF before the delimiter.
  a.write(std::string_view("tail"));
  a.write_eof();
  auto inc = co_await capture<IncompleteRead>(b.read_until("\n"));
  TETHER_CO_ASSERT(inc.has_value());
  EXPECT_EQ(inc->partial().view(), "tail");
  EXPECT_EQ(inc->expected(), 0u);
  EXPECT_TRUE(b.at_eof());
}

// read_line: lines (one split over deliveries), the limit (LimitOverrun as read_until, data
// kept), the unterminated last line at EOF, then empty at the clean EOF, every time.
inline Task<void> read_line_paths(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  a.write(std::string_view("first\nsec"));
  co_await a.flush();
  co_await yield_turns(3);
  a.write(std::string_view("ond\n\n0123456789abcdef"));
  Bytes l1 = co_await b.read_line();
  EXPECT_EQ(l1.view(), "first\n");
  Bytes l2 = co_await b.read_line();
  EXPECT_EQ(l2.view(), "second\n");
  Bytes blank = co_await b.read_line();
  EXPECT_EQ(blank.view(), "\n") << "an empty line is one byte, not the EOF result";
  // No newline within max_bytes: the same LimitOverrun as read_until, the data stays.
  auto over = co_await capture<LimitOverrun>(b.read_line(8));
  TETHER_CO_ASSERT(over.has_value());
  EXPECT_EQ(over->consumed(), b.buffer().readable_bytes());
  auto over_until = co_await capture<LimitOverrun>(b.read_until("\n", 8));
  TETHER_CO_ASSERT(over_until.has_value());
  EXPECT_EQ(over->consumed(), over_until->consumed());
  // A newline past max_bytes: consumed = its offset, as read_until.
  a.write(std::string_view("\n"));
  co_await b.fill(17);
  auto late = co_await capture<LimitOverrun>(b.read_line(8));
  TETHER_CO_ASSERT(late.has_value());
  EXPECT_EQ(late->consumed(), 16u);
  Bytes kept = co_await b.read_line(17);
  EXPECT_EQ(kept.view(), "0123456789abcdef\n");
  // The stream ends without a newline: the partial last line, then empty at EOF.
  a.write(std::string_view("tail"));
  a.write_eof();
  Bytes tail = co_await b.read_line();
  EXPECT_EQ(tail.view(), "tail");
  EXPECT_TRUE(b.at_eof());
  Bytes end = co_await b.read_line();
  EXPECT_TRUE(end.empty());
  Bytes again = co_await b.read_line(4);
  EXPECT_TRUE(again.empty()) << "EOF answers empty on every later call";
  // The throwing form still throws at the same point.
  auto inc = co_await capture<IncompleteRead>(b.read_until("\n"));
  TETHER_CO_ASSERT(inc.has_value());
  EXPECT_TRUE(inc->partial().empty());
}

// read_line over many lines written in one go, then a clean EOF right after the last newline:
// every line comes back in order, then exactly one empty result ends the loop.
inline Task<void> read_line_many(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  constexpr int kLines = 2000;
  std::string all;
  for (int i = 0; i < kLines; ++i) all += "line " + std::to_string(i) + (i % 50 == 0 ? std::string(300, '.') : "") + "\n";
  a.write(std::string_view(all));
  a.write_eof();
  int count = 0;
  std::string joined;
  for (;;) {
    Bytes line = co_await b.read_line(1024);
    if (line.empty()) break;
    EXPECT_EQ(line.view().back(), '\n');
    EXPECT_EQ(line.view().substr(0, 5), "line ");
    joined.append(line.view());
    ++count;
  }
  EXPECT_EQ(count, kLines);
  EXPECT_EQ(joined, all);
  EXPECT_TRUE(b.at_eof());
}

inline Task<void> read_until_regex_paths(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  // Header terminator split byte by byte.
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY";
  Background bg(b.loop());
  bg.spawn(write_slowly(a, req, 1));
  Bytes head = co_await b.read_until_regex("\r?\n\r?\n");
  EXPECT_EQ(head.view(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  co_await bg.wait();
  Bytes body = co_await b.read_exactly(4);
  EXPECT_EQ(body.view(), "BODY");
  // A match that starts well before the newest bytes.
  a.write(std::string_view("xxa123"));
  co_await a.flush();
  co_await yield_turns(3);
  a.write(std::string_view("45z!"));
  Bytes m = co_await b.read_until_regex("a[0-9]+z");
  EXPECT_EQ(m.view(), "xxa12345z");
  Bytes bang = co_await b.read_exactly(1);
  EXPECT_EQ(bang.view(), "!");
  // Limit: no match within max_bytes.
  a.write(std::string_view("aaaaaaaaaaaaaaaaaaaa"));
  auto over = co_await capture<LimitOverrun>(b.read_until_regex("b+", 10));
  EXPECT_TRUE(over.has_value());
  auto bad = co_await capture<UsageError>(b.read_until_regex("(unclosed"));
  EXPECT_TRUE(bad.has_value());
  Bytes as = co_await b.read_exactly(20);
  EXPECT_EQ(as.view(), "aaaaaaaaaaaaaaaaaaaa");
  // EOF first.
  a.write(std::string_view("no terminator"));
  a.write_eof();
  auto inc = co_await capture<IncompleteRead>(b.read_until_regex("\n\n"));
  TETHER_CO_ASSERT(inc.has_value());
  EXPECT_EQ(inc->partial().view(), "no terminator");
}

inline Task<void> read_until_close_paths(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  std::string all;
  for (int i = 0; i < 3; ++i) {
    std::string part = "chunk" + std::to_string(i) + std::string(3000, static_cast<char>('a' + i));
    all += part;
    a.write(std::string_view(part));
    co_await a.flush();
    co_await yield_now();
  }
  a.close();
  Bytes got = co_await b.read_until_close();
  EXPECT_EQ(got.view(), all);
  EXPECT_TRUE(b.at_eof());
  co_await a.wait_closed();
}

inline Task<void> write_big(BufferedStream& s, std::size_t total) {
  for (std::size_t off = 0; off < total; off += (1u << 20)) {
    const std::size_t n = std::min<std::size_t>(1u << 20, total - off);
    s.write(pattern_at(off, n));
    co_await s.drain();
  }
  co_await s.flush();
}

template <class F>
Task<void> streaming_reads(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  const std::size_t total = cap<F>(300000);
  Background bg(b.loop());
  bg.spawn(write_big(a, total + 1000));
  std::size_t seen = 0;
  std::size_t chunks = 0;
  bool in_order = true;
  UniqueFunction<void(Bytes)> on_chunk = [&](Bytes c) {
    if (!matches_pattern(seen, c.view())) in_order = false;
    if (c.size() > b.options().read_chunk_size) in_order = false;
    seen += c.size();
    ++chunks;
  };
  co_await b.read_exactly(total, std::move(on_chunk));
  EXPECT_EQ(seen, total);
  EXPECT_TRUE(in_order);
  EXPECT_GE(chunks, 2u);
  co_await bg.wait();
  a.close();
  std::size_t tail = 0;
  UniqueFunction<void(Bytes)> on_tail = [&](Bytes c) {
    if (!matches_pattern(total + tail, c.view())) in_order = false;
    tail += c.size();
  };
  co_await b.read_until_close(std::move(on_tail));
  EXPECT_EQ(tail, 1000u);
  EXPECT_TRUE(in_order);
  // Streaming read_exactly at EOF: IncompleteRead with an empty partial.
  UniqueFunction<void(Bytes)> ignore = [](Bytes) {};
  auto inc = co_await capture<IncompleteRead>(b.read_exactly(10, std::move(ignore)));
  TETHER_CO_ASSERT(inc.has_value());
  EXPECT_EQ(inc->expected(), 10u);
}

inline Task<void> one_byte_at_a_time(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  std::string text;
  for (int i = 0; i < 20; ++i) text += "line-" + std::to_string(i) + "\n";
  Background bg(b.loop());
  bg.spawn(write_slowly(a, text, 1));
  std::string got;
  for (int i = 0; i < 20; ++i) {
    Bytes line = co_await b.read_until("\n");
    EXPECT_EQ(line.view(), "line-" + std::to_string(i) + "\n");
    got += line.view();
  }
  co_await bg.wait();
  EXPECT_EQ(got, text);
}

inline Task<void> slow_bulk_reader(BufferedStream& b, std::size_t total, bool* ok) {
  std::size_t off = 0;
  std::size_t reads = 0;
  while (off < total) {
    Bytes c = co_await b.read(64 << 10);
    if (c.empty()) break;
    if (!matches_pattern(off, c.view())) *ok = false;
    off += c.size();
    if (++reads % 4 == 0) co_await yield_turns(2);  // a slow consumer: the buffer may fill
  }
  EXPECT_EQ(off, total);
}

template <class F>
Task<void> bulk_bounded(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  int closes = 0;
  b.set_close_callback([&closes] { ++closes; });  // idle reading on: it must respect the cap
  const std::size_t total = bulk_bytes<F>();
  bool ok = true;
  std::vector<Task<void>> both;
  both.push_back(write_big(a, total));
  both.push_back(slow_bulk_reader(b, total, &ok));
  co_await gather(std::move(both));
  EXPECT_TRUE(ok) << "received bytes differ from what was sent";
  const StreamOptions& o = b.options();
  EXPECT_LE(b.stats().read_buffer_high_water, o.max_buffer_size + o.read_chunk_size);
  EXPECT_GT(b.stats().read_buffer_high_water, 0u);
  EXPECT_EQ(b.stats().bytes_read, total);
  EXPECT_EQ(a.stats().bytes_written, total);
  EXPECT_EQ(closes, 0);
}

template <class F>
Task<void> peer_reset_mid_read(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  Task<Bytes> pending = b.read_exactly(100);
  auto h = pending.handle();
  h.promise().set_continuation(std::noop_coroutine());
  detail::resume(h);
  a.write(std::string_view("0123456789"));
  co_await a.flush();
  co_await yield_turns(3);
  EXPECT_FALSE(pending.done());
  F::reset(a, b);
  auto done = [&] { return pending.done(); };
  const bool finished = co_await turns_until(done);
  TETHER_CO_ASSERT(finished);
  ErrorKind kind = ErrorKind::kUsage;
  std::size_t partial = 0;
  try {
    (void)pending.take_result();
  } catch (const IncompleteRead& e) {
    kind = e.kind();
    partial = e.partial().size();
  } catch (const Error& e) {
    kind = e.kind();
  }
  EXPECT_EQ(kind, F::kResetError) << "got " << to_string(kind);
  if (F::kResetError == ErrorKind::kDisconnected) {
    EXPECT_TRUE(b.closed());
    EXPECT_TRUE(b.error() != nullptr);
    auto later = co_await capture<StreamClosed>(b.read_exactly(100));
    TETHER_CO_ASSERT(later.has_value());
    EXPECT_NE(later->cause().find("Disconnected"), std::string::npos) << later->cause();
  } else {
    EXPECT_EQ(partial, 10u);
  }
}

inline Task<void> close_callback_once(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  int a_calls = 0;
  int b_calls = 0;
  a.set_close_callback([&a_calls] { ++a_calls; });
  b.set_close_callback([&b_calls] { ++b_calls; });
  co_await yield_turns(3);
  EXPECT_EQ(b_calls, 0);
  a.close();  // a: local close; b: notices EOF while idle
  auto b_saw = [&] { return b_calls > 0; };
  const bool ok = co_await turns_until(b_saw);
  EXPECT_TRUE(ok);
  EXPECT_TRUE(b.eof_received());
  EXPECT_FALSE(b.closed()) << "EOF alone does not close (half-close)";
  b.write(std::string_view("still writable"));
  b.close();
  co_await yield_turns(3);
  EXPECT_EQ(a_calls, 1);
  EXPECT_EQ(b_calls, 1);
  // A callback set after the event runs (once) too.
  int late = 0;
  a.set_close_callback([&late] { ++late; });
  co_await yield_turns(2);
  EXPECT_EQ(late, 1);
  co_await b.wait_closed();
  co_await a.wait_closed();
}

inline Task<void> write_after_close(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  a.close(std::make_exception_ptr(ProtocolError("bad frame 42")));
  EXPECT_TRUE(a.closed());
  TETHER_CO_ASSERT(a.error() != nullptr);
  try {
    a.write(std::string_view("x"));
    ADD_FAILURE() << "write after close did not throw";
  } catch (const StreamClosed& e) {
    EXPECT_NE(e.cause().find("bad frame 42"), std::string::npos) << e.cause();
  }
  auto d = co_await capture<ProtocolError>(a.drain());
  EXPECT_TRUE(d.has_value()) << "drain() rethrows the error that closed the stream";
  // A write error: the peer is gone; writing fails with Disconnected, then StreamClosed.
  Bytes eof = co_await b.read(1);
  EXPECT_TRUE(eof.empty());
  // TCP (and TLS over it) accepts the first write into the kernel and only the peer's reset,
  // which comes back afterwards, makes a later write fail: keep writing for a few turns.
  std::optional<Disconnected> werr;
  for (int i = 0; i < 100 && !werr; ++i) {
    b.write(Bytes::filled(100000, 'z'));
    werr = co_await capture<Disconnected>(b.flush());
    if (!werr) co_await yield_turns(1);
  }
  EXPECT_TRUE(werr.has_value()) << "writing to a closed peer must fail with Disconnected";
  EXPECT_TRUE(b.closed());
  try {
    b.write(std::string_view("again"));
    ADD_FAILURE() << "write after a write error did not throw";
  } catch (const StreamClosed& e) {
    EXPECT_NE(e.cause().find("Disconnected"), std::string::npos) << e.cause();
  }
}

inline Task<void> concurrent_read_misuse(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  Task<Bytes> first = b.read_until("\n");
  auto h = first.handle();
  h.promise().set_continuation(std::noop_coroutine());
  detail::resume(h);
  EXPECT_TRUE(b.reading());
  auto second = co_await capture<UsageError>(b.read(1));
  EXPECT_TRUE(second.has_value());
  auto third = co_await capture<UsageError>(b.fill(1));
  EXPECT_TRUE(third.has_value());
  a.write(std::string_view("ok\n"));
  auto done = [&] { return first.done(); };
  const bool ok = co_await turns_until(done);
  TETHER_CO_ASSERT(ok);
  EXPECT_EQ(first.take_result().view(), "ok\n");
}

inline Task<void> cancelled_read_keeps_data(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  a.write(std::string_view("12345"));
  co_await a.flush();
  {
    auto t = co_await capture<Timeout>(with_timeout(milliseconds(30), b.read_exactly(10)));
    EXPECT_TRUE(t.has_value());
  }
  EXPECT_FALSE(b.reading());
  a.write(std::string_view("67890"));
  Bytes all = co_await b.read_exactly(10);
  EXPECT_EQ(all.view(), "1234567890");
}

inline Task<void> write_eof_half_close(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  a.write(std::string_view("request"));
  a.write_eof();
  a.write_eof();  // idempotent
  auto after = [&] {
    try {
      a.write(std::string_view("x"));
    } catch (const UsageError&) {
      return true;
    }
    return false;
  }();
  EXPECT_TRUE(after);
  Bytes req = co_await b.read_until_close();
  EXPECT_EQ(req.view(), "request");
  b.write(std::string_view("response"));
  b.write_eof();
  Bytes resp = co_await a.read_until_close();
  EXPECT_EQ(resp.view(), "response");
  EXPECT_TRUE(a.at_eof());
}

template <class F>
Task<void> drain_watermarks(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  a.set_write_buffer_limits(64 << 10, 16 << 10);
  auto bad = [&] {
    try {
      a.set_write_buffer_limits(10, 20);
    } catch (const UsageError&) {
      return true;
    }
    return false;
  }();
  EXPECT_TRUE(bad);
  a.set_write_buffer_limits(64 << 10, 16 << 10);
  const std::size_t total = cap<F>(4u << 20);
  for (std::size_t off = 0; off < total; off += (1u << 20)) {
    a.write(pattern_at(off, std::min<std::size_t>(1u << 20, total - off)));
  }
  EXPECT_TRUE(a.writing());
  Task<void> d = a.drain();
  auto h = d.handle();
  h.promise().set_continuation(std::noop_coroutine());
  detail::resume(h);
  co_await yield_turns(5);
  EXPECT_FALSE(d.done()) << "drain() returned with " << a.write_buffer_size() << " bytes queued";
  std::size_t got = 0;
  std::size_t queued_at_done = SIZE_MAX;
  while (got < total) {
    Bytes c = co_await b.read(64 << 10);
    TETHER_CO_ASSERT(!c.empty());
    got += c.size();
    if (d.done() && queued_at_done == SIZE_MAX) queued_at_done = a.write_buffer_size();
  }
  auto done = [&] { return d.done(); };
  const bool ok = co_await turns_until(done);
  TETHER_CO_ASSERT(ok);
  d.take_result();
  if (queued_at_done != SIZE_MAX) {
    EXPECT_LE(queued_at_done, std::size_t{16} << 10);
  }
  // Below high water drain() does not wait for the bytes to leave.
  a.write(std::string_view("small"));
  co_await a.drain();
  Bytes s = co_await b.read_exactly(5);
  EXPECT_EQ(s.view(), "small");
}

inline Task<void> max_write_buffer(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  a.write(std::string_view(std::string(600, 'a')));
  bool limited = false;
  try {
    a.write(Bytes(std::string(600, 'b')));
  } catch (const LimitExceeded&) {
    limited = true;
  }
  EXPECT_TRUE(limited);
  EXPECT_EQ(a.write_buffer_size(), 600u);
  co_await a.flush();
  a.write(Bytes(std::string(600, 'c')));  // room again once flushed
  Bytes got = co_await b.read_exactly(1200);
  EXPECT_EQ(got.view(), std::string(600, 'a') + std::string(600, 'c'));
}

inline Task<void> drip(BufferedStream& s, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    s.write(std::string_view("x"));
    co_await s.flush();
    co_await yield_now();
  }
}

inline Task<void> slowloris(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  // A peer that never sends a newline: max_bytes bounds the line...
  Background bg(b.loop());
  bg.spawn(drip(a, 300));
  auto over = co_await capture<LimitOverrun>(b.read_until("\n", 256));
  EXPECT_TRUE(over.has_value());
  co_await bg.wait();
  Bytes xs = co_await b.read_exactly(300);
  EXPECT_EQ(xs.view(), std::string(300, 'x'));
  // ...and a timeout bounds the wait when it trickles below the limit.
  a.write(std::string_view("GET / HT"));
  auto t = co_await capture<Timeout>(with_timeout(milliseconds(50), b.read_until("\r\n", 1024)));
  EXPECT_TRUE(t.has_value());
  a.write(std::string_view("TP/1.1\r\n"));
  Bytes line = co_await b.read_until("\r\n", 1024);
  EXPECT_EQ(line.view(), "GET / HTTP/1.1\r\n") << "a timed-out read loses nothing";
}

inline Task<void> writes_coalesce(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  const auto calls0 = a.stats().write_calls;
  std::string expect;
  for (int i = 0; i < 100; ++i) {
    std::string frame = "frame" + std::to_string(i) + ";";
    expect += frame;
    a.write(std::string_view(frame));
  }
  EXPECT_EQ(a.stats().write_calls, calls0) << "write() must not make a system call";
  co_await yield_turns(3);
  EXPECT_EQ(a.stats().write_calls, calls0 + 1) << "one turn's writes leave in one writev";
  Bytes got = co_await b.read_exactly(expect.size());
  EXPECT_EQ(got.view(), expect);
  // Large writes move in and still arrive in order.
  Bytes big = pattern_at(0, 100000);
  a.write(std::string_view("<"));
  a.write(std::move(big));
  Buffer buf;
  buf.append(">");
  buf.append(std::string(5000, 'q'));
  a.write(std::move(buf));
  EXPECT_TRUE(buf.empty());
  Bytes all = co_await b.read_exactly(1 + 100000 + 5001);
  EXPECT_EQ(all.view().substr(0, 1), "<");
  EXPECT_TRUE(matches_pattern(0, all.view().substr(1, 100000)));
  EXPECT_EQ(all.view().substr(100001, 1), ">");
  // Shared immutable payloads are queued by reference, any number of times.
  auto shared = std::make_shared<const Bytes>(pattern_at(0, 50000));
  a.write(shared);
  a.write(shared);
  EXPECT_EQ(a.write_buffer_size(), 100000u);
  Bytes twice = co_await b.read_exactly(100000);
  EXPECT_TRUE(matches_pattern(0, twice.view().substr(0, 50000)));
  EXPECT_EQ(twice.view().substr(0, 50000), twice.view().substr(50000));
  EXPECT_EQ(shared.use_count(), 1) << "the stream lets go of sent chunks";
  EXPECT_THROW(a.write(std::shared_ptr<const Bytes>()), UsageError);
}

inline Task<void> fill_zero_copy(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  Buffer frame;
  frame.append("payload!");
  const std::uint32_t len = 8;
  std::uint8_t hdr[4] = {0, 0, 0, static_cast<std::uint8_t>(len)};
  frame.prepend(hdr, 4);
  a.write(std::move(frame));
  co_await b.fill(4);
  const std::uint8_t* h = b.buffer().peek();
  const std::size_t n = h[3];
  b.buffer().retrieve(4);
  co_await b.fill(n);
  EXPECT_EQ(b.buffer().view().substr(0, n), "payload!");
  b.buffer().retrieve(n);
  auto big = co_await capture<LimitExceeded>(b.fill(b.options().max_buffer_size + 1));
  EXPECT_TRUE(big.has_value());
  a.write(std::string_view("abc"));
  a.write_eof();
  auto inc = co_await capture<IncompleteRead>(b.fill(10));
  TETHER_CO_ASSERT(inc.has_value());
  EXPECT_EQ(inc->partial().view(), "abc");
  EXPECT_EQ(b.buffer().view(), "abc") << "fill() leaves the data at EOF";
  EXPECT_FALSE(b.at_eof());
  b.buffer().retrieve_all();
  EXPECT_TRUE(b.at_eof());
}

template <class F>
Task<void> close_flushes_then_eof(StreamPair p) {
  BufferedStream& a = *p.first;
  BufferedStream& b = *p.second;
  const std::size_t total = cap<F>(2u << 20);
  a.write(pattern_at(0, total / 2));
  a.write(pattern_at(total / 2, total - total / 2));
  a.close();  // graceful: the queue still goes out
  EXPECT_TRUE(a.closed());
  auto w = co_await capture<StreamClosed>(a.drain());
  EXPECT_TRUE(w.has_value());
  Bytes all = co_await b.read_until_close();
  EXPECT_EQ(all.size(), total);
  EXPECT_TRUE(matches_pattern(0, all.view()));
  co_await a.wait_closed();
  EXPECT_TRUE(a.error() == nullptr);
}

inline Task<void> close_fails_pending_read(StreamPair p) {
  BufferedStream& b = *p.second;
  Task<Bytes> pending = b.read_until("\n");
  auto h = pending.handle();
  h.promise().set_continuation(std::noop_coroutine());
  detail::resume(h);
  EXPECT_TRUE(b.reading());
  b.close();
  auto done = [&] { return pending.done(); };
  const bool ok = co_await turns_until(done);
  TETHER_CO_ASSERT(ok);
  bool closed = false;
  try {
    (void)pending.take_result();
  } catch (const StreamClosed&) {
    closed = true;
  }
  EXPECT_TRUE(closed);
  co_await b.wait_closed();
}

}  // namespace suite

TYPED_TEST_P(StreamSuite, ReadBasic) { this->run(suite::read_basic(this->make())); }
TYPED_TEST_P(StreamSuite, ReadNotReadyUntilData) { this->run(suite::read_not_ready_until_data(this->make())); }
TYPED_TEST_P(StreamSuite, ReadExactly) { this->run(suite::read_exactly_paths(this->make())); }
TYPED_TEST_P(StreamSuite, ReadUntil) { this->run(suite::read_until_paths(this->make())); }
TYPED_TEST_P(StreamSuite, ReadLine) { this->run(suite::read_line_paths(this->make())); }
TYPED_TEST_P(StreamSuite, ReadLineManyThenEof) { this->run(suite::read_line_many(this->make())); }
TYPED_TEST_P(StreamSuite, ReadUntilRegex) { this->run(suite::read_until_regex_paths(this->make())); }
TYPED_TEST_P(StreamSuite, ReadUntilClose) { this->run(suite::read_until_close_paths(this->make())); }
TYPED_TEST_P(StreamSuite, StreamingCallbacks) { this->run(suite::streaming_reads<TypeParam>(this->make())); }
TYPED_TEST_P(StreamSuite, OneByteAtATime) { this->run(suite::one_byte_at_a_time(this->make())); }
TYPED_TEST_P(StreamSuite, BulkWithBoundedReadBuffer) {
  StreamOptions rx;
  rx.max_buffer_size = 1 << 20;
  rx.read_chunk_size = 64 << 10;
  this->run(suite::bulk_bounded<TypeParam>(this->make({}, rx)), std::chrono::seconds(120));
}
TYPED_TEST_P(StreamSuite, PeerResetMidRead) { this->run(suite::peer_reset_mid_read<TypeParam>(this->make())); }
TYPED_TEST_P(StreamSuite, CloseCallbackOnce) { this->run(suite::close_callback_once(this->make())); }
TYPED_TEST_P(StreamSuite, WriteAfterClose) { this->run(suite::write_after_close(this->make())); }
TYPED_TEST_P(StreamSuite, ConcurrentReadIsUsageError) {
  this->run(suite::concurrent_read_misuse(this->make()));
}
TYPED_TEST_P(StreamSuite, CancelledReadKeepsData) { this->run(suite::cancelled_read_keeps_data(this->make())); }
TYPED_TEST_P(StreamSuite, WriteEofHalfClose) { this->run(suite::write_eof_half_close(this->make())); }
TYPED_TEST_P(StreamSuite, DrainWatermarks) { this->run(suite::drain_watermarks<TypeParam>(this->make())); }
TYPED_TEST_P(StreamSuite, MaxWriteBufferSize) {
  StreamOptions tx;
  tx.max_write_buffer_size = 1000;
  this->run(suite::max_write_buffer(this->make(tx, {})));
}
TYPED_TEST_P(StreamSuite, Slowloris) { this->run(suite::slowloris(this->make())); }
TYPED_TEST_P(StreamSuite, WritesCoalesce) { this->run(suite::writes_coalesce(this->make())); }
TYPED_TEST_P(StreamSuite, FillZeroCopy) { this->run(suite::fill_zero_copy(this->make())); }
TYPED_TEST_P(StreamSuite, CloseFlushesThenEof) { this->run(suite::close_flushes_then_eof<TypeParam>(this->make())); }
TYPED_TEST_P(StreamSuite, CloseFailsPendingRead) { this->run(suite::close_fails_pending_read(this->make())); }

REGISTER_TYPED_TEST_SUITE_P(StreamSuite, ReadBasic, ReadNotReadyUntilData, ReadExactly, ReadUntil, ReadLine,
                            ReadLineManyThenEof, ReadUntilRegex,
                            ReadUntilClose, StreamingCallbacks, OneByteAtATime, BulkWithBoundedReadBuffer,
                            PeerResetMidRead, CloseCallbackOnce, WriteAfterClose, ConcurrentReadIsUsageError,
                            CancelledReadKeepsData, WriteEofHalfClose, DrainWatermarks, MaxWriteBufferSize,
                            Slowloris, WritesCoalesce, FillZeroCopy, CloseFlushesThenEof, CloseFailsPendingRead);

}  // namespace tether::testing
