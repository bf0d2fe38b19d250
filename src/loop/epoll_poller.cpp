#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

#include "loop/poller.hpp"
#include "tether/base/error.hpp"
#include "tether/base/fd.hpp"
#include "tether/loop/io_watcher.hpp"

namespace tether::detail {
namespace {

class EpollPoller final : public Poller {
 public:
  EpollPoller() : epfd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (!epfd_) throw IoError(errno, "epoll_create1");
    events_.resize(128);
  }

  void update(int fd, IoWatcher* w, std::uint32_t interest, bool edge, bool add) override {
    epoll_event ev{};
    if (interest & kIoReadable) ev.events |= EPOLLIN | EPOLLRDHUP;
    if (interest & kIoWritable) ev.events |= EPOLLOUT;
    if (edge) ev.events |= EPOLLET;
    ev.data.ptr = w;
    if (::epoll_ctl(epfd_.get(), add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) < 0) {
      throw IoError(errno, "epoll_ctl");
    }
  }

  void remove(int fd) override {
    epoll_event ev{};
    ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, &ev);  // fd may already be gone: ignore
  }

  void poll(int timeout_ms, std::vector<PollEvent>& out) override {
    int n = ::epoll_wait(epfd_.get(), events_.data(), static_cast<int>(events_.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) return;
      throw IoError(errno, "epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      std::uint32_t e = events_[i].events;
      std::uint32_t bits = 0;
      if (e & (EPOLLIN | EPOLLPRI)) bits |= kIoReadable;
      if (e & EPOLLOUT) bits |= kIoWritable;
      if (e & EPOLLERR) bits |= kIoError | kIoReadable | kIoWritable;
      if (e & (EPOLLHUP | EPOLLRDHUP)) bits |= kIoHangup | kIoReadable;
      out.push_back({static_cast<IoWatcher*>(events_[i].data.ptr), bits});
    }
    if (static_cast<std::size_t>(n) == events_.size()) events_.resize(events_.size() * 2);
  }

 private:
  Fd epfd_;
  std::vector<epoll_event> events_;
};

}  // namespace

std::unique_ptr<Poller> make_epoll_poller() { return std::make_unique<EpollPoller>(); }

}  // namespace tether::detail
