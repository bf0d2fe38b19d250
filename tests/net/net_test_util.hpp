#pragma once
// Helpers shared by the net tests: an echo handler, a one-shot echo client, fd-limit raising.

#include <sys/resource.h>

#include <memory>
#include <string>

#include "tether/base/error.hpp"
#include "tether/loop/task.hpp"
#include "tether/net/address.hpp"
#include "tether/net/connect.hpp"
#include "tether/stream/buffered_stream.hpp"

namespace tether::testing {

/// Echoes newline-terminated lines until the peer's EOF.
inline Task<void> echo_lines(std::unique_ptr<BufferedStream> stream, Address /*peer*/) {
  while (true) {
    Bytes line;
    bool eof = false;
    try {
      line = co_await stream->read_until("\n", 1 << 20);
    } catch (const IncompleteRead&) {
      eof = true;
    }
    if (eof) break;
    stream->write(std::move(line));
    co_await stream->drain();
  }
  stream->close();
  co_await stream->wait_closed();
}

/// Sends one line on `stream` and returns the echoed line.
inline Task<std::string> round_trip(BufferedStream& stream, std::string line) {
  stream.write(line + "\n");
  co_await stream.drain();
  Bytes reply = co_await stream.read_until("\n", 1 << 20);
  co_return std::string(reply.view().substr(0, reply.size() - 1));
}

/// Connects, sends one line, returns the echo, closes.
inline Task<std::string> echo_once(std::string host, std::uint16_t port, std::string line, ConnectOptions opts) {
  std::unique_ptr<BufferedStream> s = co_await open_connection(std::move(host), port, std::move(opts));
  std::string reply = co_await round_trip(*s, std::move(line));
  s->close();
  co_await s->wait_closed();
  co_return reply;
}

/// echo_once with default options (an overload: see connect.hpp on GCC 12 and default arguments).
inline Task<std::string> echo_once(std::string host, std::uint16_t port, std::string line) {
  return echo_once(std::move(host), port, std::move(line), ConnectOptions{});
}

/// Reads until EOF or a reset; returns the bytes read before it.
inline Task<std::string> read_to_end(BufferedStream* s) {
  std::string out;
  try {
    Bytes b = co_await s->read_until_close();
    out = b.str();
  } catch (const Disconnected&) {
  } catch (const StreamClosed&) {
  }
  co_return out;
}

/// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
inline rlim_t raise_fd_limit() {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

}  // namespace tether::testing
