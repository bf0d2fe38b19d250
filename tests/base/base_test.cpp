// Bytes, Result, Error, Fd, endian helpers, logging.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <numeric>
#include <ranges>
#include <span>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "tether/base/bytes.hpp"
#include "tether/base/endian.hpp"
#include "tether/base/error.hpp"
#include "tether/base/fd.hpp"
#include "tether/base/function.hpp"
#include "tether/base/log.hpp"
#include "tether/base/result.hpp"

namespace tether {
namespace {

// ------------------------------------------------------------------------------------ Bytes

TEST(Bytes, ConstructionAndAccess) {
  Bytes empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.size(), 0u);

  const std::uint8_t raw[] = {0, 1, 0xff, 'a'};
  Bytes a(raw, sizeof raw);
  EXPECT_EQ(a.size(), 4u);
  EXPECT_EQ(a[2], 0xff);
  EXPECT_EQ(a.view(), std::string_view("\0\1\xff" "a", 4));
  EXPECT_EQ(Bytes(std::span<const std::uint8_t>(raw)), a);
  EXPECT_EQ(Bytes::filled(3, 7).view(), std::string_view("\7\7\7", 3));
  EXPECT_EQ(Bytes::from("xy").str(), "xy");

  Bytes b = Bytes::from("abc");
  b.append("def");
  b.append("g", 1);
  EXPECT_EQ(b.view(), "abcdefg");
  b.resize(2);
  EXPECT_EQ(b.view(), "ab");
  EXPECT_LT(Bytes::from("ab"), Bytes::from("b"));
  b.clear();
  EXPECT_TRUE(b.empty());
}

static_assert(std::ranges::contiguous_range<Bytes>);
static_assert(std::ranges::sized_range<Bytes>);
static_assert(std::ranges::contiguous_range<const Bytes>);
static_assert(std::is_same_v<std::ranges::range_value_t<Bytes>, std::uint8_t>);
static_assert(std::is_same_v<std::ranges::range_reference_t<const Bytes>, const std::uint8_t&>);
static_assert(std::is_convertible_v<const Bytes&, std::span<const std::uint8_t>>);

TEST(Bytes, IsAContiguousRange) {
  const Bytes b = Bytes::from(std::string_view("h\0\xfflo", 5));
  EXPECT_EQ(b.end() - b.begin(), 5);
  EXPECT_EQ(b.begin(), b.data());
  EXPECT_EQ(std::ranges::data(b), b.data());
  EXPECT_EQ(std::ranges::size(b), 5u);
  // Iterator-pair construction of other containers.
  EXPECT_EQ(std::string(b.begin(), b.end()), b.str());
  EXPECT_EQ(std::vector<std::uint8_t>(b.begin(), b.end()), (std::vector<std::uint8_t>{'h', 0, 0xff, 'l', 'o'}));
  // Spans, implicit and explicit, and their byte view.
  std::span<const std::uint8_t> sp = b;
  EXPECT_EQ(sp.data(), b.data());
  EXPECT_EQ(sp.size(), 5u);
  EXPECT_EQ(std::span<const std::uint8_t>(b)[2], 0xff);
  std::span<const std::byte> raw = std::as_bytes(std::span<const std::uint8_t>(b));
  EXPECT_EQ(raw[2], std::byte{0xff});
  // std::ranges algorithms.
  EXPECT_EQ(std::ranges::find(b, 0xff) - b.begin(), 2);
  EXPECT_EQ(std::ranges::count(b, 'l'), 1);
  EXPECT_TRUE(std::ranges::equal(b, std::string_view("h\0\xfflo", 5), {}, {},
                                 [](char c) { return static_cast<std::uint8_t>(c); }));
  EXPECT_EQ(std::accumulate(b.begin(), b.end(), 0u), 'h' + 0u + 0xffu + 'l' + 'o');
  // Mutable iteration writes through to the bytes.
  Bytes m = Bytes::from("abc");
  for (std::uint8_t& c : m) c = static_cast<std::uint8_t>(c - 'a' + 'A');
  EXPECT_EQ(m.view(), "ABC");
  std::ranges::reverse(m);
  EXPECT_EQ(m.view(), "CBA");
  std::ranges::sort(m);
  EXPECT_EQ(m.view(), "ABC");
  // Views compose.
  std::string firsts;
  for (std::uint8_t c : b | std::views::take(2)) firsts.push_back(static_cast<char>(c));
  EXPECT_EQ(firsts, std::string("h\0", 2));
  // Empty: begin == end.
  Bytes empty;
  EXPECT_EQ(empty.begin(), empty.end());
  EXPECT_TRUE(std::ranges::empty(empty));
}

TEST(Bytes, MoveLeavesSourceEmptyAndKeepsLargeStorage) {
  Bytes big = Bytes::filled(1 << 16, 'z');
  const std::uint8_t* storage = big.data();
  Bytes moved(std::move(big));
  EXPECT_EQ(moved.data(), storage) << "moving a large Bytes must not copy";
  EXPECT_EQ(moved.size(), 1u << 16);
  std::string released = std::move(moved).release();
  EXPECT_EQ(reinterpret_cast<const std::uint8_t*>(released.data()), storage);
}

// ----------------------------------------------------------------------------------- Result

Result<int> parse_positive(int v) {
  if (v < 0) return errno_error(EINVAL);
  return v;
}

TEST(Result, ValueAndError) {
  auto ok = parse_positive(5);
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, 5);
  EXPECT_EQ(ok.value(), 5);
  EXPECT_EQ(ok.value_or(9), 5);

