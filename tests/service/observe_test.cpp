// Observability: ServerMetrics' figures for real calls over loopback, the HTTP endpoints on the
// RPC port (opt-in) and on an admin address, their limits and error answers, /readyz during a
// graceful shutdown, and RPC connections undisturbed by HTTP on the same port.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "eventually.hpp"
#include "service/http_get.hpp"
#include "service/observe_util.hpp"
#include "test_util.hpp"
#include "tether/net/connect.hpp"
#include "tether/rpc/remote_exception.hpp"
#include "tether/service/http.hpp"
#include "tether/service/metrics.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"
#include "tether/service/sync.hpp"

namespace tether::testing {
namespace {

ServeOptions loopback() { return observe_options(false); }

const metrics::MethodFigures* find_method(const metrics::Snapshot& s, std::string_view method) {
  for (const auto& m : s.methods) {
    if (m.handler == "callattr" && m.method == method) return &m;
  }
  return nullptr;
}

void call_some(SyncConnection& conn, int adds, int fails) {
  for (int i = 0; i < adds; ++i) EXPECT_EQ(conn.callattr<std::int64_t>("add", i, 1), i + 1);
  for (int i = 0; i < fails; ++i) EXPECT_THROW(conn.callattr<std::int64_t>("fail"), RemoteError);
}

TEST(ObserveMetrics, CountsCallsErrorsLatencyAndConnections) {
  ServerThread server(calc_service(), loopback());
  ASSERT_TRUE(server.metrics());
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  call_some(conn, 25, 3);
  const metrics::Snapshot s = server.metrics()->snapshot();
  EXPECT_EQ(s.service, "CALC");
  const auto* add = find_method(s, "add");
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(add->calls, 25u);
  EXPECT_EQ(add->errors, 0u);
  EXPECT_EQ(add->latency.count, 25u);
  EXPECT_GT(add->latency.sum_seconds, 0.0);
  EXPECT_GT(add->latency.quantile(0.5), 0.0);
  EXPECT_LE(add->latency.quantile(0.5), add->latency.quantile(0.999));
  const auto* fail = find_method(s, "fail");
  ASSERT_NE(fail, nullptr);
  EXPECT_EQ(fail->calls, 3u);
  EXPECT_EQ(fail->errors, 3u);
  EXPECT_EQ(s.errors_by_type.at("ValueError"), 3u);
  ASSERT_EQ(s.recent_errors.size(), 3u);
  EXPECT_EQ(s.recent_errors.back().type, "ValueError");
  EXPECT_EQ(s.recent_errors.back().method, "fail");
  EXPECT_NE(s.recent_errors.back().message.find("no good"), std::string::npos);
  EXPECT_EQ(s.connections_open, 1u);
  EXPECT_EQ(s.connections_accepted, 1u);
  ASSERT_EQ(s.connections.size(), 1u);
  EXPECT_GE(s.connections[0].calls, 28u);
  EXPECT_EQ(s.connections[0].errors, 3u);
  EXPECT_GT(s.connections[0].wire_bytes_in, 0u);
  EXPECT_GT(s.connections[0].wire_bytes_out, 0u);
  EXPECT_NE(s.connections[0].generation, 0);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_GE(s.requests, 28u);
  EXPECT_EQ(s.errors, 3u);
}

TEST(ObserveMetrics, UnknownNamesShareOneLabel) {
  ServerThread server(calc_service(), loopback());
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  for (int i = 0; i < 5; ++i) {
    EXPECT_THROW(conn.callattr<std::int64_t>("nope_" + std::to_string(i)), RemoteError);
  }
  const metrics::Snapshot s = server.metrics()->snapshot();
  const auto* unknown = find_method(s, "(unknown)");
  ASSERT_NE(unknown, nullptr);
  EXPECT_EQ(unknown->calls, 5u);
  EXPECT_EQ(find_method(s, "nope_0"), nullptr);
}

TEST(ObserveMetrics, OffMeansNoMetricsAndNoHttp) {
  ServeOptions o = loopback();
  o.metrics = false;
  o.http.on_rpc_port = true;
  ServerThread server(calc_service(), o);
  EXPECT_FALSE(server.metrics());
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 1, 2), 3);
  EXPECT_EQ(http_get(server.port(), "/healthz").status, 0);
}

