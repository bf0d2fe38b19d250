#pragma once
/// \file Announcing a tether::Server to a registry while it listens (RPyC's auto_register),
/// through the service layer's ServerHook:
///
///   tether::ServeOptions opts;
///   opts.hooks.push_back(tether::registry::announce("udp://255.255.255.255:18811"));
///   tether::serve(calc, opts);
///
/// RPyC registry (udp:// or tcp://): once the server listens, REGISTER with the service's
/// aliases and port; again every reregister_interval after an "OK", or retry_interval after no
/// answer; UNREGISTER on graceful shutdown. The REGISTER leaves from the listening address when
/// the server listens on one (so that the registry records it), as RPyC's servers do.
///
/// etcd (etcd://): a lease of etcd.ttl, one key per alias (see etcd.hpp) holding the server's
/// generation, TLS and weight, kept alive every ttl/3. A lease that etcd lost (restarted without
/// its data, or unreachable for longer than the TTL) is granted again and the keys put again;
/// etcd errors are logged and retried with exponential backoff and jitter, moving to the next
/// etcd endpoint. Graceful shutdown revokes the lease (the keys go at once); a server that dies
/// loses its keys when the lease expires.
///
/// A server listening on a Unix socket is not announced (a warning is logged).

#include <chrono>
#include <cstdint>
#include <string>

#include "tether/base/export.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/registry/etcd.hpp"
#include "tether/registry/protocol.hpp"
#include "tether/service/serve.hpp"

namespace tether::registry {

struct AnnounceOptions {
  /// Where to announce (RegistryUrl).
  std::string registry = "udp://255.255.255.255:18811";
  /// RPyC registry: the period of re-registration after a success (RPyC: 60 s) ...
  Duration reregister_interval = kReregisterInterval;
  /// ... and after a failure (RPyC: about 1 s).
  Duration retry_interval = kRegisterRetry;
  /// RPyC registry: how long to wait for its "OK".
  Duration timeout = kClientTimeout;
  /// etcd: the host clients are told to connect to. Empty: the listening host, or when the
  /// server listens on every interface, the local address of the route to the first etcd
  /// endpoint.
  std::string advertise_host;
  /// etcd: the server's share of connections (0: announced but never chosen).
  std::uint32_t weight = 1;
  EtcdOptions etcd;
};

/// A hook for ServeOptions::hooks. Throws UsageError at once for a malformed registry address.
TETHER_API ServerHookFactory announce(AnnounceOptions options);
TETHER_API ServerHookFactory announce(std::string registry);

}  // namespace tether::registry
