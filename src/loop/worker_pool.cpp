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
  }
  cv_.notify_one();
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
    }
    try {
      job();
    } catch (...) {
      TETHER_LOG_ERROR("uncaught exception in worker job: {}", describe_current_exception());
    }
    std::lock_guard lock(mu_);
    --running_;
  }
}

}  // namespace tether