TEST(ObserveMetrics, BucketsAreLogLinear) {
  EXPECT_EQ(metrics::bucket_of(0), 0u);
  EXPECT_EQ(metrics::bucket_of(1000), 0u);  // <= 1 µs
  EXPECT_EQ(metrics::bucket_of(1001), 1u);  // <= 2 µs
  EXPECT_EQ(metrics::bucket_of(10'000), 9u);
  EXPECT_EQ(metrics::bucket_of(15'000), 10u);  // <= 20 µs
  EXPECT_EQ(metrics::bucket_of(std::int64_t{1} << 62), metrics::kFiniteBuckets);
  metrics::Histogram h;
  h.counts[metrics::bucket_of(15'000)] = 100;
  h.count = 100;
  EXPECT_GT(h.quantile(0.5), 10e-6);
  EXPECT_LE(h.quantile(0.5), 20e-6);
}

TEST(ObserveHttp, OffOnTheRpcPortByDefault) {
  ServerThread server(calc_service(), loopback());
  EXPECT_EQ(http_get(server.port(), "/healthz").status, 0);  // taken for a (too large) frame
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 1, 2), 3);
}

TEST(ObserveHttp, EndpointsOnTheRpcPort) {
  ServeOptions o = observe_options(true);
  o.http.timeout = std::chrono::milliseconds(300);
  ServerThread server(calc_service(), o);
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  call_some(conn, 5, 2);

  HttpReply m = http_get(server.port(), "/metrics");
  ASSERT_EQ(m.status, 200) << m.raw;
  EXPECT_NE(m.head.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(m.body.find("tether_requests_total{method=\"add\",handler=\"callattr\"} 5\n"), std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("tether_request_errors_total{method=\"fail\",handler=\"callattr\"} 2\n"),
            std::string::npos);
  EXPECT_NE(
      m.body.find(
          "tether_request_duration_seconds_bucket{method=\"add\",handler=\"callattr\",le=\"+Inf\"} 5\n"),
      std::string::npos);
  EXPECT_NE(m.body.find("tether_errors_total{type=\"ValueError\"} 2\n"), std::string::npos);
  EXPECT_NE(m.body.find("tether_connections_open 1\n"), std::string::npos);

  EXPECT_EQ(http_get(server.port(), "/healthz").body, "ok\n");
  EXPECT_EQ(http_get(server.port(), "/readyz").status, 200);
  HttpReply st = http_get(server.port(), "/status.json?x=1");
  ASSERT_EQ(st.status, 200);
  const auto j = nlohmann::json::parse(st.body);
  EXPECT_EQ(j["service"], "CALC");
  EXPECT_EQ(j["totals"]["connections_open"], 1);
  bool found = false;
  for (const auto& mj : j["methods"]) {
    if (mj["method"] == "add") {
      found = true;
      EXPECT_EQ(mj["calls"], 5);
    }
  }
  EXPECT_TRUE(found);
  HttpReply page = http_get(server.port(), "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<title>tether console</title>"), std::string::npos);

  HttpReply head = http_get(server.port(), "/metrics", "HEAD");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(http_get(server.port(), "/nope").status, 404);
  HttpReply post = http_get(server.port(), "/metrics", "POST");
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.head.find("Allow: GET, HEAD"), std::string::npos);
  EXPECT_EQ(http_raw(server.port(), "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(10000, 'a') + "\r\n\r\n")
                .status,
            431);
  EXPECT_EQ(http_raw(server.port(), std::string("GET /\x01 HTTP/1.1\r\n\r\n")).status, 400);
  EXPECT_EQ(http_raw(server.port(), "GET / HTTP/2.0\r\n\r\n").status, 400);
  EXPECT_EQ(http_raw(server.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n").status, 408);  // never ends

  // The RPC connection was not disturbed, and new ones are served as before.
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 40, 2), 42);
  SyncConnection second = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(second.callattr<std::int64_t>("add", 2, 2), 4);
  EXPECT_EQ(server.metrics()->snapshot().http_requests, 12u);
}

// A peer that sends fewer bytes than it takes to tell HTTP from RPyC and stalls is cut after
// the connection's frame_timeout, as a stalled RPC frame is; one that sends nothing at all is
// an idle client and stays, and RPC goes on.
TEST(ObserveHttp, APeerStallingBeforeFourBytesIsCutAfterTheFrameTimeout) {
  ServeOptions o = observe_options(true);
  o.connection.frame_timeout = std::chrono::milliseconds(300);
  ServerThread server(calc_service(), o);
  HttpReply stalled = http_raw(server.port(), "GE");  // reads for up to 5 s
  EXPECT_TRUE(stalled.closed_by_server) << "held past the frame timeout";
  EXPECT_EQ(stalled.status, 0);
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 1, 2), 3);
}

/// GET `path` from 127.0.0.1:port on this loop; the whole answer.
Task<std::string> fetch(std::uint16_t port, std::string path) {
  ConnectOptions copts;
  std::unique_ptr<BufferedStream> s = co_await open_connection("127.0.0.1", port, copts);
  s->write("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
  Bytes all = co_await s->read_until_close();
  co_return all.str();
}

/// Asks /readyz on the admin port while the server's shutdown runs its hooks.
class ReadyProbe : public ServerHook {
 public:
  ReadyProbe(std::uint16_t port, std::string* out) : port_(port), out_(out) {}
  Task<void> on_shutdown() override {
    std::string answer = co_await fetch(port_, "/readyz");
    *out_ = std::move(answer);
  }

 private:
  std::uint16_t port_;
  std::string* out_;
};

class ObserveAdmin : public LoopTest {};

TEST_F(ObserveAdmin, AdminPortAndReadyzWhileDraining) {
  ServeOptions o = loopback();
  o.http.admin_port_any = true;
  std::string during;
  Server* self = nullptr;
  o.hooks.push_back([&self, &during](const ServerInfo&) -> std::unique_ptr<ServerHook> {
    return std::make_unique<ReadyProbe>(self->admin_port(), &during);
  });
  Server server(calc_service(), o);
  self = &server;
  server.start();
  ASSERT_NE(server.admin_port(), 0);
  ASSERT_NE(server.admin_port(), server.port());
  const std::string before = run(fetch(server.admin_port(), "/readyz"));
  EXPECT_TRUE(before.starts_with("HTTP/1.1 200 ")) << before;
  const std::string metrics = run(fetch(server.admin_port(), "/metrics"));
  EXPECT_NE(metrics.find("tether_ready 1\n"), std::string::npos);
  run(server.shutdown(std::chrono::seconds(2)));
  EXPECT_TRUE(during.starts_with("HTTP/1.1 503 ")) << during;
  EXPECT_NE(during.find("draining"), std::string::npos);
  server.close();
}

/// Connections of `m` that closed for `reason` so far.
std::uint64_t closed_for(const ServerMetrics& m, const std::string& reason) {
  const metrics::Snapshot s = m.snapshot();
  const auto it = s.closed_by_reason.find(reason);
  return it == s.closed_by_reason.end() ? 0 : it->second;
}

/// Connects a plain TCP socket to 127.0.0.1:port and closes it without a word.
void connect_and_hang_up(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::close(fd);
}

TEST(ObserveMetrics, ConnectionsClosedByReason) {
  ServeOptions o = loopback();
  o.connection.idle_timeout = std::chrono::milliseconds(100);
  ServerThread server(calc_service(), o);
  const ServerMetrics& m = *server.metrics();
  {
    SyncConnection conn = connect_sync("127.0.0.1", server.port());
    EXPECT_EQ(conn.callattr<std::int64_t>("add", 1, 2), 3);
    conn.close();  // CLOSE
  }
  EXPECT_TRUE(eventually([&] { return closed_for(m, "peer_close") == 1; }));
  connect_and_hang_up(server.port());
  EXPECT_TRUE(eventually([&] { return closed_for(m, "disconnected") == 1; }));
  SyncConnection idle = connect_sync("127.0.0.1", server.port());
  EXPECT_TRUE(eventually([&] { return closed_for(m, "idle_timeout") == 1; }));
  const metrics::Snapshot s = m.snapshot();
  EXPECT_EQ(s.connections_closed, 3u);
  const std::string text = render_prometheus(s);
  EXPECT_NE(text.find("tether_connections_closed_by_reason_total{reason=\"idle_timeout\"} 1\n"),
            std::string::npos);
  const auto j = nlohmann::json::parse(render_status_json(s));
  EXPECT_EQ(j["closed_by_reason"]["peer_close"], 1);
}

TEST(ObserveMetrics, RefusedAndShutdownReasons) {
  ServeOptions guarded = loopback();
  guarded.auth_token = "secret";
  ServerThread locked(calc_service(), guarded);
  EXPECT_THROW(connect_sync("127.0.0.1", locked.port()), Error);
  EXPECT_TRUE(eventually([&] { return closed_for(*locked.metrics(), "refused") == 1; }));

  ServerThread server(calc_service(), loopback());
  std::shared_ptr<ServerMetrics> m = server.metrics();
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  EXPECT_EQ(conn.callattr<std::int64_t>("add", 1, 2), 3);
  server.stop();  // drains the idle connection
  EXPECT_EQ(closed_for(*m, "server_shutdown"), 1u);
}

TEST(ObserveMetrics, LoopFiguresOfTheServingLoop) {
  ServerThread server(calc_service(), loopback());
  SyncConnection conn = connect_sync("127.0.0.1", server.port());
  // Each call wakes the server's loop at least once; one wake-up in 64 is measured.
  for (int i = 0; i < 300; ++i) ASSERT_EQ(conn.callattr<std::int64_t>("add", i, 1), i + 1);
  const metrics::Snapshot s = server.metrics()->snapshot();
  ASSERT_FALSE(s.loops.empty());
  EXPECT_EQ(s.loops[0].index, 0u);
  EXPECT_GE(s.loops[0].lag_samples, 2u);
  EXPECT_GT(s.loops[0].lag_max_seconds, 0.0);
  EXPECT_GE(s.loops[0].lag_max_seconds * static_cast<double>(s.loops[0].lag_samples),
            s.loops[0].lag_sum_seconds);
  const std::string text = render_prometheus(s);
  for (const char* name :
       {"tether_loop_lag_seconds_count{loop=\"0\"}", "tether_loop_lag_max_seconds{loop=\"0\"}",
        "tether_busy_poll_seconds_total{loop=\"0\"}", "tether_busy_poll_caught_total{loop=\"0\"}",
        "tether_busy_poll_missed_total{loop=\"0\"}", "tether_worker_jobs_queued{loop=\"0\"}",
        "tether_worker_jobs_running{loop=\"0\"}"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name;
  }
  EXPECT_EQ(text.find("tether_registry_"), std::string::npos);  // no registry configured
  const auto j = nlohmann::json::parse(render_status_json(s));
  EXPECT_EQ(j["loops"][0]["lag_samples"], s.loops[0].lag_samples);
  EXPECT_EQ(j["registry"]["configured"], false);
}

}  // namespace
}  // namespace tether::testing
