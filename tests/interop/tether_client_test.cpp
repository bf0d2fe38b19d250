// tether client -> Python RPyC servers (issue 5, points 10 and 11): stock 5.3, minirpyc in 6.x
// mode (always) and stock 6.x (with TETHER_RPYC6_PATH), one matrix for all three.

#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "py_process.hpp"
#include "test_util.hpp"
#include "tether/channel/channel.hpp"
#include "tether/net/connect.hpp"
#include "tether/rpc/connection.hpp"
#include "tether/rpc/convert.hpp"
#include "tether/rpc/remote_exception.hpp"

namespace tether::testing {

using brine::Value;
using namespace std::chrono_literals;

namespace {

std::string source_dir() { return TETHER_INTEROP_DIR; }

enum class Peer { kStock, kMini6, kStock6 };

std::string peer_name(Peer p) {
  switch (p) {
    case Peer::kStock: return "stock";
    case Peer::kMini6: return "minirpyc6";
    case Peer::kStock6: return "stock6";
  }
  return "?";
}

/// Where minirpyc.py is: $TETHER_MINIRPYC_DIR, else the copy in tests/interop/minirpyc.
std::string minirpyc_dir() {
  const char* env = std::getenv("TETHER_MINIRPYC_DIR");
  return env && *env ? env : TETHER_MINIRPYC_DIR;
}

std::unique_ptr<PyProcess> start_peer(Peer p, const std::string& mode = "") {
  std::vector<std::string> env;
  std::vector<std::string> argv{"/usr/bin/python3", source_dir() + "/py_server.py"};
  if (!mode.empty()) argv.push_back(mode);
  if (p == Peer::kMini6) {
    argv.push_back("--mini6");
    env.push_back("TETHER_MINIRPYC_DIR=" + minirpyc_dir());
  }
  if (p == Peer::kStock6) {
    const char* path = std::getenv("TETHER_RPYC6_PATH");
    env.push_back(std::string("PYTHONPATH=") + (path ? path : ""));
  }
  return std::make_unique<PyProcess>(argv, env);
}

/// The RPyC 6.x tree to test against, or empty: an empty value counts as unset, since
/// PYTHONPATH= would quietly give Debian's 5.3.
std::string rpyc6_path() {
  const char* env = std::getenv("TETHER_RPYC6_PATH");
  return env ? env : "";
}

/// `channel` is what tether::connect() takes as ClientOptions::channel; this file builds the
/// Connection itself to stay on the rpc layer. `raw_channel`, when given, is left pointing at
/// the Channel the Connection owns (for its stats).
Task<std::unique_ptr<Connection>> dial(std::uint16_t port, rpc::Generation gen, ObjectPtr root = nullptr,
                                       ChannelOptions channel = {}, Channel** raw_channel = nullptr) {
  ConnectOptions copts;
  std::unique_ptr<BufferedStream> stream = co_await open_connection("127.0.0.1", port, copts);
  ConnectionOptions opts;
  opts.generation = gen;
  auto ch = std::make_unique<Channel>(std::move(stream), channel);
  if (raw_channel) *raw_channel = ch.get();
  auto conn = std::make_unique<Connection>(std::move(ch), std::move(root), opts);
  conn->start();
  co_return conn;
}

Task<std::string> peer_version(Connection& c) {
  Netref root = co_await c.root();
  std::string v = co_await root.call<std::string>("version");
  co_return v;
}

}  // namespace

class TetherClientTest : public LoopTest, public ::testing::WithParamInterface<Peer> {
 protected:
  void SetUp() override {
    LoopTest::SetUp();
    if (GetParam() == Peer::kStock6 && rpyc6_path().empty()) {
      GTEST_SKIP() << "TETHER_RPYC6_PATH is not set: no stock RPyC 6.x tree to test against "
                      "(point it at a directory holding RPyC 6.x's rpyc package)";
    }
    // minirpyc is part of the repository: without it the 6.x matrix would silently shrink.
    ASSERT_TRUE(GetParam() != Peer::kMini6 || ::access((minirpyc_dir() + "/minirpyc.py").c_str(), R_OK) == 0)
        << "minirpyc.py not found in " << minirpyc_dir();
    peer_ = start_peer(GetParam());
    gen_ = GetParam() == Peer::kStock ? rpc::Generation::k5 : rpc::Generation::k6;
    conn_ = run(dial(peer_->port(), gen_));
    // A wrong TETHER_RPYC6_PATH leaves Python importing Debian's 5.3, and a PYTHONPATH in the
    // environment could do the reverse to the stock peer: make sure each peer is what it says.
    std::string version;
    try {
      version = run(peer_version(*conn_));
    } catch (const std::exception& e) {
      FAIL() << peer_name(GetParam()) << " peer did not answer version() in its generation"
             << (GetParam() == Peer::kStock6 ? " (TETHER_RPYC6_PATH=" + rpyc6_path() + ")" : "") << ": "
             << e.what();
    }
    if (GetParam() == Peer::kStock6) {
      ASSERT_TRUE(version.starts_with("6."))
          << "TETHER_RPYC6_PATH=" << rpyc6_path() << " gave rpyc " << version;
    } else if (GetParam() == Peer::kStock) {
      ASSERT_TRUE(version.starts_with("5.")) << "the stock peer runs rpyc " << version;
    } else {
      ASSERT_EQ(version, "minirpyc 6.x");
    }
  }
  void TearDown() override {
    if (conn_) run(close_conn(*conn_));
    conn_.reset();
    peer_.reset();
    LoopTest::TearDown();
  }
  static Task<void> close_conn(Connection& c) { co_await c.close(); }
  std::unique_ptr<PyProcess> peer_;
  std::unique_ptr<Connection> conn_;
  rpc::Generation gen_{};
};

Task<std::int64_t> add(Connection& c, std::int64_t a, std::int64_t b) {
  Netref root = co_await c.root();
  std::int64_t r = co_await root.call<std::int64_t>("add", a, b);
  co_return r;
}

TEST_P(TetherClientTest, AddIsOneCallAttr) {
  EXPECT_EQ(run(add(*conn_, 40, 2)), 42);
  // one CALLATTR per call: after GETROOT (1 request), each add costs exactly one more request
  auto before = conn_->stats().requests_out;
  EXPECT_EQ(run(add(*conn_, 1, 2)), 3);
  EXPECT_EQ(conn_->stats().requests_out - before, 1u);
}

Task<void> echo_all(Connection& c, std::vector<Value> values) {
  Netref root = co_await c.root();
  for (auto& v : values) {
    Any r = co_await root.callattr("echo", make_args(v));
    EXPECT_TRUE(r.is_value()) << v.repr(80);
    if (!r.is_value()) continue;
    if (v.is_float() && std::isnan(v.as_double())) {
      EXPECT_TRUE(std::isnan(r.value().as_double()));
    } else {
      EXPECT_EQ(r.value(), v) << "sent " << v.repr(80) << " got " << r.value().repr(80);
      EXPECT_EQ(r.value().type(), v.type()) << v.repr(80);
    }
  }
}

TEST_P(TetherClientTest, EveryBrineTypeRoundTrips) {
  std::vector<Value> values = {Value(), Value(true), Value(false), Value(0), Value(-48), Value(-49), Value(159),
                               Value(160), Value(std::int64_t{1} << 62), Value(std::numeric_limits<std::int64_t>::min()),
                               Value(brine::BigInt::parse("123456789012345678901234567890").value()),
                               Value(brine::BigInt::parse(std::string(4300, '9')).value()),
                               Value(1.5), Value(-0.0), Value(std::nan("")), Value(INFINITY),
                               Value::complex(1.5, -2), Value(Bytes()), Value::bytes(std::string(300, 'x')),
                               Value(""), Value("h\xc3\xa9llo \xe2\x98\x83"), Value::tuple({}),
                               Value::tuple({Value(1), Value::tuple({Value(2), Value("x")})}),
                               Value::frozenset({Value(1), Value("a")}), Value::slice(Value(1), Value(), Value(3)),
                               Value::ellipsis(), Value::not_implemented()};
  run(echo_all(*conn_, values));
}

Task<std::vector<double>> signs(Connection& c) {
  Netref root = co_await c.root();
  double echoed = co_await root.call<double>("echo", -0.0);
  double seen = co_await root.call<double>("sign", -0.0);
  double seen_pos = co_await root.call<double>("sign", 0.0);
  co_return std::vector<double>{echoed, seen, seen_pos};
}

// Value equality has -0.0 == 0.0, so EveryBrineTypeRoundTrips cannot see a lost sign.
TEST_P(TetherClientTest, NegativeZeroKeepsItsSign) {
  auto r = run(signs(*conn_));
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0], 0.0);
  EXPECT_TRUE(std::signbit(r[0])) << "the echo of -0.0 came back as +0.0";
  EXPECT_EQ(r[1], -1.0) << "Python received -0.0 as +0.0";
  EXPECT_EQ(r[2], 1.0);
}

