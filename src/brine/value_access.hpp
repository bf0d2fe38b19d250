#pragma once
// Private to src/brine: constructors that skip checks the caller has already made.

#include <string>
#include <vector>

#include "tether/brine/value.hpp"

namespace tether::brine {

class ValueAccess {
 public:
  using Rep = Value::Rep;
  static constexpr std::size_t kNoneIdx = Value::kNoneIdx, kBoolIdx = Value::kBoolIdx,
                               kIntIdx = Value::kIntIdx, kBigIdx = Value::kBigIdx,
                               kFloatIdx = Value::kFloatIdx, kComplexIdx = Value::kComplexIdx,
                               kBytesIdx = Value::kBytesIdx, kStrIdx = Value::kStrIdx,
                               kTupleIdx = Value::kTupleIdx, kFrozenSetIdx = Value::kFrozenSetIdx,
                               kSliceIdx = Value::kSliceIdx, kEllipsisIdx = Value::kEllipsisIdx,
                               kNotImplementedIdx = Value::kNotImplementedIdx, kObjectIdx = Value::kObjectIdx;
  /// The variant itself, for the codec's switch-based traversal.
  static const Rep& rep(const Value& v) noexcept { return v.v_; }
  static Rep& rep(Value& v) noexcept { return v.v_; }
  /// A str from text already validated as UTF-8.
  static Value str_unchecked(std::string text) { return Value(Value::UncheckedStr{}, std::move(text)); }
  /// A frozenset from members already deduplicated and checked hashable.
  static Value frozenset_unchecked(Value::Tuple members);
};

namespace detail {
/// Whether Python could hash `v` (slices, and tuples containing one, are unhashable in 3.11).
bool is_hashable(const Value& v) noexcept;
/// Drops later duplicates (by Value equality) in place, keeping first occurrences in order.
/// O(n log n) comparisons in the worst case (no hashing, so no hash flooding).
void dedupe_members(Value::Tuple& members);
/// A total order consistent with Value equality (<0, 0, >0): by kind, then by value; floats by
/// their bits with -0.0 as 0.0; frozensets by their sorted members; Objects by address.
int total_order(const Value& a, const Value& b);
/// Pointers to `members`, sorted by total_order.
std::vector<const Value*> sorted_members(const Value::Tuple& members);
}  // namespace detail

}  // namespace tether::brine
