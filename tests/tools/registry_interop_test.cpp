// `tether list` and `tether discover` against stock Python RPyC's registry (Debian's
// python3-rpyc: /usr/bin/rpyc_registry), with `tether serve --register` announcing to it, on
// loopback with kernel-chosen ports. Every wait is bounded; none is a sleep.

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "registry_cli_util.hpp"
#include "tool_process.hpp"

namespace tether::testing {
namespace {

/// `rpyc_registry -p 0 [ARGS]`: the port comes from its log line "server started on
/// 0.0.0.0:PORT" (stderr, merged into stdout here).
class PythonRegistry {
 public:
  explicit PythonRegistry(const std::string& args)
      : proc_(Background::Program{}, {"/bin/sh", "-c",
                                      std::string("exec ") + TETHER_PYTHON3 + " " + TETHER_RPYC_REGISTRY +
                                          " -p 0 " + args + " 2>&1"}) {
    const std::string mark = "server started on ";
    for (std::size_t i = 0; i < 10 && port_.empty(); ++i) {
      const auto line = proc_.line(i, 15);
      if (!line) break;
      const auto at = line->find(mark);
      if (at != std::string::npos) port_ = line->substr(line->rfind(':') + 1);
    }
  }
  ~PythonRegistry() { proc_.signal(SIGTERM); }
  PythonRegistry(const PythonRegistry&) = delete;
  PythonRegistry& operator=(const PythonRegistry&) = delete;
  [[nodiscard]] const std::string& port() const { return port_; }
  std::string output() { return proc_.wait(2).out; }

 private:
  Background proc_;
  std::string port_;
};

bool have_rpyc_registry() {
  return ::access(TETHER_PYTHON3, X_OK) == 0 && ::access(TETHER_RPYC_REGISTRY, R_OK) == 0;
}

TEST(ToolsRegistryInterop, ListAndDiscoverStockUdpRegistry) {
  if (!have_rpyc_registry()) GTEST_SKIP() << "no rpyc_registry (Debian package python3-rpyc)";
  PythonRegistry registry("-l true");
  ASSERT_FALSE(registry.port().empty()) << registry.output();
  const std::string url = "udp://127.0.0.1:" + registry.port();
  Background server({"serve", "--demo", "127.0.0.1:0", "--register", url});
  const std::string addr = server.listening_address();
  ASSERT_FALSE(addr.empty());

  ToolResult d = discover_until(url, "demo", 1);
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(d.out, addr + "\n");

  ToolResult l = run_tool({"list", "--registry", url});
  EXPECT_EQ(l.code, 0) << l.err;
  EXPECT_EQ(l.out, "DEMO " + addr + "\n");

  ToolResult c = run_tool({"call", "DEMO", "upper", "'abc'", "--registry", url, "--timeout", "5"});
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(c.out, "'ABC'\n");

  ToolResult none = run_tool({"discover", "NOSUCHSERVICE", "--registry", url});
  EXPECT_EQ(none.code, 3) << none.err;
  EXPECT_TRUE(one_line(none.err)) << none.err;

  server.signal(SIGTERM);
  EXPECT_EQ(server.wait().code, 0);
}

TEST(ToolsRegistryInterop, DiscoverStockTcpRegistry) {
  if (!have_rpyc_registry()) GTEST_SKIP() << "no rpyc_registry (Debian package python3-rpyc)";
  PythonRegistry registry("-m TCP -l true");
  ASSERT_FALSE(registry.port().empty()) << registry.output();
  const std::string url = "tcp://127.0.0.1:" + registry.port();
  Background server({"serve", "--demo", "127.0.0.1:0", "--register", url});
  const std::string addr = server.listening_address();
  ASSERT_FALSE(addr.empty());

  ToolResult d = discover_until(url, "DEMO", 1);
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(d.out, addr + "\n");
  ToolResult l = run_tool({"list", "--registry", url});
  EXPECT_EQ(l.code, 0) << l.err;
  EXPECT_EQ(l.out, "DEMO " + addr + "\n");

  server.signal(SIGTERM);
  EXPECT_EQ(server.wait().code, 0);
}

TEST(ToolsRegistryInterop, StockRegistryWithoutListingExit3) {
  if (!have_rpyc_registry()) GTEST_SKIP() << "no rpyc_registry (Debian package python3-rpyc)";
  PythonRegistry registry("");  // rpyc_registry's default: listing off
  ASSERT_FALSE(registry.port().empty()) << registry.output();
  ToolResult l = run_tool({"list", "--registry", "udp://127.0.0.1:" + registry.port()});
  EXPECT_EQ(l.code, 3) << l.err;
  EXPECT_TRUE(one_line(l.err)) << l.err;
  EXPECT_NE(l.err.find("does not allow listing"), std::string::npos) << l.err;
}

}  // namespace
}  // namespace tether::testing