  auto bad = parse_positive(-1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), std::errc::invalid_argument);
  EXPECT_EQ(bad.value_or(9), 9);
  try {
    (void)bad.value();
    FAIL() << "value() on an error must throw";
  } catch (const IoError& e) {
    EXPECT_EQ(e.code(), EINVAL);
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
  }
}

TEST(Result, CustomErrorTypeAndMoveOnlyValue) {
  Result<std::unique_ptr<int>, std::string> r = std::make_unique<int>(7);
  ASSERT_TRUE(r);
  EXPECT_EQ(**r, 7);
  std::unique_ptr<int> taken = std::move(r).value();
  EXPECT_EQ(*taken, 7);

  Result<std::string, std::string> e = Unexpected(std::string("nope"));
  EXPECT_FALSE(e.has_value());
  EXPECT_EQ(e.error(), "nope");
  EXPECT_EQ(e.value_or("fallback"), "fallback");
  EXPECT_THROW((void)e.value(), BadResultAccess);
  Result<std::string, std::string> s = std::string("yes");
  EXPECT_EQ(s->size(), 3u);
}

TEST(Result, Void) {
  Result<void> ok;
  EXPECT_TRUE(ok);
  EXPECT_NO_THROW(ok.value());
  Result<void> bad = errno_error(ECONNRESET);
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.error().value(), ECONNRESET);
  EXPECT_THROW(bad.value(), IoError);
  Result<void, int> custom = Unexpected(3);
  EXPECT_EQ(custom.error(), 3);
  EXPECT_THROW(custom.value(), BadResultAccess);
}

// ------------------------------------------------------------------------------------ Error

TEST(Error, KindsAndNames) {
  const std::pair<ErrorKind, std::string_view> expected[] = {
      {Disconnected().kind(), "Disconnected"},   {Timeout().kind(), "Timeout"},
      {LimitExceeded("x").kind(), "LimitExceeded"}, {ProtocolError("x").kind(), "ProtocolError"},
      {Cancelled().kind(), "Cancelled"},         {UsageError("x").kind(), "UsageError"},
      {IoError(EIO, "x").kind(), "IoError"},     {IncompleteRead(Bytes(), 1).kind(), "IncompleteRead"},
      {LimitOverrun("x", 1).kind(), "LimitOverrun"}, {StreamClosed().kind(), "StreamClosed"},
      {RemoteError("m", "T", {}, "").kind(), "RemoteError"},
  };
  for (auto& [kind, name] : expected) EXPECT_EQ(to_string(kind), name);
  // Everything is catchable as Error and as std::exception.
  try {
    throw Timeout();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kTimeout);
    EXPECT_STREQ(e.what(), "operation timed out");
  }
}

TEST(Error, IncompleteReadCarriesPartialAndExpected) {
  IncompleteRead e(Bytes::from("abc"), 10);
  EXPECT_EQ(e.partial().view(), "abc");
  EXPECT_EQ(e.expected(), 10u);
  EXPECT_STREQ(e.what(), "3 bytes read on a total of 10 expected bytes");
  IncompleteRead until(Bytes::from("ab"), 0);
  EXPECT_EQ(until.expected(), 0u);
  EXPECT_NE(std::string(until.what()).find("2 bytes"), std::string::npos);
}

