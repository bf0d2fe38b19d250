#include "tether/registry/table.hpp"

#include <algorithm>

namespace tether::registry {

RegistryTable::RegistryTable(RegistryLimits limits, Duration pruning_timeout)
    : limits_(limits), pruning_timeout_(pruning_timeout) {}

std::string RegistryTable::normalize(std::string name) {
  for (char& c : name) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return name;
}

RegisterResult RegistryTable::register_endpoint(const std::string& host,
                                                const std::vector<std::string>& aliases, std::uint16_t port,
                                                TimePoint now) {
  RegisterResult result;
  const Key key{host, port};
  bool pruned = false;
  for (const std::string& alias : aliases) {
    std::string name = normalize(alias);
    auto service = services_.find(name);
    if (service != services_.end()) {
      auto entry = service->second.find(key);
      if (entry != service->second.end()) {
        entry->second = Entry{now, ++seq_};
        ++result.refreshed;
        continue;
      }
    }
    auto fits = [&]() {
      auto s = services_.find(name);
      if (s == services_.end() && services_.size() >= limits_.max_services) return false;
      if (s != services_.end() && s->second.size() >= limits_.max_endpoints_per_service) return false;
      auto h = per_host_.find(host);
      if (h != per_host_.end() && h->second >= limits_.max_entries_per_host) return false;
      return entries_ < limits_.max_entries;
    };
    if (!fits() && !pruned) {
      prune(now);
      pruned = true;
    }
    if (!fits()) {
      ++result.refused;
      continue;
    }
    services_[name].emplace(key, Entry{now, ++seq_});
    ++per_host_[host];
    ++entries_;
    ++result.added;
    if (on_added_) on_added_(name, HostPort{host, port});
  }
  return result;
}

void RegistryTable::remove(std::map<std::string, Endpoints>::iterator service, Endpoints::iterator entry) {
  const std::string name = service->first;
  const HostPort endpoint{entry->first.host, entry->first.port};
  auto h = per_host_.find(endpoint.host);
  if (h != per_host_.end() && --h->second == 0) per_host_.erase(h);
  --entries_;
  service->second.erase(entry);
  if (service->second.empty()) services_.erase(service);
  if (on_removed_) on_removed_(name, endpoint);
}

std::size_t RegistryTable::unregister_endpoint(const std::string& host, std::uint16_t port) {
  const Key key{host, port};
  std::size_t removed = 0;
  for (auto service = services_.begin(); service != services_.end();) {
    auto next = std::next(service);
    auto entry = service->second.find(key);
    if (entry != service->second.end()) {
      remove(service, entry);
      ++removed;
    }
    service = next;
  }
  return removed;
}

std::vector<HostPort> RegistryTable::query(const std::string& name, TimePoint now) {
  auto service = services_.find(normalize(name));
  if (service == services_.end()) return {};
  struct Found {
    HostPort endpoint;
    Entry entry;
  };
  std::vector<Found> found;
  for (auto entry = service->second.begin(); entry != service->second.end();) {
    auto next = std::next(entry);
    if (stale(entry->second, now)) {
      // Removing the last entry erases the service itself: stop using its iterators then.
      const bool last = service->second.size() == 1;
      remove(service, entry);
      if (last) break;
    } else {
      found.push_back(Found{HostPort{entry->first.host, entry->first.port}, entry->second});
    }
    entry = next;
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return a.entry.refreshed != b.entry.refreshed ? a.entry.refreshed < b.entry.refreshed
                                                  : a.entry.seq < b.entry.seq;
  });
  std::vector<HostPort> out;
  out.reserve(found.size());
  for (Found& f : found) out.push_back(std::move(f.endpoint));
  return out;
}

std::vector<std::string> RegistryTable::list(const std::optional<std::string>& filter_host) const {
  std::vector<std::string> out;
  for (const auto& [name, endpoints] : services_) {
    if (filter_host) {
      const bool on_host = std::any_of(endpoints.begin(), endpoints.end(),
                                       [&](const auto& e) { return e.first.host == *filter_host; });
      if (!on_host) continue;
    }
    out.push_back(name);
  }
  return out;
}

std::size_t RegistryTable::prune(TimePoint now) {
  std::size_t removed = 0;
  for (auto service = services_.begin(); service != services_.end();) {
    auto next_service = std::next(service);
    for (auto entry = service->second.begin(); entry != service->second.end();) {
      auto next = std::next(entry);
      const bool last = service->second.size() == 1;
      if (stale(entry->second, now)) {
        remove(service, entry);
        ++removed;
        if (last) break;
      }
      entry = next;
    }
    service = next_service;
  }
  return removed;
}

}  // namespace tether::registry
