#pragma once
// Two network namespaces joined by a veth pair (10.231.0.1/24 in A, 10.231.0.2/24 in B), and a
// thread inside one of them running an EventLoop. Needs root (CAP_SYS_ADMIN) and iproute2;
// NetnsPair::reason() says why not otherwise, for GTEST_SKIP. Used by the registry's netns
// tests and by the faults-on-the-wire tests (tests/reliability).

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tether/base/error.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/loop/task_group.hpp"

namespace tether::testing {

inline constexpr char kAddrA[] = "10.231.0.1";
inline constexpr char kAddrB[] = "10.231.0.2";

inline std::string ip_program() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

/// Runs a shell command (stderr joined to stdout); its exit status and output.
inline int sh(const std::string& command, std::string* output = nullptr) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[512];
  std::string out;
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int status = ::pclose(p);
  if (output) *output = out;
  return status;
}

/// Two namespaces and the veth pair between them; removed on destruction.
class NetnsPair {
 public:
  /// Empty reason() when created.
  NetnsPair() {
    ip_ = ip_program();
    if (ip_.empty()) {
      reason_ = "iproute2's ip is not installed";
      return;
    }
    if (::geteuid() != 0) {
      reason_ = "creating network namespaces needs root (CAP_SYS_ADMIN); running as uid " +
                std::to_string(::geteuid());
      return;
    }
    static std::atomic<int> serial{0};
    const std::string id = std::to_string(::getpid()) + "x" + std::to_string(serial++);
    a_ = "tether-" + id + "-a";
    b_ = "tether-" + id + "-b";
    va_ = "tt" + id + "a";
    vb_ = "tt" + id + "b";
    const std::string& va = va_;
    const std::string& vb = vb_;
    std::string out;
    if (sh(ip_ + " netns add " + a_, &out) != 0) {
      reason_ = "ip netns add failed (not permitted here?): " + out;
      a_.clear();
      return;
    }
    created_a_ = true;
    const std::vector<std::string> steps = {
        ip_ + " netns add " + b_,
        ip_ + " link add " + va + " type veth peer name " + vb,
        ip_ + " link set " + va + " netns " + a_,
        ip_ + " link set " + vb + " netns " + b_,
        ip_ + " -n " + a_ + " addr add " + kAddrA + "/24 dev " + va,
        ip_ + " -n " + b_ + " addr add " + kAddrB + "/24 dev " + vb,
        ip_ + " -n " + a_ + " link set lo up",
        ip_ + " -n " + b_ + " link set lo up",
        ip_ + " -n " + a_ + " link set " + va + " up",
        ip_ + " -n " + b_ + " link set " + vb + " up",
        // 255.255.255.255 needs a route: the pair is each side's only way out.
        ip_ + " -n " + a_ + " route add default dev " + va,
        ip_ + " -n " + b_ + " route add default dev " + vb,
    };
    for (const std::string& step : steps) {
      if (step.find(" netns add " + b_) != std::string::npos) created_b_ = true;
      if (sh(step, &out) != 0) {
        reason_ = "'" + step + "' failed: " + out;
        return;
      }
    }
  }
  ~NetnsPair() {
    if (created_a_) sh(ip_ + " netns del " + a_);  // the veth pair goes with it
    if (created_b_) sh(ip_ + " netns del " + b_);
  }
  NetnsPair(const NetnsPair&) = delete;
  NetnsPair& operator=(const NetnsPair&) = delete;

  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }
  [[nodiscard]] const std::string& a() const noexcept { return a_; }
  [[nodiscard]] const std::string& b() const noexcept { return b_; }
  [[nodiscard]] const std::string& ip() const noexcept { return ip_; }
  /// The veth ends: in A and in B.
  [[nodiscard]] const std::string& veth_a() const noexcept { return va_; }
  [[nodiscard]] const std::string& veth_b() const noexcept { return vb_; }
  /// Runs `command` inside namespace `netns` (`ip netns exec`); its exit status and output.
  int exec_in(const std::string& netns, const std::string& command, std::string* output = nullptr) const {
    return sh(ip_ + " netns exec " + netns + " " + command, output);
  }

 private:
  std::string ip_;
  std::string a_;
  std::string b_;
  std::string va_;
  std::string vb_;
  bool created_a_ = false;
  bool created_b_ = false;
  std::string reason_;
};

/// A thread inside a network namespace running an EventLoop; work is handed to it.
class NetnsThread {
 public:
  explicit NetnsThread(const std::string& netns) {
    std::promise<void> started;
    std::future<void> ready = started.get_future();
    thread_ = std::thread([this, netns, &started]() {
      const int fd = ::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
        if (fd >= 0) ::close(fd);
        started.set_exception(std::make_exception_ptr(std::runtime_error("setns " + netns + " failed")));
        return;
      }
      ::close(fd);
      EventLoop loop;
      loop_ = &loop;
      started.set_value();
      loop.run();
      for (int i = 0; i < 3; ++i) loop.run_once(Duration::zero());
      loop_ = nullptr;
    });
    ready.get();
  }
  ~NetnsThread() {
    if (loop_) loop_->stop();
    thread_.join();
  }

  /// Runs fn on the thread and waits for it (fn may create or destroy loop-bound objects).
  void exec(std::function<void()> fn) {
    std::promise<void> done;
    std::future<void> f = done.get_future();
    loop_->post([&]() {
      try {
        fn();
        done.set_value();
      } catch (...) {
        done.set_exception(std::current_exception());
      }
    });
    f.get();
  }

  /// Runs the task `make()` returns on the thread; its result, or Timeout after `limit`.
  template <class T>
  T call(std::function<Task<T>()> make, Duration limit) {
    auto result = std::make_shared<std::promise<T>>();
    std::future<T> f = result->get_future();
    exec([&]() {
      if (!tasks_) tasks_ = std::make_unique<TaskGroup>(*loop_);
      tasks_->spawn(fulfil<T>(make(), result));
    });
    if (f.wait_for(limit) != std::future_status::ready) {
      exec([&]() { tasks_->cancel_all(); });
      throw Timeout("the namespace thread did not finish in time");
    }
    return f.get();
  }

  /// Destroys what the thread owns (call before the objects the tasks use go).
  void stop_tasks() {
    exec([&]() { tasks_.reset(); });
  }

 private:
  template <class T>
  static Task<void> fulfil(Task<T> task, std::shared_ptr<std::promise<T>> result) {
    try {
      T value = co_await std::move(task);
      result->set_value(std::move(value));
    } catch (...) {
      result->set_exception(std::current_exception());
    }
  }

  std::thread thread_;
  EventLoop* loop_ = nullptr;
  std::unique_ptr<TaskGroup> tasks_;
};

}  // namespace tether::testing