TEST(Error, LimitOverrunCarriesConsumed) {
  LimitOverrun e("separator not found", 4096);
  EXPECT_EQ(e.consumed(), 4096u);
  EXPECT_STREQ(e.what(), "separator not found");
  EXPECT_EQ(e.kind(), ErrorKind::kLimitOverrun);
}

TEST(Error, RemoteErrorFields) {
  RemoteError builtin("builtins", "ValueError", {"bad value", "3"}, "Traceback...\n");
  EXPECT_EQ(builtin.module(), "builtins");
  EXPECT_EQ(builtin.type_name(), "ValueError");
  EXPECT_EQ(builtin.qualified_name(), "ValueError");
  EXPECT_EQ(builtin.args(), (std::vector<std::string>{"bad value", "3"}));
  EXPECT_EQ(builtin.traceback(), "Traceback...\n");
  EXPECT_STREQ(builtin.what(), "ValueError: bad value, 3");

  RemoteError custom("app.errors", "Boom", {}, "");
  EXPECT_EQ(custom.qualified_name(), "app.errors.Boom");
  EXPECT_STREQ(custom.what(), "app.errors.Boom");
}

TEST(Error, IoErrorAndStreamClosedMessages) {
  IoError io(ECONNREFUSED, "connect");
  EXPECT_EQ(io.code(), ECONNREFUSED);
  EXPECT_EQ(std::string(io.what()), std::string("connect: ") + std::strerror(ECONNREFUSED));
  StreamClosed plain;
  EXPECT_TRUE(plain.cause().empty());
  EXPECT_STREQ(plain.what(), "stream is closed");
  StreamClosed why("peer reset");
  EXPECT_EQ(why.cause(), "peer reset");
  EXPECT_STREQ(why.what(), "stream is closed: peer reset");
}

TEST(Error, DescribeCurrentException) {
  auto describe = [](auto&& thrower) {
    try {
      thrower();
    } catch (...) {
      return describe_current_exception();
    }
    return std::string("nothing thrown");
  };
  EXPECT_EQ(describe([] { throw Disconnected("gone"); }), "Disconnected: gone");
  EXPECT_EQ(describe([] { throw std::runtime_error("plain"); }), "plain");
  EXPECT_EQ(describe([] { throw 42; }), "unknown exception");
}

// --------------------------------------------------------------------------------------- Fd

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(Fd, ClosesOnDestructionAndReset) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  {
    Fd a(p[0]);
    EXPECT_TRUE(a.valid());
    EXPECT_EQ(a.get(), p[0]);
  }
  EXPECT_FALSE(fd_is_open(p[0]));
  Fd b(p[1]);
  b.reset();
  EXPECT_FALSE(fd_is_open(p[1]));
  EXPECT_FALSE(b);
}

TEST(Fd, ReleaseGivesUpOwnership) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  int raw;
  {
    Fd a(p[0]);
    raw = a.release();
    EXPECT_FALSE(a.valid());
  }
  EXPECT_TRUE(fd_is_open(raw));
  ::close(raw);
  ::close(p[1]);
}

TEST(Fd, MoveTransfersOwnership) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  Fd a(p[0]);
  Fd b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(b.get(), p[0]);
  Fd c(p[1]);
  c = std::move(b);  // closes p[1], takes p[0]
  EXPECT_FALSE(fd_is_open(p[1]));
  EXPECT_TRUE(fd_is_open(p[0]));
  EXPECT_EQ(c.get(), p[0]);
  c = std::move(c);  // self-move keeps the fd
  EXPECT_TRUE(fd_is_open(p[0]));
  c.reset();
  EXPECT_FALSE(fd_is_open(p[0]));
}

TEST(Fd, SetNonblocking) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  Fd r(p[0]), w(p[1]);
  ASSERT_TRUE(set_nonblocking(r.get()));
  EXPECT_TRUE(::fcntl(r.get(), F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(r.get(), F_GETFD) & FD_CLOEXEC);
  char c;
  EXPECT_EQ(::read(r.get(), &c, 1), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_FALSE(set_nonblocking(-1));
}

// ----------------------------------------------------------------------------------- endian

TEST(Endian, RoundTripsAndIsBigEndian) {
  std::uint8_t buf[9] = {};
  store_be16(buf + 1, 0x1234);  // unaligned on purpose
  EXPECT_EQ(buf[1], 0x12);
  EXPECT_EQ(buf[2], 0x34);
  EXPECT_EQ(load_be16(buf + 1), 0x1234);
  store_be32(buf + 1, 0xdeadbeefu);
  EXPECT_EQ(buf[1], 0xde);
  EXPECT_EQ(buf[4], 0xef);
  EXPECT_EQ(load_be32(buf + 1), 0xdeadbeefu);
  store_be64(buf + 1, 0x0102030405060708ull);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(buf[1 + i], i + 1);
  EXPECT_EQ(load_be64(buf + 1), 0x0102030405060708ull);
}

// -------------------------------------------------------------------------------------- log

int g_formatted = 0;
struct Counted {};

}  // namespace
}  // namespace tether

