#pragma once
// Private: the objects a connection lends its peer (RPyC's _local_objects, Cap'n Proto's
// export table), with the number of references the peer holds to each.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "tether/base/buffer.hpp"
#include "tether/brine/reader.hpp"
#include "tether/brine/value.hpp"
#include "tether/rpc/object.hpp"

namespace tether::rpc::detail {

/// Loop thread only. Each export is named by an id_pack (type name, class id, instance id);
/// instance ids the table assigns count up from 1 and are never reused on a connection.
class ExportTable {
 public:
  struct Entry {
    ObjectPtr obj;
    std::string name;  // id_pack: (name, class_id, instance id)
    std::int64_t class_id = 0;
    std::string wire;  // the id_pack as dumped (sent as is; matched as is by the decoder)
    brine::Reader::Shape wire_shape;
    std::uint64_t extra = 0;  // references the peer holds, minus one
  };
  /// What names an export: (class id, instance id). Objects named by the connection have a
  /// fresh instance id each; a class has instance id 0 (RPyC's mark of a type) and a forwarded
  /// proxy keeps its origin's pair.
  struct Key {
    std::int64_t class_id = 0;
    std::int64_t instance_id = 0;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
      return std::hash<std::int64_t>()(k.instance_id) ^ (std::hash<std::int64_t>()(k.class_id) * 31);
    }
  };
  using Map = std::unordered_map<Key, Entry, KeyHash>;
  using Slot = const Map::value_type*;

  ExportTable() = default;
  ExportTable(const ExportTable&) = delete;
  ExportTable& operator=(const ExportTable&) = delete;

  /// Lends `obj` once more: its dumped id_pack (a reference into the table; None's for a null
  /// object). The first time, it enters the table with one reference; later times add one.
  /// UsageError if its type_name() is not valid UTF-8.
  const std::string& lend(const ObjectPtr& obj);

  /// The object a received id_pack names (name, class id and instance id all match), or null.
  [[nodiscard]] ObjectPtr find(const brine::Value& id_pack) const;
  /// The same from the id_pack's parts (the fast decoder's form); null when unknown.
  [[nodiscard]] Slot find(std::string_view name, std::int64_t class_id, std::int64_t instance_id) const;
  /// The key of a lent object, if it is in the table.
  [[nodiscard]] std::optional<Key> id_of(const Object* obj) const;

  /// The exports the peer named last (LOCAL_REF), most recent first: their id_packs are
  /// recognised by their bytes before any parsing. A cache: noting is const.
  [[nodiscard]] const std::array<Slot, 4>& recent() const noexcept { return recent_; }
  void note_recent(Slot e) const noexcept;

  /// DEL: the peer holds `count` fewer references to export `key`. Returns the object when it
  /// left the table (the caller drops it after the table is consistent), else null.
  /// Returns nullopt when `key` is not in the table.
  std::optional<ObjectPtr> release(const Key& key, std::uint64_t count);

  /// Empties the table (the connection closed); returns what it held so that the caller
  /// destroys the objects after the table is consistent.
  Map take_all() noexcept;

  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

 private:
  /// Adds `obj` under the id_pack (name, class_id, iid) and returns its entry.
  Entry& add(const ObjectPtr& obj, std::string name, std::int64_t class_id, std::int64_t iid);

  Map entries_;
  std::unordered_map<const Object*, Key> ids_;  // object -> key
  mutable std::array<Slot, 4> recent_{};
  std::uint64_t next_instance_ = 1;
  Buffer scratch_;  // for dumping an id_pack (one allocation per connection, not per export)
};

}  // namespace tether::rpc::detail
