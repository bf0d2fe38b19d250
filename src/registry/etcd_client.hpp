#pragma once
// Private: a small etcd v3 client over the JSON gateway (/v3/...), on tether's loop.
//
// Unary calls go to the current endpoint; when it cannot be reached (connect refused, timed
// out, reset, or etcd says it is unavailable / has no leader) the next endpoint is tried, once
// around the list, and the one that answered becomes current. With credentials the client
// authenticates first and again whenever etcd says the token is no longer valid.
//
// Loop thread only. The client must outlive every Task and transfer it returned.

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "registry/curl_multi.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/registry/etcd.hpp"

namespace tether::registry::detail {

std::string base64_encode(std::string_view in);
/// nullopt when `in` is not base64.
std::optional<std::string> base64_decode(std::string_view in);
/// The range end that covers every key starting with `prefix` (etcd's prefix rule).
std::string prefix_end(std::string prefix);
/// A JSON int64 that the gateway may send as a string ("12") or a number; 0 when absent.
std::int64_t json_int(const nlohmann::json& j, const char* key);
/// A JSON string field; "" when absent or not a string.
std::string json_str(const nlohmann::json& j, const char* key);

struct EtcdConfig {
  std::vector<std::string> endpoints;  ///< "host:port"
  std::string username;
  std::string password;
  EtcdOptions options;
};

struct EtcdKeyValue {
  std::string key;
  std::string value;
  std::int64_t mod_revision = 0;
  std::int64_t lease = 0;
};

/// The pure parsing steps of the client's replies (no I/O), apart so that they can be tested
/// and fuzzed on their own (fuzz/etcd_fuzz.cpp).

/// What one unary reply (HTTP status and body) means.
struct EtcdReply {
  enum Kind {
    kOk,            ///< HTTP 200 with a JSON object and no "error": `json` is the result
    kUnreachable,   ///< no JSON object, or etcd unavailable / deadline exceeded: try elsewhere
    kTokenExpired,  ///< an auth token that is no longer valid: authenticate again
    kError,         ///< any other error reply (EtcdError with `code` and `message`)
  } kind = kError;
  nlohmann::json json;
  int code = 0;
  std::string message;  ///< kUnreachable: why; kTokenExpired, kError: etcd's message
};
EtcdReply classify_reply(long status, const std::string& body);
/// The token of an auth/authenticate reply; nullopt when it is not a success.
std::optional<std::string> parse_auth_token(long status, const nlohmann::json& j);
/// The error message and gRPC code of an error reply ({"error", "message", "code"}).
std::pair<int, std::string> error_of(const nlohmann::json& j);

class EtcdClient {
 public:
  EtcdClient(EventLoop& loop, EtcdConfig config);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  /// POST /v3/<path> with `body`; the reply's JSON. Throws EtcdError (an error reply),
  /// EtcdUnavailable (no endpoint answered). `pinned`: only that endpoint, no failover.
  Task<nlohmann::json> call(std::string path, nlohmann::json body);
  Task<nlohmann::json> call_at(std::size_t endpoint, std::string path, nlohmann::json body);

  /// A lease of `ttl` (rounded up to whole seconds); its ID.
  Task<std::int64_t> grant(Duration ttl);
  /// Refreshes a lease; its remaining TTL in seconds, 0 when the lease does not exist.
  Task<std::int64_t> keepalive(std::int64_t lease);
  Task<void> revoke(std::int64_t lease);
  Task<void> put(std::string key, std::string value, std::int64_t lease);
  struct Range {
    std::vector<EtcdKeyValue> kvs;
    std::int64_t revision = 0;
  };
  Task<Range> get_prefix(std::string prefix);

  /// Opens a watch of every key under `prefix` from `start_revision` on the current endpoint
  /// (not started: next_line() starts it). Lines are the gateway's JSON messages.
  std::unique_ptr<HttpTransfer> open_watch(const std::string& prefix, std::int64_t start_revision);

  [[nodiscard]] std::size_t current() const noexcept { return current_; }
  [[nodiscard]] const std::string& endpoint(std::size_t i) const { return config_.endpoints.at(i); }
  [[nodiscard]] std::size_t endpoints() const noexcept { return config_.endpoints.size(); }
  /// Makes the next endpoint current (after a watch on the current one failed).
  void rotate() noexcept;
  [[nodiscard]] const EtcdOptions& options() const noexcept { return config_.options; }
  [[nodiscard]] EventLoop& loop() const noexcept { return multi_.loop(); }
  /// "127.0.0.1:2379,127.0.0.1:22379".
  [[nodiscard]] std::string describe() const;

 private:
  /// One request to one endpoint; nullopt when the endpoint is unreachable (why in `failure`).
  Task<std::optional<nlohmann::json>> attempt(std::size_t endpoint, const std::string& path,
                                              const nlohmann::json& body, std::string& failure);
  Task<void> authenticate(std::size_t endpoint);
  std::vector<std::string> auth_headers() const;

  EtcdConfig config_;
  CurlMulti multi_;
  std::size_t current_ = 0;
  std::string token_;
};

/// A kv/range reply's keys (base64-decoded; undecodable ones skipped) and revision.
EtcdClient::Range parse_range(const nlohmann::json& j);
/// A lease/grant reply's lease ID; EtcdError when there is none.
std::int64_t parse_grant(const nlohmann::json& j);
/// A lease/keepalive reply's remaining TTL (0: no such lease).
std::int64_t parse_keepalive(const nlohmann::json& j);

}  // namespace tether::registry::detail