template <>
struct fmt::formatter<tether::Counted> : fmt::formatter<std::string_view> {
  auto format(tether::Counted, fmt::format_context& ctx) const {
    ++tether::g_formatted;
    return fmt::formatter<std::string_view>::format("counted", ctx);
  }
};

namespace tether {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = log_level(); }
  void TearDown() override {
    set_log_sink({});
    set_log_level(saved_);
  }
  LogLevel saved_{};
};

TEST_F(LogTest, SinkReceivesEnabledRecordsOnly) {
  std::vector<std::pair<LogLevel, std::string>> got;
  set_log_sink([&](LogLevel l, std::string_view m) { got.emplace_back(l, std::string(m)); });
  set_log_level(LogLevel::kInfo);
  EXPECT_EQ(log_level(), LogLevel::kInfo);
  g_formatted = 0;
  TETHER_LOG_DEBUG("hidden {}", Counted{});
  TETHER_LOG_INFO("shown {} {}", 1, "two");
  TETHER_LOG_WARN("warn");
  TETHER_LOG_ERROR("err {}", 3.5);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], (std::pair<LogLevel, std::string>{LogLevel::kInfo, "shown 1 two"}));
  EXPECT_EQ(got[1].first, LogLevel::kWarn);
  EXPECT_EQ(got[2].second, "err 3.5");
  EXPECT_EQ(g_formatted, 0) << "a disabled record must not be formatted";
  TETHER_LOG_WARN("shown {}", Counted{});
  EXPECT_EQ(g_formatted, 1);
  EXPECT_EQ(got.back().second, "shown counted");
  got.pop_back();

  set_log_level(LogLevel::kOff);
  TETHER_LOG_ERROR("silenced");
  EXPECT_EQ(got.size(), 3u);
}

TEST_F(LogTest, LevelNames) {
  EXPECT_EQ(to_string(LogLevel::kTrace), "trace");
  EXPECT_EQ(to_string(LogLevel::kWarn), "warn");
  EXPECT_EQ(to_string(LogLevel::kOff), "off");
}

// ------------------------------------------------------------------------------ UniqueFunction

TEST(UniqueFunction, HoldsMoveOnlyCallables) {
  auto p = std::make_unique<int>(41);
  UniqueFunction<int(int)> f = [q = std::move(p)](int d) { return *q + d; };
  ASSERT_TRUE(f);
  EXPECT_EQ(f(1), 42);
  UniqueFunction<int(int)> g = std::move(f);
  EXPECT_FALSE(f);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(g(2), 43);
  UniqueFunction<void()> none = nullptr;
  EXPECT_FALSE(none);
}

TEST(UniqueFunction, DestroysItsCallableExactlyOnce) {
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  {
    UniqueFunction<int()> f = [a = std::move(alive)] { return *a + 7; };
    UniqueFunction<int()> g;
    g = std::move(f);  // move-assign into an empty one
    EXPECT_FALSE(watch.expired());
    EXPECT_EQ(g(), 7);
    UniqueFunction<int()> h = [] { return 1; };
    h = std::move(g);  // move-assign over a held callable: the old one is destroyed
    EXPECT_EQ(h(), 7);
    EXPECT_FALSE(watch.expired());
    h = nullptr;  // releases the callable at once
    EXPECT_TRUE(watch.expired());
    EXPECT_FALSE(h);
  }
  EXPECT_TRUE(watch.expired());
}

TEST(UniqueFunction, VoidSignatureDropsTheResultAndArgumentsForward) {
  int calls = 0;
  UniqueFunction<void(std::unique_ptr<int>)> sink = [&calls](std::unique_ptr<int> p) {
    ++calls;
    return *p;  // a result the void signature discards
  };
  sink(std::make_unique<int>(3));
  sink(std::make_unique<int>(4));
  EXPECT_EQ(calls, 2);
  std::string seen;
  UniqueFunction<void(std::string&)> append = [](std::string& s) { s += "x"; };
  append(seen);
  append(seen);
  EXPECT_EQ(seen, "xx");
}

}  // namespace
}  // namespace tether
