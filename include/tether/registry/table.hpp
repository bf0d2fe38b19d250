#pragma once
/// \file RegistryTable: what an RPyC registry remembers, and its rules (wire spec §16.2), with
/// bounds. Pure logic on a clock the caller passes in: no I/O, no loop. Not thread-safe (a
/// registry server uses it from its loop thread only).
///
/// Names are upper-cased (ASCII) as RPyC does. An entry is (name, host, port) with the time it
/// was last registered; a re-registration refreshes that time. QUERY answers the entries of
/// one name, oldest registration first, after dropping those older than the pruning timeout.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/registry/protocol.hpp"

namespace tether::registry {

/// Bounds on the table: a flood of names or endpoints cannot grow it further.
struct RegistryLimits {
  std::size_t max_services = 1024;             ///< distinct names
  std::size_t max_endpoints_per_service = 64;  ///< (host, port) entries under one name
  std::size_t max_entries = 8192;              ///< (name, host, port) entries in all
  std::size_t max_entries_per_host = 256;      ///< entries registered from one host address
};

/// What one REGISTER did.
struct RegisterResult {
  std::size_t added = 0;      ///< new entries
  std::size_t refreshed = 0;  ///< entries whose time was renewed
  std::size_t refused = 0;    ///< aliases not recorded because a limit was reached
};

class TETHER_API RegistryTable {
 public:
  /// Called for new entries (not for refreshes) and for removed ones (unregistered, pruned),
  /// as RPyC's on_service_added / on_service_removed. They must not modify the table.
  using Listener = std::function<void(const std::string& name, const HostPort& endpoint)>;

  explicit RegistryTable(RegistryLimits limits = RegistryLimits(),
                         Duration pruning_timeout = kPruningTimeout);

  /// REGISTER from `host`: records (alias, host, port) for each alias at `now`. Before refusing
  /// for lack of room, entries past the pruning timeout are dropped.
  RegisterResult register_endpoint(const std::string& host, const std::vector<std::string>& aliases,
                                   std::uint16_t port, TimePoint now);
  /// UNREGISTER from `host`: removes (host, port) under every name; returns how many entries.
  std::size_t unregister_endpoint(const std::string& host, std::uint16_t port);
  /// QUERY: prunes `name`'s stale entries, then returns the rest, oldest registration first.
  std::vector<HostPort> query(const std::string& name, TimePoint now);
  /// LIST: every name, or those with an entry on `filter_host` (no pruning, as RPyC).
  [[nodiscard]] std::vector<std::string> list(const std::optional<std::string>& filter_host) const;
  /// Drops every entry older than the pruning timeout; returns how many.
  std::size_t prune(TimePoint now);

  [[nodiscard]] std::size_t services() const noexcept { return services_.size(); }
  [[nodiscard]] std::size_t entries() const noexcept { return entries_; }
  [[nodiscard]] Duration pruning_timeout() const noexcept { return pruning_timeout_; }
  [[nodiscard]] const RegistryLimits& limits() const noexcept { return limits_; }

  void set_on_added(Listener fn) { on_added_ = std::move(fn); }
  void set_on_removed(Listener fn) { on_removed_ = std::move(fn); }

  /// ASCII upper-casing, RPyC's name rule.
  static std::string normalize(std::string name);

 private:
  struct Key {
    std::string host;
    std::uint16_t port = 0;
    friend auto operator<=>(const Key&, const Key&) = default;
  };
  struct Entry {
    TimePoint refreshed;
    std::uint64_t seq = 0;  // orders registrations made at the same instant
  };
  using Endpoints = std::map<Key, Entry>;

  void remove(std::map<std::string, Endpoints>::iterator service, Endpoints::iterator entry);
  [[nodiscard]] bool stale(const Entry& e, TimePoint now) const {
    return now - e.refreshed > pruning_timeout_;
  }

  RegistryLimits limits_;
  Duration pruning_timeout_;
  std::map<std::string, Endpoints> services_;
  std::map<std::string, std::size_t> per_host_;
  std::size_t entries_ = 0;
  std::uint64_t seq_ = 0;
  Listener on_added_;
  Listener on_removed_;
};

}  // namespace tether::registry
