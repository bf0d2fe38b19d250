// Large bytes values (a reply's result, a CALLATTR argument) leave without being copied into
// the encoded message when the channel does not compress: the frame is spliced around them
// (OutFrame::spliced). The bytes on the wire must be those of the ordinary encoding, for
// every split, generation and mix of arguments; compressing channels and small values take
// the ordinary path; a message whose encoding fails after its block was set aside leaves
// nothing behind for the next one.
#include <gtest/gtest.h>

#include <random>

#include "rpc_fixture.hpp"
#include "tether/base/error.hpp"

namespace tether::testing {
namespace {

using brine::Value;

constexpr std::size_t kSpliceMin = 64 * 1024;  // connection_core.cpp's threshold

Bytes random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return Bytes(std::move(s));
}

/// echo_all(*args) returns its arguments as a tuple; echo(x) returns x.
class EchoRoot : public Object {
 public:
  [[nodiscard]] std::string type_name() const override { return "tests.EchoRoot"; }
  [[nodiscard]] bool has_attr(std::string_view n) const override {
    return n == "exposed_echo" || n == "exposed_echo_all";
  }
  Task<Any> call_attr(CallContext&, std::string_view name, std::vector<Any> args, Kwargs) override {
    if (name == "exposed_echo") co_return std::move(args.at(0));
    co_return Any::tuple(std::move(args));
  }
};

using EchoPair = ConnectionPair;

EchoPair make_echo_pair(EventLoop& loop, bool compress, rpc::Generation gen = rpc::Generation::kAuto) {
  ChannelOptions co;
  co.compress = compress;
  ConnectionOptions client_opts;
  client_opts.generation = gen;
  return connect_pair(loop, std::make_shared<EchoRoot>(), client_opts, {}, nullptr, co);
}

Task<Bytes> echo(Connection& c, Bytes b) {
  Netref root = co_await c.root();
  Any r = co_await root.callattr("echo", make_args(Value(std::move(b))));
  co_return r.value().as_bytes();
}

class LargePayloadTest : public LoopTest, public ::testing::WithParamInterface<rpc::Generation> {};

TEST_P(LargePayloadTest, LargeBytesGoOutUncopiedBothWays) {
  EchoPair p = make_echo_pair(loop_, false, GetParam());
  const Bytes data = random_bytes(1 << 20, 1);
  EXPECT_EQ(run(echo(*p.client, data)), data);
  EXPECT_EQ(p.client->stats().uncopied_bytes_out, data.size()) << "the argument was copied";
  EXPECT_EQ(p.server->stats().uncopied_bytes_out, data.size()) << "the result was copied";
}

INSTANTIATE_TEST_SUITE_P(Generations, LargePayloadTest,
                         ::testing::Values(rpc::Generation::k5, rpc::Generation::k6));

class LargePayloadPathTest : public LoopTest {};

TEST_F(LargePayloadPathTest, ACompressingChannelCompressesThemInstead) {
  EchoPair p = make_echo_pair(loop_, true);
  const Bytes data = random_bytes(200000, 2);
  EXPECT_EQ(run(echo(*p.client, data)), data);
  EXPECT_EQ(p.client->stats().uncopied_bytes_out, 0u);
  EXPECT_EQ(p.server->stats().uncopied_bytes_out, 0u);
}

TEST_F(LargePayloadPathTest, TheThresholdIsExact) {
  EchoPair p = make_echo_pair(loop_, false);
  const Bytes below = random_bytes(kSpliceMin - 1, 3);
  EXPECT_EQ(run(echo(*p.client, below)), below);
  EXPECT_EQ(p.client->stats().uncopied_bytes_out, 0u);
  const Bytes at = random_bytes(kSpliceMin, 4);
  EXPECT_EQ(run(echo(*p.client, at)), at);
  EXPECT_EQ(p.client->stats().uncopied_bytes_out, kSpliceMin);
  EXPECT_EQ(p.server->stats().uncopied_bytes_out, kSpliceMin);
}

Task<Any> echo_all(Connection& c, std::vector<Any> args) {
  Netref root = co_await c.root();
  Any r = co_await root.callattr("echo_all", std::move(args));
  co_return r;
}

TEST_F(LargePayloadPathTest, OneBlockPerMessageAmongOtherArguments) {
  // Two large values, text, a number and a reference between them: the first large one is
  // spliced, the second encoded in place; a tuple result is encoded as usual.
  EchoPair p = make_echo_pair(loop_, false);
  const Bytes a = random_bytes(100000, 5);
  const Bytes b = random_bytes(150000, 6);
  Any r = run(echo_all(*p.client, make_args(Value(7), Value(a), Value("text"), Value(b), Value(-1))));
  std::vector<Any> items = std::move(r).take_items();
  ASSERT_EQ(items.size(), 5u);
  EXPECT_EQ(items[0].value().as_int64(), 7);
  EXPECT_EQ(items[1].value().as_bytes(), a);
  EXPECT_EQ(items[2].value().as_str(), "text");
  EXPECT_EQ(items[3].value().as_bytes(), b);
  EXPECT_EQ(items[4].value().as_int64(), -1);
  EXPECT_EQ(p.client->stats().uncopied_bytes_out, a.size());
  EXPECT_EQ(p.server->stats().uncopied_bytes_out, 0u);
}

Task<void> typed_calls(Connection& c, Bytes a, Bytes b) {
  Netref root = co_await c.root();
  // Plain arguments travel as one (VALUE, tuple): the block is a member of that tuple.
  Bytes back = co_await root.callattr<Bytes>("echo", a);
  EXPECT_EQ(back, a);
  Any all = co_await root.callattr("echo_all", std::int64_t{3}, b, std::string("x"), a);
  std::vector<Any> items = std::move(all).take_items();
  EXPECT_EQ(items.size(), 4u);
  if (items.size() == 4) {
    EXPECT_EQ(items[0].value().as_int64(), 3);
    EXPECT_EQ(items[1].value().as_bytes(), b);
    EXPECT_EQ(items[2].value().as_str(), "x");
    EXPECT_EQ(items[3].value().as_bytes(), a);
  }
}

TEST_F(LargePayloadPathTest, TypedCallsSpliceTheirPlainArguments) {
  EchoPair p = make_echo_pair(loop_, false);
  const Bytes a = random_bytes(kSpliceMin + 1, 9);
  const Bytes b = random_bytes(3 * kSpliceMin, 10);
  run(typed_calls(*p.client, a, b));
  EXPECT_EQ(p.client->stats().uncopied_bytes_out, a.size() + b.size()) << "one block per message";
  EXPECT_EQ(p.server->stats().uncopied_bytes_out, a.size()) << "the first call's result";
}

Task<void> failed_then_good(Connection& c, Netref foreign, Bytes big, Bytes next) {
  Netref root = co_await c.root();
  // The block is set aside, then the reference of a closed connection fails the encoding.
  bool threw = false;
  try {
    (void)root.callattr_async("echo_all", make_args(Value(std::move(big)), foreign));
  } catch (const UsageError&) {
    threw = true;
  }
  EXPECT_TRUE(threw) << "a netref of a closed connection must be refused";
  Any r = co_await root.callattr("echo", make_args(Value(next)));
  EXPECT_EQ(r.value().as_bytes(), next);
  Any small = co_await root.callattr("echo", make_args(Value(Bytes::from("small"))));
  EXPECT_EQ(small.value().as_bytes().view(), "small");
}

Task<Netref> root_of(Connection& c) {
  Netref r = co_await c.root();
  co_return r;
}

TEST_F(LargePayloadPathTest, AFailedEncodingLeavesNoBlockBehind) {
  EchoPair p = make_echo_pair(loop_, false);
  EchoPair other = make_echo_pair(loop_, false);
  Netref foreign = run(root_of(*other.client));
  other.client.reset();
  other.server.reset();
  const Bytes next = random_bytes(kSpliceMin + 10, 8);
  run(failed_then_good(*p.client, foreign, random_bytes(300000, 7), next));
  EXPECT_EQ(p.client->stats().uncopied_bytes_out, next.size());
  EXPECT_EQ(p.client->stats().pending, 0u);
}

}  // namespace
}  // namespace tether::testing
