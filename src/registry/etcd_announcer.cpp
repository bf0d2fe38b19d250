// The etcd announcer: a lease with one key per alias, kept alive (see tether/registry/announce.hpp).

#include <sys/socket.h>
#include <unistd.h>

#include "registry/announcers.hpp"
#include "registry/backoff.hpp"
#include "registry/etcd_client.hpp"
#include "registry/etcd_keys.hpp"
#include "tether/base/fd.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/loop/time.hpp"
#include "tether/net/address.hpp"
#include "tether/net/sockets.hpp"

namespace tether::registry::detail {

namespace {

long long millis(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

/// The local address the kernel would send from to reach `endpoint` ("host:port"): a UDP
/// socket's connect() picks the route without sending anything. "" when unknown.
std::string route_source(const std::string& endpoint) {
  std::optional<HostPort> hp = split_host_port(endpoint, kEtcdPort);
  if (!hp) return {};
  std::vector<Address> addrs;
  try {
    addrs = resolve_blocking(hp->host, hp->port);  // start-up code; numeric hosts do not block
  } catch (const Error&) {
    return {};
  }
  if (addrs.empty()) return {};
  Fd s(::socket(addrs.front().os_family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s || ::connect(s.get(), addrs.front().sockaddr_ptr(), addrs.front().sockaddr_len()) != 0) return {};
  return local_address(s.get()).host();
}

class EtcdAnnouncer final : public ServerHook {
 public:
  EtcdAnnouncer(EventLoop& loop, EtcdConfig config, std::vector<std::string> keys, std::string value,
                std::shared_ptr<ServerMetrics> metrics)
      : client_(loop, std::move(config)),
        keys_(std::move(keys)),
        value_(std::move(value)),
        metrics_(std::move(metrics)),
        tasks_(loop) {
    if (metrics_) metrics_->set_registry("etcd://" + client_.describe());
    tasks_.spawn(run(this));
  }

  Task<void> on_shutdown() override {
    tasks_.cancel_all();
    if (lease_ == 0) co_return;
    const std::int64_t lease = lease_;
    lease_ = 0;
    try {
      co_await client_.revoke(lease);
      TETHER_LOG_INFO("registry: revoked lease {:x} of {} on etcd {}", lease, keys_.front(),
                      client_.describe());
    } catch (const std::exception& e) {
      TETHER_LOG_WARN("registry: could not revoke lease {:x} on etcd {} (its keys expire with it): {}", lease,
                      client_.describe(), e.what());
    }
  }

 private:
  /// Grants a lease and puts the keys if needed, else refreshes the lease; the delay until the
  /// next step.
  Task<Duration> step() {
    const EtcdOptions& opt = client_.options();
    const Duration period = std::max<Duration>(opt.ttl / 3, std::chrono::milliseconds(200));
    if (lease_ == 0) {
      lease_ = co_await client_.grant(opt.ttl);
      keys_put_ = false;
    } else if (keys_put_) {
      const std::int64_t left = co_await client_.keepalive(lease_);
      if (left > 0) co_return period;
      TETHER_LOG_WARN("registry: etcd {} no longer knows lease {:x} of {}; announcing again",
                      client_.describe(), lease_, keys_.front());
      lease_ = co_await client_.grant(opt.ttl);
      keys_put_ = false;
    }
    for (const std::string& key : keys_) co_await client_.put(key, value_, lease_);
    keys_put_ = true;
    TETHER_LOG_INFO("registry: announced {} on etcd {} (lease {:x}, TTL {} ms)", keys_.front(),
                    client_.endpoint(client_.current()), lease_, millis(opt.ttl));
    co_return period;
  }

  static Task<void> run(EtcdAnnouncer* self) {
    const EtcdOptions& opt = self->client_.options();
    // Retries never wait past a third of the TTL: a short outage must not cost the lease.
    Backoff backoff(opt.backoff_initial,
                    std::min(opt.backoff_max, std::max<Duration>(opt.ttl / 3, opt.backoff_initial)));
    bool failing = false;
    for (;;) {
      Duration next{};
      std::string failure;
      try {
        next = co_await self->step();
        if (failing) TETHER_LOG_WARN("registry: etcd {} reachable again", self->client_.describe());
        failing = false;
        backoff.reset();
      } catch (const EtcdError& e) {
        failure = e.what();
        if (e.code() == EtcdError::kNotFound) self->lease_ = 0;  // the lease went away under a put
      } catch (const std::exception& e) {
        failure = e.what();
      }
      if (self->metrics_) self->metrics_->record_announcement(failure.empty(), failure);
      if (!failure.empty()) {
        next = backoff.next();
        if (!failing) {
          TETHER_LOG_WARN("registry: announcing {} on etcd failed: {}; retrying with backoff",
                          self->keys_.front(), failure);
        } else {
          TETHER_LOG_DEBUG("registry: etcd still failing for {}: {}", self->keys_.front(), failure);
        }
        failing = true;
      }
      co_await sleep(next);
    }
  }

  EtcdClient client_;
  std::vector<std::string> keys_;
  std::string value_;
  std::int64_t lease_ = 0;
  bool keys_put_ = false;
  std::shared_ptr<ServerMetrics> metrics_;
  TaskGroup tasks_;  // destroyed first: its task uses the members above
};

}  // namespace

std::unique_ptr<ServerHook> make_etcd_announcer(const ServerInfo& info, const RegistryUrl& url,
                                                const AnnounceOptions& options) {
  std::string host = options.advertise_host;
  if (host.empty()) host = listening_ip(info);
  if (host.empty()) host = route_source(url.etcd_endpoints.front());
  if (host.empty()) host = "127.0.0.1";
  const std::uint16_t port = *listening_port(info);
  std::vector<std::string> keys;
  for (const std::string& alias : info.aliases)
    keys.push_back(service_key(options.etcd.prefix, alias, host, port));
  EtcdConfig config{url.etcd_endpoints, url.username, url.password, options.etcd};
  return std::make_unique<EtcdAnnouncer>(*info.loop, std::move(config), std::move(keys),
                                         service_value(info.generation, info.tls, options.weight),
                                         info.metrics);
}

}  // namespace tether::registry::detail
