// ExportTable on its own: the objects a connection lends its peer and the references the peer
// holds to each (lend / release counting, id_pack naming, lookups, the LOCAL_REF cache, and
// that objects leaving the table are destroyed by the caller, once the table is consistent).
#include "rpc/export_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tether/base/error.hpp"
#include "tether/brine/codec.hpp"
#include "tether/brine/reader.hpp"

namespace tether::testing {
namespace {

using brine::Value;
using rpc::detail::ExportTable;

std::string dumped(const Value& v) {
  std::string s;
  brine::dump_into(v, s);
  return s;
}

/// An object named by the connection (no fixed id_pack).
class Plain : public Object {
 public:
  explicit Plain(std::string name = "tests.Plain") : name_(std::move(name)) {}
  [[nodiscard]] std::string type_name() const override { return name_; }

 private:
  std::string name_;
};

/// An object that asks to travel under a given id_pack (a class, or a forwarded proxy).
class Fixed : public Object {
 public:
  Fixed(std::optional<Value> pack, std::string name = "tests.Fixed")
      : pack_(std::move(pack)), name_(std::move(name)) {}
  [[nodiscard]] std::string type_name() const override { return name_; }
  [[nodiscard]] std::optional<Value> fixed_id_pack() const override { return pack_; }

 private:
  std::optional<Value> pack_;
  std::string name_;
};

/// Looks at the table from its own destructor: what a user object's destructor could see if
/// the table dropped it half way through an update.
class Inspector : public Object {
 public:
  struct Seen {
    bool destroyed = false;
    std::size_t size = 0;
    bool still_found = true;
    bool still_has_id = true;
  };
  Inspector(const ExportTable* table, Seen* seen) : table_(table), seen_(seen) {}
  ~Inspector() override {
    seen_->destroyed = true;
    seen_->size = table_->size();
    seen_->still_has_id = table_->id_of(this).has_value();
    seen_->still_found = false;
    for (const auto* slot : table_->recent()) {
      if (slot && slot->second.obj.get() == this) seen_->still_found = true;
    }
  }
  [[nodiscard]] std::string type_name() const override { return "tests.Inspector"; }

 private:
  const ExportTable* table_;
  Seen* seen_;
};

ExportTable::Key key_of(const ExportTable& t, const ObjectPtr& obj) {
  auto k = t.id_of(obj.get());
  EXPECT_TRUE(k.has_value());
  return k.value_or(ExportTable::Key{});
}

Value loaded(const std::string& wire) { return brine::load(std::string_view(wire)); }

TEST(ExportTableTest, EmptyTableKnowsNothing) {
  ExportTable t;
  Plain p;
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.id_of(&p).has_value());
  EXPECT_EQ(t.find(Value::make_tuple("tests.Plain", 1, 1)), nullptr);
  EXPECT_EQ(t.find("tests.Plain", 1, 1), nullptr);
  EXPECT_FALSE(t.release(ExportTable::Key{1, 1}, 1).has_value());
  for (const auto* slot : t.recent()) EXPECT_EQ(slot, nullptr);
  EXPECT_TRUE(t.take_all().empty());
}

TEST(ExportTableTest, LendingNullGivesNoneAndAddsNothing) {
  ExportTable t;
  const std::string& wire = t.lend(nullptr);
  EXPECT_EQ(wire, dumped(Value()));
  EXPECT_EQ(t.size(), 0u);
}

TEST(ExportTableTest, FirstLendAddsOneReferenceUnderAFreshIdPack) {
  ExportTable t;
  auto obj = std::make_shared<Plain>("pkg.Thing");
  const std::string wire = t.lend(obj);
  EXPECT_EQ(t.size(), 1u);

  // (type name, class id, instance id), dumped.
  const Value pack = loaded(wire);
  const auto& items = pack.as_tuple();
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].as_str(), "pkg.Thing");
  EXPECT_GT(items[1].as_int64(), 0);
  EXPECT_EQ(items[2].as_int64(), 1);  // the first instance id
  EXPECT_EQ(dumped(pack), wire);

  const ExportTable::Key k = key_of(t, obj);
  EXPECT_EQ(k.class_id, items[1].as_int64());
  EXPECT_EQ(k.instance_id, 1);

  // One reference: one DEL of one takes it out.
  auto out = t.release(k, 1);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->get(), obj.get());
  EXPECT_EQ(t.size(), 0u);
}

