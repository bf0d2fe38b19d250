// echo_server: a line echo server on tether's StreamServer.
//
//   echo_server [--host 127.0.0.1] [--port 0] [--threads 1] [--max-connections 0]
//               [--unix PATH] [--tls-cert FILE --tls-key FILE]
//
// The first line on stdout is "listening on ADDRESS" (with the port the kernel chose for
// --port 0), so scripts can read it. SIGINT or SIGTERM stops accepting; connections waiting
// for their next line end at once (StopToken), a line being echoed is finished (for up to
// --grace seconds), then the server exits 0.
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

// The server is reached through a pointer set once it exists (the handler is made first).
Task<void> echo(std::unique_ptr<BufferedStream> stream, tether::StreamServer* const* server) {
  // Waiting for the next line ends at once when the server begins to stop; a line being
  // echoed is finished first.
  tether::StopToken stop = (*server)->stop_token();
  for (;;) {
    Bytes line;
    try {
      // One line, newline included; at EOF the peer's unterminated last line, then empty.
      line = co_await stop.unless_stopped(stream->read_line(64 << 10));
    } catch (const tether::Cancelled&) {
      break;  // the server is stopping
    }
    if (line.empty()) break;
    stream->write(std::move(line));
    co_await stream->drain();
  }
  stream->close();
  co_await stream->wait_closed();
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
    // Signal handlers first: add_signal_handler blocks the signals in this thread, and the
    // server's loop threads (--threads) inherit that mask only if they start afterwards. A
    // signal to an unblocked thread would take its default action and kill the process.
    int signal_seen = 0;
    tether::StreamServer* self = nullptr;
    auto on_signal = [&loop, &signal_seen, &self](int signo) {
      if (signal_seen == 0) {
        signal_seen = signo;
        loop.stop();  // the first signal: graceful stop, below
      } else {
        self->abort_clients();  // a second one during the grace period: end every connection now
      }
    };
    loop.add_signal_handler(SIGINT, on_signal);
    loop.add_signal_handler(SIGTERM, on_signal);

    tether::StreamServer server(
        [&self](std::unique_ptr<BufferedStream> s, tether::Address) { return echo(std::move(s), &self); }, opts);
    self = &server;
    if (unix_path.empty()) {
      server.listen(port, host);
    } else {
      server.listen_unix(unix_path);
    }
    fmt::print("listening on {}\n", server.addresses().at(0).to_string());
    std::fflush(stdout);

    loop.run();
    // Stop accepting, wake the handlers' stop tokens, let lines in progress finish.
    auto grace_period = std::chrono::duration_cast<tether::Duration>(std::chrono::duration<double>(grace));
    loop.run_until_complete(server.shutdown(grace_period));
    loop.remove_signal_handler(SIGINT);
    loop.remove_signal_handler(SIGTERM);
    tether::ServerStats st = server.stats();
    fmt::print(stderr, "echo_server: {} ({} connection(s) served, {} rejected); bye\n",
               signal_seen == SIGINT ? "SIGINT" : "SIGTERM", st.accepted, st.rejected);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "echo_server: {}\n", e.what());
    return 1;
  }
}
