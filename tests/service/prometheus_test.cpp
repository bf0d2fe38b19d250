// A real Prometheus (Debian's `prometheus`) scrapes a tether server's /metrics on the RPC
// port: started on loopback with a generated config in a temporary directory, the test waits
// (bounded) for the target to be up through Prometheus' HTTP API, then for the query API to
// return tether_requests_total{method="add",handler="callattr"} with the calls made — twice,
// the second time after more calls, so the value is seen to grow.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "service/http_get.hpp"
#include "service/observe_util.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/sync.hpp"

namespace tether::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kPrometheus = "/usr/bin/prometheus";

/// A free loopback port (bound and released; Prometheus binds it right after).
std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// The Prometheus child: started with a config scraping `target_port` every second.
class PrometheusProcess {
 public:
  PrometheusProcess(const fs::path& dir, std::uint16_t target_port) : port_(free_port()), dir_(dir) {
    const fs::path config = dir / "prometheus.yml";
    std::ofstream(config) << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                          << "scrape_configs:\n  - job_name: tether\n    static_configs:\n"
                          << "      - targets: ['127.0.0.1:" << target_port << "']\n";
    const std::string config_arg = "--config.file=" + config.string();
    const std::string data_arg = "--storage.tsdb.path=" + (dir / "data").string();
    const std::string listen_arg = "--web.listen-address=127.0.0.1:" + std::to_string(port_);
    const std::string log = (dir / "prometheus.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execl(kPrometheus, kPrometheus, config_arg.c_str(), data_arg.c_str(), listen_arg.c_str(),
              "--log.level=warn", static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~PrometheusProcess() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // waiting for a child to exit
    }
  }
  PrometheusProcess(const PrometheusProcess&) = delete;
  PrometheusProcess& operator=(const PrometheusProcess&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] std::string log() const {
    std::ifstream in(dir_ / "prometheus.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  std::uint16_t port_;
  fs::path dir_;
  pid_t pid_ = -1;
};

/// Polls Prometheus' API until `done(json)` holds or `limit` passes (Prometheus is another
/// process: there is nothing to wait on but its answers).
template <class F>
bool poll_api(std::uint16_t port, const std::string& path, std::chrono::seconds limit, F done) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    HttpReply r = http_get(port, path);
    if (r.status == 200) {
      auto j = nlohmann::json::parse(r.body, nullptr, false);
      if (!j.is_discarded() && done(j)) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

/// The scraped tether_requests_total of add (nullopt: no such series yet).
std::optional<double> scraped_adds(const nlohmann::json& j) {
  for (const auto& r : j["data"]["result"]) {
    if (r["metric"]["method"] == "add" && r["metric"]["handler"] == "callattr" && r["metric"]["job"] == "tether") {
      return std::stod(r["value"][1].get<std::string>());
    }
  }
  return std::nullopt;
}

TEST(ObservePrometheus, ScrapesRequestCountersThatGrow) {
  ASSERT_EQ(::access(kPrometheus, X_OK), 0) << "Debian's prometheus package is needed (scripts/deps.sh)";
  char tmpl[] = "/tmp/tether-prom-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir(tmpl);

  ServerThread server(calc_service(), observe_options(true));
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  for (int i = 0; i < 7; ++i) conn.callattr<std::int64_t>("add", i, i);
  {
    PrometheusProcess prom(dir, server.port());
    const bool up = poll_api(prom.port(), "/api/v1/targets", std::chrono::seconds(30), [](const nlohmann::json& j) {
      const auto& t = j["data"]["activeTargets"];
      return !t.empty() && t[0]["health"] == "up";
    });
    ASSERT_TRUE(up) << "the target never came up; prometheus log:\n" << prom.log();
    const std::string query = "/api/v1/query?query=tether_requests_total%7Bmethod%3D%22add%22%7D";
    std::optional<double> seen;
    EXPECT_TRUE(poll_api(prom.port(), query, std::chrono::seconds(20), [&seen](const nlohmann::json& j) {
      seen = scraped_adds(j);
      return seen && *seen == 7;
    })) << "last value " << (seen ? *seen : -1);
    for (int i = 0; i < 5; ++i) conn.callattr<std::int64_t>("add", i, i);
    EXPECT_TRUE(poll_api(prom.port(), query, std::chrono::seconds(20), [&seen](const nlohmann::json& j) {
      seen = scraped_adds(j);
      return seen && *seen == 12;
    })) << "last value " << (seen ? *seen : -1);
    // The scrapes reached the server as HTTP requests on its RPC port.
    EXPECT_GE(server.metrics()->snapshot().http_requests, 2u);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace tether::testing