Task<void> cpp_containers(Connection& c) {
  Netref root = co_await c.root();
  std::vector<std::int64_t> xs;
  for (std::int64_t i = 1; i <= 100; ++i) xs.push_back(i);
  // A std::vector travels by value, as a tuple (docs/python-interop.md, type mapping).
  auto [seq_type, total] = co_await root.call<std::tuple<std::string, std::int64_t>>("sum", xs);
  EXPECT_EQ(seq_type, "tuple");
  EXPECT_EQ(total, 5050);
  auto [empty_type, zero] =
      co_await root.call<std::tuple<std::string, std::int64_t>>("sum", std::vector<int>{});
  EXPECT_EQ(empty_type, "tuple");
  EXPECT_EQ(zero, 0);

  // A std::map as a tuple of (key, value) pairs, which Python's dict() accepts.
  std::map<std::string, std::int64_t> m{{"b", 2}, {"a", -1}, {"\xc3\xa9t\xc3\xa9", std::int64_t{1} << 40}};
  using Items = std::vector<std::tuple<std::string, std::int64_t>>;
  auto [map_type, items] = co_await root.call<std::tuple<std::string, Items>>("items", m);
  EXPECT_EQ(map_type, "tuple");
  EXPECT_EQ(items, (Items{{"a", -1}, {"b", 2}, {"\xc3\xa9t\xc3\xa9", std::int64_t{1} << 40}}));
}

