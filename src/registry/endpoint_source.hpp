#pragma once
// Private: where a ServiceLocator gets endpoint sets from (an RPyC registry, or etcd).

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/registry/discovery.hpp"
#include "tether/registry/registry_url.hpp"

namespace tether::registry::detail {

/// Loop thread only (the locator's). Names given here are already upper-cased.
class EndpointSource {
 public:
  using Changed = std::function<void(const std::string& name, const std::vector<Endpoint>& endpoints)>;

  virtual ~EndpointSource() = default;
  /// What is known of `name` (possibly nothing); `refresh` asks the registry again rather than
  /// answering from a cache. Throws DiscoveryError when the registry cannot be asked and
  /// nothing is known.
  virtual Task<std::vector<Endpoint>> lookup(const std::string& name, bool refresh) = 0;
  /// Every service name. Throws DiscoveryError.
  virtual Task<std::vector<std::string>> list() = 0;
  /// Drops what is cached for `name`.
  virtual void forget(const std::string& name) = 0;
  /// Starts following `name` now, for change notifications (etcd); a no-op by default.
  virtual void follow(const std::string& name) { (void)name; }
  /// "udp://...", "etcd://..." for messages.
  [[nodiscard]] virtual std::string describe() const = 0;

  void set_on_change(Changed fn) { on_change_ = std::move(fn); }

 protected:
  Changed on_change_;
};

std::unique_ptr<EndpointSource> make_rpyc_source(const RegistryUrl& url, const DiscoverOptions& options);
std::unique_ptr<EndpointSource> make_etcd_source(EventLoop& loop, const RegistryUrl& url,
                                                 const DiscoverOptions& options);

}  // namespace tether::registry::detail