TEST(ExportTableTest, LendingAgainCountsAndKeepsTheSameIdPack) {
  ExportTable t;
  auto obj = std::make_shared<Plain>();
  const std::string& first = t.lend(obj);
  const std::string& second = t.lend(obj);
  const std::string& third = t.lend(obj);
  EXPECT_EQ(&first, &second);  // a reference into the same entry
  EXPECT_EQ(first, third);
  EXPECT_EQ(t.size(), 1u);
  const ExportTable::Key k = key_of(t, obj);

  // Three references: the first two releases leave it in.
  for (int i = 0; i < 2; ++i) {
    auto out = t.release(k, 1);
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(*out, nullptr) << "left after release " << i;
    EXPECT_EQ(t.size(), 1u);
  }
  auto out = t.release(k, 1);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, obj);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.id_of(obj.get()).has_value());
}

TEST(ExportTableTest, ReleaseTakesSeveralReferencesAtOnce) {
  ExportTable t;
  auto obj = std::make_shared<Plain>();
  for (int i = 0; i < 5; ++i) t.lend(obj);
  const ExportTable::Key k = key_of(t, obj);
  auto a = t.release(k, 3);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, nullptr);
  auto b = t.release(k, 2);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(*b, obj);
}

TEST(ExportTableTest, ReleasingNothingKeepsTheEntry) {
  ExportTable t;
  auto obj = std::make_shared<Plain>();
  t.lend(obj);
  const ExportTable::Key k = key_of(t, obj);
  auto out = t.release(k, 0);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, nullptr);
  EXPECT_EQ(t.size(), 1u);
  auto last = t.release(k, 1);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(*last, obj);
}

TEST(ExportTableTest, OverReleaseTakesTheEntryOut) {
  // A peer that returns more references than it was given: the export just leaves.
  ExportTable t;
  auto obj = std::make_shared<Plain>();
  t.lend(obj);
  t.lend(obj);
  const ExportTable::Key k = key_of(t, obj);
  auto out = t.release(k, 1000);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, obj);
  EXPECT_EQ(t.size(), 0u);
  // Once out, the key is unknown.
  EXPECT_FALSE(t.release(k, 1).has_value());
}

TEST(ExportTableTest, ReleaseOfAnUnknownKeyIsNullopt) {
  ExportTable t;
  auto obj = std::make_shared<Plain>();
  t.lend(obj);
  const ExportTable::Key k = key_of(t, obj);
  EXPECT_FALSE(t.release(ExportTable::Key{k.class_id, k.instance_id + 1}, 1).has_value());
  EXPECT_FALSE(t.release(ExportTable::Key{k.class_id + 1, k.instance_id}, 1).has_value());
  EXPECT_EQ(t.size(), 1u);
  // The entry was not touched: one reference still takes it out.
  auto out = t.release(k, 1);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, obj);
}

TEST(ExportTableTest, InstanceIdsCountUpAndAreNeverReused) {
  ExportTable t;
  auto a = std::make_shared<Plain>();
  auto b = std::make_shared<Plain>();
  t.lend(a);
  t.lend(b);
  EXPECT_EQ(key_of(t, a).instance_id, 1);
  EXPECT_EQ(key_of(t, b).instance_id, 2);
  // Same type: same class id; the instance id tells them apart.
  EXPECT_EQ(key_of(t, a).class_id, key_of(t, b).class_id);

  // a leaves and comes back: a new name, not its old one nor anything handed out before.
  t.release(key_of(t, a), 1);
  t.lend(a);
  EXPECT_EQ(key_of(t, a).instance_id, 3);
  auto c = std::make_shared<Plain>();
  t.lend(c);
  EXPECT_EQ(key_of(t, c).instance_id, 4);

  // Nor after take_all.
  auto all = t.take_all();
  EXPECT_EQ(all.size(), 3u);
  t.lend(a);
  EXPECT_EQ(key_of(t, a).instance_id, 5);
}

