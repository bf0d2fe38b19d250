// `tether registry`, `tether list` and `tether discover` with a tether registry, and
// `tether serve --register` / `tether call NAME` through it, all on loopback with kernel-chosen
// ports. Every wait is bounded; none is a sleep.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <string>
#include <vector>

#include "registry_cli_util.hpp"
#include "tool_process.hpp"

namespace tether::testing {
namespace {

/// `tether registry` on loopback, UDP and TCP on kernel-chosen ports.
class Registry {
 public:
  explicit Registry(std::vector<std::string> extra = {}) : proc_(args(std::move(extra))) {
    udp_ = registry_address(proc_.line(0), "udp");
    tcp_ = registry_address(proc_.line(1), "tcp");
  }
  [[nodiscard]] bool started() const { return !udp_.empty() && !tcp_.empty(); }
  [[nodiscard]] std::string udp_url() const { return "udp://" + udp_; }
  [[nodiscard]] std::string tcp_url() const { return "tcp://" + tcp_; }
  /// SIGTERM, then everything it wrote.
  ToolResult stop() {
    proc_.signal(SIGTERM);
    return proc_.wait(15);
  }
  ToolResult failure() { return proc_.wait(2); }

 private:
  static std::vector<std::string> args(std::vector<std::string> extra) {
    std::vector<std::string> a{"--log-level", "info",      "registry", "--udp", "--tcp",
                               "--host",      "127.0.0.1", "--port",   "0"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  Background proc_;
  std::string udp_, tcp_;
};

TEST(ToolsRegistry, HelpListsTheSubcommands) {
  for (const char* sub : {"registry", "list", "discover"}) {
    ToolResult h = run_tool({sub, "--help"});
    EXPECT_EQ(h.code, 0) << sub;
    EXPECT_NE(h.out.find("Usage:"), std::string::npos) << sub;
    EXPECT_NE(h.out.find(std::string("tether ") + sub), std::string::npos) << sub << h.out;
    if (std::string(sub) != "registry") {
      EXPECT_NE(h.out.find("--registry"), std::string::npos) << h.out;
    }
  }
  EXPECT_NE(run_tool({"--help"}).out.find("discover"), std::string::npos);
}

TEST(ToolsRegistry, ServeRegisterListDiscoverCall) {
  Registry registry({"--allow-listing"});
  ASSERT_TRUE(registry.started()) << registry.failure().err;
  // One server announced over TCP, one over UDP: both land in the one table.
  Background one({"serve", "--demo", "127.0.0.1:0", "--register", registry.tcp_url()});
  Background two({"serve", "--demo", "127.0.0.1:0", "--register", registry.udp_url()});
  const std::string addr_one = one.listening_address();
  const std::string addr_two = two.listening_address();
  ASSERT_FALSE(addr_one.empty());
  ASSERT_FALSE(addr_two.empty());

  ToolResult d = discover_until(registry.udp_url(), "demo", 2);
  ASSERT_EQ(d.code, 0) << d.err;
  std::vector<std::string> found = lines_of(d.out);
  std::sort(found.begin(), found.end());
  std::vector<std::string> expected{addr_one, addr_two};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(found, expected) << d.out;
  EXPECT_EQ(d.err, "");

  for (const std::string& url : {registry.udp_url(), registry.tcp_url()}) {
    ToolResult l = run_tool({"list", "--registry", url});
    EXPECT_EQ(l.code, 0) << url << ": " << l.err;
    const std::vector<std::string> rows = lines_of(l.out);
    ASSERT_EQ(rows.size(), 1u) << l.out;
    EXPECT_EQ(rows[0].rfind("DEMO ", 0), 0u) << rows[0];
    EXPECT_NE(rows[0].find(addr_one), std::string::npos) << rows[0];
    EXPECT_NE(rows[0].find(addr_two), std::string::npos) << rows[0];
  }

  ToolResult c =
      run_tool({"call", "DEMO", "add", "1", "2", "--registry", registry.tcp_url(), "--timeout", "5"});
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(c.out, "3\n");

  ToolResult none = run_tool({"discover", "NOSUCHSERVICE", "--registry", registry.tcp_url()});
  EXPECT_EQ(none.code, 3) << none.err;
  EXPECT_EQ(none.out, "");
  EXPECT_TRUE(one_line(none.err)) << none.err;
  EXPECT_NE(none.err.find("NOSUCHSERVICE"), std::string::npos) << none.err;

  // A graceful stop unregisters: the registry then knows only the other server.
  one.signal(SIGTERM);
  EXPECT_EQ(one.wait().code, 0);
  ToolResult left;
  for (int i = 0; i < 100; ++i) {
    left = run_tool({"discover", "DEMO", "--registry", registry.tcp_url()});
    if (left.code == 0 && lines_of(left.out).size() == 1) break;
  }
  EXPECT_EQ(left.out, addr_two + "\n") << left.err;
  two.signal(SIGTERM);
  EXPECT_EQ(two.wait().code, 0);

  ToolResult r = registry.stop();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("registry stopped: requests="), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" added=2 "), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("DEMO registered at 127.0.0.1:"), std::string::npos) << r.err;
}

TEST(ToolsRegistry, EmptyRegistryListsNothing) {
  Registry registry({"--allow-listing"});
  ASSERT_TRUE(registry.started()) << registry.failure().err;
  ToolResult l = run_tool({"list", "--registry", registry.udp_url()});
  EXPECT_EQ(l.code, 0) << l.err;
  EXPECT_EQ(l.out, "");
  EXPECT_EQ(registry.stop().code, 0);
}

TEST(ToolsRegistry, ListingRefusedExit3) {
  Registry registry;  // listing off, as RPyC's default
  ASSERT_TRUE(registry.started()) << registry.failure().err;
  for (const std::string& url : {registry.udp_url(), registry.tcp_url()}) {
    ToolResult l = run_tool({"list", "--registry", url});
    EXPECT_EQ(l.code, 3) << url;
    EXPECT_TRUE(one_line(l.err)) << l.err;
    EXPECT_NE(l.err.find("does not allow listing"), std::string::npos) << l.err;
  }
  EXPECT_EQ(registry.stop().code, 0);
}

TEST(ToolsRegistry, DiscoverUnknownNameExit3) {
  Registry registry;
  ASSERT_TRUE(registry.started()) << registry.failure().err;
  for (const std::string& url : {registry.udp_url(), registry.tcp_url()}) {
    ToolResult r = run_tool({"discover", "nosuch", "--registry", url});
    EXPECT_EQ(r.code, 3) << url << ": " << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find("NOSUCH"), std::string::npos) << r.err;
  }
  EXPECT_EQ(registry.stop().code, 0);
}

TEST(ToolsRegistry, NoRegistryExit3) {
  PortHolder closed(false);
  const std::string url = "tcp://127.0.0.1:" + std::to_string(closed.port());
  for (const char* sub : {"list", "discover"}) {
    std::vector<std::string> args{sub, "--registry", url, "--timeout", "1"};
    if (std::string(sub) == "discover") args.insert(args.begin() + 1, "DEMO");
    ToolResult r = run_tool(args);
    EXPECT_EQ(r.code, 3) << sub << ": " << r.err;
    EXPECT_TRUE(one_line(r.err)) << sub << ": [" << r.err << "]";
    EXPECT_NE(r.err.find(std::to_string(closed.port())), std::string::npos) << r.err;
    EXPECT_LT(r.seconds, 10.0);
  }
}

TEST(ToolsRegistry, BadRegistryUrlExit2) {
  for (const char* url : {"http://127.0.0.1:1", "udp://", "tcp://127.0.0.1:99999", "etcd://", "udp://[::1"}) {
    for (const char* sub : {"list", "discover", "call"}) {
      std::vector<std::string> args{sub, "--registry", url};
      if (std::string(sub) == "discover") args.insert(args.begin() + 1, "DEMO");
      if (std::string(sub) == "call") args = {"call", "DEMO", "add", "--registry", url};
      ToolResult r = run_tool(args);
      EXPECT_EQ(r.code, 2) << sub << " " << url << ": " << r.err;
      EXPECT_TRUE(one_line(r.err)) << sub << " " << url << ": [" << r.err << "]";
      EXPECT_NE(r.err.find("--registry"), std::string::npos) << r.err;
    }
  }
}

TEST(ToolsRegistry, RegistryUsageErrorsExit2) {
  const std::vector<std::vector<std::string>> cases = {
      {"registry", "--port", "70000"},
      {"registry", "--allowed", "10.0.0.0/99"},
      {"registry", "--pruning", "0"},
      {"registry", "--no-such-flag"},
      {"discover"},
      {"discover", "DEMO", "--timeout", "0"},
  };
  for (const auto& args : cases) {
    ToolResult r = run_tool(args, 10);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.code, 2) << joined << r.err;
    EXPECT_TRUE(one_line(r.err)) << joined << ": [" << r.err << "]";
    EXPECT_EQ(r.out, "") << joined;
  }
}

TEST(ToolsRegistry, BusyPortExit3) {
  PortHolder held(true);
  ToolResult r =
      run_tool({"registry", "--tcp", "--host", "127.0.0.1", "--port", std::to_string(held.port())}, 10);
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_TRUE(one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find(std::to_string(held.port())), std::string::npos) << r.err;
}

TEST(ToolsRegistry, SigintStopsGracefully) {
  Background reg({"registry", "--host", "127.0.0.1", "--port", "0"});
  const std::string udp = registry_address(reg.first_line(), "udp");
  ASSERT_FALSE(udp.empty()) << reg.wait(2).err;
  reg.signal(SIGINT);
  ToolResult r = reg.wait(15);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out).size(), 2u) << r.out;  // the address, then the counters
  EXPECT_NE(r.out.find("registry stopped: "), std::string::npos) << r.out;
}

}  // namespace
}  // namespace tether::testing
