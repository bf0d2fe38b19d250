#include "rpc/pending_calls.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "tether/base/log.hpp"

namespace tether::rpc::detail {

namespace {
/// Freed sequence numbers kept for reuse, at most.
constexpr std::size_t kMaxFreeSeqs = 1024;
}  // namespace

PendingCall::~PendingCall() {
  if (expiry && loop) loop->cancel_timer(expiry);
}

void complete_pending(const std::shared_ptr<PendingCall>& p, Any v, std::exception_ptr e) {
  if (p->done) return;
  p->done = true;
  p->value = std::move(v);
  p->error = std::move(e);
  if (p->intercept) {
    std::unique_ptr<InterceptScope> scope = std::move(p->intercept);
    scope->after(p->error);
  }
  if (p->expiry) {
    p->loop->cancel_timer(p->expiry);
    p->expiry = {};
  }
  p->waiters.wake_all();
  auto callbacks = std::move(p->callbacks);
  AsyncResult r(p);
  for (auto& cb : callbacks) {
    try {
      cb(r);
    } catch (...) {
      TETHER_LOG_ERROR("AsyncResult callback threw: {}", describe_current_exception());
    }
  }
}

PendingCalls::~PendingCalls() {
  if (timer_) loop_.cancel_timer(timer_);
}

std::uint64_t PendingCalls::take_seq() noexcept {
  if (free_seqs_.empty()) return next_seq_++;
  const std::uint64_t seq = free_seqs_.back();
  free_seqs_.pop_back();
  return seq;
}

std::shared_ptr<PendingCall> PendingCalls::add(std::uint64_t seq, Handler h,
                                               std::weak_ptr<ConnectionCore> core) {
  auto p = std::allocate_shared<PendingCall>(PoolAllocator<PendingCall>{}, &loop_);
  p->seq = seq;
  p->serial = next_serial_++;
  p->handler = h;
  p->core = std::move(core);
  table_.emplace(seq, p);
  return p;
}

std::shared_ptr<PendingCall> PendingCalls::take(std::uint64_t seq) {
  auto it = table_.find(seq);
  if (it == table_.end()) return nullptr;
  std::shared_ptr<PendingCall> p = std::move(it->second);
  table_.erase(it);
  // Its reply came: the seq may serve the next request (bounded: a burst of thousands in
  // flight does not keep thousands of entries).
  if (free_seqs_.size() < kMaxFreeSeqs) {
    try {
      free_seqs_.push_back(p->seq);
    } catch (...) {  // no memory: the seq is just not reused
    }
  }
  trim_deadlines();
  return p;
}

void PendingCalls::expire_after(const PendingCall& p, Duration timeout) {
  if (timeout >= std::chrono::hours(24 * 365 * 100)) return;  // longer means never
  deadlines_.push_back(Deadline{loop_.now() + timeout, p.seq, p.serial});
  if (!timer_) arm_timer();
}

void PendingCalls::fail_all(const std::exception_ptr& error) noexcept {
  Table calls = std::move(table_);
  table_.clear();
  deadlines_.clear();
  if (timer_) loop_.cancel_timer(std::exchange(timer_, {}));
  for (auto& [seq, p] : calls) complete_pending(p, Any(), error);
}

bool PendingCalls::awaiting(const Deadline& d) const noexcept {
  auto it = table_.find(d.seq);
  return it != table_.end() && it->second->serial == d.serial;
}

void PendingCalls::arm_timer() {
  timer_ = loop_.call_at(deadlines_.front().at, [this]() { on_timer(); }).id();
}

void PendingCalls::on_timer() noexcept {
  timer_ = {};
  const TimePoint now = loop_.now();
  while (!deadlines_.empty() && deadlines_.front().at <= now) {
    const Deadline d = deadlines_.front();
    deadlines_.pop_front();
    auto it = table_.find(d.seq);
    if (it == table_.end() || it->second->serial != d.serial) continue;  // answered
    std::shared_ptr<PendingCall> p = std::move(it->second);
    table_.erase(it);  // a late reply is dropped
    p->expired = true;
    complete_pending(p, Any(), std::make_exception_ptr(Timeout("result expired")));
  }
  trim_deadlines();
  if (!deadlines_.empty()) {
    try {
      arm_timer();
    } catch (...) {
      TETHER_LOG_ERROR("rpc: cannot arm the request timer: {}", describe_current_exception());
    }
  }
}

void PendingCalls::trim_deadlines() noexcept {
  while (!deadlines_.empty() && !awaiting(deadlines_.front())) deadlines_.pop_front();
  // Answered calls behind an unanswered one wait for it to leave the front; when they are most
  // of the queue, sweep them out (amortised O(1): a sweep leaves only pending entries).
  if (deadlines_.size() > 64 && deadlines_.size() > 2 * table_.size()) {
    std::erase_if(deadlines_, [this](const Deadline& d) { return !awaiting(d); });
  }
}

}  // namespace tether::rpc::detail
