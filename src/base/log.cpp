#include "tether/base/log.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace tether {
namespace {

LogLevel initial_level() {
  const char* env = std::getenv("TETHER_LOG_LEVEL");
  if (!env) return LogLevel::kWarn;
  for (int l = 0; l <= static_cast<int>(LogLevel::kOff); ++l) {
    if (to_string(static_cast<LogLevel>(l)) == env) return static_cast<LogLevel>(l);
  }
  return LogLevel::kWarn;
}

std::atomic<LogLevel>& level_ref() {
  static std::atomic<LogLevel> level{initial_level()};
  return level;
}

struct SinkHolder {
  std::mutex mu;
  LogSink sink;
};

SinkHolder& sink_holder() {
  static SinkHolder holder;
  return holder;
}

}  // namespace

void set_log_level(LogLevel level) noexcept { level_ref().store(level, std::memory_order_relaxed); }
LogLevel log_level() noexcept { return level_ref().load(std::memory_order_relaxed); }

void set_log_sink(LogSink sink) {
  auto& h = sink_holder();
  std::lock_guard lock(h.mu);
  h.sink = std::move(sink);
}

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::kTrace: return "trace";
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: return "off";
  }
  return "?";
}

namespace detail {
void log_write(LogLevel level, std::string_view message) {
  auto& h = sink_holder();
  std::lock_guard lock(h.mu);
  if (h.sink) {
    h.sink(level, message);
  } else {
    std::fprintf(stderr, "tether [%.*s] %.*s\n", static_cast<int>(to_string(level).size()),
                 to_string(level).data(), static_cast<int>(message.size()), message.data());
  }
}
}  // namespace detail

}  // namespace tether
