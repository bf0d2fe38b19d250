// ProxyTable on its own: one proxy state per id_pack while a Netref to it lives, counting the
// references the peer sent. The states here belong to no live connection (an empty core), so
// their destructors send nothing: only the table's bookkeeping is under test.
#include "rpc/proxy_table.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tether/base/error.hpp"
#include "tether/brine/codec.hpp"

namespace tether::testing {
namespace {

using brine::Value;
using rpc::detail::ConnectionCore;
using rpc::detail::ProxyTable;

std::string dumped(const Value& v) {
  std::string s;
  brine::dump_into(v, s);
  return s;
}

class ProxyTableTest : public ::testing::Test {
 protected:
  Netref make(const Value& pack) { return table_.make(pack, no_core_, owner()); }
  // Identity only: never dereferenced.
  const ConnectionCore* owner() const { return reinterpret_cast<const ConnectionCore*>(&owner_tag_); }

  ProxyTable table_;
  std::weak_ptr<ConnectionCore> no_core_;
  int owner_tag_ = 0;
};

TEST_F(ProxyTableTest, EmptyTableHasNoLiveProxies) {
  EXPECT_EQ(table_.live(), 0u);
  table_.forget("nothing");  // unknown key: no-op
  table_.forget("");
  EXPECT_EQ(table_.live(), 0u);
}

TEST_F(ProxyTableTest, FirstReferenceMakesAProxyWithOneReference) {
  const Value pack = Value::make_tuple("builtins.list", 1234, 5);
  Netref r = make(pack);
  ASSERT_TRUE(r.valid());
  const auto& st = *r.state();
  EXPECT_EQ(st.refcount, 1u);
  EXPECT_EQ(st.id_pack, pack);
  EXPECT_EQ(st.type_name, "builtins.list");
  EXPECT_EQ(st.key, dumped(pack));
  EXPECT_EQ(st.owner, owner());
  EXPECT_EQ(r.type_name(), "builtins.list");
  EXPECT_EQ(r.id_pack(), pack);
  EXPECT_EQ(table_.live(), 1u);
}

TEST_F(ProxyTableTest, TheSameIdPackWhileAliveGivesTheSameProxyAndCounts) {
  const Value pack = Value::make_tuple("m.Obj", 77, 3);
  Netref a = make(pack);
  Netref b = make(pack);
  Netref c = make(Value::make_tuple("m.Obj", 77, 3));  // an equal Value, built anew
  EXPECT_EQ(a.state(), b.state());
  EXPECT_EQ(a.state(), c.state());
  EXPECT_TRUE(a.same_object(c));
  EXPECT_EQ(a.state()->refcount, 3u);
  EXPECT_EQ(table_.live(), 1u);
}

TEST_F(ProxyTableTest, IdPacksDifferingInAnyPartAreDifferentProxies) {
  Netref base = make(Value::make_tuple("m.Obj", 77, 3));
  std::vector<Netref> others;
  others.push_back(make(Value::make_tuple("m.Obk", 77, 3)));
  others.push_back(make(Value::make_tuple("m.Obj", 78, 3)));
  others.push_back(make(Value::make_tuple("m.Obj", 77, 4)));
  for (const Netref& o : others) {
    EXPECT_NE(o.state(), base.state());
    EXPECT_EQ(o.state()->refcount, 1u);
  }
  EXPECT_EQ(base.state()->refcount, 1u);
  EXPECT_EQ(table_.live(), 4u);
}

TEST_F(ProxyTableTest, CopiesOfANetrefAreNotReferencesFromThePeer) {
  Netref a = make(Value::make_tuple("m.Obj", 1, 1));
  Netref copy = a;  // NOLINT(performance-unnecessary-copy-initialization)
  EXPECT_EQ(a.state()->refcount, 1u);
  a = Netref();
  EXPECT_EQ(table_.live(), 1u);  // the copy keeps it alive
  copy = Netref();
  EXPECT_EQ(table_.live(), 0u);
}

TEST_F(ProxyTableTest, AfterTheLastNetrefWentANewProxyStartsAtOne) {
  const Value pack = Value::make_tuple("m.Obj", 9, 9);
  std::weak_ptr<rpc::detail::NetrefState> old;
  {
    Netref a = make(pack);
    Netref b = make(pack);
    old = a.state();
    EXPECT_EQ(a.state()->refcount, 2u);
  }
  EXPECT_TRUE(old.expired());
  EXPECT_EQ(table_.live(), 0u);
  // No forget() was called (no live core to call it): the stale entry is replaced.
  Netref again = make(pack);
  EXPECT_EQ(again.state()->refcount, 1u);
  EXPECT_EQ(table_.live(), 1u);
}

TEST_F(ProxyTableTest, ForgetDropsOnlyADeadEntry) {
  const Value pack = Value::make_tuple("m.Obj", 2, 2);
  Netref a = make(pack);
  // The entry of a live proxy stays: the next reference still finds it.
  table_.forget(a.state()->key);
  EXPECT_EQ(table_.live(), 1u);
  Netref b = make(pack);
  EXPECT_EQ(a.state(), b.state());
  EXPECT_EQ(a.state()->refcount, 2u);

  const std::string key = a.state()->key;
  a = Netref();
  b = Netref();
  EXPECT_EQ(table_.live(), 0u);
  table_.forget(key);
  table_.forget(key);  // twice: no-op
  EXPECT_EQ(table_.live(), 0u);
  Netref c = make(pack);
  EXPECT_EQ(c.state()->refcount, 1u);
  EXPECT_EQ(table_.live(), 1u);
}

TEST_F(ProxyTableTest, LiveCountsOnlyProxiesStillReferenced) {
  std::vector<Netref> refs;
  for (int i = 0; i < 10; ++i) refs.push_back(make(Value::make_tuple("m.Obj", 1, i)));
  EXPECT_EQ(table_.live(), 10u);
  for (int i = 0; i < 10; i += 2) refs[static_cast<std::size_t>(i)] = Netref();
  EXPECT_EQ(table_.live(), 5u);
  refs.clear();
  EXPECT_EQ(table_.live(), 0u);
}

TEST_F(ProxyTableTest, AProxyWithoutItsConnectionIsDisconnected) {
  Netref r = make(Value::make_tuple("m.Obj", 1, 1));
  EXPECT_FALSE(r.connected());
  EXPECT_THROW((void)r.state()->lock(), Disconnected);
}

}  // namespace
}  // namespace tether::testing
