// The RPyC registry as a ServiceLocator's source: QUERY answers cached for cache_ttl.

#include <map>

#include "registry/endpoint_source.hpp"
#include "tether/registry/registry_client.hpp"

namespace tether::registry::detail {

namespace {

class RpycSource final : public EndpointSource {
 public:
  RpycSource(const RegistryUrl& url, const DiscoverOptions& options) : cache_ttl_(options.cache_ttl) {
    RegistryClientOptions o = url.client_options();
    o.timeout = options.timeout;
    client_ = RegistryClient(std::move(o));
  }

  Task<std::vector<Endpoint>> lookup(const std::string& name, bool refresh) override {
    auto cached = cache_.find(name);
    if (!refresh && cached != cache_.end() && Clock::now() - cached->second.fetched < cache_ttl_) {
      co_return cached->second.endpoints;
    }
    std::vector<HostPort> found;
    try {
      found = co_await client_.query(name);
    } catch (const Error& e) {
      throw DiscoveryError("registry " + client_.describe() + " did not answer QUERY " + name + ": " +
                           e.what());
    }
    Entry entry;
    entry.fetched = Clock::now();
    for (HostPort& hp : found) {
      Endpoint ep;
      ep.host = std::move(hp.host);
      ep.port = hp.port;
      entry.endpoints.push_back(std::move(ep));
    }
    cache_[name] = entry;
    co_return entry.endpoints;
  }

  Task<std::vector<std::string>> list() override {
    std::optional<std::vector<std::string>> names;
    try {
      names = co_await client_.list();
    } catch (const Error& e) {
      throw DiscoveryError("registry " + client_.describe() + " did not answer LIST: " + e.what());
    }
    if (!names) throw DiscoveryError("registry " + client_.describe() + " does not allow listing");
    co_return std::move(*names);
  }

  void forget(const std::string& name) override { cache_.erase(name); }

  [[nodiscard]] std::string describe() const override { return client_.describe(); }

 private:
  struct Entry {
    std::vector<Endpoint> endpoints;
    TimePoint fetched;
  };
  RegistryClient client_;
  Duration cache_ttl_;
  std::map<std::string, Entry> cache_;
};

}  // namespace

std::unique_ptr<EndpointSource> make_rpyc_source(const RegistryUrl& url, const DiscoverOptions& options) {
  return std::make_unique<RpycSource>(url, options);
}

}  // namespace tether::registry::detail
