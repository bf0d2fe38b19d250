#pragma once
// Helpers shared by the loop tests: turning the loop until a condition holds (bounded), starting
// a task the test keeps owning, and RAII probes that count destructions.

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>

#include "test_util.hpp"
#include "tether/base/fd.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"

namespace tether::testing {

using namespace std::chrono_literals;

/// Counts constructions and destructions; a cancelled frame must destroy its probes.
struct Probe {
  explicit Probe(int* destroyed) : destroyed_(destroyed) {}
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;
  ~Probe() { ++*destroyed_; }
  int* destroyed_;
};

/// A non-blocking AF_UNIX stream socketpair.
struct SocketPair {
  SocketPair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
  Fd a, b;
};

/// Writes all of s (small: fits the socket buffer).
inline void put(const Fd& fd, std::string_view s) {
  ASSERT_EQ(::write(fd.get(), s.data(), s.size()), static_cast<ssize_t>(s.size()));
}
/// Reads what is there (up to 256 bytes); empty on EOF or nothing.
inline std::string take(const Fd& fd) {
  char buf[256];
  ssize_t n = ::read(fd.get(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

class LoopFixture : public LoopTest {
 protected:
  /// Turns the loop until pred() holds; returns false after `limit`.
  bool turn_until(const std::function<bool()>& pred, Duration limit = 10s) {
    const TimePoint deadline = Clock::now() + limit;
    while (!pred()) {
      const Duration left = deadline - Clock::now();
      if (left <= Duration::zero()) return false;
      loop_.run_once(left);
    }
    return true;
  }
  /// n iterations that do not wait for I/O or timers.
  void turn(int n = 1) {
    for (int i = 0; i < n; ++i) loop_.run_once(Duration::zero());
  }
  /// Starts t on the next ready step; the caller keeps owning (and may destroy) it.
  template <class T>
  void start(Task<T>& t) {
    loop_.schedule(t.handle());
  }
};

}  // namespace tether::testing
