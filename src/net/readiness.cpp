#include "net/readiness.hpp"

namespace tether::detail {

Readiness::Readiness(EventLoop& loop, int fd)
    : loop_(loop), watcher_(std::make_unique<IoWatcher>(loop, fd, IoWatcher::Mode::kEdge)) {
  watcher_->set_handler([this](std::uint32_t ev) { on_events(ev); });
  watcher_->enable_all();
}

Readiness::~Readiness() { *alive_ = false; }

void Readiness::detach() noexcept { watcher_.reset(); }

void Readiness::on_events(std::uint32_t ev) {
  if (ev & (kIoError | kIoHangup)) hangup_ = true;
  if (ev & (kIoReadable | kIoError | kIoHangup)) ready_[kRead] = true;
  if (ev & (kIoWritable | kIoError)) ready_[kWrite] = true;
  if (on_event_) on_event_(ev);
  if (ready_[kRead]) schedule(kRead);
  if (ready_[kWrite]) schedule(kWrite);
}

void Readiness::poke(Dir d) { schedule(d); }

void Readiness::schedule(Dir d) {
  Slot& s = slot_[d];
  if (!s.h || s.scheduled) return;
  s.scheduled = true;
  loop_.call_soon([alive = alive_, this, d]() {
    if (!*alive) return;
    Slot& slot = slot_[d];
    slot.scheduled = false;
    auto h = slot.h;
    slot.h = {};
    if (h) h.resume();
  });
}

}  // namespace tether::detail
