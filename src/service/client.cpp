#include "tether/service/client.hpp"

#include <mutex>
#include <unordered_map>

#include "tether/base/log.hpp"
#include "tether/channel/channel.hpp"
#include "tether/loop/time.hpp"
#include "tether/net/tls_transport.hpp"

namespace tether {

namespace {

/// The peer's generation if `error` is a GenerationMismatch.
std::optional<rpc::Generation> mismatch_of(const std::exception_ptr& error) {
  if (!error) return std::nullopt;
  try {
    std::rethrow_exception(error);
  } catch (const GenerationMismatch& m) {
    return m.peer_generation();
  } catch (...) {
  }
  return std::nullopt;
}

std::unique_ptr<Connection> make_client_connection(std::unique_ptr<BufferedStream> stream,
                                                   const ClientOptions& options, ConnectionOptions co,
                                                   const std::string& peer) {
  EventLoop& loop = EventLoop::current_or_throw();
  std::shared_ptr<Session> session;
  ObjectPtr root;
  if (options.service) {
    auto def = options.service->snapshot();
    co.classes = std::shared_ptr<const ClassSet>(def, &def->classes);
    session = std::make_shared<Session>(def, peer, loop);
    root = make_service_root(def, session, co.policy.exposed_prefix);
  }
  if (session) {
    if (auto* tls = dynamic_cast<TlsTransport*>(&stream->transport())) {
      session->set_peer_certificate(tls->peer_certificate());
    }
  }
  if (co.name.empty()) co.name = peer;
  if (co.peer.empty()) co.peer = peer;
  auto channel = std::make_unique<Channel>(std::move(stream), options.channel);
  auto conn = std::make_unique<Connection>(std::move(channel), std::move(root), std::move(co));
  if (session) {
    session->attach(*conn);
    // The close callback runs after the close, possibly after the Connection is gone.
    conn->set_close_callback([session]() { session->finish(false); });
  }
  conn->start();
  if (session && !session->run_on_connect()) {
    conn->abort();
    throw UsageError("the client service's on_connect failed (see the log)");
  }
  return conn;
}

Task<std::unique_ptr<BufferedStream>> open_endpoint(const std::string& host, std::uint16_t port,
                                                    const std::string& unix_path, const ConnectOptions& net) {
  if (!unix_path.empty()) {
    std::unique_ptr<BufferedStream> s = co_await open_unix_connection(unix_path, net);
    co_return s;
  }
  std::unique_ptr<BufferedStream> s = co_await open_connection(host, port, net);
  co_return s;
}

/// Sends the auth-token preamble and awaits the server's verdict (tether/service/auth.hpp).
Task<void> send_auth(BufferedStream& stream, std::string token) {
  stream.write(auth::client_hello(token));
  Bytes reply;
  try {
    Bytes r = co_await stream.read_exactly(auth::kMagic.size() + 1);
    reply = std::move(r);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kTimeout || e.kind() == ErrorKind::kCancelled) throw;
    throw AuthenticationError(std::string("the server closed the connection during the auth-token handshake "
                                          "(does it have ServeOptions::auth_token set?): ") +
                              e.what());
  }
  const std::string_view v = reply.view();
  if (v.substr(0, auth::kMagic.size()) != auth::kMagic) {
    throw AuthenticationError("the server does not speak tether's auth-token handshake");
  }
  if (static_cast<unsigned char>(v[auth::kMagic.size()]) != auth::kAccepted) {
    throw AuthenticationError("the server refused the auth token");
  }
}

Task<std::unique_ptr<Connection>> connect_endpoint(std::string endpoint, std::string host, std::uint16_t port,
                                                   std::string unix_path, ClientOptions options) {
  ConnectionOptions co = options.connection;
  const bool probe = co.generation == rpc::Generation::kAuto;
  GenerationCache* cache = probe ? options.generations.get() : nullptr;
  if (cache) {
    if (auto g = cache->find(endpoint)) co.first_generation = *g;
  }
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<BufferedStream> stream = co_await open_endpoint(host, port, unix_path, options.net);
    if (!options.auth_token.empty()) {
      co_await with_timeout(co.sync_request_timeout, send_auth(*stream, options.auth_token));
    }
    std::unique_ptr<Connection> conn = make_client_connection(std::move(stream), options, co, endpoint);
    if (!probe) co_return conn;
    std::exception_ptr failure;
    try {
      Netref root = co_await conn->root();  // the probe; root() is cached for the caller
      (void)root;
    } catch (...) {
      failure = std::current_exception();
    }
    if (!failure) {
      if (cache) cache->remember(endpoint, co.first_generation);  // a first-try success too
      co_return conn;
    }
    std::optional<rpc::Generation> other = mismatch_of(conn->error());
    if (!other || *other == co.first_generation || attempt > 0) {
      std::exception_ptr why = other ? conn->error() : failure;
      conn.reset();
      std::rethrow_exception(why);
    }
    TETHER_LOG_INFO("tether::connect {}: the server speaks RPyC {}.x; reconnecting in that generation",
                    endpoint, static_cast<int>(*other));
    conn.reset();
    co.first_generation = *other;
  }
}

