// The `tether` program against a stock Python RPyC server (Debian's python3-rpyc, started from
// tests/interop/py_server.py on a kernel-chosen port). Label: interop.

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "interop/py_process.hpp"
#include "tool_process.hpp"

namespace tether::testing {
namespace {

class ToolsInterop : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    py_ = new PyProcess({TETHER_PYTHON3, std::string(TETHER_INTEROP_DIR) + "/py_server.py"});
    addr_ = "127.0.0.1:" + std::to_string(py_->port());
  }
  static void TearDownTestSuite() {
    delete py_;
    py_ = nullptr;
  }
  static PyProcess* py_;
  static std::string addr_;
};

PyProcess* ToolsInterop::py_ = nullptr;
std::string ToolsInterop::addr_;

TEST_F(ToolsInterop, CallPythonServer) {
  struct Case {
    std::vector<std::string> args;
    std::string out;
  };
  const std::vector<Case> cases = {
      {{"add", "1", "2"}, "3\n"},
      {{"add", "--kw", "a=1", "--kw", "b=41"}, "42\n"},
      {{"add", "'py'", "'thon'"}, "'python'\n"},
      {{"echo", "123456789012345678901234567890"}, "123456789012345678901234567890\n"},
      {{"echo", "(1.5, None, b'\\x00', 'x', -inf)"}, "(1.5, None, b'\\x00', 'x', -inf)\n"},
      {{"echo", "frozenset({2})"}, "frozenset({2})\n"},
      // Lists, sets and dicts travel by reference; the server's type(x).__name__ of such a proxy
      // is 'type', exactly what it says for the same arguments from a stock Python client.
      {{"sum", "[1, 2, 3]"}, "('type', 6)\n"},
      {{"sum", "{1, 2}"}, "('type', 3)\n"},
      {{"sum", "(4, 5)"}, "('tuple', 9)\n"},
      {{"items", "{'a': 1, 'b': (2, 3)}"}, "('type', (('a', 1), ('b', (2, 3))))\n"},
      {{"get_list"}, "[1, 2, 3]\n"},
      {{"get_dict"}, "{'a': 1, 'b': 2}\n"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"call", addr_};
    args.insert(args.end(), c.args.begin(), c.args.end());
    ToolResult r = run_tool(args);
    EXPECT_EQ(r.code, 0) << c.args[0] << ": " << r.err;
    EXPECT_EQ(r.out, c.out) << c.args[0];
  }
  ToolResult j = run_tool({"call", addr_, "get_dict", "--json"});
  EXPECT_EQ(nlohmann::json::parse(j.out), nlohmann::json({{"a", 1}, {"b", 2}}));
  j = run_tool(
      {"call", addr_, "echo", "[1, {'k': b'v', 2: None}, {3}]", "--json"});  // our own list comes back
  EXPECT_EQ(nlohmann::json::parse(j.out), nlohmann::json::parse(R"([1, [["k", "dg=="], [2, null]], [3]])"))
      << j.out << j.err;
  j = run_tool({"call", addr_, "echo", "[1, {'k': 2}]"});
  EXPECT_EQ(j.out, "[1, {'k': 2}]\n");
  j = run_tool({"call", addr_, "get_list", "--json"});
  EXPECT_EQ(nlohmann::json::parse(j.out), nlohmann::json({1, 2, 3}));
}

TEST_F(ToolsInterop, PythonExceptionExit1) {
  ToolResult r = run_tool({"call", addr_, "fail", "'value'", "'bad input'"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "ValueError: bad input\n");
  r = run_tool({"call", addr_, "fail", "'key'", "'k'", "-v"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("Traceback (most recent call last)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exposed_fail"), std::string::npos) << r.err;
}

TEST_F(ToolsInterop, InspectPythonServer) {
  ToolResult r = run_tool({"inspect", addr_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("RPyC 5.x"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("__main__.TestService"), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\\n  add +function +Returns a \\+ b\\.\\n"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\\n  get_list +function"))) << r.out;
}

TEST_F(ToolsInterop, PingAndBenchPythonServer) {
  ToolResult p = run_tool({"ping", addr_, "-c", "2", "-i", "0"});
  EXPECT_EQ(p.code, 0) << p.err;
  EXPECT_NE(p.out.find("2 sent, 2 received"), std::string::npos) << p.out;
  ToolResult b = run_tool({"bench", addr_, "add", "1", "2", "-d", "0.3", "--json", "-q"});
  ASSERT_EQ(b.code, 0) << b.err;
  auto j = nlohmann::json::parse(b.out);
  EXPECT_GT(j["calls"].get<int>(), 0);
  EXPECT_EQ(j["errors"], 0);
}

// RPyC 6.x: the project's independent 6.x peer (tests/interop/minirpyc, the same root methods);
// the tool probes 5.x first and falls back.
TEST(ToolsInterop6, CallAndInspectA6xServer) {
  PyProcess py({TETHER_PYTHON3, std::string(TETHER_INTEROP_DIR) + "/py_server.py", "--mini6"});
  const std::string addr = "127.0.0.1:" + std::to_string(py.port());
  ToolResult r = run_tool({"call", addr, "add", "40", "2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "42\n");
  r = run_tool({"call", addr, "fail", "'value'", "'six'", "--generation", "6"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "ValueError: six\n");
  r = run_tool({"inspect", addr});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("RPyC 6.x"), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\\n  add +function"))) << r.out;
}

}  // namespace
}  // namespace tether::testing
