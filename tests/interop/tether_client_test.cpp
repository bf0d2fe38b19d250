// tether client -> Python RPyC servers (issue 5, points 3, 5, 6, 10 and 11): stock 5.3,
// minirpyc in 6.x mode (always) and stock 6.x (with TETHER_RPYC6_PATH), one matrix for all three.

#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
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
#include "tether/service/client.hpp"
#include "tether/service/sync.hpp"

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
  std::string v = co_await root.callattr<std::string>("version");
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
  std::int64_t r = co_await root.callattr<std::int64_t>("add", a, b);
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
  double echoed = co_await root.callattr<double>("echo", -0.0);
  double seen = co_await root.callattr<double>("sign", -0.0);
  double seen_pos = co_await root.callattr<double>("sign", 0.0);
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
  auto [seq_type, total] = co_await root.callattr<std::tuple<std::string, std::int64_t>>("sum", xs);
  EXPECT_EQ(seq_type, "tuple");
  EXPECT_EQ(total, 5050);
  auto [empty_type, zero] =
      co_await root.callattr<std::tuple<std::string, std::int64_t>>("sum", std::vector<int>{});
  EXPECT_EQ(empty_type, "tuple");
  EXPECT_EQ(zero, 0);

  // A std::map as a tuple of (key, value) pairs, which Python's dict() accepts.
  std::map<std::string, std::int64_t> m{{"b", 2}, {"a", -1}, {"\xc3\xa9t\xc3\xa9", std::int64_t{1} << 40}};
  using Items = std::vector<std::tuple<std::string, std::int64_t>>;
  auto [map_type, items] = co_await root.callattr<std::tuple<std::string, Items>>("items", m);
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
    Bytes got = co_await root.callattr<Bytes>("echo", Bytes(expect));
    EXPECT_EQ(got.size(), n);
    EXPECT_TRUE(got == expect) << n;
    std::int64_t sum = co_await root.callattr<std::int64_t>("add", static_cast<std::int64_t>(n), 1);
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

struct Caught {
  std::string module, type_name, traceback;
  std::vector<std::string> args;
};

Task<std::optional<Caught>> catch_fail(Connection& c, std::string kind) {
  Netref root = co_await c.root();
  try {
    co_await root.callattr("fail", make_args(Value(kind), Value("msg " + kind)));
  } catch (const RemoteError& e) {
    co_return Caught{e.module(), e.type_name(), e.traceback(), e.args()};
  }
  co_return std::nullopt;
}

