// `tether list` and `tether discover` over etcd: `tether serve --register etcd://...` against a
// one-member etcd the test starts on free loopback ports (tests/registry/etcd_process.hpp).

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "registry/etcd_process.hpp"
#include "registry_cli_util.hpp"
#include "tool_process.hpp"

namespace tether::testing {
namespace {

TEST(ToolsRegistryEtcd, ServeRegisterListDiscoverCall) {
  if (EtcdCluster::program().empty()) GTEST_SKIP() << "etcd is not installed (Debian package etcd-server)";
  EtcdCluster etcd(1);
  const std::string url = etcd.url();
  Background one({"serve", "--demo", "127.0.0.1:0", "--register", url});
  Background two({"serve", "--demo", "127.0.0.1:0", "--register", url});
  const std::string addr_one = one.listening_address();
  const std::string addr_two = two.listening_address();
  ASSERT_FALSE(addr_one.empty());
  ASSERT_FALSE(addr_two.empty());

  ToolResult d = discover_until(url, "demo", 2);
  ASSERT_EQ(d.code, 0) << d.err;
  std::vector<std::string> found = lines_of(d.out);
  std::sort(found.begin(), found.end());
  std::vector<std::string> expected{addr_one, addr_two};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(found, expected) << d.out;

  ToolResult l = run_tool({"list", "--registry", url});
  EXPECT_EQ(l.code, 0) << l.err;
  const std::vector<std::string> rows = lines_of(l.out);
  ASSERT_EQ(rows.size(), 1u) << l.out;
  EXPECT_EQ(rows[0].rfind("DEMO ", 0), 0u) << rows[0];
  EXPECT_NE(rows[0].find(addr_one), std::string::npos) << rows[0];
  EXPECT_NE(rows[0].find(addr_two), std::string::npos) << rows[0];

  ToolResult c = run_tool({"call", "DEMO", "add", "2", "3", "--registry", url, "--timeout", "5"});
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(c.out, "5\n");

  ToolResult none = run_tool({"discover", "NOSUCHSERVICE", "--registry", url});
  EXPECT_EQ(none.code, 3) << none.err;
  EXPECT_TRUE(one_line(none.err)) << none.err;
  EXPECT_NE(none.err.find("NOSUCHSERVICE"), std::string::npos) << none.err;

  one.signal(SIGTERM);
  two.signal(SIGTERM);
  EXPECT_EQ(one.wait().code, 0);
  EXPECT_EQ(two.wait().code, 0);
}

}  // namespace
}  // namespace tether::testing
