#include "tether/loop/stop_signals.hpp"

#include <csignal>

namespace tether {

StopSignals::StopSignals(EventLoop& loop) : loop_(loop) {
  loop_.add_signal_handler(SIGINT, [this](int) { event_.set(); });
  loop_.add_signal_handler(SIGTERM, [this](int) { event_.set(); });
}

StopSignals::~StopSignals() {
  loop_.remove_signal_handler(SIGINT);
  loop_.remove_signal_handler(SIGTERM);
}

Task<void> StopSignals::wait() { co_await event_.wait(); }

}  // namespace tether
