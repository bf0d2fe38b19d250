// echo_server: a line echo server on tether's StreamServer.
//
//   echo_server [--host 127.0.0.1] [--port 0] [--threads 1] [--max-connections 0]
//               [--unix PATH] [--tls-cert FILE --tls-key FILE]
//
// The first line on stdout is "listening on ADDRESS" (with the port the kernel chose for
// --port 0), so scripts can read it. SIGINT or SIGTERM stops accepting, lets open connections
// finish for up to --grace seconds, then exits 0.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <signal.h>

#include <chrono>
#include <cstdio>

#include "tether/tether.hpp"
#include "tether/net/stream_server.hpp"

namespace {

using tether::Bytes;
using tether::BufferedStream;
using tether::Task;

Task<void> echo(std::unique_ptr<BufferedStream> stream, tether::Address peer) {
  for (;;) {
    // One line, newline included; at EOF the peer's unterminated last line, then empty.
    Bytes line = co_await stream->read_line(64 << 10);
    if (line.empty()) break;
    stream->write(std::move(line));
    co_await stream->drain();
  }
  stream->close();
  co_await stream->wait_closed();
  (void)peer;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tether line echo server"};
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string unix_path;
  std::string cert, key;
  double grace = 2.0;
  tether::ServerOptions opts;
  app.add_option("--host", host, "address to listen on");
  app.add_option("--port", port, "port (0: the kernel picks one)");
  app.add_option("--unix", unix_path, "listen on a Unix socket instead ('@name': abstract)");
  app.add_option("--threads", opts.threads, "loop threads serving connections");
  app.add_option("--max-connections", opts.max_connections, "open connections allowed (0: no limit)");
  app.add_option("--tls-cert", cert, "PEM certificate: serve TLS");
  app.add_option("--tls-key", key, "PEM private key for --tls-cert");
  app.add_option("--grace", grace, "seconds open connections get to finish on shutdown");
  CLI11_PARSE(app, argc, argv);

  try {
    if (!cert.empty()) {
      tether::TlsServerOptions tls;
      tls.cert_file = cert;
      tls.key_file = key.empty() ? cert : key;
      opts.tls = tether::TlsContext::server(tls);
    }
    tether::EventLoop loop;
    tether::StreamServer server(echo, opts);
    if (unix_path.empty()) {
      server.listen(port, host);
    } else {
      server.listen_unix(unix_path);
    }
    fmt::print("listening on {}\n", server.addresses().at(0).to_string());
    std::fflush(stdout);

    int signal_seen = 0;
    auto on_signal = [&loop, &signal_seen](int signo) {
      signal_seen = signo;
      loop.stop();
    };
    loop.add_signal_handler(SIGINT, on_signal);
    loop.add_signal_handler(SIGTERM, on_signal);
    loop.run();
    loop.remove_signal_handler(SIGINT);
    loop.remove_signal_handler(SIGTERM);

    auto grace_period = std::chrono::duration_cast<tether::Duration>(std::chrono::duration<double>(grace));
    loop.run_until_complete(server.shutdown(grace_period));
    tether::ServerStats st = server.stats();
    fmt::print(stderr, "echo_server: {} ({} connection(s) served, {} rejected); bye\n",
               signal_seen == SIGINT ? "SIGINT" : "SIGTERM", st.accepted, st.rejected);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "echo_server: {}\n", e.what());
    return 1;
  }
}
