// tether tap --listen ADDR --to ADDR: a transparent RPyC proxy that prints every message.
//
// Each accepted connection is paired with a new connection to --to; bytes are relayed in both
// directions exactly as they arrive (the decoder looks at copies, tap_decoder.hpp). EOF on one
// side is passed on as EOF (half-close) and the other direction keeps flowing until its own EOF.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "address.hpp"
#include "commands.hpp"
#include "tap_decoder.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/stop_signals.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/net/connect.hpp"
#include "tether/net/stream_server.hpp"

namespace tether::tools {

namespace {

struct TapArgs {
  std::string listen = "127.0.0.1:18862";
  std::string to = "127.0.0.1:18861";
  std::size_t width = 160;
  bool strict = false;
  bool once = false;
  double timeout = 10.0;
};

struct TapState {
  TapArgs args;
  Target to;
  int next_id = 0;
  int active = 0;
  Event finished;  // --once: the first connection is over
};

void print_lines(const std::vector<std::string>& lines) {
  for (const auto& l : lines) std::printf("%s\n", l.c_str());
  if (!lines.empty()) std::fflush(stdout);
}

/// Relays `from` -> `to` until EOF or error, decoding a copy of every chunk.
Task<void> pump(BufferedStream& from, BufferedStream& to, TapDecoder& dec, bool strict, int id,
                const char* dir) {
  for (;;) {
    Bytes chunk;
    try {
      chunk = co_await from.read(64 * 1024);
    } catch (const std::exception& e) {
      std::printf("#%d %s read error: %s\n", id, dir, e.what());
      break;
    }
    if (chunk.size() == 0) break;
    const std::string_view view(reinterpret_cast<const char*>(chunk.data()), chunk.size());
    std::vector<std::string> lines = dec.feed(view);
    print_lines(lines);
    if (strict && dec.bad()) {
      std::printf("#%d %s !! --strict: cutting the connection\n", id, dir);
      std::fflush(stdout);
      from.abort();
      to.abort();
      co_return;
    }
    try {
      to.write(view);
      co_await to.drain();
    } catch (const std::exception& e) {
      std::printf("#%d %s write error: %s\n", id, dir, e.what());
      from.abort();
      co_return;
    }
  }
  print_lines(dec.finish());
  try {
    to.write_eof();
  } catch (const std::exception&) {
  }
}

Task<void> tap_connection(TapState& st, std::unique_ptr<BufferedStream> client, Address peer) {
  const int id = ++st.next_id;
  ++st.active;
  std::printf("#%d open from %s\n", id, peer.to_string().c_str());
  std::fflush(stdout);
  std::unique_ptr<BufferedStream> server;
  ConnectOptions co;
  co.connect_timeout = seconds_to_duration(st.args.timeout);
  try {
    if (st.to.kind == Target::Kind::kUnix) {
      server = co_await open_unix_connection(st.to.path, co);
    } else {
      server = co_await open_connection(st.to.host, st.to.port, co);
    }
  } catch (const std::exception& e) {
    std::printf("#%d !! cannot connect to %s: %s\n", id, st.to.to_string().c_str(), e.what());
    std::fflush(stdout);
  }
  if (server) {
    auto times = std::make_shared<TapTimes>();
    TapDecoder c2s(id, 0, st.args.width, times);
    TapDecoder s2c(id, 1, st.args.width, times);
    TaskGroup group(EventLoop::current_or_throw());
    group.spawn(pump(*client, *server, c2s, st.args.strict, id, "c>s"));
    group.spawn(pump(*server, *client, s2c, st.args.strict, id, "s>c"));
    co_await group.wait();
    server->close();
  }
  client->close();
  std::printf("#%d closed\n", id);
  std::fflush(stdout);
  --st.active;
  if (st.args.once) st.finished.set();
}

Task<void> wait_signals(StopSignals& signals, Event& done) {
  co_await signals.wait();
  done.set();
}

Task<void> wait_once(Event& finished, Event& done) {
  co_await finished.wait();
  done.set();
}

Task<void> tap_main(TapState& st, StreamServer& server) {
  EventLoop& loop = EventLoop::current_or_throw();
  StopSignals signals(loop);
  Event done;
  TaskGroup group(loop);
  group.spawn(wait_signals(signals, done));
  if (st.args.once) group.spawn(wait_once(st.finished, done));
  co_await done.wait();
  co_await server.shutdown(std::chrono::seconds(2));
}

int run_tap(const TapArgs& a) {
  auto st = std::make_unique<TapState>();
  st->args = a;
  const Target listen = parse_target(a.listen, true);
  st->to = parse_target(a.to);
  if (listen.kind == Target::Kind::kService || listen.tls)
    throw CliError(kExitUsage, "tap: --listen takes host:port or unix:PATH");
  if (st->to.kind == Target::Kind::kService || st->to.tls) {
    throw CliError(kExitUsage, "tap: --to takes host:port or unix:PATH (TLS cannot be decoded)");
  }
  EventLoop loop;
  TapState* sp = st.get();
  StreamServer server([sp](std::unique_ptr<BufferedStream> s, Address peer) {
    return tap_connection(*sp, std::move(s), peer);
  });
  try {
    if (listen.kind == Target::Kind::kUnix) {
      server.listen_unix(listen.path);
    } else {
      server.listen(listen.port, listen.host);
    }
  } catch (const std::exception& e) {
    throw CliError(kExitConnection,
                   fmt::format("tap: cannot listen on {}: {}", listen.to_string(), e.what()));
  }
  const auto addrs = server.addresses();
  std::printf("listening on %s, forwarding to %s\n", addrs.empty() ? "?" : addrs.front().to_string().c_str(),
              st->to.to_string().c_str());
  std::fflush(stdout);
  loop.run_until_complete(tap_main(*st, server));
  return kExitOk;
}

}  // namespace

void add_tap(CLI::App& app, Runner& run) {
  auto a = std::make_shared<TapArgs>();
  CLI::App* sub =
      app.add_subcommand("tap", "Transparent RPyC proxy printing every message both ways, decoded");
  sub->add_option("--listen", a->listen, "Where clients connect: host:port (0: a free port) or unix:PATH")
      ->capture_default_str();
  sub->add_option("--to", a->to, "The server: host:port or unix:PATH")->capture_default_str();
  sub->add_option("--width", a->width, "Cut each decoded message to this many characters")
      ->capture_default_str()
      ->check(CLI::Range(20, 1000000));
  sub->add_flag("--strict", a->strict, "Cut a connection on bad input (default: show it and keep relaying)");
  sub->add_flag("--once", a->once, "Exit after the first connection has closed");
  sub->add_option("--timeout", a->timeout, "Seconds allowed for connecting to --to")->capture_default_str();
  sub->footer(
      "Lines: #CONN DIR TIME GEN seq=N TYPE HANDLER BODY [wire size, reply latency]; '!!' marks bad input.\n"
      "Bytes are relayed unchanged in both directions.");
  sub->callback([a, &run] { run = [a] { return run_tap(*a); }; });
}

}  // namespace tether::tools
