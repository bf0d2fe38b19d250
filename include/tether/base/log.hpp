#pragma once
/// \file Logging with levels and a pluggable sink. Formatting uses fmt; a message is only
/// formatted when its level is enabled.

#include <fmt/format.h>

#include <functional>
#include <string_view>

#include "tether/base/export.hpp"

namespace tether {

enum class LogLevel { kTrace = 0, kDebug, kInfo, kWarn, kError, kOff };

/// Receives every enabled record. Called on the thread that logged, one record at a time (under
/// a lock): it must not log or call set_log_sink itself.
using LogSink = std::function<void(LogLevel, std::string_view message)>;

/// Safe to call from any thread. The default level is kWarn, or TETHER_LOG_LEVEL from the
/// environment (trace|debug|info|warn|error|off) read once at start-up.
TETHER_API void set_log_level(LogLevel level) noexcept;
TETHER_API LogLevel log_level() noexcept;
/// Replaces the sink (default: one line on stderr). An empty function restores the default.
TETHER_API void set_log_sink(LogSink sink);
TETHER_API std::string_view to_string(LogLevel level) noexcept;

namespace detail {
TETHER_API void log_write(LogLevel level, std::string_view message);
}

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (level < log_level()) return;
  detail::log_write(level, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace tether

#define TETHER_LOG_DEBUG(...) ::tether::log(::tether::LogLevel::kDebug, __VA_ARGS__)
#define TETHER_LOG_INFO(...) ::tether::log(::tether::LogLevel::kInfo, __VA_ARGS__)
#define TETHER_LOG_WARN(...) ::tether::log(::tether::LogLevel::kWarn, __VA_ARGS__)
#define TETHER_LOG_ERROR(...) ::tether::log(::tether::LogLevel::kError, __VA_ARGS__)
