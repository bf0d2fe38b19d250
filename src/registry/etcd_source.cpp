// etcd as a ServiceLocator's source: one PrefixWatch per name looked up.

#include <map>
#include <memory>

#include "registry/endpoint_source.hpp"
#include "registry/etcd_client.hpp"
#include "registry/etcd_keys.hpp"
#include "registry/prefix_watch.hpp"
#include "tether/base/log.hpp"

namespace tether::registry::detail {

namespace {

class EtcdSource final : public EndpointSource {
 public:
  EtcdSource(EventLoop& loop, const RegistryUrl& url, const DiscoverOptions& options)
      : timeout_(options.timeout),
        client_(loop, EtcdConfig{url.etcd_endpoints, url.username, url.password, options.etcd}) {}

  ~EtcdSource() override { watches_.clear(); }  // before the client they use

  Task<std::vector<Endpoint>> lookup(const std::string& name, bool refresh) override {
    (void)refresh;  // a watched set is always as fresh as etcd
    PrefixWatch& w = watch(name);
    if (!w.synced()) {
      const bool synced = co_await w.wait_synced(timeout_);
      if (!synced) {
        throw DiscoveryError("etcd " + client_.describe() + " did not answer for " + name +
                             (w.last_error().empty() ? std::string(" in time") : ": " + w.last_error()));
      }
    }
    co_return endpoints(w);
  }

  Task<std::vector<std::string>> list() override {
    EtcdClient::Range r;
    try {
      r = co_await client_.get_prefix(client_.options().prefix);
    } catch (const Error& e) {
      throw DiscoveryError("etcd " + client_.describe() + ": " + e.what());
    }
    std::vector<std::string> names;
    const std::string& prefix = client_.options().prefix;
    for (const EtcdKeyValue& kv : r.kvs) {
      const std::size_t slash = kv.key.find('/', prefix.size());
      if (slash == std::string::npos) continue;
      std::string name = kv.key.substr(prefix.size(), slash - prefix.size());
      if (names.empty() || names.back() != name) names.push_back(std::move(name));  // keys come sorted
    }
    co_return names;
  }

  void forget(const std::string& name) override { watches_.erase(name); }

  void follow(const std::string& name) override { (void)watch(name); }

  [[nodiscard]] std::string describe() const override { return "etcd://" + client_.describe(); }

 private:
  PrefixWatch& watch(const std::string& name) {
    auto it = watches_.find(name);
    if (it != watches_.end()) return *it->second;
    auto w = std::make_unique<PrefixWatch>(client_, service_prefix(client_.options().prefix, name), name,
                                           [this, name]() { changed(name); });
    return *watches_.emplace(name, std::move(w)).first->second;
  }

  std::vector<Endpoint> endpoints(const PrefixWatch& w) const {
    std::vector<Endpoint> out;
    for (const auto& [host_port, value] : w.entries()) {
      std::optional<Endpoint> ep = parse_service_entry(host_port, value);
      if (ep) out.push_back(std::move(*ep));
    }
    return out;
  }

  void changed(const std::string& name) {
    auto it = watches_.find(name);
    if (it == watches_.end() || !on_change_) return;
    on_change_(name, endpoints(*it->second));
  }

  Duration timeout_;
  EtcdClient client_;
  std::map<std::string, std::unique_ptr<PrefixWatch>> watches_;
};

}  // namespace

std::unique_ptr<EndpointSource> make_etcd_source(EventLoop& loop, const RegistryUrl& url,
                                                 const DiscoverOptions& options) {
  return std::make_unique<EtcdSource>(loop, url, options);
}

}  // namespace tether::registry::detail
