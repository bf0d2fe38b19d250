#include "tether/registry/discovery.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <random>

#include "registry/backoff.hpp"
#include "registry/endpoint_source.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/time.hpp"
#include "tether/net/address.hpp"
#include "tether/registry/registry_url.hpp"
#include "tether/registry/table.hpp"

namespace tether::registry {

std::string Endpoint::to_string() const { return join_host_port(host, port); }

struct ServiceLocator::Impl {
  Impl(EventLoop& l, DiscoverOptions o) : loop(l), options(std::move(o)), rng(std::random_device{}()) {}

  EventLoop& loop;
  DiscoverOptions options;
  std::unique_ptr<detail::EndpointSource> source;
  /// Smooth weighted round robin state per name: endpoint -> current weight.
  std::map<std::string, std::map<std::string, std::int64_t>> rr;
  /// Endpoint -> end of its cooldown.
  std::map<std::string, TimePoint> cooldown;
  std::mt19937 rng;
  ChangeListener on_change;

  /// The endpoints of `name`, filtered by options.host. Throws DiscoveryError when none.
  Task<std::vector<Endpoint>> find(const std::string& name, bool refresh);
  std::size_t pick_round_robin(const std::string& name, const std::vector<Endpoint>& eps);
  std::size_t pick_random(const std::vector<Endpoint>& eps);
};

namespace {

/// Addresses `host` resolves to (numeric hosts need no lookup).
Task<std::vector<std::string>> host_ips(std::string host) {
  std::vector<Address> addrs = co_await resolve(host, 0);
  std::vector<std::string> ips;
  for (const Address& a : addrs) ips.push_back(a.host());
  co_return ips;
}

}  // namespace

Task<std::vector<Endpoint>> ServiceLocator::Impl::find(const std::string& name, bool refresh) {
  std::vector<Endpoint> eps = co_await source->lookup(name, refresh);
  if (eps.empty())
    throw DiscoveryError(fmt::format("no servers exposing '{}' were found ({})", name, source->describe()));
  if (options.host.empty()) co_return eps;
  std::vector<std::string> ips = co_await host_ips(options.host);
  std::erase_if(eps,
                [&](const Endpoint& ep) { return std::find(ips.begin(), ips.end(), ep.host) == ips.end(); });
  if (eps.empty()) {
    throw DiscoveryError(fmt::format("no servers exposing '{}' were found on {} ({})", name, options.host,
                                     source->describe()));
  }
  co_return eps;
}

std::size_t ServiceLocator::Impl::pick_round_robin(const std::string& name,
                                                   const std::vector<Endpoint>& eps) {
  // Smooth weighted round robin (nginx): equal weights give plain round robin.
  std::map<std::string, std::int64_t>& current = rr[name];
  std::map<std::string, std::int64_t> kept;
  std::int64_t total = 0;
  std::size_t best = 0;
  std::int64_t best_weight = 0;
  for (std::size_t i = 0; i < eps.size(); ++i) {
    const std::string key = eps[i].to_string();
    std::int64_t& w = kept[key];
    w = current[key] + eps[i].weight;
    total += eps[i].weight;
    if (i == 0 || w > best_weight) {
      best = i;
      best_weight = w;
    }
  }
  kept[eps[best].to_string()] -= total;
  current = std::move(kept);  // endpoints that left are forgotten
  return best;
}

std::size_t ServiceLocator::Impl::pick_random(const std::vector<Endpoint>& eps) {
  std::uint64_t total = 0;
  for (const Endpoint& ep : eps) total += ep.weight;
  std::uniform_int_distribution<std::uint64_t> dist(0, total - 1);
  std::uint64_t at = dist(rng);
  for (std::size_t i = 0; i < eps.size(); ++i) {
    if (at < eps[i].weight) return i;
    at -= eps[i].weight;
  }
  return eps.size() - 1;
}

ServiceLocator::ServiceLocator(DiscoverOptions options)
    : impl_(std::make_unique<Impl>(EventLoop::current_or_throw(), std::move(options))) {
  std::string error;
  std::optional<RegistryUrl> url = RegistryUrl::parse(impl_->options.registry, &error);
  if (!url) throw UsageError("ServiceLocator: " + error);
  if (url->kind == RegistryUrl::Kind::kEtcd) {
    impl_->source = detail::make_etcd_source(impl_->loop, *url, impl_->options);
  } else {
    impl_->source = detail::make_rpyc_source(*url, impl_->options);
  }
  Impl* impl = impl_.get();
  impl_->source->set_on_change([impl](const std::string& name, const std::vector<Endpoint>& eps) {
    if (impl->on_change) impl->on_change(name, eps);
  });
}

ServiceLocator::~ServiceLocator() = default;

const DiscoverOptions& ServiceLocator::options() const noexcept { return impl_->options; }

EventLoop& ServiceLocator::loop() const noexcept { return impl_->loop; }

void ServiceLocator::set_on_change(ChangeListener fn) { impl_->on_change = std::move(fn); }

void ServiceLocator::watch(const std::string& name) { impl_->source->follow(RegistryTable::normalize(name)); }

void ServiceLocator::invalidate(const std::string& name) {
  impl_->source->forget(RegistryTable::normalize(name));
}

void ServiceLocator::report_failure(const Endpoint& endpoint) {
  impl_->cooldown[endpoint.to_string()] = Clock::now() + impl_->options.cooldown;
}

void ServiceLocator::report_success(const Endpoint& endpoint) { impl_->cooldown.erase(endpoint.to_string()); }

Task<std::vector<Endpoint>> ServiceLocator::discover(std::string name) {
  std::vector<Endpoint> eps = co_await impl_->find(RegistryTable::normalize(std::move(name)), false);
  co_return eps;
}

Task<std::vector<std::string>> ServiceLocator::list() {
  std::vector<std::string> names = co_await impl_->source->list();
  co_return names;
}

std::vector<Endpoint> ServiceLocator::order(const std::string& name, const std::vector<Endpoint>& endpoints) {
  std::vector<Endpoint> eligible;
  for (const Endpoint& ep : endpoints) {
    if (ep.weight > 0) eligible.push_back(ep);
  }
  if (eligible.empty()) return eligible;
  const std::size_t first = impl_->options.balance == Balance::kRandom
                                ? impl_->pick_random(eligible)
                                : impl_->pick_round_robin(RegistryTable::normalize(name), eligible);
  std::vector<Endpoint> out;
  out.reserve(eligible.size());
  out.push_back(eligible[first]);
  if (impl_->options.balance == Balance::kRandom) {
    std::vector<Endpoint> rest;
    for (std::size_t i = 0; i < eligible.size(); ++i) {
      if (i != first) rest.push_back(eligible[i]);
    }
    std::shuffle(rest.begin(), rest.end(), impl_->rng);
    out.insert(out.end(), rest.begin(), rest.end());
  } else {
    for (std::size_t i = 1; i < eligible.size(); ++i) out.push_back(eligible[(first + i) % eligible.size()]);
  }
  // Endpoints in their cooldown go last, in the same order (stable).
  const TimePoint now = Clock::now();
  std::stable_partition(out.begin(), out.end(), [&](const Endpoint& ep) {
    auto it = impl_->cooldown.find(ep.to_string());
    return it == impl_->cooldown.end() || it->second <= now;
  });
  std::erase_if(impl_->cooldown, [&](const auto& kv) { return kv.second <= now; });
  return out;
}

Task<std::unique_ptr<Connection>> ServiceLocator::connect(std::string name, ClientOptions client) {
  name = RegistryTable::normalize(std::move(name));
  const DiscoverOptions& opt = impl_->options;
  detail::Backoff backoff(opt.backoff_initial, opt.backoff_max);
  std::vector<std::string> failures;
  const int rounds = std::max(1, opt.rounds);
  for (int round = 0; round < rounds; ++round) {
    std::vector<Endpoint> eps;
    try {
      eps = co_await impl_->find(name, round > 0);
    } catch (const DiscoveryError& e) {
      failures.push_back(e.what());
    }
    for (const Endpoint& ep : order(name, eps)) {
      if (ep.tls && !client.net.tls) {
        failures.push_back(ep.to_string() + ": needs TLS (no TLS context given)");
        continue;
      }
      ClientOptions co = client;
      if (co.net.connect_timeout == Duration::zero() || co.net.connect_timeout > opt.connect_timeout) {
        co.net.connect_timeout = opt.connect_timeout;
      }
      if (co.connection.generation == rpc::Generation::kAuto && ep.generation != rpc::Generation::kAuto) {
        co.connection.first_generation = ep.generation;
      }
      try {
        std::unique_ptr<Connection> conn =
            co_await with_timeout(opt.connect_timeout, tether::connect(ep.host, ep.port, co));
        report_success(ep);
        co_return conn;
      } catch (const UsageError&) {
        throw;  // a bug of the caller's, not an endpoint's failure
      } catch (const std::exception& e) {
        failures.push_back(ep.to_string() + ": " + e.what());
      }
      report_failure(ep);
      TETHER_LOG_DEBUG("registry: {} of {} did not answer: {}", ep.to_string(), name, failures.back());
    }
    if (round + 1 < rounds) co_await sleep(backoff.next());
  }
  std::string detail;
  for (const std::string& f : failures) detail += "\n  " + f;
  throw DiscoveryError(fmt::format("could not connect to any server of '{}' ({}, {} round(s)):{}", name,
                                   impl_->source->describe(), rounds, detail));
}

// ------------------------------------------------------------------------- free functions

Task<std::vector<Endpoint>> discover(std::string name, DiscoverOptions options) {
  ServiceLocator locator(std::move(options));
  std::vector<Endpoint> eps = co_await locator.discover(std::move(name));
  co_return eps;
}

Task<std::unique_ptr<Connection>> connect_by_service(std::string name, DiscoverOptions options,
                                                     ClientOptions client) {
  ServiceLocator locator(std::move(options));
  std::unique_ptr<Connection> conn = co_await locator.connect(std::move(name), std::move(client));
  co_return conn;
}

Task<std::vector<std::string>> list_services(DiscoverOptions options) {
  ServiceLocator locator(std::move(options));
  std::vector<std::string> names = co_await locator.list();
  co_return names;
}

namespace {

/// Runs `task` on this thread's loop, or on a loop made for the call.
template <class T>
T run_blocking(Task<T> task) {
  if (EventLoop* loop = EventLoop::current()) return loop->run_until_complete(std::move(task));
  EventLoop own;
  try {
    T result = own.run_until_complete(std::move(task));
    for (int i = 0; i < 3; ++i) own.run_once(Duration::zero());
    return result;
  } catch (...) {
    for (int i = 0; i < 3; ++i) own.run_once(Duration::zero());
    throw;
  }
}

}  // namespace

std::vector<Endpoint> discover_sync(std::string name, DiscoverOptions options) {
  return run_blocking(discover(std::move(name), std::move(options)));
}

SyncConnection connect_by_service_sync(std::string name, DiscoverOptions options, ClientOptions client) {
  return connect_sync(connect_by_service(std::move(name), std::move(options), std::move(client)));
}

std::vector<std::string> list_services_sync(DiscoverOptions options) {
  return run_blocking(list_services(std::move(options)));
}

}  // namespace tether::registry