TEST(ExportTableTest, ClassIdDependsOnlyOnTheTypeName) {
  ExportTable t1;
  ExportTable t2;
  auto a = std::make_shared<Plain>("pkg.A");
  auto a2 = std::make_shared<Plain>("pkg.A");
  auto b = std::make_shared<Plain>("pkg.B");
  t1.lend(a);
  t1.lend(b);
  t2.lend(a2);
  EXPECT_EQ(key_of(t1, a).class_id, key_of(t2, a2).class_id);  // stable across tables
  EXPECT_NE(key_of(t1, a).class_id, key_of(t1, b).class_id);
  EXPECT_GT(key_of(t1, a).class_id, 0);
  EXPECT_GT(key_of(t1, b).class_id, 0);
}

TEST(ExportTableTest, DistinctObjectsGetDistinctIdPacks) {
  ExportTable t;
  std::vector<ObjectPtr> objs;
  std::vector<std::string> wires;
  for (int i = 0; i < 50; ++i) {
    objs.push_back(std::make_shared<Plain>());
    wires.push_back(t.lend(objs.back()));
  }
  EXPECT_EQ(t.size(), 50u);
  std::sort(wires.begin(), wires.end());
  EXPECT_EQ(std::adjacent_find(wires.begin(), wires.end()), wires.end());
  for (const auto& o : objs) {
    const ExportTable::Key k = key_of(t, o);
    ASSERT_NE(t.find("tests.Plain", k.class_id, k.instance_id), nullptr);
    EXPECT_EQ(t.find("tests.Plain", k.class_id, k.instance_id)->second.obj, o);
  }
}

TEST(ExportTableTest, FixedIdPackIsHonoured) {
  ExportTable t;
  const Value pack = Value::make_tuple("pkg.SomeClass", 123456789, 0);  // a class: instance 0
  auto cls = std::make_shared<Fixed>(pack);
  const std::string wire = t.lend(cls);
  EXPECT_EQ(wire, dumped(pack));
  const ExportTable::Key k = key_of(t, cls);
  EXPECT_EQ(k.class_id, 123456789);
  EXPECT_EQ(k.instance_id, 0);
  EXPECT_EQ(t.find(pack), cls);
  // Lent again: counted under the same name.
  EXPECT_EQ(t.lend(cls), wire);
  auto first = t.release(k, 1);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, nullptr);

  // The table's own counter is not used up by fixed names.
  auto p = std::make_shared<Plain>();
  t.lend(p);
  EXPECT_EQ(key_of(t, p).instance_id, 1);
}

TEST(ExportTableTest, TakenFixedIdPackGivesAFreshInstanceId) {
  // Two forwarded proxies claiming the same origin name: the peer could not tell them apart,
  // so the second is named by the table.
  ExportTable t;
  const Value pack = Value::make_tuple("origin.Obj", 777, 42);
  auto first = std::make_shared<Fixed>(pack, "origin.Obj");
  auto second = std::make_shared<Fixed>(pack, "origin.Obj");
  EXPECT_EQ(t.lend(first), dumped(pack));
  const std::string wire2 = t.lend(second);
  EXPECT_NE(wire2, dumped(pack));
  EXPECT_EQ(t.size(), 2u);

  const ExportTable::Key k1 = key_of(t, first);
  const ExportTable::Key k2 = key_of(t, second);
  EXPECT_EQ(k1, (ExportTable::Key{777, 42}));
  EXPECT_EQ(k2.instance_id, 1);  // the table's first instance id
  EXPECT_NE(k2, k1);
  const Value pack2 = loaded(wire2);
  EXPECT_EQ(pack2.as_tuple().at(0).as_str(), "origin.Obj");
  EXPECT_EQ(t.find(pack), first);
  EXPECT_EQ(t.find(pack2), second);

  // Once the first left, the name is free for a newcomer again.
  t.release(k1, 1);
  auto third = std::make_shared<Fixed>(pack, "origin.Obj");
  EXPECT_EQ(t.lend(third), dumped(pack));
}

