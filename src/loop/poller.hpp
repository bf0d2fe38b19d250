#pragma once
// Private: the backend contract behind EventLoop (redis ae's shape). epoll today; an
// io_uring poll backend can implement the same four calls.

#include <cstdint>
#include <memory>
#include <vector>

namespace tether {
class IoWatcher;
}

namespace tether::detail {

struct PollEvent {
  IoWatcher* watcher;
  std::uint32_t events;  // IoEvent bits
};

class Poller {
 public:
  virtual ~Poller() = default;
  /// Adds or modifies fd's registration. interest: IoEvent bits; edge: edge-triggered.
  virtual void update(int fd, IoWatcher* w, std::uint32_t interest, bool edge, bool add) = 0;
  virtual void remove(int fd) = 0;
  /// Waits up to timeout_ms (-1 forever) and appends ready watchers to out. Events for a
  /// watcher destroyed during the same dispatch are dropped by the loop.
  virtual void poll(int timeout_ms, std::vector<PollEvent>& out) = 0;
};

std::unique_ptr<Poller> make_epoll_poller();

}  // namespace tether::detail
