// echo_client: connects to an echo server, sends lines, prints what comes back.
//
//   echo_client [--host 127.0.0.1] --port N [--unix PATH] [--tls] [--ca FILE] [LINE...]
//
// Without LINE arguments it sends three greeting lines. Exits 0 when every line came back
// unchanged, 1 otherwise.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <string>
#include <vector>

#include "tether/tether.hpp"
#include "tether/net/connect.hpp"

namespace {

using tether::Bytes;
using tether::Task;

Task<int> talk(std::unique_ptr<tether::BufferedStream> stream, std::vector<std::string> lines) {
  int mismatches = 0;
  for (const std::string& line : lines) {
    stream->write(line + "\n");
    co_await stream->drain();
    Bytes echo = co_await stream->read_until("\n", 64 << 10);
    std::string text(echo.view().substr(0, echo.size() - 1));
    fmt::print("echo: {}\n", text);
    if (text != line) ++mismatches;
  }
  stream->write_eof();
  Bytes rest = co_await stream->read_until_close();  // the server closes after our EOF
  if (!rest.empty()) ++mismatches;
  stream->close();
  co_await stream->wait_closed();
  co_return mismatches;
}

Task<int> run(std::string host, std::uint16_t port, std::string unix_path, tether::ConnectOptions opts,
              std::vector<std::string> lines) {
  std::unique_ptr<tether::BufferedStream> stream;
  if (unix_path.empty()) {
    stream = co_await tether::open_connection(host, port, opts);
  } else {
    stream = co_await tether::open_unix_connection(unix_path, opts);
  }
  fmt::print("connected to {}\n", stream->transport().peer_name());
  int mismatches = co_await talk(std::move(stream), std::move(lines));
  co_return mismatches;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tether line echo client"};
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string unix_path;
  bool tls = false;
  std::string ca;
  double timeout = 5.0;
  std::vector<std::string> lines;
  app.add_option("--host", host, "server host name or address");
  app.add_option("--port", port, "server port");
  app.add_option("--unix", unix_path, "connect to a Unix socket instead");
  app.add_flag("--tls", tls, "speak TLS (verifying the server)");
  app.add_option("--ca", ca, "PEM CA file for --tls (default: the system store)");
  app.add_option("--timeout", timeout, "seconds allowed for the whole exchange");
  app.add_option("lines", lines, "lines to send");
  CLI11_PARSE(app, argc, argv);
  if (lines.empty()) lines = {"hello from tether", "a second line", "and a third"};
  if (unix_path.empty() && port == 0) {
    fmt::print(stderr, "echo_client: --port (or --unix) is required\n");
    return 2;
  }

  tether::ConnectOptions opts;
  if (tls) {
    tether::TlsClientOptions t;
    t.ca_file = ca;
    opts.tls = tether::TlsContext::client(t);
  }
  try {
    tether::EventLoop loop;
    auto limit = std::chrono::duration_cast<tether::Duration>(std::chrono::duration<double>(timeout));
    int mismatches = loop.run_until_complete(
        tether::with_timeout(limit, run(host, port, unix_path, std::move(opts), std::move(lines))));
    if (mismatches) {
      fmt::print(stderr, "echo_client: {} line(s) did not come back unchanged\n", mismatches);
      return 1;
    }
    fmt::print("all lines echoed\n");
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "echo_client: {}\n", e.what());
    return 1;
  }
}