// The Python traceback travels with the exception (wire spec §9): the text Python formatted,
// naming the raising function and the server's file, ending with "Type: message".
TEST_P(TetherClientTest, PythonTracebackArrivesWithRemoteError) {
  const std::vector<std::pair<std::string, std::string>> kinds = {
      {"value", "ValueError"}, {"key", "KeyError"}, {"runtime", "RuntimeError"}};
  for (const auto& [kind, type] : kinds) {
    std::optional<Caught> e = run(catch_fail(*conn_, kind));
    ASSERT_TRUE(e.has_value()) << kind << ": fail() did not raise";
    EXPECT_EQ(e->module, "builtins");
    EXPECT_EQ(e->type_name, type);
    EXPECT_EQ(e->args, std::vector<std::string>{"msg " + kind});
    const std::string& tb = e->traceback;
    EXPECT_NE(tb.find("Traceback (most recent call last):"), std::string::npos) << tb;
    EXPECT_NE(tb.find("py_server.py\""), std::string::npos) << tb;
    EXPECT_NE(tb.find("in exposed_fail"), std::string::npos) << tb;
    // the exception line itself (KeyError's str() quotes its argument)
    const std::string last = type + ": " + (kind == "key" ? "'msg key'" : "msg " + kind);
    EXPECT_NE(tb.find(last), std::string::npos) << "no \"" << last << "\" in:\n" << tb;
    // the raising line comes after the frame that raised it
    EXPECT_LT(tb.find("in exposed_fail"), tb.find(last)) << tb;
  }
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

using StoreItems = std::vector<std::tuple<std::string, std::int64_t>>;

/// The server's own view of the dict get_store() exports.
Task<StoreItems> store_items(const Netref& root) {
  StoreItems items = co_await root.callattr<StoreItems>("store_items");
  co_return items;
}

/// The RemoteError's "Type:first arg" an awaited operation raised, or "none".
Task<std::string> error_of(Task<void> op) {
  try {
    co_await std::move(op);
  } catch (const RemoteError& e) {
    co_return e.type_name() + ":" + (e.args().empty() ? "" : e.args()[0]);
  }
  co_return "none";
}

Task<void> discard(Task<Any> op) {
  Any r = co_await std::move(op);
  (void)r;
}

Task<void> discard_int(Task<std::int64_t> op) {
  std::int64_t r = co_await std::move(op);
  (void)r;
}

Task<void> items_of_containers(Connection& c) {
  Netref root = co_await c.root();
  Netref store = co_await root.callattr<Netref>("get_store");
  co_await store.setitem(Value("a"), Value(1));
  co_await store.setitem(Value("b"), Value(2));
  co_await store.setitem(Value("a"), Value(10));  // replaces
  StoreItems after_set = co_await store_items(root);
  EXPECT_EQ(after_set, (StoreItems{{"a", 10}, {"b", 2}, {"keep", 0}}));
  co_await store.delitem(Value("b"));
  StoreItems after_del = co_await store_items(root);
  EXPECT_EQ(after_del, (StoreItems{{"a", 10}, {"keep", 0}}));
  Any a = co_await store.getitem(Value("a"));
  EXPECT_EQ(a.value().as_int64(), 10);
  // deleting a missing key is Python's KeyError, and changes nothing
  std::string missing = co_await error_of(store.delitem(Value("b")));
  EXPECT_EQ(missing, "KeyError:b");
  StoreItems unchanged = co_await store_items(root);
  EXPECT_EQ(unchanged, (StoreItems{{"a", 10}, {"keep", 0}}));

  // a list: item assignment and deletion by index
  Netref list = co_await root.callattr<Netref>("get_list");
  co_await list.setitem(Value(0), Value(7));
  co_await list.delitem(Value(1));
  std::vector<std::int64_t> now = co_await from_any<std::vector<std::int64_t>>(Any(list));
  EXPECT_EQ(now, (std::vector<std::int64_t>{7, 3}));
  std::string out_of_range = co_await error_of(list.setitem(Value(5), Value(0)));
  EXPECT_TRUE(out_of_range.starts_with("IndexError:")) << out_of_range;
}

// setitem/delitem are CALLATTR __setitem__/__delitem__ (safe attributes); the server's own view
// of the dict is read back through another method.
TEST_P(TetherClientTest, SetitemAndDelitemChangeThePythonContainer) { run(items_of_containers(*conn_)); }

Task<void> delete_attribute(Connection& c) {
  Netref root = co_await c.root();
  Netref thing = co_await root.callattr<Netref>("thing");
  bool before = co_await root.callattr<bool>("has_attr", thing, "exposed_x");
  EXPECT_TRUE(before);
  co_await thing.delattr("x");  // py_server.py allows DELATTR; `x` names exposed_x
  bool after = co_await root.callattr<bool>("has_attr", thing, "exposed_x");
  EXPECT_FALSE(after) << "DELATTR succeeded but the attribute is still there";
  std::string gone = co_await error_of(discard(thing.getattr("x")));
  EXPECT_TRUE(gone.starts_with("AttributeError:")) << gone;
  std::string twice = co_await error_of(thing.delattr("x"));
  EXPECT_TRUE(twice.starts_with("AttributeError:")) << twice;
  // the root (an rpyc.Service / minirpyc's root) refuses DELATTR whatever the config says
  std::string refused = co_await error_of(root.delattr("add"));
  EXPECT_TRUE(refused.starts_with("AttributeError:")) << refused;
  std::int64_t still = co_await root.callattr<std::int64_t>("add", 1, 2);
  EXPECT_EQ(still, 3);
}

TEST_P(TetherClientTest, DelattrRemovesThePythonAttribute) { run(delete_attribute(*conn_)); }

/// a.compare(b, op) as a bool; a non-bool answer fails the test.
Task<bool> cmp_is(Netref a, Any b, std::string op) {
  Any r = co_await a.compare(std::move(b), op);
  const bool is_bool = r.is_value() && r.value().is_bool();
  EXPECT_TRUE(is_bool) << op << " gave " << r.repr();
  co_return is_bool && r.value().as_bool();
}

Task<void> comparisons(Connection& c) {
  Netref root = co_await c.root();
  Netref v12 = co_await root.callattr<Netref>("version_obj", 1, 2);
  Netref v12b = co_await root.callattr<Netref>("version_obj", 1, 2);
  Netref v13 = co_await root.callattr<Netref>("version_obj", 1, 3);
  EXPECT_FALSE(v12.same_object(v12b));
  bool eq_same = co_await v12.equals(v12b);
  EXPECT_TRUE(eq_same) << "Python's __eq__ of two equal Versions";
  bool eq_other = co_await v12.equals(v13);
  EXPECT_FALSE(eq_other);
  Any t12 = Value::tuple({Value(1), Value(2)});
  Any t21 = Value::tuple({Value(2), Value(1)});
  bool eq_tuple = co_await v12.equals(t12);  // a plain value on the other side
  EXPECT_TRUE(eq_tuple);
  bool eq_tuple2 = co_await v12.equals(t21);
  EXPECT_FALSE(eq_tuple2);
  struct Case {
    Netref a;
    Netref b;
    const char* op;
    bool expect;
  };
  std::vector<Case> cases;
  cases.push_back({v12, v13, "__lt__", true});
  cases.push_back({v13, v12, "__lt__", false});
  cases.push_back({v12, v13, "__le__", true});
  cases.push_back({v12, v12b, "__le__", true});
  cases.push_back({v12, v13, "__gt__", false});
  cases.push_back({v13, v12, "__gt__", true});
  cases.push_back({v12, v13, "__ge__", false});
  cases.push_back({v12, v12b, "__ge__", true});
  cases.push_back({v12, v13, "__ne__", true});
  cases.push_back({v12, v12b, "__ne__", false});
  cases.push_back({v12, v12b, "__eq__", true});
  for (auto& k : cases) {
    bool got = co_await cmp_is(k.a, k.b, k.op);
    EXPECT_EQ(got, k.expect) << k.op;
  }
  // Version.__eq__ returns NotImplemented for an int: compare() hands it over as such and
  // equals() reads it as "not equal"
  Any ni = co_await v12.compare(Value(5), "__eq__");
  EXPECT_TRUE(ni.is_value() && ni.value().is_not_implemented()) << ni.repr();
  bool eq_int = co_await v12.equals(Value(5));
  EXPECT_FALSE(eq_int);
  // an op that is not a comparison is refused by the server's attribute check
  std::string refused = co_await error_of(discard(v12.compare(v13, "__init__")));
  EXPECT_TRUE(refused.starts_with("AttributeError:")) << refused;
}

TEST_P(TetherClientTest, CompareUsesPythonRichComparisons) { run(comparisons(*conn_)); }

Task<void> hashes(Connection& c) {
  Netref root = co_await c.root();
  std::vector<Netref> objs;
  objs.push_back(co_await root.callattr<Netref>("thing"));              // object.__hash__ (identity)
  objs.push_back(co_await root.callattr<Netref>("version_obj", 1, 2));  // hash of a tuple
  // __hash__ results Python passes through, maps (-1 -> -2) or reduces (beyond 64 bits)
  std::vector<Value> hs = {Value(0), Value(-1), Value(std::int64_t{-123456789012345}),
                           Value(std::numeric_limits<std::int64_t>::max()),
                           Value(brine::BigInt::parse("123456789012345678901234567890").value())};
  for (auto& h : hs) {
    Any o = co_await root.callattr("hashed", make_args(h));
    objs.push_back(o.netref());
  }
  std::vector<std::int64_t> ours;
  for (auto& o : objs) {
    std::int64_t mine = co_await o.hash();
    std::int64_t python = co_await root.callattr<std::int64_t>("hash_of", o);
    EXPECT_EQ(mine, python) << o.type_name();
    ours.push_back(mine);
  }
  EXPECT_EQ(ours.at(3), -2) << "Python's hash() never returns -1";
  EXPECT_EQ(ours.at(5), std::numeric_limits<std::int64_t>::max());
  // equal objects hash alike
  Netref v12b = co_await root.callattr<Netref>("version_obj", 1, 2);
  std::int64_t again = co_await v12b.hash();
  EXPECT_EQ(again, ours.at(1));
  // an unhashable object: Python's TypeError
  Netref d = co_await root.callattr<Netref>("get_dict");
  std::string unhashable = co_await error_of(discard_int(d.hash()));
  EXPECT_TRUE(unhashable.starts_with("TypeError:")) << unhashable;
}

TEST_P(TetherClientTest, HashMatchesPythonsHash) { run(hashes(*conn_)); }

Task<void> with_block(Connection& c) {
  Netref root = co_await c.root();
  // leaving the block normally: __exit__(None, None, None)
  Netref ctx = co_await root.callattr<Netref>("ctx", false);
  Any entered = co_await ctx.enter();
  EXPECT_EQ(entered.value(), Value("resource"));
  Any ok = co_await ctx.exit(Any());
  EXPECT_EQ(ok.value(), Value(false));
  Any log = co_await root.callattr("ctx_log", make_args(ctx));
  EXPECT_EQ(log.value(), Value::tuple({Value::tuple({Value("enter")}),
                                       Value::tuple({Value("exit"), Value(), Value(), Value(false)})}))
      << log.repr();

  // leaving it with an exception (a Python exception object, passed back by reference): the
  // server re-raises it to call __exit__(type, value, traceback); __exit__'s answer comes back
  for (bool suppress : {true, false}) {
    Netref c2 = co_await root.callattr<Netref>("ctx", suppress);
    Any entered2 = co_await c2.enter();
    (void)entered2;
    Netref err = co_await root.callattr<Netref>("make_error", "value", "boom");
    EXPECT_TRUE(err.is_instance_of("ValueError")) << err.type_name();
    Any r = co_await c2.exit(err);
    EXPECT_EQ(r.value(), Value(suppress));
    Any log2 = co_await root.callattr("ctx_log", make_args(c2));
    EXPECT_EQ(log2.value(),
              Value::tuple({Value::tuple({Value("enter")}),
                            Value::tuple({Value("exit"), Value("ValueError"), Value::tuple({Value("boom")}),
                                          Value(true)})}))
        << log2.repr();
  }
}

TEST_P(TetherClientTest, ContextManagerEnterAndExit) { run(with_block(*conn_)); }

Task<void> ping(Connection& c) { co_await c.ping(); }

TEST_P(TetherClientTest, Ping) { run(ping(*conn_)); }

// ------------------------------------------------------------------------ generation=auto

rpc::Generation other_generation(rpc::Generation g) {
  return g == rpc::Generation::k5 ? rpc::Generation::k6 : rpc::Generation::k5;
}

/// TCP connections the Python server has accepted so far (the asking one included).
Task<std::int64_t> accepted(Connection& c) {
  Netref root = co_await c.root();
  std::int64_t n = co_await root.callattr<std::int64_t>("accepted");
  co_return n;
}

struct AutoResult {
  rpc::Generation generation{};
  std::int64_t sum = 0;
};

Task<AutoResult> connect_and_add(std::uint16_t port, ClientOptions options) {
  std::unique_ptr<Connection> c = co_await tether::connect("127.0.0.1", port, std::move(options));
  AutoResult r;
  r.generation = c->generation();
  r.sum = co_await add(*c, 40, 2);
  co_await c->close();
  co_return r;
}

std::string endpoint_of(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// tether::connect() with default options (generation=auto, first 5.x): a 5.3 server answers at
// once; a 6.x server answers the 5.x GETROOT with its own CLOSE and hangs up, and the client
// reconnects in 6.x (wire spec §14.3). The generation that worked is remembered for the endpoint:
// the second connect (here connect_sync) makes a single TCP connection.
TEST_P(TetherClientTest, AutoGenerationWithDefaultOptions) {
  forget_known_generations();
  const std::string endpoint = endpoint_of(peer_->port());
  const std::int64_t n0 = run(accepted(*conn_));

  AutoResult first = run(connect_and_add(peer_->port(), ClientOptions()));
  EXPECT_EQ(first.generation, gen_);
  EXPECT_EQ(first.sum, 42);
  const std::int64_t n1 = run(accepted(*conn_));
  EXPECT_EQ(n1 - n0, gen_ == rpc::Generation::k5 ? 1 : 2)
      << "TCP connections for the first connect (a 6.x server costs one failed 5.x probe)";
  // the generation that worked is remembered, also when it was the first one tried
  EXPECT_EQ(known_generation(endpoint), std::optional<rpc::Generation>(gen_));

  {
    SyncConnection again = connect_sync("127.0.0.1", peer_->port());
    EXPECT_EQ(again.connection().generation(), gen_);
    EXPECT_EQ(again.callattr<std::int64_t>("add", 2, 3), 5);
    again.close();
  }
  const std::int64_t n2 = run(accepted(*conn_));
  EXPECT_EQ(n2 - n1, 1) << "the second connect to " << endpoint << " should not probe again";
  forget_known_generations();
}

// Starting in the peer's other generation (for the 5.3 server: 6.x first, so the 5.3 server's
// 5.x CLOSE is what sends the client back) falls back once, remembers, and then goes straight.
TEST_P(TetherClientTest, AutoGenerationFallsBackFromTheOtherGenerationAndRemembers) {
  forget_known_generations();
  const std::string endpoint = endpoint_of(peer_->port());
  ClientOptions options;
  options.connection.first_generation = other_generation(gen_);
  const std::int64_t n0 = run(accepted(*conn_));

  AutoResult first = run(connect_and_add(peer_->port(), options));
  EXPECT_EQ(first.generation, gen_);
  EXPECT_EQ(first.sum, 42);
  const std::int64_t n1 = run(accepted(*conn_));
  EXPECT_EQ(n1 - n0, 2) << "one probe in the wrong generation, one real connection";
  EXPECT_EQ(known_generation(endpoint), std::optional<rpc::Generation>(gen_));

  AutoResult second = run(connect_and_add(peer_->port(), options));
  EXPECT_EQ(second.generation, gen_);
  EXPECT_EQ(second.sum, 42);
  const std::int64_t n2 = run(accepted(*conn_));
  EXPECT_EQ(n2 - n1, 1) << "the remembered generation was not used";
  forget_known_generations();
}

Task<std::exception_ptr> forced_first_request(std::uint16_t port, ClientOptions options) {
  std::unique_ptr<Connection> c = co_await tether::connect("127.0.0.1", port, std::move(options));
  std::exception_ptr failure;
  try {
    co_await c->root();
  } catch (...) {
    failure = std::current_exception();
  }
  EXPECT_TRUE(failure) << "a forced wrong generation got an answer";
  co_await c->wait_closed();
  std::exception_ptr why = c->error();
  co_return why;
}

// A forced generation is not probed and never falls back: the peer's CLOSE in its own
// generation closes the connection with a ProtocolError naming the generation the peer speaks.
TEST_P(TetherClientTest, ForcedWrongGenerationFailsWithoutFallback) {
  forget_known_generations();
  ClientOptions options;
  options.connection.generation = other_generation(gen_);
  const std::int64_t n0 = run(accepted(*conn_));
  std::exception_ptr why = run(forced_first_request(peer_->port(), options));
  ASSERT_TRUE(why) << "the connection closed without an error";
  const std::string expect = "peer speaks RPyC " + std::to_string(static_cast<int>(gen_)) + ".x";
  try {
    std::rethrow_exception(why);
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a ProtocolError, got: " << e.what();
  }
  EXPECT_EQ(run(accepted(*conn_)) - n0, 1) << "a forced generation must not reconnect";
  EXPECT_FALSE(known_generation(endpoint_of(peer_->port())).has_value());
}

/// Python -> tether -> Python (RPyC over RPyC): objects of one Python server, lent by tether to
/// a second Python server, which uses them as its own proxies — iteration, calls, attributes
/// and exceptions all travel through tether to the first server.
Task<void> relay_between(Connection& first, Connection& second, bool iterate, std::string type_seen) {
  Netref one = co_await first.root();
  Netref two = co_await second.root();
  Netref list = co_await one.callattr<Netref>("get_list");
  if (iterate) {
    // sum(xs) iterates the forwarded list on the second server: each step reaches the first.
    // type(xs).__name__ there is what it is when stock RPyC relays between two of its own
    // servers: "type" in 5.3, "builtins.list" in 6.0 (each builds its netref classes so).
    Any summed = co_await two.callattr("sum", make_args(list));
    EXPECT_EQ(summed.value(), Value::tuple({Value(type_seen), Value(6)})) << summed.repr();
  }
  // A bound method of the first server, called by the second.
  Netref add = co_await one.attr("add");
  Any called = co_await two.callattr("call", make_args(add, Value(40), Value(2)));
  EXPECT_EQ(called.value(), Value(42));
  // An exception raised on the first server while the second calls it reaches us from the
  // second, with the first's type.
  Netref fail = co_await one.attr("fail");
  bool raised = false;
  try {
    (void)co_await two.callattr("call", make_args(fail, Value("value"), Value("deep")));
  } catch (const RemoteException& e) {
    raised = true;
    EXPECT_EQ(e.type_name(), "ValueError") << e.what();
  }
  EXPECT_TRUE(raised);
  // Handed back to us, the list is our proxy of the first server again.
  Any back = co_await two.callattr("echo", make_args(list));
  Netref again = co_await from_any<Netref>(std::move(back));
  EXPECT_TRUE(again.same_object(list));
}

TEST_P(TetherClientTest, ObjectsOfOnePythonServerLentToAnother) {
  std::unique_ptr<PyProcess> peer2 = start_peer(GetParam());
  std::unique_ptr<Connection> conn2 = run(dial(peer2->port(), gen_));
  // minirpyc's proxies have no iteration protocol: it is checked against the stock servers.
  run(relay_between(*conn_, *conn2, GetParam() != Peer::kMini6,
                    GetParam() == Peer::kStock ? "type" : "builtins.list"));
  run(close_conn(*conn2));
}

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