TEST_P(TetherClientTest, CppVectorAndMapArguments) { run(cpp_containers(*conn_)); }

Bytes pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 2654435761u) >> 13);
  return Bytes(std::move(s));
}

Task<void> big_bytes(Connection& c) {
  Netref root = co_await c.root();
  for (std::size_t n : {std::size_t{1} << 20, std::size_t{32} << 20}) {
    Value sent = Value(pattern(n));
    Any r = co_await root.callattr("echo", make_args(sent));
    EXPECT_EQ(r.value().as_bytes().size(), n);
    EXPECT_TRUE(r.value() == sent);
  }
}

TEST_P(TetherClientTest, BigBytesBothWays) { run(big_bytes(*conn_), 120s); }

Task<void> big_bytes_uncompressed(std::uint16_t port, rpc::Generation gen) {
  ChannelOptions raw;
  raw.compress = false;
  Channel* channel = nullptr;
  std::unique_ptr<Connection> c = co_await dial(port, gen, nullptr, raw, &channel);
  Netref root = co_await c->root();
  std::uint64_t sent_bytes = 0;
  for (std::size_t n : {std::size_t{1} << 20, std::size_t{32} << 20}) {
    Bytes expect = pattern(n);
    Bytes got = co_await root.call<Bytes>("echo", Bytes(expect));
    EXPECT_EQ(got.size(), n);
    EXPECT_TRUE(got == expect) << n;
    std::int64_t sum = co_await root.call<std::int64_t>("add", static_cast<std::int64_t>(n), 1);
    EXPECT_EQ(sum, static_cast<std::int64_t>(n) + 1);  // the stream is still in step
    sent_bytes += n;
  }
  // Nothing went out compressed, and the payloads went out spliced (docs/rpc.md, "Large
  // payloads"), the path only an uncompressed channel takes.
  EXPECT_EQ(channel->stats().compressed_out, 0u);
  EXPECT_EQ(c->stats().uncopied_bytes_out, sent_bytes);
  co_await c->close();
}

