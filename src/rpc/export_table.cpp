#include "rpc/export_table.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "tether/base/error.hpp"
#include "tether/brine/codec.hpp"
#include "tether/brine/utf8.hpp"

namespace tether::rpc::detail {

namespace {


/// Characters of an int as INT_L1 text, sign included (0 for an immediate one).
std::size_t int_chars(std::int64_t i) {
  if (i >= brine::tag::kImmMin && i <= brine::tag::kImmMax) return 0;
  std::size_t n = i < 0 ? 2 : 1;
  for (std::uint64_t u = i < 0 ? 0 - static_cast<std::uint64_t>(i) : static_cast<std::uint64_t>(i); u >= 10; u /= 10) ++n;
  return n;
}

const std::string& none_id_pack() {
  static const std::string kNone = [] {
    std::string s;
    brine::dump_into(brine::Value(), s);
    return s;
  }();
  return kNone;
}

}  // namespace

const std::string& ExportTable::lend(const ObjectPtr& obj) {
  if (!obj) return none_id_pack();
  auto found = ids_.find(obj.get());
  if (found != ids_.end()) {
    Entry& e = entries_.at(found->second);
    ++e.extra;
    return e.wire;
  }
  if (std::optional<brine::Value> fixed = obj->fixed_id_pack()) {
    // A class or a forwarded proxy: the id_pack it must travel under, unless another object
    // holds that name here already (the peer could not tell them apart): then its own.
    const auto& t = fixed->as_tuple();
    if (t.size() == 3 && t[0].is_str() && t[1].is_int64() && t[2].is_int64() &&
        !entries_.contains(Key{t[1].as_int64(), t[2].as_int64()})) {
      return add(obj, t[0].as_str(), t[1].as_int64(), t[2].as_int64()).wire;
    }
  }
  std::string name = obj->type_name();
  const std::int64_t class_id = class_id_for(name);
  return add(obj, std::move(name), class_id, static_cast<std::int64_t>(next_instance_++)).wire;
}

ExportTable::Entry& ExportTable::add(const ObjectPtr& obj, std::string name, std::int64_t class_id,
                                     std::int64_t iid) {
  Entry e;
  e.obj = obj;
  e.name = std::move(name);
  if (auto bad = brine::find_invalid_utf8(e.name)) {
    throw UsageError(
        fmt::format("type_name() of an exported object is not valid UTF-8 (byte 0x{:02x} at offset {})",
                    static_cast<unsigned char>(e.name[*bad]), *bad));
  }
  e.class_id = class_id;
  // dump((name, class_id, iid)), written from its pieces.
  Buffer& b = scratch_;
  b.retrieve_all();
  brine::dump_tuple_header(3, b);
  brine::dump_str(e.name, b);
  brine::dump_int(e.class_id, b);
  brine::dump_int(iid, b);
  e.wire = std::string(b.view());
  e.wire_shape = brine::Reader::Shape{4, 1, 3, std::max(int_chars(e.class_id), int_chars(iid))};
  const Key key{class_id, iid};
  auto placed = entries_.emplace(key, std::move(e));
  ids_.emplace(obj.get(), key);
  // A fresh export is usually named back soon (a method just fetched is called next): its
  // id_pack is then recognised by its bytes from the first time.
  note_recent(&*placed.first);
  return placed.first->second;
}

ObjectPtr ExportTable::find(const brine::Value& id_pack) const {
  const auto& t = id_pack.as_tuple();
  if (t.size() == 3 && t[0].is_str() && t[1].is_int64() && t[2].is_int64()) {
    if (Slot e = find(t[0].as_str(), t[1].as_int64(), t[2].as_int64())) return e->second.obj;
  }
  return nullptr;
}

ExportTable::Slot ExportTable::find(std::string_view name, std::int64_t class_id, std::int64_t instance_id) const {
  auto it = entries_.find(Key{class_id, instance_id});
  if (it == entries_.end() || it->second.name != name) return nullptr;
  return &*it;
}

std::optional<ExportTable::Key> ExportTable::id_of(const Object* obj) const {
  auto it = ids_.find(obj);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

void ExportTable::note_recent(Slot e) const noexcept {
  if (recent_[0] == e) return;
  auto slot = std::find(recent_.begin(), recent_.end(), e);
  if (slot == recent_.end()) slot = recent_.end() - 1;
  std::move_backward(recent_.begin(), slot, slot + 1);
  recent_[0] = e;
}

std::optional<ObjectPtr> ExportTable::release(const Key& key, std::uint64_t count) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  if (it->second.extra >= count) {
    it->second.extra -= count;
    return ObjectPtr();
  }
  std::replace(recent_.begin(), recent_.end(), static_cast<Slot>(&*it), static_cast<Slot>(nullptr));
  ObjectPtr dying = std::move(it->second.obj);
  ids_.erase(dying.get());
  entries_.erase(it);
  return dying;
}

ExportTable::Map ExportTable::take_all() noexcept {
  Map all = std::move(entries_);
  entries_.clear();
  ids_.clear();
  recent_.fill(nullptr);
  return all;
}

}  // namespace tether::rpc::detail
