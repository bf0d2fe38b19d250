#include "tether/loop/worker_pool.hpp"

#include "tether/base/log.hpp"

namespace tether {

WorkerPool::WorkerPool(std::size_t threads) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { worker_main(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::submit(Callback job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw UsageError("WorkerPool is stopping");
    jobs_.push_back(std::move(job));
    publish();
  }
  cv_.notify_one();
}

void WorkerPool::report_to(std::atomic<std::uint64_t>* queued, std::atomic<std::uint64_t>* running) {
  std::lock_guard lock(mu_);
  queued_gauge_ = queued;
  running_gauge_ = running;
  publish();
}

void WorkerPool::publish() noexcept {
  if (queued_gauge_) queued_gauge_->store(jobs_.size(), std::memory_order_relaxed);
  if (running_gauge_) running_gauge_->store(running_, std::memory_order_relaxed);
}

std::size_t WorkerPool::pending() const {
  std::lock_guard lock(mu_);
  return jobs_.size() + running_;
}

void WorkerPool::worker_main() {
  for (;;) {
    Callback job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_;
      publish();
    }
    try {
      job();
    } catch (...) {
      TETHER_LOG_ERROR("uncaught exception in worker job: {}", describe_current_exception());
    }
    std::lock_guard lock(mu_);
    --running_;
    publish();
  }
}

}  // namespace tether