TEST(ExportTableTest, MalformedFixedIdPackIsIgnored) {
  ExportTable t;
  auto two = std::make_shared<Fixed>(Value::make_tuple("x.Y", 5));
  auto strs = std::make_shared<Fixed>(Value::make_tuple("x.Y", "5", 6));
  auto none = std::make_shared<Fixed>(std::nullopt);
  t.lend(two);
  t.lend(strs);
  t.lend(none);
  EXPECT_EQ(key_of(t, two).instance_id, 1);
  EXPECT_EQ(key_of(t, strs).instance_id, 2);
  EXPECT_EQ(key_of(t, none).instance_id, 3);
}

TEST(ExportTableTest, InvalidUtf8TypeNameThrowsAndLeavesNothing) {
  ExportTable t;
  auto good = std::make_shared<Plain>();
  t.lend(good);
  auto bad = std::make_shared<Plain>(std::string("tests.Bad\xff", 10));
  EXPECT_THROW(t.lend(bad), UsageError);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_FALSE(t.id_of(bad.get()).has_value());
  EXPECT_EQ(bad.use_count(), 1) << "the table kept a reference to an object it refused";
  for (const auto* slot : t.recent()) {
    if (slot) {
      EXPECT_NE(slot->second.obj, bad);
    }
  }
  // Refused every time, not counted as lent.
  EXPECT_THROW(t.lend(bad), UsageError);
  EXPECT_EQ(t.size(), 1u);

  // The table still works, and names nothing twice.
  auto after = std::make_shared<Plain>();
  t.lend(after);
  EXPECT_GT(key_of(t, after).instance_id, key_of(t, good).instance_id);
  auto out = t.release(key_of(t, good), 1);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, good);
}

TEST(ExportTableTest, InvalidUtf8InAFixedNameThrows) {
  // A fixed id_pack cannot carry invalid UTF-8 (a str Value refuses it), but the type_name the
  // table falls back to when the fixed name is taken can.
  ExportTable t;
  const Value pack = Value::make_tuple("pkg.C", 9, 0);
  auto holder = std::make_shared<Fixed>(pack);
  t.lend(holder);
  auto bad = std::make_shared<Fixed>(pack, std::string("pkg.\xc3", 5));
  EXPECT_THROW(t.lend(bad), UsageError);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_FALSE(t.id_of(bad.get()).has_value());
  EXPECT_EQ(t.find(pack), holder);
}

TEST(ExportTableTest, FindByValueNeedsAllThreePartsToMatch) {
  ExportTable t;
  auto obj = std::make_shared<Plain>("pkg.Q");
  const Value pack = loaded(t.lend(obj));
  const std::int64_t cid = pack.as_tuple()[1].as_int64();
  const std::int64_t iid = pack.as_tuple()[2].as_int64();
  EXPECT_EQ(t.find(pack), obj);
  EXPECT_EQ(t.find(Value::make_tuple("pkg.R", cid, iid)), nullptr);
  EXPECT_EQ(t.find(Value::make_tuple("pkg.Q", cid + 1, iid)), nullptr);
  EXPECT_EQ(t.find(Value::make_tuple("pkg.Q", cid, iid + 1)), nullptr);
  // Wrong shapes: not found (no throw).
  EXPECT_EQ(t.find(Value::make_tuple("pkg.Q", cid)), nullptr);
  EXPECT_EQ(t.find(Value::make_tuple("pkg.Q", cid, iid, 0)), nullptr);
  EXPECT_EQ(t.find(Value::make_tuple(cid, "pkg.Q", iid)), nullptr);
  EXPECT_EQ(t.find(Value::make_tuple("pkg.Q", cid, Value(1.0))), nullptr);
  EXPECT_EQ(t.find(Value::tuple({})), nullptr);
}

