#pragma once
/// \file The etcd backend's settings and errors (docs/registry.md, "etcd").
///
/// Servers put one key per alias, `<prefix><NAME>/<HOST>:<PORT>` (default prefix
/// "/tether/services/"), whose value is JSON {"generation": 0|5|6, "tls": bool, "weight": n}
/// (generation 0: the server detects either), under a lease of `ttl` that they keep alive;
/// the key disappears within the TTL of a server that dies. Clients read the prefix
/// `<prefix><NAME>/` once and then watch it. Everything goes through etcd v3's JSON gateway
/// (`/v3/...`, etcd 3.4 and later) with libcurl on tether's loop; several endpoints are tried
/// in turn.

#include <chrono>
#include <cstdint>
#include <string>

#include "tether/base/error.hpp"
#include "tether/base/export.hpp"
#include "tether/loop/event_loop.hpp"

namespace tether::registry {

struct EtcdOptions {
  /// Lease TTL of a server's keys (etcd's minimum is about 2 s with its default timings).
  Duration ttl = std::chrono::seconds(10);
  /// Where service keys live; must end with '/'.
  std::string prefix = "/tether/services/";
  /// One HTTP request to one endpoint (a failed endpoint is left for the next one).
  Duration request_timeout = std::chrono::seconds(3);
  Duration connect_timeout = std::chrono::seconds(1);
  /// Retries after etcd errors: exponential from backoff_initial to backoff_max, with jitter.
  Duration backoff_initial = std::chrono::milliseconds(200);
  Duration backoff_max = std::chrono::seconds(5);
  /// A watch that has been silent this long checks that its etcd member still answers (and
  /// has a leader); if it does not, the watch moves to the next endpoint.
  Duration watch_check = std::chrono::seconds(5);
};

/// etcd answered with an error (gRPC status `code`, e.g. 5 "requested lease not found",
/// 16 "invalid auth token", 7 permission denied). what() names the endpoint and the call.
class TETHER_API EtcdError : public Error {
 public:
  EtcdError(int code, long http_status, const std::string& what)
      : Error(ErrorKind::kRemoteError, what), code_(code), http_status_(http_status) {}
  [[nodiscard]] int code() const noexcept { return code_; }
  [[nodiscard]] long http_status() const noexcept { return http_status_; }

  static constexpr int kNotFound = 5;
  static constexpr int kPermissionDenied = 7;
  static constexpr int kUnavailable = 14;
  static constexpr int kUnauthenticated = 16;

 private:
  int code_;
  long http_status_;
};

/// No etcd endpoint answered; what() lists each endpoint and why.
class TETHER_API EtcdUnavailable : public Error {
 public:
  explicit EtcdUnavailable(const std::string& what) : Error(ErrorKind::kIo, what) {}
};

}  // namespace tether::registry
