#pragma once
/// \file sleep() and with_timeout(): timer-based awaitables on the current loop.

#include <chrono>
#include <coroutine>
#include <optional>
#include <utility>

#include "tether/base/error.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"

namespace tether {

namespace detail {

class SleepAwaiter {
 public:
  explicit SleepAwaiter(Duration d) : delay_(d) {}
  SleepAwaiter(const SleepAwaiter&) = delete;
  SleepAwaiter& operator=(const SleepAwaiter&) = delete;
  ~SleepAwaiter() {
    if (loop_ && timer_) loop_->cancel_timer(timer_);
  }
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    loop_ = &EventLoop::current_or_throw();
    timer_ = loop_->call_later(delay_, [this, h]() {
                      timer_ = {};
                      detail::resume(h);
                    })
                 .id();
  }
  void await_resume() const noexcept {}

 private:
  Duration delay_;
  EventLoop* loop_ = nullptr;
  TimerId timer_{};
};

template <class T>
class TimeoutAwaiter {
 public:
  TimeoutAwaiter(Duration d, Task<T> inner) : delay_(d), inner_(std::move(inner)) {}
  TimeoutAwaiter(const TimeoutAwaiter&) = delete;
  TimeoutAwaiter& operator=(const TimeoutAwaiter&) = delete;
  ~TimeoutAwaiter() {
    if (loop_ && timer_) loop_->cancel_timer(timer_);
  }
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> outer) {
    loop_ = &EventLoop::current_or_throw();
    timer_ = loop_->call_later(delay_, [this, outer]() {
                      timer_ = {};
                      timed_out_ = true;
                      inner_.reset();  // cancels the inner task and everything it awaits
                      detail::resume(outer);
                    })
                 .id();
    inner_.handle().promise().set_continuation(outer);
    return detail::transfer(outer, inner_.handle());
  }
  T await_resume() {
    if (timed_out_) throw Timeout("operation timed out");
    if (timer_) {
      loop_->cancel_timer(timer_);
      timer_ = {};
    }
    return inner_.take_result();
  }

 private:
  Duration delay_;
  Task<T> inner_;
  EventLoop* loop_ = nullptr;
  TimerId timer_{};
  bool timed_out_ = false;
};

}  // namespace detail

/// Suspends the calling task for `d` on the current loop. Cancelling the task cancels the timer.
inline Task<void> sleep(Duration d) { co_await detail::SleepAwaiter(d); }

/// sleep() with seconds as a double (Python-style).
inline Task<void> sleep_for_seconds(double seconds) {
  co_await detail::SleepAwaiter(std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds)));
}

/// Runs `task`; if it has not finished after `d`, cancels it (destroying its frame) and throws
/// Timeout. Its result or exception is passed through otherwise.
template <class T>
Task<T> with_timeout(Duration d, Task<T> task) {
  if constexpr (std::is_void_v<T>) {
    co_await detail::TimeoutAwaiter<T>(d, std::move(task));
  } else {
    T value = co_await detail::TimeoutAwaiter<T>(d, std::move(task));
    co_return value;
  }
}

}  // namespace tether
