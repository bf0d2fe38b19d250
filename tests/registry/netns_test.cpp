// Across hosts, simulated: two network namespaces joined by a veth pair (10.231.0.1/24 in A,
// 10.231.0.2/24 in B). Each side's code runs on a thread that entered its namespace, with a loop
// of its own.
//
//  * UDP broadcast discovery with RPyC's defaults (255.255.255.255, port 18811): a registry
//    and a server in A, a server in B announcing by broadcast across the pair; a client in B
//    finds both by broadcast and calls each.
//  * An etcd-backed call: etcd and a server in A, a client in B watching etcd across the pair.
//
// Needs root (CAP_SYS_ADMIN) and iproute2; skipped with the reason otherwise.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "etcd_process.hpp"
#include "registry_fixture.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/registry/discovery.hpp"
#include "tether/registry/registry_server.hpp"

namespace tether::registry {
namespace {

using namespace std::chrono_literals;
using tether::testing::echo_service;
using tether::testing::whoami_and_close;

constexpr char kAddrA[] = "10.231.0.1";
constexpr char kAddrB[] = "10.231.0.2";

std::string ip_program() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

/// Runs a shell command; its exit status and output.
int sh(const std::string& command, std::string* output = nullptr) {
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
    const std::string id = std::to_string(::getpid());
    a_ = "tether-" + id + "-a";
    b_ = "tether-" + id + "-b";
    const std::string va = "tt" + id + "a";
    const std::string vb = "tt" + id + "b";
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

 private:
  std::string ip_;
  std::string a_;
  std::string b_;
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

std::unique_ptr<Server> start_server(const std::string& id, const std::string& host, AnnounceOptions a) {
  ServeOptions o;
  o.host = host;
  o.port = 0;
  o.hooks.push_back(announce(std::move(a)));
  auto s = std::make_unique<Server>(echo_service(id), std::move(o));
  s->start();
  return s;
}

/// Finds `expected` servers of ECHO (waiting for the set to change when a watched registry
/// has fewer yet), then connects `expected` times (round robin: each once).
Task<std::set<std::string>> discover_and_call(DiscoverOptions o, std::size_t expected) {
  ServiceLocator locator(o);
  Event changed;
  locator.set_on_change([&changed](const std::string&, const std::vector<Endpoint>&) { changed.set(); });
  locator.watch("echo");
  std::vector<Endpoint> eps;
  const TimePoint deadline = Clock::now() + 20s;
  for (;;) {
    changed.clear();
    try {
      eps = co_await locator.discover("echo");
    } catch (const DiscoveryError&) {
      eps.clear();
    }
    if (eps.size() >= expected) break;
    co_await with_timeout(deadline - Clock::now(), changed.wait());  // Timeout ends the test
  }
  std::set<std::string> out;
  for (const Endpoint& e : eps) out.insert("at " + e.to_string());
  for (std::size_t i = 0; i < expected; ++i) {
    std::unique_ptr<Connection> conn = co_await locator.connect("echo");
    std::string id = co_await whoami_and_close(std::move(conn));
    out.insert("called " + id);
  }
  co_return out;
}

class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pair_ = std::make_unique<NetnsPair>();
    if (!pair_->reason().empty()) GTEST_SKIP() << "network namespaces not available: " << pair_->reason();
  }
  void TearDown() override { pair_.reset(); }

  std::unique_ptr<NetnsPair> pair_;
};

TEST_F(NetnsTest, UdpBroadcastDiscoveryAcrossAVethPair) {
  NetnsThread a(pair_->a());
  NetnsThread b(pair_->b());
  std::unique_ptr<RegistryServer> registry;
  std::unique_ptr<Server> server_a;
  std::unique_ptr<Server> server_b;
  AnnounceOptions broadcast;  // RPyC's defaults: udp://255.255.255.255:18811
  std::promise<void> both_registered;
  std::future<void> registered = both_registered.get_future();
  int added = 0;
  a.exec([&]() {
    RegistryServerOptions ro;  // 0.0.0.0:18811, inside namespace A
    registry = std::make_unique<RegistryServer>(ro);
    registry->table().set_on_added([&](const std::string&, const HostPort&) {
      if (++added == 2) both_registered.set_value();
    });
    registry->start();
    server_a = start_server("in-a", kAddrA, broadcast);
  });
  b.exec([&]() { server_b = start_server("in-b", kAddrB, broadcast); });
  ASSERT_EQ(registered.wait_for(20s), std::future_status::ready) << "the servers' broadcasts did not arrive";
  std::uint16_t port_a = 0;
  std::uint16_t port_b = 0;
  a.exec([&]() { port_a = server_a->port(); });
  b.exec([&]() { port_b = server_b->port(); });
  DiscoverOptions o;  // broadcast too
  std::set<std::string> seen = b.call<std::set<std::string>>([o]() { return discover_and_call(o, 2); }, 30s);
  const std::string at_a = std::string("at ") + kAddrA + ":" + std::to_string(port_a);
  const std::string at_b = std::string("at ") + kAddrB + ":" + std::to_string(port_b);
  EXPECT_EQ(seen, (std::set<std::string>{at_a, at_b, "called in-a", "called in-b"}));
  std::size_t entries = 0;
  a.exec([&]() { entries = registry->stats().entries; });
  EXPECT_EQ(entries, 2u);  // B's REGISTER crossed the pair by broadcast
  b.stop_tasks();
  b.exec([&]() { server_b.reset(); });
  a.exec([&]() {
    server_a.reset();
    registry.reset();
  });
}

TEST_F(NetnsTest, EtcdBackedCallAcrossAVethPair) {
  if (tether::testing::EtcdCluster::program().empty()) GTEST_SKIP() << "etcd is not installed";
  tether::testing::EtcdCluster etcd(1, kAddrA, pair_->a(), pair_->ip());
  NetnsThread a(pair_->a());
  NetnsThread b(pair_->b());
  std::unique_ptr<Server> server_a;
  AnnounceOptions ao;
  ao.registry = etcd.url();
  ao.etcd.ttl = 2s;
  a.exec([&]() { server_a = start_server("in-a", kAddrA, ao); });
  std::uint16_t port_a = 0;
  a.exec([&]() { port_a = server_a->port(); });
  DiscoverOptions o;
  o.registry = etcd.url();
  o.timeout = 5s;
  std::set<std::string> seen = b.call<std::set<std::string>>([o]() { return discover_and_call(o, 1); }, 30s);
  EXPECT_EQ(seen, (std::set<std::string>{std::string("at ") + kAddrA + ":" + std::to_string(port_a),
                                         "called in-a"}));
  b.stop_tasks();
  a.exec([&]() { server_a.reset(); });
}

}  // namespace
}  // namespace tether::registry
