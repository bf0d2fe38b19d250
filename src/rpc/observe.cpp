// The ConnectionCore side of CallObserver (tether/rpc/observer.hpp): what a served request
// reports when ConnectionOptions::observer is set.

#include <chrono>

#include "rpc/connection_core.hpp"

namespace tether::rpc {
CallObserver::~CallObserver() = default;
}  // namespace tether::rpc

namespace tether::rpc::detail {

namespace {
std::int64_t observe_clock() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

std::int64_t ConnectionCore::observe_start(rpc::CallObserver& observer) noexcept {
  observer.on_start();
  return observe_clock();
}

void ConnectionCore::observe_end(rpc::CallObserver& observer, const Request& req, std::int64_t started,
                                 const std::exception_ptr& failure) const noexcept {
  rpc::CallRecord rec;
  rec.handler = req.handler;
  if (req.handler == Handler::kCallAttr) rec.name = req.call.name;
  rec.nanos = observe_clock() - started;
  rec.error = failure ? &failure : nullptr;
  const ChannelStats channel = channel_->stats();
  rec.channel = &channel;
  rec.exported = exports_.size();
  rec.proxies = proxies_.entries();
  rec.generation = gen_;
  observer.on_end(rec);
}

}  // namespace tether::rpc::detail
