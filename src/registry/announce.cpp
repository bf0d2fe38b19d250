#include "tether/registry/announce.hpp"

#include "registry/announcers.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/loop/time.hpp"
#include "tether/net/address.hpp"
#include "tether/registry/registry_client.hpp"

namespace tether::registry {

namespace detail {

std::optional<std::uint16_t> listening_port(const ServerInfo& info) {
  for (const Address& a : info.addresses) {
    if (a.is_ip()) return a.port();
  }
  return std::nullopt;
}

std::string listening_ip(const ServerInfo& info) {
  std::optional<Address> a = Address::from_ip(info.host, 0);
  if (!a) return {};
  const std::string ip = a->host();
  if (ip == "0.0.0.0" || ip == "::") return {};
  return ip;
}

namespace {

/// RPyC's registering thread, as a task: REGISTER, then again after reregister_interval (or
/// retry_interval when unanswered); UNREGISTER on graceful shutdown.
class RpycAnnouncer final : public ServerHook {
 public:
  RpycAnnouncer(EventLoop& loop, RegistryClient client, std::vector<std::string> aliases, std::uint16_t port,
                AnnounceOptions options, std::shared_ptr<ServerMetrics> metrics)
      : client_(std::move(client)),
        aliases_(std::move(aliases)),
        port_(port),
        options_(std::move(options)),
        metrics_(std::move(metrics)),
        tasks_(loop) {
    if (metrics_) metrics_->set_registry(client_.describe());
    tasks_.spawn(run(this));
  }

  Task<void> on_shutdown() override {
    tasks_.cancel_all();
    co_await client_.unregister(port_);
    TETHER_LOG_INFO("registry: unregistered port {} from {}", port_, client_.describe());
  }

 private:
  static Task<void> run(RpycAnnouncer* self) {
    bool registered = false;
    bool warned = false;
    for (;;) {
      const bool ok = co_await self->client_.register_service(self->aliases_, self->port_);
      if (ok && !registered) {
        TETHER_LOG_INFO("registry: registered port {} as {} with {}", self->port_, self->aliases_.front(),
                        self->client_.describe());
      } else if (!ok && !warned) {
        TETHER_LOG_WARN(
            "registry: no registry acknowledged port {} at {}; retrying every {} ms", self->port_,
            self->client_.describe(),
            std::chrono::duration_cast<std::chrono::milliseconds>(self->options_.retry_interval).count());
      }
      warned = !ok;
      registered = ok;
      if (self->metrics_) {
        self->metrics_->record_announcement(ok, ok ? std::string() : "no registry acknowledged the REGISTER");
      }
      co_await sleep(ok ? self->options_.reregister_interval : self->options_.retry_interval);
    }
  }

  RegistryClient client_;
  std::vector<std::string> aliases_;
  std::uint16_t port_;
  AnnounceOptions options_;
  std::shared_ptr<ServerMetrics> metrics_;
  TaskGroup tasks_;
};

}  // namespace

std::unique_ptr<ServerHook> make_rpyc_announcer(const ServerInfo& info, const RegistryUrl& url,
                                                const AnnounceOptions& options) {
  RegistryClientOptions co = url.client_options();
  co.timeout = options.timeout;
  // The registry records the address a REGISTER came from: send it from the listening one.
  if (url.kind == RegistryUrl::Kind::kUdp) co.interface = listening_ip(info);
  return std::make_unique<RpycAnnouncer>(*info.loop, RegistryClient(std::move(co)), info.aliases,
                                         *listening_port(info), options, info.metrics);
}

}  // namespace detail

ServerHookFactory announce(AnnounceOptions options) {
  std::string error;
  std::optional<RegistryUrl> url = RegistryUrl::parse(options.registry, &error);
  if (!url) throw UsageError("tether::registry::announce: " + error);
  return [url = *url, options = std::move(options)](const ServerInfo& info) -> std::unique_ptr<ServerHook> {
    if (!detail::listening_port(info)) {
      TETHER_LOG_WARN("registry: {} listens on no IP address; not announcing it to {}", info.service_name,
                      url.to_string());
      return nullptr;
    }
    if (url.kind == RegistryUrl::Kind::kEtcd) return detail::make_etcd_announcer(info, url, options);
    return detail::make_rpyc_announcer(info, url, options);
  };
}

ServerHookFactory announce(std::string registry) {
  AnnounceOptions options;
  options.registry = std::move(registry);
  return announce(std::move(options));
}

}  // namespace tether::registry
