#pragma once
// Private: the requests a connection sent and awaits replies to (RPyC's _request_callbacks):
// sequence numbers, the table from seq to waiter, and the deadlines of synchronous requests.

#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "rpc/intercept.hpp"
#include "rpc/pool_alloc.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/sync.hpp"
#include "tether/rpc/any.hpp"
#include "tether/rpc/protocol.hpp"

namespace tether::rpc::detail {

class ConnectionCore;

/// One request awaiting its reply.
struct PendingCall {
  std::uint64_t seq = 0;     // on the wire; reused once the reply came (see take_seq)
  std::uint64_t serial = 0;  // unique per request on the connection
  Handler handler = Handler::kPing;
  std::weak_ptr<ConnectionCore> core;
  EventLoop* loop = nullptr;
  bool done = false;
  bool expired = false;
  Any value;
  std::exception_ptr error;
  tether::detail::WaitList waiters;
  std::vector<std::function<void(const AsyncResult&)>> callbacks;
  TimerId expiry{};
  /// Set when interceptors watch this request: told how it ended.
  std::unique_ptr<InterceptScope> intercept;

  explicit PendingCall(EventLoop* l) : loop(l), waiters(l) {}
  ~PendingCall();
};

/// Marks p done, wakes its waiters and runs its callbacks (once).
void complete_pending(const std::shared_ptr<PendingCall>& p, Any v, std::exception_ptr e);

/// The table of requests in flight. Loop thread only.
///
/// Sequence numbers: a request's seq is free again once its reply came (nothing else will
/// arrive for it) and is reused before a new one is taken from the counter, so with up to
/// ~160 requests in flight they stay brine's one-byte ints. A seq whose request timed out or
/// was abandoned, and those of requests whose replies are not awaited (DEL, CLOSE), are never
/// reused: a late reply to them is dropped as unknown.
///
/// Deadlines: synchronous requests share one timer through a queue (the same timeout for
/// every one, so deadlines come in send order) instead of arming a timer per call.
class PendingCalls {
 public:
  using Table =
      std::unordered_map<std::uint64_t, std::shared_ptr<PendingCall>, std::hash<std::uint64_t>,
                         std::equal_to<>,
                         PoolAllocator<std::pair<const std::uint64_t, std::shared_ptr<PendingCall>>>>;

  explicit PendingCalls(EventLoop& loop) : loop_(loop) {}
  ~PendingCalls();
  PendingCalls(const PendingCalls&) = delete;
  PendingCalls& operator=(const PendingCalls&) = delete;

  /// A seq for a request whose reply is awaited (a freed one first).
  std::uint64_t take_seq() noexcept;
  /// A seq that is never reused (DEL, CLOSE: no reply awaited).
  std::uint64_t take_unreused_seq() noexcept { return next_seq_++; }
  /// Registers a request sent under `seq`.
  std::shared_ptr<PendingCall> add(std::uint64_t seq, Handler h, std::weak_ptr<ConnectionCore> core);
  /// Forgets `seq` (its request could not be sent, or expired on its own timer).
  void erase(std::uint64_t seq) noexcept { table_.erase(seq); }
  /// The reply to `seq` arrived: its call taken out (the seq may be reused), or null.
  std::shared_ptr<PendingCall> take(std::uint64_t seq);
  [[nodiscard]] bool contains(std::uint64_t seq) const noexcept { return table_.find(seq) != table_.end(); }
  [[nodiscard]] std::size_t size() const noexcept { return table_.size(); }
  [[nodiscard]] bool empty() const noexcept { return table_.empty(); }

  /// Puts a sent request under `timeout` (longer than a century means never).
  void expire_after(const PendingCall& p, Duration timeout);
  /// Fails every call in flight with `error` and stops the timer (the connection closed).
  void fail_all(const std::exception_ptr& error) noexcept;

 private:
  struct Deadline {
    TimePoint at;
    std::uint64_t seq;
    std::uint64_t serial;  // the seq may belong to a later request by the time this is due
  };
  /// True while the request `d` was made for still awaits its reply.
  [[nodiscard]] bool awaiting(const Deadline& d) const noexcept;
  void arm_timer();
  void on_timer() noexcept;
  void trim_deadlines() noexcept;

  EventLoop& loop_;
  std::uint64_t next_seq_ = 0;
  std::uint64_t next_serial_ = 0;
  std::vector<std::uint64_t> free_seqs_;
  Table table_;
  std::deque<Deadline> deadlines_;  // oldest first; answered ones leave from the front
  TimerId timer_{};
};

}  // namespace tether::rpc::detail
