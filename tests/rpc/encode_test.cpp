// MessageWriter::boxed writes RPyC's boxed form (wire spec §5) straight into a buffer;
// it must give exactly the bytes of dump() of the boxed form built as a Value tree.
#include <gtest/gtest.h>

#include <random>

#include "rpc/connection_core.hpp"
#include "rpc_fixture.hpp"
#include "tether/brine/codec.hpp"
#include "tether/loop/task_group.hpp"

namespace tether::testing {
namespace {

using brine::Value;

class EncodeTest : public LoopTest {};

Value label(rpc::Label l) { return Value(static_cast<std::int64_t>(l)); }

/// RPyC's boxing as a Value tree: (VALUE, v), (TUPLE, (boxed...)), (REMOTE_REF, id_pack) for
/// an object of ours, (LOCAL_REF, id_pack) for a netref going home, (VALUE, None) for an empty
/// netref. The id_pack of an object of ours is whatever the core assigned it: read back from
/// the core's own encoding of that one object (its label is checked here).
Value reference_box(const Any& a, rpc::detail::ConnectionCore& core) {
  switch (a.kind()) {
    case Any::Kind::kValue: return Value::make_tuple(label(rpc::Label::kValue), a.value());
    case Any::Kind::kTuple: {
      Value::Tuple boxed;
      for (const Any& item : a.items()) boxed.push_back(reference_box(item, core));
      return Value::make_tuple(label(rpc::Label::kTuple), Value::tuple(std::move(boxed)));
    }
    case Any::Kind::kLocal: {
      Buffer one;
      core.writer().boxed(a, one);
      Value boxed = brine::load(std::span<const std::uint8_t>(one.peek(), one.readable_bytes()));
      EXPECT_EQ(boxed.as_tuple().at(0), label(rpc::Label::kRemoteRef));
      return boxed;
    }
    case Any::Kind::kRemote:
      if (!a.netref().valid()) return Value::make_tuple(label(rpc::Label::kValue), Value());
      return Value::make_tuple(label(rpc::Label::kLocalRef), a.netref().id_pack());
  }
  return Value();
}

Task<Netref> get_root(Connection& c) {
  Netref r = co_await c.root();
  co_return r;
}

Value random_value(std::mt19937& rng, int depth) {
  switch (rng() % (depth > 2 ? 6 : 7)) {
    case 0: return Value();
    case 1: return Value(static_cast<bool>(rng() % 2));
    case 2: return Value(static_cast<std::int64_t>(rng()) - 2'000'000'000LL * (rng() % 3));
    case 3: return Value(std::string(rng() % 300, 'a' + static_cast<char>(rng() % 26)));
    case 4: return Value(Bytes(std::string(rng() % 70000 < 100 ? 70000 : rng() % 20, 'b')));
    case 5: return Value(static_cast<double>(rng()) / 7.0);
    default: {
      Value::Tuple items;
      for (std::size_t i = rng() % 6; i > 0; --i) items.push_back(random_value(rng, depth + 1));
      return Value::tuple(std::move(items));
    }
  }
}

Any random_any(std::mt19937& rng, int depth, const Netref& remote, const ObjectPtr& local) {
  switch (rng() % (depth > 2 ? 3 : 4)) {
    case 0: return Any(remote);
    case 1: return Any(local);
    case 2: return Any(random_value(rng, depth));
    default: {
      std::vector<Any> items;
      for (std::size_t i = rng() % 300 == 0 ? 300 : rng() % 5; i > 0; --i) {
        items.push_back(random_any(rng, depth + 1, remote, local));
      }
      return Any::tuple(std::move(items));
    }
  }
}

TEST_F(EncodeTest, EncodeBoxedMatchesDumpOfBox) {
  auto p = make_rpc_pair(loop_);
  Netref remote = run(get_root(*p.client));
  ObjectPtr local = std::make_shared<TestRoot>();
  auto& core = rpc::detail::ConnectionAccess::core(*p.client);
  std::mt19937 rng(20261123);
  for (int i = 0; i < 500; ++i) {
    Any a = random_any(rng, 0, remote, local);
    Buffer direct;
    core.writer().boxed(a, direct);
    const Bytes via_tree = brine::dump(reference_box(a, core));
    ASSERT_EQ(direct.view(), via_tree.view()) << "case " << i;
  }
  // An empty netref travels as None; a netref of another connection is lent as an object of
  // ours under the id_pack its own peer gave it (forwarding); one of a connection that is
  // gone is refused.
  Buffer none;
  core.writer().boxed(Any(Netref()), none);
  EXPECT_EQ(none.view(), brine::dump(Value::make_tuple(label(rpc::Label::kValue), Value())).view());
  auto other = make_rpc_pair(loop_);
  Netref foreign = run(get_root(*other.client));
  Buffer lent;
  {
    // Over a connection that has lent nothing yet, the origin's id_pack is free: taken as is.
    // (Where the name is taken already, a fresh instance id is used: ExportTableTest.)
    auto fresh = make_rpc_pair(loop_);
    rpc::detail::ConnectionAccess::core(*fresh.client).writer().boxed(Any(foreign), lent);
  }
  EXPECT_EQ(lent.view(),
            brine::dump(Value::make_tuple(label(rpc::Label::kRemoteRef), foreign.id_pack())).view());
  {
    auto gone = make_rpc_pair(loop_);
    Netref orphan = run(get_root(*gone.client));
    gone.client.reset();
    gone.server.reset();
    Buffer bad;
    EXPECT_THROW(core.writer().boxed(Any(orphan), bad), UsageError);
  }
}

// ---- what Netref::call<R>(name, args...) puts on the wire

Value T(std::vector<Value> items) { return Value::tuple(std::move(items)); }

Task<void> typed_calls(Connection& c) {
  Netref root = co_await c.root();
  // Plain arguments (numbers, text, bytes): one (VALUE, tuple), as RPyC boxes them.
  const std::int64_t sum = co_await root.callattr<std::int64_t>(
      "add", 40, 2u, "x", std::string("y"), std::string_view("z"), true, 1.5, Bytes(std::string("b")));
  EXPECT_EQ(sum, 42);
  EXPECT_EQ(co_await root.callattr<std::int64_t>("nothing"), 42);
  // Anything else: each argument boxed on its own.
  const std::vector<int> list{2, 3};  // (g++ 12 cannot keep an initializer list across co_await)
  EXPECT_EQ(co_await root.callattr<std::int64_t>("mixed", 1, list, root), 42);
  // Text that is not UTF-8 is refused before anything is sent.
  EXPECT_THROW((void)root.callattr<std::int64_t>("bad", std::string("\xff")), UsageError);
  EXPECT_EQ(co_await root.callattr<std::int64_t>("after"), 42);
}

TEST_F(EncodeTest, TypedCallSendsPlainArgumentsAsOneValue) {
  auto p = make_raw_server_peer(loop_);
  std::vector<Value> got;
  TaskGroup server(loop_);
  // Every call is answered with 42.
  server.spawn(serve_raw(
      *p.raw, got, [](const Value&) -> std::optional<Value> { return T({label(rpc::Label::kValue), Value(42)}); },
      5));
  run(typed_calls(*p.client));
  run(server.wait());
  ASSERT_EQ(got.size(), 5u);
  const Value target = T({label(rpc::Label::kLocalRef), raw_root_id_pack()});
  const Value no_kwargs = T({label(rpc::Label::kValue), T({})});
  auto callattr = [&](const char* name, Value args) {
    return T({Value(static_cast<std::int64_t>(rpc::Handler::kCallAttr)),
              T({label(rpc::Label::kTuple),
                 T({target, T({label(rpc::Label::kValue), Value(name)}), std::move(args), no_kwargs})})});
  };
  auto value = [](Value v) { return T({label(rpc::Label::kValue), std::move(v)}); };
  EXPECT_EQ(got[1].as_tuple().at(2),
            callattr("add", value(T({Value(40), Value(2), Value("x"), Value("y"), Value("z"), Value(true),
                                     Value(1.5), Value(Bytes(std::string("b")))}))))
      << got[1].repr(400);
  EXPECT_EQ(got[2].as_tuple().at(2), callattr("nothing", value(T({})))) << got[2].repr(400);
  EXPECT_EQ(got[3].as_tuple().at(2),
            callattr("mixed", T({label(rpc::Label::kTuple),
                                 T({value(Value(1)), value(T({Value(2), Value(3)})), target})})))
      << got[3].repr(400);
  EXPECT_EQ(got[4].as_tuple().at(2), callattr("after", value(T({})))) << got[4].repr(400);
  p.client->abort();
}

// ---- what Netref::callattr / callattr_async (a vector of Any) put on the wire

Task<void> any_calls(Connection& c) {
  Netref root = co_await c.root();
  (void)co_await root.callattr("add", make_args(Value(40), Value(2)));
  (void)co_await root.callattr("nothing");
  (void)co_await root.callattr("mixed", make_args(Value(1), root));
  // (g++ 12: no string literals or braced lists inside co_await expressions)
  Kwargs kwargs;
  kwargs.emplace_back("k", Any(Value(2)));
  const Value text("a");
  (void)co_await root.callattr_async("kw", make_args(text), std::move(kwargs));
  (void)co_await root.callattr("nested", make_args(Any::tuple(make_args(Value(1), root)), Value(3)));
}

TEST_F(EncodeTest, CallattrSendsPlainArgumentsAsOneValue) {
  auto p = make_raw_server_peer(loop_);
  std::vector<Value> got;
  TaskGroup server(loop_);
  server.spawn(serve_raw(
      *p.raw, got,
      [](const Value&) -> std::optional<Value> {
        return T({label(rpc::Label::kValue), Value(42)});
      },
      6));
  run(any_calls(*p.client));
  run(server.wait());
  ASSERT_EQ(got.size(), 6u);
  const Value target = T({label(rpc::Label::kLocalRef), raw_root_id_pack()});
  auto value = [](Value v) { return T({label(rpc::Label::kValue), std::move(v)}); };
  auto boxed_tuple = [](std::vector<Value> items) {
    return T({label(rpc::Label::kTuple), T(std::move(items))});
  };
  auto callattr = [&](const char* name, Value args, Value kwargs) {
    return T({Value(static_cast<std::int64_t>(rpc::Handler::kCallAttr)),
              T({label(rpc::Label::kTuple),
                 T({target, value(Value(name)), std::move(args), std::move(kwargs)})})});
  };
  const Value no_kwargs = value(T({}));
  // All plain: one (VALUE, tuple), as RPyC boxes a tuple of dumpable values; none at all is (VALUE, ()).
  EXPECT_EQ(got[1].as_tuple().at(2), callattr("add", value(T({Value(40), Value(2)})), no_kwargs))
      << got[1].repr(400);
  EXPECT_EQ(got[2].as_tuple().at(2), callattr("nothing", value(T({})), no_kwargs)) << got[2].repr(400);
  // A reference among them: each boxed on its own.
  EXPECT_EQ(got[3].as_tuple().at(2), callattr("mixed", boxed_tuple({value(Value(1)), target}), no_kwargs))
      << got[3].repr(400);
  EXPECT_EQ(got[4].as_tuple().at(2),
            callattr("kw", value(T({Value("a")})), value(T({T({Value("k"), Value(2)})}))))
      << got[4].repr(400);
  // A tuple holding a reference is not plain, so neither is the argument tuple around it.
  EXPECT_EQ(
      got[5].as_tuple().at(2),
      callattr("nested", boxed_tuple({boxed_tuple({value(Value(1)), target}), value(Value(3))}), no_kwargs))
      << got[5].repr(400);
  p.client->abort();
}

TEST(BrineTupleHeader, MatchesDumpForEverySizeClass) {
  for (std::size_t n : {0u, 1u, 4u, 5u, 255u, 256u, 70000u}) {
    Value::Tuple items(n, Value(7));
    Buffer out;
    brine::dump_tuple_header(n, out);
    for (const Value& v : items) brine::dump_into(v, out);
    EXPECT_EQ(out.view(), brine::dump(Value::tuple(std::move(items))).view()) << n;
  }
}

}  // namespace
}  // namespace tether::testing
