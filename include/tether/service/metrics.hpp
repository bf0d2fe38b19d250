#pragma once
/// \file ServerMetrics: the figures of one Server — connections, requests by handler and
/// method, errors by type, bytes, latency histograms, calls in flight — cheap enough to stay
/// on (ServeOptions::metrics, on by default).
///
/// Writes never touch memory another thread writes: each loop thread of the server has a shard
/// of its own (per-method cells, latency histograms), each connection its own cell; every
/// counter has one writing thread, which updates it with a relaxed load and store (no locked
/// read-modify-write). snapshot() merges the shards on read, from any thread. A mutex is taken
/// only when a connection opens or closes, when a loop meets a method name for the first time
/// and when a request fails.
///
/// render_prometheus() and render_status_json() turn a snapshot into what /metrics and
/// /status.json serve (docs/observability.md lists every figure).

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/rpc/observer.hpp"

namespace tether {

class EventLoop;

namespace metrics {

/// Upper bounds of the latency buckets in nanoseconds, log-linear: 1, 2, ... 9 times each
/// power of ten from 1 µs to 90 s, then 100 s; a last bucket (+Inf) holds the rest.
inline constexpr std::size_t kFiniteBuckets = 73;
inline constexpr std::size_t kBuckets = kFiniteBuckets + 1;
TETHER_API const std::array<std::int64_t, kFiniteBuckets>& bucket_bounds() noexcept;
/// The bucket of a duration (first bound >= nanos; kFiniteBuckets past the last).
TETHER_API std::size_t bucket_of(std::int64_t nanos) noexcept;

/// A latency histogram as read.
struct Histogram {
  std::array<std::uint64_t, kBuckets> counts{};
  std::uint64_t count = 0;
  double sum_seconds = 0;
  /// The q-quantile (0..1) in seconds, interpolated linearly inside its bucket; 0 if empty.
  [[nodiscard]] TETHER_API double quantile(double q) const noexcept;
  void merge(const Histogram& other) noexcept;
};

struct MethodFigures {
  std::string method;   ///< the exposed name ("add"), "" for handlers other than callattr
  std::string handler;  ///< lower-case handler name ("callattr", "getattr", ...)
  std::uint64_t calls = 0;
  std::uint64_t errors = 0;
  Histogram latency;
};

struct ConnectionFigures {
  std::uint64_t id = 0;
  std::string peer;
  int generation = 0;  ///< 5 or 6 once known, 0 before the first request
  double age_seconds = 0;
  std::uint64_t calls = 0;
  std::uint64_t errors = 0;
  std::uint64_t in_flight = 0;
  std::uint64_t wire_bytes_in = 0, wire_bytes_out = 0;        ///< as sent/received (compressed)
  std::uint64_t payload_bytes_in = 0, payload_bytes_out = 0;  ///< before compression
  std::uint64_t exported = 0, proxies = 0;
};

struct ErrorEvent {
  double unix_time = 0;
  std::string peer;
  std::string method;
  std::string handler;
  std::string type;
  std::string message;  ///< what() of the exception, capped
};

/// One loop thread of the server (EventLoop::figures()).
struct LoopThread {
  std::size_t index = 0;  ///< 0, 1, ... in the order the loops served their first connection
  std::uint64_t lag_samples = 0;
  double lag_sum_seconds = 0;
  double lag_max_seconds = 0;
  std::uint64_t busy_poll_caught = 0, busy_poll_missed = 0;
  double busy_poll_seconds = 0;
  std::uint64_t worker_queued = 0, worker_running = 0;
};

/// The server's registration with a registry (set by the announcing hook, tether/registry).
struct RegistryFigures {
  bool configured = false;        ///< an announcing hook runs
  bool registered = false;        ///< the last announcement was acknowledged
  std::string registry;           ///< where it announces ("udp://255.255.255.255:18811", "etcd://...")
  double last_announce_unix = 0;  ///< when the last acknowledged announcement was made (0: never)
  double last_attempt_unix = 0;   ///< when the last announcement was tried
  std::uint64_t announcements = 0, failures = 0;
  std::string last_error;
};

/// Why connections closed (ServerMetrics::close_connection's reasons; docs/observability.md).
namespace close_reason {
inline constexpr std::string_view kPeerClose = "peer_close";        ///< the peer sent CLOSE / hung up cleanly
inline constexpr std::string_view kDisconnected = "disconnected";   ///< the peer went away (EOF, reset)
inline constexpr std::string_view kIdleTimeout = "idle_timeout";    ///< ConnectionOptions::idle_timeout
inline constexpr std::string_view kFrameTimeout = "frame_timeout";  ///< a frame stalled (frame_timeout)
inline constexpr std::string_view kProtocolError = "protocol_error";
inline constexpr std::string_view kLimitExceeded = "limit_exceeded";
inline constexpr std::string_view kRefused = "refused";           ///< auth token or on_connect refused it
inline constexpr std::string_view kShutdown = "server_shutdown";  ///< drained by a graceful shutdown
inline constexpr std::string_view kCancelled = "cancelled";       ///< Server::close() cut it
inline constexpr std::string_view kIoError = "io_error";          ///< any other error
}  // namespace close_reason

/// Everything the endpoints show, merged at one moment.
struct Snapshot {
  std::string service;
  double uptime_seconds = 0;
  bool listening = false;
  bool draining = false;
  bool ready = false;  ///< listening, not draining, registered when a registry is configured
  std::uint64_t connections_open = 0;
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_refused = 0;  ///< by the auth token or on_connect
  std::uint64_t connections_closed = 0;
  std::map<std::string, std::uint64_t> closed_by_reason;
  std::uint64_t requests = 0, errors = 0, in_flight = 0;
  std::uint64_t wire_bytes_in = 0, wire_bytes_out = 0, payload_bytes_in = 0, payload_bytes_out = 0;
  std::uint64_t exported = 0, proxies = 0;  ///< over the open connections
  std::uint64_t http_requests = 0;
  std::vector<MethodFigures> methods;
  std::map<std::string, std::uint64_t> errors_by_type;
  std::vector<ConnectionFigures> connections;
  std::vector<ErrorEvent> recent_errors;  ///< newest last
  std::vector<LoopThread> loops;
  RegistryFigures registry;
};

/// One writer's counter: relaxed load + store, read from any thread.
class Counter {
 public:
  void add(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void set(std::uint64_t n) noexcept { v_.store(n, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

}  // namespace metrics

/// The figures of one server. Thread-safe as the file comment says.
class TETHER_API ServerMetrics : public std::enable_shared_from_this<ServerMetrics> {
 public:
  /// Most distinct method names counted per loop; further names count as "(other)" (a peer
  /// cannot grow the label set without bound).
  static constexpr std::size_t kMaxMethods = 256;
  /// Recent errors kept for /status.json.
  static constexpr std::size_t kRecentErrors = 32;

  /// Make it with std::make_shared. `service`: its name; `exposed_prefix`: stripped from method names
  /// ("exposed_add" -> "add").
  ServerMetrics(std::string service, std::string exposed_prefix);
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  /// A connection opens on `loop` (its loop thread): the observer to put in its options.
  std::shared_ptr<rpc::CallObserver> open_connection(EventLoop& loop, const std::string& peer);
  /// It closed (any thread); `observer` is what open_connection returned, `reason` one of
  /// metrics::close_reason.
  void close_connection(const std::shared_ptr<rpc::CallObserver>& observer,
                        std::string_view reason = metrics::close_reason::kIoError);
  /// Shows `loop`'s figures (lag, busy polling, worker pool) from now on (its own thread);
  /// open_connection does it for the loops that serve connections.
  void watch_loop(EventLoop& loop);
  /// The registry hook's state (any thread): a registry is configured and where it is; then
  /// the outcome of each announcement.
  void set_registry(std::string registry);
  void record_announcement(bool acknowledged, const std::string& error = {});
  void count_refused() noexcept;
  void count_http_request() noexcept;
  void set_listening(bool on) noexcept { listening_.store(on, std::memory_order_relaxed); }
  void set_draining(bool on) noexcept { draining_.store(on, std::memory_order_relaxed); }
  /// What /readyz answers: listening, not draining, and registered when a registry hook runs.
  [[nodiscard]] bool ready() const noexcept {
    return listening_.load(std::memory_order_relaxed) && !draining_.load(std::memory_order_relaxed) &&
           !unregistered_.load(std::memory_order_relaxed);
  }

  /// Merges every shard and connection (any thread).
  [[nodiscard]] metrics::Snapshot snapshot() const;

  struct Shard;
  struct Conn;
  /// Used by the connection observers.
  void record_error(const Conn& conn, const rpc::CallRecord& record, const std::string& method,
                    const std::string& type);

 private:
  Shard& shard_for(EventLoop& loop);

  std::string service_;
  std::string prefix_;
  std::int64_t started_ns_;
  std::atomic<bool> listening_{false};
  std::atomic<bool> draining_{false};
  std::atomic<bool> unregistered_{false};  // a registry is configured and did not acknowledge
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> http_requests_{0};

  mutable std::mutex mu_;
  std::unordered_map<const EventLoop*, std::unique_ptr<Shard>> shards_;
  std::unordered_map<const Conn*, std::shared_ptr<Conn>> open_;
  std::uint64_t next_id_ = 1;
  std::uint64_t accepted_ = 0;
  std::uint64_t closed_ = 0;
  std::array<std::uint64_t, 4> closed_bytes_{};  // wire in/out, payload in/out
  std::map<std::string, std::uint64_t> errors_by_type_;
  std::map<std::string, std::uint64_t, std::less<>> closed_by_reason_;
  metrics::RegistryFigures registry_;
  std::vector<metrics::ErrorEvent> recent_;  // ring
  std::size_t recent_next_ = 0;
};

/// Prometheus text exposition format 0.0.4 of a snapshot (metric names under tether_).
TETHER_API std::string render_prometheus(const metrics::Snapshot& s);
/// The JSON /status.json serves (the console's data).
TETHER_API std::string render_status_json(const metrics::Snapshot& s);

}  // namespace tether