TEST_P(TetherClientTest, BigBytesWithCompressionOff) {
  run(big_bytes_uncompressed(peer_->port(), gen_), 120s);
}

Task<std::vector<std::string>> exceptions(Connection& c, std::vector<std::string> kinds) {
  Netref root = co_await c.root();
  std::vector<std::string> seen;
  for (auto& k : kinds) {
    try {
      co_await root.callattr("fail", make_args(Value(k), Value("msg " + k)));
      seen.push_back("none");
    } catch (const RemoteError& e) {
      seen.push_back(e.type_name() + ":" + (e.args().empty() ? "" : e.args()[0]));
    }
  }
  co_return seen;
}

TEST_P(TetherClientTest, PythonExceptionsArriveAsRemoteError) {
  auto seen = run(exceptions(*conn_, {"value", "index", "key", "overflow", "runtime", "type"}));
  EXPECT_EQ(seen, (std::vector<std::string>{"ValueError:msg value", "IndexError:msg index", "KeyError:msg key",
                                            "OverflowError:msg overflow", "RuntimeError:msg runtime",
                                            "TypeError:msg type"}));
}

Task<std::string> missing(Connection& c) {
  Netref root = co_await c.root();
  try {
    co_await root.getattr("no_such_thing");
  } catch (const RemoteError& e) {
    co_return e.type_name();
  }
  co_return "none";
}

TEST_P(TetherClientTest, MissingAttributeIsAttributeError) { EXPECT_EQ(run(missing(*conn_)), "AttributeError"); }

Task<std::int64_t> callback(Connection& c) {
  Netref root = co_await c.root();
  ObjectPtr fn = make_function("times_two", [](std::vector<Any> args, Kwargs) {
    return Any(Value(args.at(0).value().as_int64() * 2));
  });
  Any r = co_await root.callattr("call", make_args(fn, Value(21)));
  co_return r.value().as_int64();
}

TEST_P(TetherClientTest, PythonCallsCppCallback) { EXPECT_EQ(run(callback(*conn_)), 42); }

Task<std::int64_t> bounce(Connection& c, int depth) {
  Netref root = co_await c.root();
  Netref b = co_await root.attr("bounce");
  // bounce(fn, n) on Python calls fn(n - 1); our fn calls bounce(fn, n - 1) again, passing
  // itself back, so the nesting grows in both directions.
  auto self_ref = std::make_shared<ObjectPtr>();
  auto fn2 = std::make_shared<FunctionObject>("cpp_bounce2", [b, self_ref](CallContext&, std::vector<Any> args, Kwargs) {
    return b.call(make_args(*self_ref, args.at(0)));
  });
  *self_ref = fn2;
  Any r = co_await b.call(make_args(ObjectPtr(fn2), Value(depth)));
  self_ref->reset();
  co_return r.value().as_int64();
}

TEST_P(TetherClientTest, CallbacksNestBothWays) { EXPECT_EQ(run(bounce(*conn_, 12)), 12); }

