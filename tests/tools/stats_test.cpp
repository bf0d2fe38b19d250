// `tether stats` against `tether serve --demo --http` (a real server on a kernel-chosen loopback
// port): the table, --json, --watch --count, and the errors for addresses that do not answer
// HTTP, answer it slowly or are not tether servers.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "tool_process.hpp"

namespace tether::testing {
namespace {

using nlohmann::json;

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

class ToolsStats : public DemoServerSuite<true> {};

TEST_F(ToolsStats, JsonTableAndWatch) {
  for (int i = 0; i < 3; ++i) ASSERT_EQ(run_tool({"call", addr_, "add", "1", "2"}).code, 0);
  ASSERT_EQ(run_tool({"call", addr_, "fail", "'boom'"}).code, 1);

  ToolResult r = run_tool({"stats", addr_, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json s = json::parse(r.out);
  EXPECT_EQ(s["service"], "DEMO");
  EXPECT_GE(s["totals"]["requests"].get<std::uint64_t>(), 4u);
  EXPECT_GE(s["totals"]["connections_closed"].get<std::uint64_t>(), 4u);
  std::uint64_t add_calls = 0, fail_errors = 0;
  for (const json& m : s["methods"]) {
    if (m["method"] == "add") add_calls = m["calls"];
    if (m["method"] == "fail") fail_errors = m["errors"];
  }
  EXPECT_EQ(add_calls, 3u);
  EXPECT_EQ(fail_errors, 1u);
  ASSERT_TRUE(s["loops"].is_array());
  EXPECT_FALSE(s["loops"].empty());
  EXPECT_TRUE(s["closed_by_reason"].is_object());

  r = run_tool({"stats", addr_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("service DEMO"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("METHOD"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("LOOP"), std::string::npos) << r.out;
  bool add_row = false;
  std::size_t at = 0;
  while (at < r.out.size()) {
    const auto end = r.out.find('\n', at);
    const std::string line = r.out.substr(at, end - at);
    if (line.starts_with("add ")) {
      add_row = line.find(" callattr ") != std::string::npos && line.find(" 3 ") != std::string::npos;
    }
    at = end == std::string::npos ? r.out.size() : end + 1;
  }
  EXPECT_TRUE(add_row) << r.out;

  r = run_tool({"stats", addr_, "--watch", "--count", "3", "--interval", "0.05"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_of(r.out, "\x1b[H\x1b[2J"), 3u) << r.out;
  EXPECT_EQ(count_of(r.out, "service DEMO"), 3u);
  EXPECT_EQ(count_of(r.out, "calls/s"), 2u);  // from the second refresh on

  r = run_tool({"stats", addr_, "--watch", "--json", "-n", "2", "-i", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(count_of(r.out, "\n"), 2u) << r.out;
  const json second = json::parse(r.out.substr(r.out.find('\n') + 1));
  EXPECT_EQ(second["service"], "DEMO");
}

/// A loopback listener that answers its first connection with `answer` (after the request
/// head) and closes it.
class CannedHttp {
 public:
  explicit CannedHttp(std::string answer) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 4) != 0) {
      throw std::runtime_error("bind/listen");
    }
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, answer = std::move(answer)] {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10000) != 1) return;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        pollfd q{c, POLLIN, 0};
        if (::poll(&q, 1, 10000) != 1) break;
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
      }
      (void)!::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~CannedHttp() {
    thread_.join();
    ::close(fd_);
  }
  CannedHttp(const CannedHttp&) = delete;
  CannedHttp& operator=(const CannedHttp&) = delete;
  [[nodiscard]] std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST(ToolsStatsErrors, ServerWithoutHttpIsNotHttp) {
  Background plain({"serve", "--demo", "127.0.0.1:0"});
  const std::string addr = plain.listening_address();
  ASSERT_FALSE(addr.empty());
  ToolResult r = run_tool({"stats", addr, "--timeout", "5"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("does not answer HTTP"), std::string::npos) << r.err;
  plain.signal(SIGTERM);
  EXPECT_EQ(plain.wait(15).code, 0);
}

TEST(ToolsStatsErrors, SilentAddressTimesOut) {
  PortHolder silent(true);  // accepts into the backlog, never answers
  ToolResult r = run_tool({"stats", silent.addr(), "--timeout", "0.3"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("no HTTP answer within"), std::string::npos) << r.err;
  PortHolder closed(false);
  r = run_tool({"stats", closed.addr()});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("cannot fetch /status.json from " + closed.addr()), std::string::npos) << r.err;
}

TEST(ToolsStatsErrors, HttpServersThatAreNotTether) {
  {
    CannedHttp web("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    ToolResult r = run_tool({"stats", web.addr()});
    EXPECT_EQ(r.code, 3) << r.err;
    EXPECT_NE(r.err.find("not as a tether server does (HTTP/1.1 404 Not Found"), std::string::npos) << r.err;
  }
  {
    CannedHttp web(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"a\": 1}");
    ToolResult r = run_tool({"stats", web.addr()});
    EXPECT_EQ(r.code, 3) << r.err;
    EXPECT_NE(r.err.find("not with a tether server's figures"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace tether::testing
