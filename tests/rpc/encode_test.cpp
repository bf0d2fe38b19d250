// ConnectionCore::encode_boxed writes RPyC's boxed form (wire spec §5) straight into a buffer;
// it must give exactly the bytes of dump() of the boxed form built as a Value tree.
#include <gtest/gtest.h>

#include <random>

#include "rpc/connection_core.hpp"
#include "rpc_fixture.hpp"
#include "tether/brine/codec.hpp"

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
      core.encode_boxed(a, one);
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
  auto& core = *p.client->core();
  std::mt19937 rng(20261123);
  for (int i = 0; i < 500; ++i) {
    Any a = random_any(rng, 0, remote, local);
    Buffer direct;
    core.encode_boxed(a, direct);
    const Bytes via_tree = brine::dump(reference_box(a, core));
    ASSERT_EQ(direct.view(), via_tree.view()) << "case " << i;
  }
  // An empty netref travels as None; a netref of another connection is refused.
  Buffer none;
  core.encode_boxed(Any(Netref()), none);
  EXPECT_EQ(none.view(), brine::dump(Value::make_tuple(label(rpc::Label::kValue), Value())).view());
  auto other = make_rpc_pair(loop_);
  Netref foreign = run(get_root(*other.client));
  Buffer bad;
  EXPECT_THROW(core.encode_boxed(Any(foreign), bad), UsageError);
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