Task<std::int64_t> pipelined(Connection& c, int n) {
  Netref root = co_await c.root();
  std::vector<AsyncResult> rs;
  for (int i = 0; i < n; ++i) rs.push_back(root.callattr_async("add", make_args(Value(i), Value(1))));
  std::int64_t sum = 0;
  for (auto& r : rs) {
    Any v = co_await r;
    sum += v.value().as_int64();
  }
  co_return sum;
}

TEST_P(TetherClientTest, ThousandPipelinedCalls) { EXPECT_EQ(run(pipelined(*conn_, 1000)), 999 * 1000 / 2 + 1000); }

Task<void> python_objects(Connection& c) {
  Netref root = co_await c.root();
  Any l = co_await root.callattr("get_list");
  Netref list = l.netref();
  EXPECT_TRUE(list.is_instance_of("list"));
  std::int64_t n = co_await list.len();
  EXPECT_EQ(n, 3);
  Any second = co_await list.getitem(Value(1));
  EXPECT_EQ(second.value().as_int64(), 2);
  std::vector<std::int64_t> items = co_await from_any<std::vector<std::int64_t>>(l);
  EXPECT_EQ(items, (std::vector<std::int64_t>{1, 2, 3}));
  bool has2 = co_await list.contains(Value(2));
  EXPECT_TRUE(has2);

  Any d = co_await root.callattr("get_dict");
  auto m = co_await from_any<std::map<std::string, std::int64_t>>(d);
  EXPECT_EQ(m, (std::map<std::string, std::int64_t>{{"a", 1}, {"b", 2}}));

  Any g = co_await root.callattr("gen", make_args(Value(4)));
  std::vector<Any> squares = co_await g.netref().to_list();
  EXPECT_EQ(squares.size(), 4u);
  if (squares.size() == 4) {
    EXPECT_EQ(squares[3].value().as_int64(), 9);
  }

  Any t = co_await root.callattr("thing");
  Netref thing = t.netref();
  Any x = co_await thing.getattr("x");
  EXPECT_EQ(x.value().as_int64(), 5);
  Any dbl = co_await thing.callattr("double", make_args(Value(21)));
  EXPECT_EQ(dbl.value().as_int64(), 42);
  std::string s = co_await thing.str();
  std::string r = co_await thing.repr();
  EXPECT_EQ(s, "Thing(5)");
  EXPECT_EQ(r, "<Thing x=5>");
  std::int64_t h = co_await thing.hash();
  (void)h;
  bool eq = co_await thing.equals(t);
  EXPECT_TRUE(eq);
}

TEST_P(TetherClientTest, NetrefsToPythonObjects) { run(python_objects(*conn_)); }

Task<void> ping(Connection& c) { co_await c.ping(); }

TEST_P(TetherClientTest, Ping) { run(ping(*conn_)); }

INSTANTIATE_TEST_SUITE_P(Peers, TetherClientTest, ::testing::Values(Peer::kStock, Peer::kMini6, Peer::kStock6),
                         [](const auto& info) { return peer_name(info.param); });

// ------------------------------------------------------------------------------------ classic

class ClassicTest : public LoopTest {};

Task<void> classic(std::uint16_t port, pid_t server_pid) {
  std::unique_ptr<Connection> c = co_await dial(port, rpc::Generation::k5);
  Netref root = co_await c->root();
  Any os = co_await root.callattr("getmodule", make_args(Value("os")));
  Any pid = co_await os.netref().callattr("getpid");
  EXPECT_EQ(pid.value().as_int64(), server_pid);
  Any three = co_await root.callattr("eval", make_args(Value("1+2")));
  EXPECT_EQ(three.value().as_int64(), 3);
  co_await c->close();
}

TEST_F(ClassicTest, ModulesOsGetpidAndEval) {
  auto peer = start_peer(Peer::kStock, "--classic");
  run(classic(peer->port(), peer->pid()));
}

}  // namespace tether::testing
