#pragma once
// Registry test helpers: an "Echo" service that says which server answered, servers announced
// through the registry hook, bounded waits on events, and a log capture.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "test_util.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/time.hpp"
#include "tether/registry/announce.hpp"
#include "tether/registry/discovery.hpp"
#include "tether/registry/registry_server.hpp"
#include "tether/service/client.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"

namespace tether::testing {

/// "EchoService" (alias ECHO): whoami() returns `id`, add(a, b).
inline Service echo_service(const std::string& id, const std::string& name = "EchoService") {
  Service svc(name);
  svc.expose("whoami", [id]() { return id; });
  svc.expose("add", [](std::int64_t a, std::int64_t b) { return a + b; });
  return svc;
}

/// A server of echo_service(id) on 127.0.0.1:0 of the current loop, announced with `announce`.
inline std::unique_ptr<Server> start_announced(const std::string& id, registry::AnnounceOptions announce,
                                               const std::string& name = "EchoService") {
  ServeOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.hooks.push_back(registry::announce(std::move(announce)));
  auto server = std::make_unique<Server>(echo_service(id, name), std::move(o));
  server->start();
  return server;
}

/// Which server answered on `conn`; closes it.
inline Task<std::string> whoami_and_close(std::unique_ptr<Connection> conn) {
  Netref root = co_await conn->root();
  std::string id = co_await root.callattr<std::string>("whoami");
  root = Netref();
  co_await conn->close();
  co_return id;
}

/// Connects to ECHO `n` times through `locator`; which server answered each time.
inline Task<std::vector<std::string>> connect_n(registry::ServiceLocator& locator, int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    std::unique_ptr<Connection> conn = co_await locator.connect("echo");
    std::string id = co_await whoami_and_close(std::move(conn));
    ids.push_back(std::move(id));
  }
  co_return ids;
}

/// Waits for `e`, failing with Timeout after `limit`.
inline Task<void> wait_for(Event& e, Duration limit) { co_await with_timeout(limit, e.wait()); }

/// Collects log lines while it lives (restores the default sink after).
class LogCapture {
 public:
  explicit LogCapture(LogLevel level = LogLevel::kInfo) : saved_(log_level()) {
    set_log_level(level);
    set_log_sink([this](LogLevel, std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(line);
      for (auto& [text, event] : watches_) {
        if (line.find(text) != std::string_view::npos) event->set();
      }
    });
  }
  ~LogCapture() {
    set_log_sink({});
    set_log_level(saved_);
    // A test ending with an exception (a bounded wait that timed out) shows what was logged.
    if (std::uncaught_exceptions() > 0 || ::testing::Test::HasFailure()) {
      std::fprintf(stderr, "--- log captured by the test ---\n%s--- end of log ---\n", all().c_str());
    }
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  [[nodiscard]] bool contains(const std::string& text) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& l : lines_) {
      if (l.find(text) != std::string::npos) return true;
    }
    return false;
  }
  /// Sets `e` whenever a line containing `text` is logged. Only for lines logged on e's loop
  /// thread (Event is loop-thread only).
  void watch(std::string text, Event& e) {
    std::lock_guard<std::mutex> lock(mu_);
    watches_.emplace_back(std::move(text), &e);
  }
  [[nodiscard]] std::string all() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const std::string& l : lines_) out += l + "\n";
    return out;
  }

 private:
  LogLevel saved_;
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
  std::vector<std::pair<std::string, Event*>> watches_;
};

/// A tether registry on 127.0.0.1 of this test's loop and announced servers, closed at the end.
/// added_ is set once `expected_` entries were added (1 unless a test says otherwise), removed_
/// when one is removed.
class RegistryTest : public LoopTest {
 protected:
  void TearDown() override {
    for (auto& s : servers_) s->close();
    servers_.clear();
    registry_.reset();
    LoopTest::TearDown();
  }

  /// UDP and (with `tcp`) TCP; port 0: a free one (then UDP's and TCP's differ). A test that
  /// restarts on a given UDP port passes tcp = false: that number is not held for TCP.
  registry::RegistryServer& start_registry(std::uint16_t port = 0, bool tcp = true) {
    registry::RegistryServerOptions o;
    o.host = "127.0.0.1";
    o.port = port;
    o.tcp = tcp;
    registry_ = std::make_unique<registry::RegistryServer>(o);
    registry_->table().set_on_added([this](const std::string&, const registry::HostPort&) {
      if (++added_count_ >= expected_) added_.set();
    });
    registry_->table().set_on_removed(
        [this](const std::string&, const registry::HostPort&) { removed_.set(); });
    registry_->start();
    return *registry_;
  }

  std::unique_ptr<registry::RegistryServer> registry_;
  std::vector<std::unique_ptr<Server>> servers_;
  Event added_;
  Event removed_;
  int added_count_ = 0;
  int expected_ = 1;
};

}  // namespace tether::testing
