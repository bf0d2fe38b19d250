#pragma once
/// \file Connecting to an RPyC server (Python or tether): the coroutine client.
///
///   auto conn = co_await tether::connect("127.0.0.1", 18861);
///   tether::Netref root = co_await conn->root();
///   std::int64_t sum = co_await root.callattr<std::int64_t>("add", 1, 2);   // one CALLATTR
///   co_await conn->close();
///
/// RPyC generations (wire spec §14.3). A connection speaks 5.x or 6.x and the two cannot talk.
/// With ClientOptions::connection.generation = kAuto (the default) connect() speaks
/// `first_generation` (default 5.x), sends GETROOT at once as a probe, and when the peer turns
/// out to speak the other generation (it answers with its own CLOSE and hangs up: the rpc
/// layer raises GenerationMismatch) it reconnects once in the other generation. The generation
/// that worked is remembered per endpoint ("host:port", "unix:path") in the GenerationCache
/// the options carry (ClientOptions::generations), so later connections to that endpoint
/// start with it. By default that is GenerationCache::process_default(), one table for every
/// client of the process that does not bring its own (known_generation /
/// forget_known_generations read and clear it). Forcing k5 or k6 skips the probe, the fallback
/// and the cache. connect_stream() and connect_process() never fall back.
///
/// A client may expose a Service of its own (ClientOptions::service) as the root the server
/// sees, e.g. for server-initiated calls; without one the peer sees an empty root.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/channel/frame.hpp"
#include "tether/loop/task.hpp"
#include "tether/net/connect.hpp"
#include "tether/net/process.hpp"
#include "tether/rpc/connection.hpp"
#include "tether/rpc/protocol.hpp"
#include "tether/service/auth.hpp"
#include "tether/service/service.hpp"
#include "tether/stream/buffered_stream.hpp"

namespace tether {

/// What connect() learnt about the RPyC generation each endpoint speaks ("host:port",
/// "unix:path" -> 5.x or 6.x), so that later connections there start in it (see the file
/// comment). An explicit object: ClientOptions::generations names the one a connect() reads
/// and teaches. Thread-safe.
class TETHER_API GenerationCache {
 public:
  GenerationCache() = default;
  GenerationCache(const GenerationCache&) = delete;
  GenerationCache& operator=(const GenerationCache&) = delete;

  /// The generation learnt for `endpoint`, if any.
  [[nodiscard]] std::optional<rpc::Generation> find(const std::string& endpoint) const;
  void remember(const std::string& endpoint, rpc::Generation generation);
  /// Forgets one endpoint (its server was upgraded, say).
  void forget(const std::string& endpoint);
  void clear();
  [[nodiscard]] std::size_t size() const;

  /// The cache every ClientOptions starts with: one for the whole process, shared by all its
  /// threads, made on first use and kept until exit. A client that must not share what it
  /// learns gives ClientOptions::generations a cache of its own.
  static const std::shared_ptr<GenerationCache>& process_default();

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, rpc::Generation> known_;
};

struct ClientOptions {
  /// RPC side: generation (kAuto: probe + fallback, see the file comment), first_generation,
  /// sync_request_timeout, access policy for what the server may reach of ours.
  ConnectionOptions connection;
  /// Network side: connect_timeout, tls (TlsContext::client), server_hostname, socket and
  /// stream options.
  ConnectOptions net;
  /// Framing: compression, frame size limits.
  ChannelOptions channel;
  /// The server's ServeOptions::auth_token, sent before the RPyC protocol starts by
  /// connect() and connect_unix() (not connect_stream/connect_process). A refused token, or a
  /// server that does not take part in the handshake, fails the connect with
  /// AuthenticationError. Empty: none sent.
  std::string auth_token;
  /// A service this client exposes to the server as its root (copied at connect time).
  /// Null: an empty root.
  const Service* service = nullptr;
  /// Where connect()/connect_unix() with generation = kAuto look up and record the generation
  /// an endpoint speaks: the process-wide default unless set (std::make_shared<GenerationCache>()
  /// keeps a client's findings to itself). Null: nothing is remembered, every connect probes
  /// from first_generation.
  std::shared_ptr<GenerationCache> generations = GenerationCache::process_default();
};

/// Connects over TCP (IPv4/IPv6; names resolve on the worker pool). Errors: Timeout, IoError
/// (refused ...), TlsError, Disconnected / ProtocolError / GenerationMismatch if the RPC probe
/// fails. The connection runs on the current loop.
TETHER_API Task<std::unique_ptr<Connection>> connect(std::string host, std::uint16_t port,
                                                     ClientOptions options = ClientOptions());

/// Connects over a Unix socket path ('@' prefix: abstract name).
TETHER_API Task<std::unique_ptr<Connection>> connect_unix(std::string path,
                                                          ClientOptions options = ClientOptions());

/// A connection over an existing stream (a pipe, a socketpair). No probe, no fallback: the
/// first request decides (first_generation, or `generation` when forced). `peer` names the
/// other end in the Session (if options.service is set).
TETHER_API std::unique_ptr<Connection> connect_stream(std::unique_ptr<BufferedStream> stream,
                                                      ClientOptions options = ClientOptions(),
                                                      std::string peer = "stream");

/// A connection to a child process serving RPyC on its stdin/stdout (e.g. one running
/// tether::serve_stdio, or `python3 -c "...rpyc.utils.server..."` over a pipe stream).
/// Destroying `process` kills the child if it still runs: close the connection first, then
/// co_await process->wait().
struct ProcessConnection {
  std::unique_ptr<Connection> connection;
  std::unique_ptr<ChildProcess> process;
};
TETHER_API Task<ProcessConnection> connect_process(std::vector<std::string> argv,
                                                   ClientOptions options = ClientOptions(),
                                                   ProcessOptions process_options = ProcessOptions());

/// The generation the process-wide GenerationCache learnt for an endpoint ("host:port" /
/// "unix:path"), if any: GenerationCache::process_default()->find(endpoint).
TETHER_API std::optional<rpc::Generation> known_generation(const std::string& endpoint);
/// Empties the process-wide GenerationCache (tests, or after a server was upgraded).
TETHER_API void forget_known_generations();

}  // namespace tether