Task<ProcessConnection> connect_child(std::vector<std::string> argv, ClientOptions options,
                                      ProcessOptions process_options) {
  SpawnedProcess spawned = spawn_process(argv, process_options);
  std::string peer = "process:" + std::to_string(spawned.process->pid()) + ":" + argv.front();
  ProcessConnection out;
  out.connection = make_client_connection(std::move(spawned.stream), options, options.connection, peer);
  out.process = std::move(spawned.process);
  co_return out;
}

}  // namespace

Task<std::unique_ptr<Connection>> connect(std::string host, std::uint16_t port, ClientOptions options) {
  std::string endpoint = host + ":" + std::to_string(port);
  return connect_endpoint(std::move(endpoint), std::move(host), port, std::string(), std::move(options));
}

Task<std::unique_ptr<Connection>> connect_unix(std::string path, ClientOptions options) {
  if (path.empty()) throw UsageError("tether::connect_unix: empty path");
  std::string endpoint = "unix:" + path;
  return connect_endpoint(std::move(endpoint), std::string(), 0, std::move(path), std::move(options));
}

std::unique_ptr<Connection> connect_stream(std::unique_ptr<BufferedStream> stream, ClientOptions options,
                                           std::string peer) {
  return make_client_connection(std::move(stream), options, options.connection, peer);
}

Task<ProcessConnection> connect_process(std::vector<std::string> argv, ClientOptions options,
                                        ProcessOptions process_options) {
  if (argv.empty()) throw UsageError("tether::connect_process: empty argv");
  return connect_child(std::move(argv), std::move(options), std::move(process_options));
}

// ------------------------------------------------------------------------ GenerationCache

std::optional<rpc::Generation> GenerationCache::find(const std::string& endpoint) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = known_.find(endpoint);
  if (it == known_.end()) return std::nullopt;
  return it->second;
}

void GenerationCache::remember(const std::string& endpoint, rpc::Generation generation) {
  std::lock_guard<std::mutex> lock(mu_);
  known_[endpoint] = generation;
}

void GenerationCache::forget(const std::string& endpoint) {
  std::lock_guard<std::mutex> lock(mu_);
  known_.erase(endpoint);
}

void GenerationCache::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  known_.clear();
}

std::size_t GenerationCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return known_.size();
}

const std::shared_ptr<GenerationCache>& GenerationCache::process_default() {
  // Never destroyed: a connect() may still run on another thread while the process exits.
  static const auto* cache = new std::shared_ptr<GenerationCache>(std::make_shared<GenerationCache>());
  return *cache;
}

std::optional<rpc::Generation> known_generation(const std::string& endpoint) {
  return GenerationCache::process_default()->find(endpoint);
}

void forget_known_generations() { GenerationCache::process_default()->clear(); }

}  // namespace tether
