// ConnectionCore's end (a graceful close, close_now and what it fails and releases),
// backpressure (waiting until serve_loop may read again) and watchdogs (frame_timeout,
// idle_timeout): one timer, armed only when serve_loop waits with part of a frame buffered, or
// when idle_timeout is set.
#include <algorithm>
#include <chrono>
#include <utility>

#include "rpc/connection_core.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/time.hpp"

namespace tether::rpc::detail {

Task<void> ConnectionCore::close_gracefully() {
  if (closed_) co_return;
  bool sent = false;
  try {
    send_close_request();
    sent = true;
  } catch (...) {
  }
  if (sent) {
    try {
      co_await with_timeout(opts_.sync_request_timeout, channel_->drain());
      if (gen_ == Generation::k6 && !closed_) {
        // 6.x waits for the peer to hang up or to reply (on_unexpected_reply then closes),
        // bounded by close_grace and the sync timeout.
        co_await with_timeout(std::min(opts_.close_grace, opts_.sync_request_timeout), closed_event_.wait());
      }
    } catch (...) {
    }
  }
  close_now(nullptr);
}

void ConnectionCore::close_now(std::exception_ptr reason) noexcept {
  if (closed_) return;
  closed_ = true;
  error_ = reason;
  try {
    channel_->close();
  } catch (...) {
  }
  if (watchdog_) loop_.cancel_timer(std::exchange(watchdog_, {}));
  inflight_freed_.set();
  // What pending requests fail with: the kind of the cause. A peer that broke the protocol
  // (malformed or hostile frames, limits) gives ProtocolError/LimitExceeded, a peer that went
  // away Disconnected; anything else (I/O errors) is a disconnection with its text kept.
  std::exception_ptr fail;
  try {
    if (reason) std::rethrow_exception(reason);
    throw Disconnected("connection closed");
  } catch (const Disconnected&) {
    fail = std::current_exception();
  } catch (const ProtocolError&) {
    fail = std::current_exception();
  } catch (const LimitExceeded&) {
    fail = std::current_exception();
  } catch (...) {
    fail = std::make_exception_ptr(Disconnected("connection closed: " + describe_current_exception()));
  }
  pending_.fail_all(fail);
  // Release exported objects (their destructors may drop Netrefs: no DEL is sent now).
  {
    ExportTable::Map lent = exports_.take_all();
    lent.clear();
  }
  peer_root_.reset();
  closed_event_.set();
  try {
    tasks_.cancel_all_soon();
  } catch (...) {
  }
  if (on_close_) {
    auto fn = std::move(on_close_);
    try {
      loop_.call_soon(std::move(fn));
    } catch (...) {
    }
  }
}

void ConnectionCore::notify_idle() noexcept {
  try {
    loop_.call_soon(Callback(on_idle_));
  } catch (...) {
  }
}

Task<void> ConnectionCore::wait_unpaused() {
  while (!closed_ && must_pause()) {
    if (inflight_cost_ > opts_.max_inflight_decoded_bytes) {
      inflight_freed_.clear();
      co_await inflight_freed_.wait();  // set by serve_request as requests finish
    } else {
      // Until the output is back at the low watermark (the peer reads again), or the stream
      // fails (then the next read says why).
      co_await channel_->drain();
    }
  }
}

void ConnectionCore::arm_watchdog(bool idle) {
  watch_idle_ = idle;
  watch_bytes_ = channel_->stream().stats().bytes_read;
  watch_frames_ = channel_->stats().frames_in;
  const Duration window = idle ? opts_.idle_timeout : opts_.frame_timeout;
  watchdog_ = loop_.call_later(window, [this]() { on_watchdog(); }).id();
}

void ConnectionCore::on_watchdog() noexcept {
  watchdog_ = {};
  if (closed_) return;
  const std::uint64_t bytes = channel_->stream().stats().bytes_read - watch_bytes_;
  const std::uint64_t frames = channel_->stats().frames_in - watch_frames_;
  const bool partial = waiting_frame_ && channel_->stream().buffer().readable_bytes() > 0;
  if (watch_idle_) {
    if (frames == 0 && bytes == 0 && pending_.empty() && sched_.serving() == 0 && waiting_frame_) {
      TETHER_LOG_INFO("rpc connection {}: closing: idle for {} ms", opts_.name,
                      std::chrono::duration_cast<std::chrono::milliseconds>(opts_.idle_timeout).count());
      close_now(std::make_exception_ptr(Timeout("idle connection closed")));
      return;
    }
  } else if (partial) {
    const double seconds = std::chrono::duration<double>(opts_.frame_timeout).count();
    if (static_cast<double>(bytes) < static_cast<double>(opts_.min_frame_rate) * seconds) {
      TETHER_LOG_WARN("rpc connection {}: closing: a frame stalled ({} bytes in {} ms, below {} bytes/s)",
                      opts_.name, bytes,
                      std::chrono::duration_cast<std::chrono::milliseconds>(opts_.frame_timeout).count(),
                      opts_.min_frame_rate);
      close_now(std::make_exception_ptr(Timeout("frame not received in time (peer too slow or stalled)")));
      return;
    }
  }
  try {
    // Another window: the frame still in progress, or (idle_timeout) the next idle check.
    if (partial && opts_.frame_timeout > Duration::zero()) {
      arm_watchdog(false);
    } else if (opts_.idle_timeout > Duration::zero()) {
      arm_watchdog(true);
    }
  } catch (...) {
    TETHER_LOG_ERROR("rpc connection {}: cannot arm its watchdog: {}", opts_.name,
                     describe_current_exception());
  }
}

}  // namespace tether::rpc::detail