TEST(ExportTableTest, FindByPartsGivesTheEntry) {
  ExportTable t;
  auto obj = std::make_shared<Plain>("pkg.Q");
  const std::string wire = t.lend(obj);
  const ExportTable::Key k = key_of(t, obj);
  ExportTable::Slot s = t.find("pkg.Q", k.class_id, k.instance_id);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->first, k);
  EXPECT_EQ(s->second.obj, obj);
  EXPECT_EQ(s->second.name, "pkg.Q");
  EXPECT_EQ(s->second.class_id, k.class_id);
  EXPECT_EQ(s->second.wire, wire);
  EXPECT_EQ(s->second.extra, 0u);
  t.lend(obj);
  EXPECT_EQ(s->second.extra, 1u);
  EXPECT_EQ(t.find("pkg.", k.class_id, k.instance_id), nullptr);
  EXPECT_EQ(t.find("pkg.Qx", k.class_id, k.instance_id), nullptr);
}

TEST(ExportTableTest, WireShapeMatchesTheWireBytes) {
  // The decoder recognises a lent id_pack by its bytes and accounts it by wire_shape.
  ExportTable t;
  auto small = std::make_shared<Plain>();
  auto big = std::make_shared<Fixed>(Value::make_tuple("pkg.Big", 123456789, -5000), "pkg.Big");
  t.lend(small);
  t.lend(big);
  for (const auto& obj : {ObjectPtr(small), ObjectPtr(big)}) {
    const ExportTable::Key k = key_of(t, obj);
    ExportTable::Slot s = t.find(obj->type_name(), k.class_id, k.instance_id);
    ASSERT_NE(s, nullptr);
    const std::string& wire = s->second.wire;
    const auto bytes =
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size());
    const brine::Limits limits;
    brine::Reader r(bytes, limits);
    EXPECT_TRUE(r.try_encoded(bytes, s->second.wire_shape, 0)) << obj->type_name();
    EXPECT_EQ(s->second.wire_shape.values, 4u);
    EXPECT_EQ(s->second.wire_shape.levels, 1u);
    EXPECT_EQ(s->second.wire_shape.widest, 3u);
  }
  const ExportTable::Key kb = key_of(t, big);
  EXPECT_EQ(t.find("pkg.Big", kb.class_id, kb.instance_id)->second.wire_shape.longest_int,
            9u);  // "123456789"
}

TEST(ExportTableTest, RecentIsMostRecentFirstAndHoldsFour) {
  ExportTable t;
  std::vector<ObjectPtr> objs;
  std::vector<ExportTable::Slot> slots;
  for (int i = 0; i < 5; ++i) {
    objs.push_back(std::make_shared<Plain>());
    t.lend(objs.back());
    const ExportTable::Key k = key_of(t, objs.back());
    slots.push_back(t.find("tests.Plain", k.class_id, k.instance_id));
  }
  // Each fresh export is noted: the newest four, newest first.
  using Recent = std::array<ExportTable::Slot, 4>;
  EXPECT_EQ(t.recent(), (Recent{slots[4], slots[3], slots[2], slots[1]}));

  // Lending again does not reorder it (only naming by the peer does).
  t.lend(objs[2]);
  EXPECT_EQ(t.recent(), (Recent{slots[4], slots[3], slots[2], slots[1]}));

  t.note_recent(slots[2]);  // present: moves to the front, the others keep their order
  EXPECT_EQ(t.recent(), (Recent{slots[2], slots[4], slots[3], slots[1]}));
  t.note_recent(slots[2]);  // already first: nothing changes
  EXPECT_EQ(t.recent(), (Recent{slots[2], slots[4], slots[3], slots[1]}));
  t.note_recent(slots[0]);  // absent: the oldest goes
  EXPECT_EQ(t.recent(), (Recent{slots[0], slots[2], slots[4], slots[3]}));
  t.note_recent(slots[3]);  // the last one to the front
  EXPECT_EQ(t.recent(), (Recent{slots[3], slots[0], slots[2], slots[4]}));
}

