#pragma once
// Private: when the requests a connection's read loop decodes start, and when their replies
// leave. The rules (measured in docs/rpc.md#performance):
//  * a request that arrived alone in a pass of the read loop is held, and started when the
//    pass ends by a symmetric transfer from the read loop (HandOff): in this loop iteration,
//    not the next, and not on top of the read loop's frame;
//  * requests decoded together go through the ready queue in arrival order;
//  * when replies leave is the channel's flush rule (Channel::hold_flush): each request being
//    served holds the channel's flush from spawn() until finished() (its reply is queued),
//    and the read loop holds it while a pass runs (begin_pass .. end_pass). The last hold
//    released writes at once: the last running request's reply, or, when nothing runs, the
//    replies the pass wrote itself (DEL, refusals). With more running, replies wait for each
//    other and leave in one write;
//  * after kFramesPerTurn frames the read loop gives the loop back (fairness).

#include <coroutine>
#include <cstddef>
#include <cstdint>

#include "tether/channel/channel.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/loop/task_group.hpp"

namespace tether::rpc::detail {

class ServeScheduler {
 public:
  ServeScheduler(EventLoop& loop, TaskGroup& tasks, Channel& channel) noexcept
      : loop_(loop), tasks_(tasks), channel_(channel) {}
  ServeScheduler(const ServeScheduler&) = delete;
  ServeScheduler& operator=(const ServeScheduler&) = delete;

  /// The read loop's hand-off to the request it holds (or to the one coroutine its pass
  /// woke): queues the read loop itself, then resumes that coroutine in its place — a
  /// symmetric transfer, so a coroutine that waits does not wait on top of the read loop.
  class HandOff {
   public:
    HandOff(EventLoop& loop, std::coroutine_handle<> to) noexcept : loop_(loop), to_(to) {}
    HandOff(const HandOff&) = delete;
    HandOff& operator=(const HandOff&) = delete;
    ~HandOff();
    [[nodiscard]] bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> self);
    void await_resume() noexcept { resumed_ = true; }

   private:
    EventLoop& loop_;
    std::coroutine_handle<> to_;
    std::coroutine_handle<> self_{};
    bool resumed_ = false;
  };

  /// Starts a decoded request (see the file comment). Counted as serving, and holding the
  /// channel's flush, from now until finished(): requests decoded in one batch all count
  /// before the first of them replies.
  void spawn(Task<void> request);
  /// Queues the held request (the order of requests is kept).
  void release_held();
  /// The held request, taken (null when none): the read loop hands off to it.
  [[nodiscard]] std::coroutine_handle<> take_held() noexcept;
  [[nodiscard]] bool holding() const noexcept { return static_cast<bool>(held_); }
  /// Forgets a held request that never started (it goes with the connection's tasks).
  void drop_held() noexcept { held_ = {}; }

  /// When the read loop starts and after each of its suspensions: a new pass, nothing queued
  /// or decoded yet; the pass holds the channel's flush.
  void begin_pass() noexcept {
    pass_scheduled_ = false;
    pass_decoded_ = false;
    pass_hold_.hold(channel_);
  }
  /// Before each suspension of the read loop: the pass lets go of the flush, so what it queued
  /// leaves now unless requests still running will write theirs (then together).
  void end_pass() noexcept { pass_hold_.release(); }
  void note_decoded() noexcept { pass_decoded_ = true; }
  [[nodiscard]] bool pass_decoded() const noexcept { return pass_decoded_; }
  /// True once per kFramesPerTurn frames: time to give the loop back.
  [[nodiscard]] bool turn_over() noexcept {
    if (++frames_since_yield_ < kFramesPerTurn) return false;
    frames_since_yield_ = 0;
    return true;
  }

  /// A request finished: its reply, if any, is queued. It lets go of the flush: the last hold
  /// released writes at once.
  void finished() noexcept {
    --serving_;
    channel_.release_flush();
  }
  [[nodiscard]] std::size_t serving() const noexcept { return serving_; }

  static constexpr std::uint32_t kFramesPerTurn = 256;

 private:
  EventLoop& loop_;
  TaskGroup& tasks_;
  Channel& channel_;
  Channel::FlushHold pass_hold_;  // the read loop's, while a pass runs
  std::coroutine_handle<> held_{};
  bool pass_scheduled_ = false;  // this pass queued a request already
  bool pass_decoded_ = false;    // this pass handled a frame
  std::uint32_t frames_since_yield_ = 0;
  std::size_t serving_ = 0;  // requests spawned and not finished
};

}  // namespace tether::rpc::detail
