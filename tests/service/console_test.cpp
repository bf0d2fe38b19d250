// The web console end to end in a real browser: headless Chromium driven by selenium
// (tests/service/console_check.py) loads / from a running server while a client keeps calling
// it; the figures the page shows are compared with the server's own counters, and the
// screenshot is kept in the test's output directory.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>

#include "service/observe_util.hpp"
#include "tether/rpc/remote_exception.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/sync.hpp"

namespace tether::testing {
namespace {

/// Runs `command`, returns its standard output (stderr goes to the test log).
std::string run_command(const std::string& command, int& status) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  status = ::pclose(p);
  return out;
}

TEST(ObserveConsole, BrowserShowsTheServersFigures) {
  ServerThread server(calc_service(), observe_options(true));

  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  for (int i = 0; i < 30; ++i) conn.callattr<std::int64_t>("add", i, 1);
  for (int i = 0; i < 2; ++i) EXPECT_THROW(conn.callattr<std::int64_t>("fail"), RemoteError);

  // The load: another connection calling mul until the browser is done.
  std::atomic<bool> stop{false};
  std::thread load([&stop, port = server.port()]() {
    SyncConnection c = connect_sync("127.0.0.1", port);
    while (!stop.load()) c.callattr<std::int64_t>("mul", 6, 7);
  });

  const std::filesystem::path out_dir = TETHER_TEST_OUTPUT_DIR;
  std::filesystem::create_directories(out_dir);
  const std::filesystem::path shot = out_dir / "console.png";
  std::filesystem::remove(shot);
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/";
  int status = -1;
  const std::string out = run_command(
      std::string(TETHER_SYSTEM_PYTHON3) + " " + TETHER_CONSOLE_CHECK + " " + url + " " + shot.string(),
      status);
  stop = true;
  load.join();
  ASSERT_EQ(status, 0) << out;
  const auto seen = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(seen.is_discarded()) << out;
  const metrics::Snapshot s = server.metrics()->snapshot();

  EXPECT_EQ(seen["service"], "CALC");
  EXPECT_EQ(seen["state"], "ready");
  EXPECT_EQ(seen["connections_open"], 2);
  EXPECT_EQ(seen["connection_rows"], 2);
  EXPECT_EQ(seen["methods"]["callattr/add"]["calls"], 30);
  EXPECT_EQ(seen["methods"]["callattr/add"]["errors"], 0);
  EXPECT_EQ(seen["methods"]["callattr/fail"]["errors"], 2);
  EXPECT_EQ(seen["errors"], 2);
  EXPECT_EQ(seen["error_rows"], 2);
  // Under load: what the page showed lies between the figures before and after it looked.
  std::uint64_t mul_now = 0;
  for (const auto& m : s.methods) {
    if (m.method == "mul") mul_now = m.calls;
  }
  const auto mul_seen = seen["methods"]["callattr/mul"]["calls"].get<std::uint64_t>();
  EXPECT_GT(mul_seen, 0u);
  EXPECT_LE(mul_seen, mul_now);
  EXPECT_GE(seen["requests"].get<std::uint64_t>(), 32u + mul_seen);
  EXPECT_LE(seen["requests"].get<std::uint64_t>(), s.requests);
  EXPECT_GT(seen["rate"].get<double>(), 0.0);
  // One row per serving loop; the lag samples the page showed no more than the server
  // counts now (it samples as it serves); no registry configured.
  ASSERT_EQ(seen["loop_rows"].get<std::size_t>(), s.loops.size());
  std::uint64_t samples_seen = 0;
  std::uint64_t samples_now = 0;
  for (const auto& n : seen["lag_samples"]) samples_seen += n.get<std::uint64_t>();
  for (const auto& l : s.loops) samples_now += l.lag_samples;
  EXPECT_GT(samples_seen, 0u);
  EXPECT_LE(samples_seen, samples_now);
  EXPECT_EQ(seen["registry"], "none configured");
  EXPECT_TRUE(seen["console_errors"].empty()) << seen["console_errors"];
  ASSERT_TRUE(std::filesystem::exists(shot));
  EXPECT_GT(std::filesystem::file_size(shot), 1000u);
}

}  // namespace
}  // namespace tether::testing