TEST(ExportTableTest, AnExportLeavingIsForgottenByRecent) {
  ExportTable t;
  auto a = std::make_shared<Plain>();
  auto b = std::make_shared<Plain>();
  t.lend(a);
  t.lend(b);
  const ExportTable::Key ka = key_of(t, a);
  ExportTable::Slot sb = t.find("tests.Plain", key_of(t, b).class_id, key_of(t, b).instance_id);
  t.release(ka, 1);
  // No dangling slot: a's is emptied; b's stays.
  int null_slots = 0;
  for (const auto* slot : t.recent()) {
    if (!slot) {
      ++null_slots;
      continue;
    }
    EXPECT_EQ(slot, sb);
    EXPECT_EQ(slot->second.obj, b);
  }
  EXPECT_EQ(null_slots, 3);
  EXPECT_EQ(t.recent()[0], sb);
}

TEST(ExportTableTest, ObjectLeavingIsDestroyedByTheCallerAfterTheTableIsConsistent) {
  ExportTable t;
  Inspector::Seen seen;
  auto keep = std::make_shared<Plain>();
  t.lend(keep);
  {
    auto obj = std::make_shared<Inspector>(&t, &seen);
    t.lend(obj);
    t.lend(obj);
    const ExportTable::Key k = key_of(t, obj);
    obj.reset();  // the table holds the only reference now

    auto first = t.release(k, 1);
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(*first, nullptr);
    EXPECT_FALSE(seen.destroyed);

    std::optional<ObjectPtr> dying = t.release(k, 1);
    ASSERT_TRUE(dying.has_value());
    ASSERT_NE(*dying, nullptr);
    EXPECT_FALSE(seen.destroyed) << "destroyed inside release(), while the table was being updated";
    EXPECT_EQ(t.size(), 1u);
    dying.reset();
  }
  ASSERT_TRUE(seen.destroyed);
  EXPECT_EQ(seen.size, 1u);
  EXPECT_FALSE(seen.still_has_id);
  EXPECT_FALSE(seen.still_found);
}

TEST(ExportTableTest, TakeAllEmptiesTheTableAndHandsTheObjectsOver) {
  ExportTable t;
  Inspector::Seen seen;
  auto a = std::make_shared<Plain>();
  auto b = std::make_shared<Plain>();
  t.lend(a);
  t.lend(b);
  t.lend(b);
  t.lend(std::make_shared<Inspector>(&t, &seen));
  {
    ExportTable::Map all = t.take_all();
    EXPECT_FALSE(seen.destroyed) << "destroyed inside take_all()";
    EXPECT_EQ(all.size(), 3u);
    EXPECT_EQ(t.size(), 0u);
    EXPECT_FALSE(t.id_of(a.get()).has_value());
    EXPECT_FALSE(t.id_of(b.get()).has_value());
    for (const auto* slot : t.recent()) EXPECT_EQ(slot, nullptr);
    bool saw_a = false;
    bool saw_b = false;
    for (const auto& [k, e] : all) {
      saw_a |= e.obj == a;
      saw_b |= e.obj == b;
      if (e.obj == b) {
        EXPECT_EQ(e.extra, 1u);
      }
    }
    EXPECT_TRUE(saw_a);
    EXPECT_TRUE(saw_b);
  }
  ASSERT_TRUE(seen.destroyed);
  EXPECT_EQ(seen.size, 0u);
  EXPECT_FALSE(seen.still_has_id);
  EXPECT_FALSE(seen.still_found);
  EXPECT_EQ(a.use_count(), 1);
  EXPECT_EQ(b.use_count(), 1);
  // Usable again afterwards.
  t.lend(a);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.find(loaded(t.lend(a))), a);
}

}  // namespace
}  // namespace tether::testing
