// json_rpc_server: the small RPC server of the seed notes (an asyncore dispatcher answering
// length-prefixed JSON), written on tether's StreamServer and BufferedStream.
//
//   json_rpc_server [--host 127.0.0.1] [--port 8080]     (port 0: a free port)
//
// Protocol, per message in both directions: a 4-byte length (little-endian unsigned, what
// Python's struct.pack("I", n) gives on x86 and ARM) followed by that many bytes of JSON.
// Requests are {"in": METHOD, "params": ...}; replies {"out": ..., "result": ...}:
//
//   {"in": "ping", "params": "ireader 0"}   ->  {"out": "pong", "result": "ireader 0"}
//   anything else                            ->  {"out": "error", "result": "<why>"}
//
// Requests on one connection are answered in order; connections are served concurrently on
// the loop. A length above 1 MiB closes the connection (the framing cannot be trusted then).
// Prints "listening on HOST:PORT" first, serves until SIGINT or SIGTERM.
// tests/tools/json_rpc_client.py is a Python client of the same protocol.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "tether/base/error.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/stop_signals.hpp"
#include "tether/net/stream_server.hpp"
#include "tether/stream/buffered_stream.hpp"

namespace {

constexpr std::uint32_t kMaxMessage = 1 << 20;

std::string frame(const nlohmann::json& j) {
  const std::string body = j.dump();
  const auto n = static_cast<std::uint32_t>(body.size());
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + body;
}

nlohmann::json answer(const std::string& text) {
  nlohmann::json req = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (req.is_discarded() || !req.is_object())
    return {{"out", "error"}, {"result", "request is not a JSON object"}};
  const auto in = req.find("in");
  if (in == req.end() || !in->is_string())
    return {{"out", "error"}, {"result", "request has no \"in\" method name"}};
  const nlohmann::json params = req.value("params", nlohmann::json());
  if (*in == "ping") return {{"out", "pong"}, {"result", params}};
  return {{"out", "error"}, {"result", "unknown method " + in->get<std::string>()}};
}

/// One connection: read a request, answer it, until the client hangs up.
tether::Task<void> serve_client(std::unique_ptr<tether::BufferedStream> stream, tether::Address peer) {
  std::fprintf(stderr, "json_rpc_server: %s connected\n", peer.to_string().c_str());
  for (;;) {
    tether::Bytes head;
    try {
      head = co_await stream->read_exactly(4);
    } catch (const tether::IncompleteRead&) {
      break;  // EOF between messages (or inside a length): the client is done
    }
    std::uint32_t n = 0;
    for (int i = 3; i >= 0; --i) n = (n << 8) | head.data()[i];
    if (n > kMaxMessage) {
      std::fprintf(stderr, "json_rpc_server: %s sent a %u-byte length; closing\n", peer.to_string().c_str(),
                   n);
      break;
    }
    tether::Bytes body;
    try {
      body = co_await stream->read_exactly(n);
    } catch (const tether::IncompleteRead&) {
      break;
    }
    const std::string text(reinterpret_cast<const char*>(body.data()), body.size());
    stream->write(frame(answer(text)));
    co_await stream->drain();
  }
  std::fprintf(stderr, "json_rpc_server: %s disconnected\n", peer.to_string().c_str());
}

tether::Task<void> run(tether::StreamServer& server) {
  tether::StopSignals signals(tether::EventLoop::current_or_throw());
  co_await signals.wait();
  co_await server.shutdown(std::chrono::seconds(2));
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 8080;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
      host = argv[++i];
    } else if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: json_rpc_server [--host H] [--port N]\n");
      return 2;
    }
  }
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "json_rpc_server: bad port\n");
    return 2;
  }
  try {
    tether::EventLoop loop;
    tether::StreamServer server(serve_client);
    server.listen(static_cast<std::uint16_t>(port), host);
    std::printf("listening on %s\n", server.addresses().front().to_string().c_str());
    std::fflush(stdout);
    loop.run_until_complete(run(server));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "json_rpc_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
