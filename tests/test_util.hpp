#pragma once
// Shared test helpers: a loop fixture that proves the loop ends empty, and a bounded runner.

#include <gtest/gtest.h>

#include <chrono>

#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/loop/time.hpp"

namespace tether::testing {

/// Every test ends with the loop holding no watchers, timers, queued work or tasks.
class LoopTest : public ::testing::Test {
 protected:
  void SetUp() override { tasks_at_start_ = live_task_count(); }
  void TearDown() override {
    // Let deferred clean-up (call_soon destroys, posted completions) run.
    for (int i = 0; i < 3; ++i) loop_.run_once(std::chrono::milliseconds(0));
    auto s = loop_.stats();
    EXPECT_EQ(s.watchers, 0u) << "watchers left on the loop";
    EXPECT_EQ(s.timers, 0u) << "timers left on the loop";
    EXPECT_EQ(s.ready, 0u) << "ready callbacks left on the loop";
    EXPECT_EQ(s.signals, 0u) << "signal handlers left on the loop";
    EXPECT_EQ(live_task_count(), tasks_at_start_) << "Task frames leaked";
  }

  /// Runs task to completion, failing (not hanging) after `limit`.
  template <class T>
  T run(Task<T> task, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    return loop_.run_until_complete(with_timeout(limit, std::move(task)));
  }

  EventLoop loop_;
  long tasks_at_start_ = 0;
};

}  // namespace tether::testing
