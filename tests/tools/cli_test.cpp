// The `tether` program against its own demo server (`tether serve --demo` on a kernel-chosen
// loopback port): every subcommand, exit codes, error lines, tap relaying.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "net/test_certs.hpp"
#include "tool_process.hpp"

namespace tether::testing {
namespace {

class ToolsCliServer : public DemoServerSuite<false> {};

TEST(ToolsCli, HelpAndVersion) {
  ToolResult v = run_tool({"--version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.out, "tether " TETHER_VERSION_STRING "\n");
  for (const char* sub : {"serve", "call", "inspect", "ping", "bench", "tap"}) {
    ToolResult h = run_tool({sub, "--help"});
    EXPECT_EQ(h.code, 0) << sub;
    EXPECT_NE(h.out.find("Usage:"), std::string::npos) << sub;
    EXPECT_NE(h.out.find(sub), std::string::npos) << sub;
  }
  ToolResult top = run_tool({"--help"});
  EXPECT_EQ(top.code, 0);
  EXPECT_NE(top.out.find("Exit codes"), std::string::npos);
}

TEST(ToolsCli, UsageErrorsExit2) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"call"},
      {"call", "127.0.0.1:1"},
      {"call", "127.0.0.1:1", "add", "--no-such-option"},
      {"ping", "127.0.0.1:1", "-c", "zero"},
      {"serve", "127.0.0.1:0"},  // no --demo
      {"--log-level", "loud", "ping", "127.0.0.1:1"},
      {"call", "127.0.0.1:1", "bad..path"},
      {"call", "127.0.0.1:1", "add", "--kw", "1=2"},
  };
  for (const auto& args : cases) {
    ToolResult r = run_tool(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.code, 2) << joined << r.err;
    EXPECT_TRUE(one_line(r.err)) << joined << ": [" << r.err << "]";
    EXPECT_EQ(r.out, "") << joined;
  }
}

TEST(ToolsCli, BadAddressesExit2) {
  for (const char* addr : {"127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:0", "[::1", "[::1]", "[zz]:80",
                           "::1:80", "unix:", "unix:relative", "http://127.0.0.1:80", "tls://unix:/x",
                           "tls://name", "bad host:1", ":80", "9start", ""}) {
    ToolResult r = run_tool({"call", addr, "add", "1", "2"});
    EXPECT_EQ(r.code, 2) << addr << ": " << r.err;
    EXPECT_TRUE(one_line(r.err)) << addr << ": [" << r.err << "]";
    EXPECT_NE(r.err.find("bad address"), std::string::npos) << addr << ": " << r.err;
  }
}

TEST(ToolsCli, RefusedExit3) {
  PortHolder closed(false);
  for (const char* sub : {"call", "inspect", "ping", "bench"}) {
    std::vector<std::string> args{sub, closed.addr()};
    if (std::string(sub) == "call") args.push_back("add");
    ToolResult r = run_tool(args);
    EXPECT_EQ(r.code, 3) << sub << ": " << r.err;
    EXPECT_TRUE(one_line(r.err)) << sub << ": [" << r.err << "]";
    EXPECT_NE(r.err.find(closed.addr()), std::string::npos) << r.err;
  }
}

TEST(ToolsCli, SilentServerTimesOutExit3) {
  PortHolder silent(true);  // accepts into the backlog, never answers
  ToolResult r = run_tool({"call", silent.addr(), "add", "1", "2", "--timeout", "0.5"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_TRUE(one_line(r.err)) << r.err;
  EXPECT_LT(r.seconds, 5.0);
  EXPECT_GE(r.seconds, 0.4);
}

TEST_F(ToolsCliServer, CallPrintsPythonRepr) {
  struct Case {
    std::vector<std::string> args;
    std::string out;
  };
  const std::vector<Case> cases = {
      {{"add", "1", "2"}, "3\n"},
      {{"add", "-5", "3"}, "-2\n"},
      {{"add", "1.5", "2"}, "3.5\n"},
      {{"add", "'ab'", "'cd'"}, "'abcd'\n"},
      {{"add", "--kw", "a=40", "--kw", "b=2"}, "42\n"},
      {{"echo", "b'\\x00ab'"}, "b'\\x00ab'\n"},
      {{"upper", "'hello'"}, "'HELLO'\n"},
      {{"sleep", "0"}, "0.0\n"},
      {{"store.set", "'k'", "(1, None, b'z')"}, "None\n"},
      {{"store.get", "'k'"}, "(1, None, b'z')\n"},
      {{"store.get", "'missing'"}, "None\n"},
      {{"store.set", "'big'", "-123456789012345678901234567890"}, "None\n"},
      {{"store.get", "'big'", "--timeout", "0"}, "-123456789012345678901234567890\n"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"call", addr_};
    args.insert(args.end(), c.args.begin(), c.args.end());
    ToolResult r = run_tool(args);
    EXPECT_EQ(r.code, 0) << c.args[0] << ": " << r.err;
    EXPECT_EQ(r.out, c.out) << c.args[0];
  }
  ToolResult keys = run_tool({"call", addr_, "store.keys"});
  EXPECT_EQ(keys.code, 0);
  EXPECT_NE(keys.out.find("'k'"), std::string::npos) << keys.out;
}

TEST_F(ToolsCliServer, CallJson) {
  ToolResult r = run_tool({"call", addr_, "echo", "b'\\x00\\xffhi'", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), "AP9oaQ==");
  r = run_tool({"call", addr_, "add", "0.5", "inf", "--json"});
  EXPECT_EQ(nlohmann::json::parse(r.out), "inf");
  r = run_tool({"call", addr_, "stats", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_GE(j["calls"].get<int>(), 1);
  EXPECT_GE(j["connections"].get<int>(), 1);
  EXPECT_EQ(j["open"].get<int>(), 1);  // this call's own connection
}

TEST_F(ToolsCliServer, RemoteExceptionExit1) {
  ToolResult r = run_tool({"call", addr_, "fail", "'boom'"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "ValueError: boom\n");
  EXPECT_EQ(r.out, "");
  r = run_tool({"call", addr_, "fail", "'boom'", "-v"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("traceback"), std::string::npos) << r.err;
  r = run_tool({"call", addr_, "store.delete", "'nope'"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "KeyError: 'nope'\n");
  r = run_tool({"call", addr_, "no_such_function"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("AttributeError"), std::string::npos) << r.err;
  r = run_tool({"call", addr_, "countdown", "2", "None"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "TypeError: countdown(): callback must be callable\n");
  r = run_tool({"call", addr_, "add", "99999999999999999999", "1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("OverflowError: "), std::string::npos) << r.err;
  r = run_tool({"call", addr_, "add", "1", "'x'"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "TypeError: unsupported operand type(s) for +: 'int' and 'str'\n");
}

TEST_F(ToolsCliServer, MalformedLiteralExit2WithColumn) {
  ToolResult r = run_tool({"call", addr_, "add", "1", "[1, 2"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("argument 2: column 6:"), std::string::npos) << r.err;
  r = run_tool({"call", addr_, "add", "--kw", "a=hello", "--kw", "b=1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--kw a: column 1: unknown name 'hello'"), std::string::npos) << r.err;
}

TEST_F(ToolsCliServer, SleepDoesNotHoldOtherCalls) {
  Background slow({"call", addr_, "sleep", "2"});
  // The sleeping call's connection is made before the quick one is timed: wait for the server
  // to count it (its stats show two open connections: the sleeper and the asker).
  for (int i = 0; i < 200; ++i) {
    ToolResult s = run_tool({"call", addr_, "stats", "--json"});
    if (s.code == 0 && nlohmann::json::parse(s.out)["calls.sleep"].is_number()) break;
  }
  ToolResult quick = run_tool({"call", addr_, "add", "2", "3"});
  EXPECT_EQ(quick.out, "5\n");
  EXPECT_TRUE(slow.running()) << "the quick call waited for sleep(2)";
  ToolResult r = slow.wait();
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "2.0\n");
}

TEST_F(ToolsCliServer, Inspect) {
  ToolResult r = run_tool({"inspect", addr_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("RPyC 5.x"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("service DEMO"), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\\n  add +function")));
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\\n  countdown +function")));
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\\n  store +object +demo.Store")));
  // A tether server's functions show their signature (the first line of their __doc__).
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\\n  upper +function +upper\\(text: str\\) -> str\\n")))
      << r.out;
  r = run_tool({"inspect", addr_, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string upper_doc;
  const auto listing = nlohmann::json::parse(r.out);
  for (const auto& m : listing["members"]) {
    if (m["name"] == "upper") upper_doc = m["doc"].get<std::string>();
  }
  EXPECT_EQ(upper_doc, "upper(text: str) -> str\n\nThe text in ASCII capitals.");
  r = run_tool({"inspect", addr_, "store", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  std::set<std::string> names;
  for (const auto& m : j["members"]) names.insert(m["name"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"delete", "get", "keys", "set"}));
  r = run_tool({"inspect", addr_, "no_such"});
  EXPECT_EQ(r.code, 1);
  r = run_tool({"--generation", "6", "inspect", addr_});  // a global option: usage error
  EXPECT_EQ(r.code, 2);
  r = run_tool({"inspect", addr_, "--generation", "6"});
  EXPECT_NE(r.out.find("RPyC 6.x"), std::string::npos) << r.out << r.err;
}

TEST_F(ToolsCliServer, Ping) {
  ToolResult r = run_tool({"ping", addr_, "-c", "3", "-i", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("3 sent, 3 received, 0% lost"), std::string::npos) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.out, m, std::regex("rtt min/avg/max/p99 = ([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+) ms")));
  const double mn = std::stod(m[1]), avg = std::stod(m[2]), mx = std::stod(m[3]), p99 = std::stod(m[4]);
  EXPECT_LE(mn, avg);
  EXPECT_LE(avg, mx);
  EXPECT_LE(p99, mx);
  EXPECT_GT(mn, 0.0);
}

TEST_F(ToolsCliServer, BenchJson) {
  ToolResult r = run_tool(
      {"bench", addr_, "add", "1", "2", "-c", "2", "-p", "2", "-d", "0.5", "--json", "--report", "0.1"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["method"], "add");
  EXPECT_EQ(j["connections"], 2);
  EXPECT_EQ(j["pipeline"], 2);
  EXPECT_GT(j["calls"].get<std::uint64_t>(), 10u);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_GT(j["calls_per_s"].get<double>(), 0.0);
  EXPECT_LE(j["latency_ms"]["p50"].get<double>(), j["latency_ms"]["p99"].get<double>());
  EXPECT_LE(j["latency_ms"]["min"].get<double>(), j["latency_ms"]["p50"].get<double>());
  // Progress went to stderr as plain lines (not a terminal).
  EXPECT_NE(r.err.find("t=0.1s calls/s="), std::string::npos) << r.err;

  ToolResult t = run_tool({"bench", addr_, "-d", "0.3"});
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find(" ping ---"), std::string::npos) << t.out;
  EXPECT_TRUE(std::regex_search(t.out, std::regex("\\ncalls/s +[0-9.]+\\n"))) << t.out;

  ToolResult e = run_tool({"bench", addr_, "fail", "'x'", "-d", "0.2", "--json"});
  auto ej = nlohmann::json::parse(e.out);
  EXPECT_EQ(ej["calls"], 0);
  EXPECT_GT(ej["errors"].get<int>(), 0);
  EXPECT_EQ(ej["first_error"], "ValueError: x");
}

TEST_F(ToolsCliServer, TapRelaysAndDecodes) {
  Background tap({"tap", "--listen", "127.0.0.1:0", "--to", addr_, "--once"});
  const std::string tap_addr = tap.listening_address();
  ASSERT_FALSE(tap_addr.empty());
  ToolResult r = run_tool({"call", tap_addr, "add", "20", "22"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "42\n");
  ToolResult t = tap.wait();
  EXPECT_EQ(t.code, 0) << t.err;
  EXPECT_TRUE(
      std::regex_search(t.out, std::regex("c>s +[0-9.]+ms 5\\.x seq=[0-9]+ REQUEST CALLATTR \\(<your-ref "
                                          "tether.DemoService #[0-9]+>, 'add', \\(20, 22\\), \\(\\)\\)")))
      << t.out;
  EXPECT_TRUE(std::regex_search(
      t.out, std::regex("s>c +[0-9.]+ms 5\\.x seq=[0-9]+ REPLY 42  \\[[0-9]+ B, [0-9.]+ ms\\]")))
      << t.out;
  EXPECT_NE(t.out.find("#1 closed"), std::string::npos);
}

TEST_F(ToolsCliServer, TapShowsBadInput) {
  for (bool strict : {false, true}) {
    std::vector<std::string> args{"tap", "--listen", "127.0.0.1:0", "--to", addr_, "--once"};
    if (strict) args.push_back("--strict");
    Background tap(args);
    const std::string tap_addr = tap.listening_address();
    ASSERT_FALSE(tap_addr.empty());
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(tap_addr.substr(tap_addr.rfind(':') + 1))));
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    const char junk[] = "\x00\x00\x00\x03\x07xyz\n";  // flag 7: not RPyC framing
    ASSERT_EQ(::write(fd, junk, sizeof junk - 1), static_cast<ssize_t>(sizeof junk - 1));
    ::shutdown(fd, SHUT_WR);
    char buf[256];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
    ::close(fd);
    ToolResult t = tap.wait();
    EXPECT_EQ(t.code, 0);
    EXPECT_NE(t.out.find("c>s"), std::string::npos);
    EXPECT_NE(t.out.find("!! bad frame"), std::string::npos) << t.out;
    EXPECT_EQ(t.out.find("--strict: cutting") != std::string::npos, strict) << t.out;
  }
}

TEST(ToolsCli, UnixSocketServeAndCall) {
  const std::string addr = "unix:@tether-tool-test-" + std::to_string(::getpid());
  Background server({"--log-level", "info", "serve", "--demo", addr, "--threads", "2"});
  ASSERT_EQ(server.listening_address(), addr);
  ToolResult r = run_tool({"call", addr, "upper", "'unix'"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "'UNIX'\n");
  server.signal(SIGINT);
  ToolResult s = server.wait();
  EXPECT_EQ(s.code, 0);
  // --log-level info: connections and calls are logged.
  EXPECT_NE(s.err.find("connection from "), std::string::npos) << s.err;
  EXPECT_NE(s.err.find("call upper from "), std::string::npos) << s.err;
}

TEST(ToolsCli, GracefulStopLetsRunningCallsFinish) {
  Background server({"serve", "--demo", "127.0.0.1:0"});
  const std::string addr = server.listening_address();
  ASSERT_FALSE(addr.empty());
  Background slow({"call", addr, "sleep", "1"});
  bool seen = false;  // the sleep call has reached the server
  for (int i = 0; i < 200 && !seen; ++i) {
    ToolResult st = run_tool({"call", addr, "stats", "--json"});
    seen = st.code == 0 && nlohmann::json::parse(st.out)["calls.sleep"].is_number();
  }
  ASSERT_TRUE(seen);
  server.signal(SIGTERM);
  ToolResult r = slow.wait();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "1.0\n");
  EXPECT_EQ(server.wait().code, 0);
}

TEST(ToolsCli, BenchProgressOnATerminal) {
  if (::access("/usr/bin/script", X_OK) != 0) GTEST_SKIP() << "no script(1) to provide a terminal";
  Background server({"serve", "--demo", "127.0.0.1:0"});
  const std::string addr = server.listening_address();
  ASSERT_FALSE(addr.empty());
  const std::string cmd = std::string(TETHER_TOOL) + " bench " + addr + " -d 0.35 --report 0.1";
  Background tty(Background::Program{}, {"/usr/bin/script", "-qec", cmd, "/dev/null"});
  ToolResult r = tty.wait();
  EXPECT_EQ(r.code, 0) << r.err;
  // One line rewritten in place (carriage return, erase line), then the table.
  EXPECT_NE(r.out.find("\r\033[K"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("t=0.1s calls/s="), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("calls/s"), std::string::npos) << r.out;
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait().code, 0);
}

TEST(ToolsCli, ServeOnBusyPortExit3) {
  PortHolder busy(true);
  ToolResult r = run_tool({"serve", "--demo", busy.addr()});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_TRUE(one_line(r.err)) << r.err;
}

TEST(ToolsCli, TlsServeAndCall) {
  const TestCerts& certs = test_certs();
  Background server({"serve", "--demo", "tls://127.0.0.1:0", "--tls-cert", certs.server_cert, "--tls-key",
                     certs.server_key, "--tls-client-ca", certs.ca_cert});
  const std::string addr = server.listening_address();
  ASSERT_EQ(addr.rfind("tls://127.0.0.1:", 0), 0u) << addr;
  ToolResult r = run_tool({"call", addr, "add", "1", "2", "--ca", certs.ca_cert, "--cert", certs.client_cert,
                           "--key", certs.client_key});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "3\n");
  r = run_tool({"ping", addr, "-c", "1", "--ca", certs.ca_cert, "--cert", certs.client_cert, "--key",
                certs.client_key});
  EXPECT_EQ(r.code, 0) << r.err;
  // No client certificate: the server refuses the handshake.
  r = run_tool({"call", addr, "add", "1", "2", "--ca", certs.ca_cert, "--timeout", "3"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_TRUE(one_line(r.err)) << r.err;
  // A CA that did not sign the server's certificate: verification fails.
  r = run_tool({"call", addr, "add", "1", "2", "--ca", certs.self_cert, "--cert", certs.client_cert, "--key",
                certs.client_key, "--timeout", "3"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_TRUE(one_line(r.err)) << r.err;
  // TLS options without a tls:// address are a usage error.
  r = run_tool({"call", "127.0.0.1:1", "add", "--ca", certs.ca_cert});
  EXPECT_EQ(r.code, 2) << r.err;
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait().code, 0);
}

TEST(ToolsCli, Ipv6AndGeneration6ThroughTap) {
  Background server({"serve", "--demo", "[::1]:0", "--generation", "6"});
  const std::string addr = server.listening_address();
  if (addr.empty()) GTEST_SKIP() << "no IPv6 loopback here: " << server.wait(2).err;
  ASSERT_EQ(addr.rfind("[::1]:", 0), 0u) << addr;
  ToolResult r = run_tool({"call", addr, "upper", "'six'"});  // the client probes and falls back to 6.x
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "'SIX'\n");
  Background tap({"tap", "--listen", "[::1]:0", "--to", addr, "--once"});
  const std::string tap_addr = tap.listening_address();
  ASSERT_FALSE(tap_addr.empty());
  r = run_tool({"call", tap_addr, "add", "2", "2", "--generation", "6"});
  EXPECT_EQ(r.out, "4\n") << r.err;
  ToolResult t = tap.wait();
  EXPECT_TRUE(std::regex_search(
      t.out, std::regex("c>s +[0-9.]+ms 6\\.x seq=[0-9]+ REQUEST CALLATTR .*'add', \\(2, 2\\)")))
      << t.out;
  EXPECT_TRUE(std::regex_search(t.out, std::regex("s>c +[0-9.]+ms 6\\.x seq=[0-9]+ REPLY 4 "))) << t.out;
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait().code, 0);
}

TEST(ToolsCli, ServiceNameThroughRegistry) {
  Background registry(Background::Program{}, {TETHER_REGISTRY_MAIN, "--host", "127.0.0.1"});
  const auto udp = registry.line(0);
  const auto tcp = registry.line(1);
  ASSERT_TRUE(udp && tcp && tcp->rfind("TCP ", 0) == 0) << registry.wait(1).err;
  const std::string url = "tcp://127.0.0.1:" + tcp->substr(4);
  Background server({"serve", "--demo", "127.0.0.1:0", "--register", url});
  ASSERT_FALSE(server.listening_address().empty());
  // The server registers right after it listens; ask until the registry knows it (each try is a
  // real lookup with its own timeout, bounded in number).
  ToolResult r;
  for (int i = 0; i < 50; ++i) {
    r = run_tool({"call", "DEMO", "add", "1", "2", "--registry", url, "--timeout", "2"});
    if (r.code == 0) break;
  }
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "3\n");
  r = run_tool({"call", "NOSUCHSERVICE", "add", "--registry", url, "--timeout", "2"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_TRUE(one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("NOSUCHSERVICE"), std::string::npos) << r.err;
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait().code, 0);
  registry.signal(SIGTERM);
  registry.wait();
}

}  // namespace
}  // namespace tether::testing
