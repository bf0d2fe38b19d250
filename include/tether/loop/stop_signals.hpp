#pragma once
/// \file StopSignals: SIGINT and SIGTERM as a stop request, for programs that run until told
/// to stop (tether::serve, a registry process).

#include "tether/base/export.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task.hpp"

namespace tether {

/// Installs handlers for SIGINT and SIGTERM on `loop` for its lifetime (blocking both signals
/// in this thread first, see EventLoop::add_signal_handler: threads started afterwards inherit
/// the mask) and removes them on destruction. Loop thread only; must not outlive the loop.
class TETHER_API StopSignals {
 public:
  explicit StopSignals(EventLoop& loop);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  /// Completes once one of the signals has arrived (at once if one already did).
  Task<void> wait();
  [[nodiscard]] bool received() const noexcept { return event_.is_set(); }

 private:
  EventLoop& loop_;
  Event event_;
};

}  // namespace tether
