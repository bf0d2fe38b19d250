// Buffer: a seeded randomized run against a std::string model, plus the edge cases the model
// does not reach (head-room, compaction, the readv spill path).
#include "tether/base/buffer.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <random>
#include <string>

#include "tether/base/fd.hpp"

namespace tether {
namespace {

std::string random_bytes(std::mt19937_64& rng, std::size_t n) {
  // A small alphabet so finds hit often; includes '\n' and NUL.
  static constexpr char kAlphabet[] = {'a', 'b', 'c', '\n', '\0', '\r', 'x'};
  std::string s(n, '\0');
  for (auto& c : s) c = kAlphabet[rng() % sizeof kAlphabet];
  return s;
}

void expect_matches(const Buffer& b, const std::string& model) {
  ASSERT_EQ(b.readable_bytes(), model.size());
  ASSERT_EQ(b.view(), model);
  ASSERT_EQ(b.empty(), model.empty());
  ASSERT_EQ(b.prependable_bytes() + b.readable_bytes() + b.writable_bytes(), b.capacity());
}

std::optional<std::size_t> model_find(const std::string& m, std::string_view needle, std::size_t from) {
  if (from > m.size()) return std::nullopt;
  auto p = m.find(needle, from);
  if (p == std::string::npos) return std::nullopt;
  return p;
}

class BufferRandomized : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(BufferRandomized, MatchesStringModel) {
  std::mt19937_64 rng(GetParam());
  Buffer b;
  std::string model;
  for (int step = 0; step < 20000; ++step) {
    const int op = static_cast<int>(rng() % 11);
    switch (op) {
      case 0:
      case 1: {  // append (mostly small, sometimes large)
        std::size_t n = (rng() % 16 == 0) ? rng() % 5000 : rng() % 64;
        std::string s = random_bytes(rng, n);
        b.append(s);
        model += s;
        break;
      }
      case 2: {  // retrieve part
        if (model.empty()) break;
        std::size_t n = rng() % (model.size() + 1);
        b.retrieve(n);
        model.erase(0, n);
        break;
      }
      case 3: {  // retrieve as bytes
        std::size_t n = model.empty() ? 0 : rng() % (model.size() + 1);
        Bytes got = b.retrieve_as_bytes(n);
        ASSERT_EQ(got.view(), model.substr(0, n));
        model.erase(0, n);
        break;
      }
      case 4: {  // prepend into head-room
        std::size_t room = b.prependable_bytes();
        if (room == 0) break;
        std::size_t n = rng() % (room + 1);
        std::string s = random_bytes(rng, n);
        b.prepend(s.data(), n);
        model.insert(0, s);
        break;
      }
      case 5: {  // ensure_writable + direct write + has_written
        std::size_t n = rng() % 300;
        b.ensure_writable(n);
        ASSERT_GE(b.writable_bytes(), n);
        std::string s = random_bytes(rng, n);
        if (n) std::memcpy(b.begin_write(), s.data(), n);
        b.has_written(n);
        model += s;
        break;
      }
      case 6: {  // find byte from a random offset
        const std::uint8_t byte = static_cast<std::uint8_t>(std::string_view("abc\n\0x", 6)[rng() % 6]);
        std::size_t from = rng() % (model.size() + 2);
        auto want = model_find(model, std::string_view(reinterpret_cast<const char*>(&byte), 1), from);
        if (from >= model.size()) want = std::nullopt;
        ASSERT_EQ(b.find(byte, from), want) << "from " << from;
        break;
      }
      case 7: {  // find delimiter from a random offset
        static const std::string_view kDelims[] = {"\r\n", "ab", "\n", "abc\n", "xx"};
        std::string_view d = kDelims[rng() % 5];
        std::size_t from = rng() % (model.size() + 2);
        auto want = model_find(model, d, from);
        if (from >= model.size()) want = std::nullopt;
        ASSERT_EQ(b.find(d, from), want) << "delim " << d.size() << " from " << from;
        break;
      }
      case 8: {  // unwrite the tail
        if (model.empty()) break;
        std::size_t n = rng() % (model.size() + 1);
        b.unwrite(n);
        model.resize(model.size() - n);
        break;
      }
      case 9: {
        if (rng() % 8 == 0) {
          b.shrink_to_fit();
          ASSERT_LE(b.capacity(), Buffer::kCheapPrepend + model.size());
        }
        break;
      }
      case 10: {
        if (rng() % 32 == 0) {
          b.retrieve_all();
          model.clear();
        }
        break;
      }
    }
    expect_matches(b, model);
    if (model.empty() && b.capacity() > 0) {
      ASSERT_GE(b.prependable_bytes(), Buffer::kCheapPrepend) << "an emptied buffer resets its indexes";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, BufferRandomized, ::testing::Values(1u, 2u, 42u, 20240601u, 0xdeadbeefu));

TEST(Buffer, HeadRoomIsAtLeastEightBytes) {
  static_assert(Buffer::kCheapPrepend >= 8);
  Buffer b;
  b.append("payload");
  EXPECT_GE(b.prependable_bytes(), 8u);
  const char header[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  b.prepend(header, sizeof header);
  EXPECT_EQ(b.readable_bytes(), 15u);
  EXPECT_EQ(b.view().substr(0, 8), std::string_view(header, 8));
  EXPECT_EQ(b.view().substr(8), "payload");
}

TEST(Buffer, EmptyBufferOwnsNoStorageAndRetrieveAllResetsIndexes) {
  Buffer b;
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_TRUE(b.empty());
  EXPECT_FALSE(b.find('a').has_value());
  EXPECT_FALSE(b.find(std::string_view("ab")).has_value());
  b.append("hello");
  b.retrieve(5);
  EXPECT_EQ(b.prependable_bytes(), Buffer::kCheapPrepend);
  b.shrink_to_fit();
  EXPECT_EQ(b.capacity(), 0u);
}

TEST(Buffer, CompactsInsteadOfGrowingWhenThatIsEnough) {
  Buffer b;
  b.append(std::string(900, 'a'));
  const std::size_t cap = b.capacity();
  b.retrieve(850);  // 50 readable, lots of dead space in front
  const std::size_t need = b.writable_bytes() + 100;
  ASSERT_LE(Buffer::kCheapPrepend + b.readable_bytes() + need, cap);
  b.ensure_writable(need);
  EXPECT_EQ(b.capacity(), cap) << "compaction was enough; the buffer must not grow";
  EXPECT_EQ(b.prependable_bytes(), Buffer::kCheapPrepend);
  EXPECT_EQ(b.view(), std::string(50, 'a'));
}

TEST(Buffer, CompactsEvenWhenMoreThanHalfIsReadable) {
  Buffer b;
  b.append(std::string(1000, 'a'));
  const std::size_t cap = b.capacity();
  b.retrieve(100);  // 900 readable out of 1024
  const std::size_t need = cap - Buffer::kCheapPrepend - b.readable_bytes();
  ASSERT_GT(need, b.writable_bytes());
  b.ensure_writable(need);
  EXPECT_EQ(b.capacity(), cap);
  EXPECT_EQ(b.view(), std::string(900, 'a'));
}

TEST(Buffer, AFewBytesAfterALargeBlockDoNotMoveIt) {
  // An encoder writes a large payload and then a closing header or trailer: growing to
  // exactly the payload's size would copy the whole block again for those few bytes.
  Buffer b;
  b.append(std::string(10, 'h'));
  const std::string block(1 << 20, 'x');
  b.append(block);
  const std::uint8_t* const where = b.peek();
  const std::size_t cap = b.capacity();
  b.append(std::string(Buffer::kGrowSlack, 't'));
  EXPECT_EQ(b.peek(), where) << "the block was moved for a short tail";
  EXPECT_EQ(b.capacity(), cap);
  EXPECT_EQ(b.readable_bytes(), 10 + block.size() + Buffer::kGrowSlack);
}

TEST(Buffer, SmallBuffersKeepTheirSizes) {
  // The slack is for jumps past doubling only: a connection's first small buffer stays
  // kInitialSize (memory per idle connection), and doubling stays doubling.
  Buffer b;
  b.ensure_writable(Buffer::kInitialSize - Buffer::kCheapPrepend);  // what a first read asks for
  EXPECT_EQ(b.capacity(), Buffer::kInitialSize);
  b.append(std::string(Buffer::kInitialSize - Buffer::kCheapPrepend, 'y'));  // fills it
  b.append("z", 1);
  EXPECT_EQ(b.capacity(), 2 * Buffer::kInitialSize);
}

TEST(Buffer, GrowsAfterPrependUsedTheHeadRoom) {
  // The reader index sits inside the head-room (below kCheapPrepend) after a prepend.
  Buffer b;
  b.append(std::string(100, 'p'));
  b.prepend("12345678", 8);
  ASSERT_EQ(b.prependable_bytes(), 0u);
  b.ensure_writable(4000);
  ASSERT_GE(b.writable_bytes(), 4000u);
  b.append(std::string(4000, 'q'));
  EXPECT_EQ(b.view(), "12345678" + std::string(100, 'p') + std::string(4000, 'q'));
}

TEST(Buffer, ResumedDelimiterSearchFindsSplitDelimiter) {
  Buffer b;
  b.append("abc\r");
  std::size_t from = 0;
  auto hit = b.find(std::string_view("\r\n"), from);
  EXPECT_FALSE(hit);
  from = b.readable_bytes() - 2 + 1;  // as documented: readable - delim + 1
  b.append("\nrest");
  hit = b.find(std::string_view("\r\n"), from);
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit, 3u);
}

TEST(Buffer, MoveAndSwap) {
  Buffer a;
  a.append("one");
  Buffer b(std::move(a));
  EXPECT_EQ(b.view(), "one");
  EXPECT_EQ(a.readable_bytes(), 0u);  // NOLINT(bugprone-use-after-move): documented empty
  Buffer c;
  c.append("two");
  c = std::move(b);
  EXPECT_EQ(c.view(), "one");
  Buffer d;
  d.append("three");
  d.swap(c);
  EXPECT_EQ(d.view(), "one");
  EXPECT_EQ(c.view(), "three");
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('A' + (i * 7 + i / 251) % 26);
  return s;
}

TEST(Buffer, ReadFromFdUsesTheSpillForLargeReads) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  Fd r(sv[0]), w(sv[1]);
  ASSERT_TRUE(set_nonblocking(w.get()));
  ASSERT_TRUE(set_nonblocking(r.get()));
  int size = 1 << 20;
  ::setsockopt(w.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  ::setsockopt(r.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  const std::string data = pattern(100 * 1024);
  std::size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::write(w.get(), data.data() + sent, data.size() - sent);
    ASSERT_GT(n, 0) << "socketpair buffer too small: " << std::strerror(errno);
    sent += static_cast<std::size_t>(n);
  }
  Buffer b;
  int err = 0;
  ssize_t n = b.read_from_fd(r.get(), &err, 1 << 20);
  ASSERT_GT(n, 0) << std::strerror(err);
  // One readv fills the initial storage and then the 64 KiB spill.
  EXPECT_GT(static_cast<std::size_t>(n), Buffer::kSpillSize);
  EXPECT_EQ(b.readable_bytes(), static_cast<std::size_t>(n));
  while (b.readable_bytes() < data.size()) {
    n = b.read_from_fd(r.get(), &err, 1 << 20);
    ASSERT_GT(n, 0) << std::strerror(err);
  }
  EXPECT_EQ(b.view(), data);
  // Drained: a non-blocking read now reports EAGAIN through saved_errno.
  n = b.read_from_fd(r.get(), &err);
  EXPECT_EQ(n, -1);
  EXPECT_EQ(err, EAGAIN);
  // EOF reads 0.
  w.reset();
  EXPECT_EQ(b.read_from_fd(r.get(), &err), 0);
  EXPECT_EQ(b.view(), data);
}

TEST(Buffer, ReadFromFdHonoursMaxBytes) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  Fd r(p[0]), w(p[1]);
  const std::string data = pattern(5000);
  ASSERT_EQ(::write(w.get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  Buffer b;
  int err = 0;
  EXPECT_EQ(b.read_from_fd(r.get(), &err, 100), 100);
  EXPECT_EQ(b.view(), data.substr(0, 100));
  EXPECT_EQ(b.read_from_fd(r.get(), &err, 3000), 3000);  // writable part + spill
  EXPECT_EQ(b.view(), data.substr(0, 3100));
  EXPECT_EQ(b.read_from_fd(r.get(), &err), 1900);
  EXPECT_EQ(b.view(), data);
}

}  // namespace
}  // namespace tether
