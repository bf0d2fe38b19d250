#include "loop/timer_queue.hpp"

#include <algorithm>
#include <functional>

namespace tether::detail {

TimerId TimerQueue::add(TimePoint when, Callback fn) {
  std::uint64_t id = next_id_++;
  heap_.push_back({when, id});
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>{});
  live_.emplace(id, std::move(fn));
  return TimerId{id};
}

bool TimerQueue::cancel(TimerId id) noexcept {
  bool erased = live_.erase(id.value) > 0;
  if (erased && heap_.size() > 1024 && heap_.size() > 2 * live_.size()) compact();
  return erased;
}

void TimerQueue::clear() {
  std::unordered_map<std::uint64_t, Callback> doomed;
  doomed.swap(live_);
  heap_.clear();
}

void TimerQueue::compact() {
  std::erase_if(heap_, [this](const Entry& e) { return !live_.contains(e.id); });
  std::make_heap(heap_.begin(), heap_.end(), std::greater<>{});
}

void TimerQueue::drop_dead_top() {
  while (!heap_.empty() && !live_.contains(heap_.front().id)) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>{});
    heap_.pop_back();
  }
}

std::optional<TimePoint> TimerQueue::next_deadline() {
  drop_dead_top();
  if (heap_.empty()) return std::nullopt;
  return heap_.front().when;
}

bool TimerQueue::pop_due(TimePoint now, Callback& out) {
  // The top is the earliest entry, live or cancelled: later than now, nothing is due (and the
  // lookup that tells dead from live is skipped).
  if (heap_.empty() || heap_.front().when > now) return false;
  drop_dead_top();
  if (heap_.empty() || heap_.front().when > now) return false;
  std::uint64_t id = heap_.front().id;
  std::pop_heap(heap_.begin(), heap_.end(), std::greater<>{});
  heap_.pop_back();
  auto it = live_.find(id);
  out = std::move(it->second);
  live_.erase(it);
  return true;
}

}  // namespace tether::detail
