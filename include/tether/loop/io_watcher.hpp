#pragma once
/// \file IoWatcher: binds one fd to a loop and a readiness callback. Does not own the fd
/// (muduo's Channel). Destroying the watcher deregisters it; the fd must still be open then.

#include <cstdint>
#include <functional>

#include "tether/base/export.hpp"
#include "tether/base/function.hpp"

namespace tether {

class EventLoop;

/// Readiness bits delivered to the callback.
enum IoEvent : std::uint32_t {
  kIoReadable = 1u << 0,
  kIoWritable = 1u << 1,
  kIoError = 1u << 2,   ///< EPOLLERR: read or write to learn the error
  kIoHangup = 1u << 3,  ///< EPOLLHUP / EPOLLRDHUP
};

/// Loop thread only. Not movable once constructed (the poller holds its address).
class TETHER_API IoWatcher {
 public:
  enum class Mode { kLevel, kEdge };
  using Handler = UniqueFunction<void(std::uint32_t events)>;

  IoWatcher(EventLoop& loop, int fd, Mode mode = Mode::kLevel);
  ~IoWatcher();
  IoWatcher(const IoWatcher&) = delete;
  IoWatcher& operator=(const IoWatcher&) = delete;

  void set_handler(Handler h) { handler_ = std::move(h); }

  /// Interest changes take effect immediately (one epoll_ctl when they change anything).
  void enable_reading() { set_interest(interest_ | kIoReadable); }
  void disable_reading() { set_interest(interest_ & ~kIoReadable); }
  void enable_writing() { set_interest(interest_ | kIoWritable); }
  void disable_writing() { set_interest(interest_ & ~kIoWritable); }
  /// Edge mode: ask for both directions once, then track readiness yourself.
  void enable_all() { set_interest(kIoReadable | kIoWritable); }
  void disable_all() { set_interest(0); }

  [[nodiscard]] bool is_reading() const noexcept { return interest_ & kIoReadable; }
  [[nodiscard]] bool is_writing() const noexcept { return interest_ & kIoWritable; }
  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] EventLoop& loop() const noexcept { return loop_; }

  /// Called by the loop with the ready events.
  void dispatch(std::uint32_t events);

 private:
  void set_interest(std::uint32_t interest);

  EventLoop& loop_;
  int fd_;
  Mode mode_;
  std::uint32_t interest_ = 0;
  bool registered_ = false;
  Handler handler_;
};

}  // namespace tether
