#pragma once
// Private: the peer's objects this side holds proxies to (RPyC's _proxy_cache; Cap'n Proto's
// import table). One proxy state per (connection, id_pack) while any Netref to it lives; its
// refcount is the number of times the peer sent the reference, returned with one DEL.

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "tether/brine/value.hpp"
#include "tether/rpc/any.hpp"

namespace tether::rpc::detail {

class ConnectionCore;

/// A proxy's shared state: one per (connection, id_pack) while alive.
struct NetrefState {
  std::weak_ptr<ConnectionCore> core;
  const ConnectionCore* owner = nullptr;  // identity only: compared while `core` is unexpired
  brine::Value id_pack;
  std::string type_name;
  std::string key;  // dumped id_pack: the proxy-cache key, and what goes back on the wire
  std::uint64_t refcount = 1;
  /// Queues a DEL for `refcount` references on its connection, if it is still open.
  ~NetrefState();
  /// The live core, or throws Disconnected("connection closed").
  std::shared_ptr<ConnectionCore> lock() const;
};

/// Loop thread only.
class ProxyTable {
 public:
  ProxyTable() = default;
  ProxyTable(const ProxyTable&) = delete;
  ProxyTable& operator=(const ProxyTable&) = delete;

  /// The proxy for a received REMOTE_REF: the live one (its refcount counts this reference
  /// too) or a new one.
  Netref make(const brine::Value& id_pack, const std::weak_ptr<ConnectionCore>& core, const ConnectionCore* owner);
  /// Drops the entry of a proxy whose last Netref went.
  void forget(const std::string& key) noexcept;
  /// Proxies still alive.
  [[nodiscard]] std::size_t live() const noexcept;
  /// Entries, live or dead and not yet pruned (constant time; live() walks the table).
  [[nodiscard]] std::size_t entries() const noexcept { return proxies_.size(); }

 private:
  std::unordered_map<std::string, std::weak_ptr<NetrefState>> proxies_;  // by dumped id_pack
};

}  // namespace tether::rpc::detail
