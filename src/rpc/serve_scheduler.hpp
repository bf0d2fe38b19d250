#pragma once
// Private: when the requests a connection's read loop decodes start, and when their replies
// leave. The rules (measured in docs/rpc.md#performance):
//  * a request that arrived alone in a pass of the read loop is held, and started when the
//    pass ends by a symmetric transfer from the read loop (HandOff): in this loop iteration,
//    not the next, and not on top of the read loop's frame;
//  * requests decoded together go through the ready queue in arrival order;
//  * the last running request writes its reply at once (Channel::write_now); with more
//    running, replies wait for each other and leave in one write;
//  * after kFramesPerTurn frames the read loop gives the loop back (fairness).

#include <coroutine>
#include <cstddef>
#include <cstdint>

#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/loop/task_group.hpp"

namespace tether::rpc::detail {

class ServeScheduler {
 public:
  ServeScheduler(EventLoop& loop, TaskGroup& tasks) noexcept : loop_(loop), tasks_(tasks) {}
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

  /// Starts a decoded request (see the file comment). Counted as serving from now: requests
  /// decoded in one batch all count before the first of them replies.
  void spawn(Task<void> request);
  /// Queues the held request (the order of requests is kept).
  void release_held();
  /// The held request, taken (null when none): the read loop hands off to it.
  [[nodiscard]] std::coroutine_handle<> take_held() noexcept;
  [[nodiscard]] bool holding() const noexcept { return static_cast<bool>(held_); }
  /// Forgets a held request that never started (it goes with the connection's tasks).
  void drop_held() noexcept { held_ = {}; }

  /// After each suspension of the read loop: a new pass, nothing queued or decoded yet.
  void begin_pass() noexcept {
    pass_scheduled_ = false;
    pass_decoded_ = false;
  }
  void note_decoded() noexcept { pass_decoded_ = true; }
  [[nodiscard]] bool pass_decoded() const noexcept { return pass_decoded_; }
  /// True once per kFramesPerTurn frames: time to give the loop back.
  [[nodiscard]] bool turn_over() noexcept {
    if (++frames_since_yield_ < kFramesPerTurn) return false;
    frames_since_yield_ = 0;
    return true;
  }

  /// A request finished (its reply, if any, is queued).
  void finished() noexcept { --serving_; }
  [[nodiscard]] std::size_t serving() const noexcept { return serving_; }
  /// True when a reply just queued is the last one outstanding: it goes out now.
  [[nodiscard]] bool last_reply() const noexcept { return serving_ == 1; }

  static constexpr std::uint32_t kFramesPerTurn = 256;

 private:
  EventLoop& loop_;
  TaskGroup& tasks_;
  std::coroutine_handle<> held_{};
  bool pass_scheduled_ = false;  // this pass queued a request already
  bool pass_decoded_ = false;    // this pass handled a frame
  std::uint32_t frames_since_yield_ = 0;
  std::size_t serving_ = 0;  // requests spawned and not finished
};

}  // namespace tether::rpc::detail
