#pragma once
// Private: a binary min-heap of deadlines with lazy cancellation. Equal deadlines fire in
// creation order (the id breaks ties). Cancelled entries are skipped when popped and the heap
// is rebuilt when they outnumber the live ones.

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "tether/loop/event_loop.hpp"

namespace tether::detail {

class TimerQueue {
 public:
  TimerId add(TimePoint when, Callback fn);
  bool cancel(TimerId id) noexcept;
  /// The earliest live deadline.
  std::optional<TimePoint> next_deadline();
  /// Removes and returns the callbacks due at `now`, in firing order, one at a time.
  bool pop_due(TimePoint now, Callback& out);
  [[nodiscard]] std::size_t size() const noexcept { return live_.size(); }
  /// Drops every timer. The callbacks are destroyed after the queue is already empty, so a
  /// destructor that cancels or adds timers sees a consistent queue.
  void clear();

 private:
  struct Entry {
    TimePoint when;
    std::uint64_t id;
    bool operator>(const Entry& o) const noexcept { return when != o.when ? when > o.when : id > o.id; }
  };
  void drop_dead_top();
  void compact();

  std::vector<Entry> heap_;
  std::unordered_map<std::uint64_t, Callback> live_;
  std::uint64_t next_id_ = 1;
};

}  // namespace tether::detail
