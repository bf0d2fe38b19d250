#include "rpc/proxy_table.hpp"

#include "rpc/connection_core.hpp"
#include "rpc/pool_alloc.hpp"
#include "tether/brine/codec.hpp"

namespace tether::rpc::detail {

NetrefState::~NetrefState() {
  auto c = core.lock();
  if (!c) return;
  c->proxies().forget(key);
  if (!c->closed()) c->send_del(key, refcount);
}

std::shared_ptr<ConnectionCore> NetrefState::lock() const {
  auto c = core.lock();
  if (!c || c->closed()) throw Disconnected("connection closed");
  return c;
}

Netref ProxyTable::make(const brine::Value& id_pack, const std::weak_ptr<ConnectionCore>& core,
                        const ConnectionCore* owner) {
  std::string key;
  brine::dump_into(id_pack, key);
  auto it = proxies_.find(key);
  if (it != proxies_.end()) {
    if (auto live = it->second.lock()) {
      ++live->refcount;
      return Netref(std::move(live));
    }
  }
  auto st = std::allocate_shared<NetrefState>(PoolAllocator<NetrefState>{});
  st->core = core;
  st->owner = owner;
  st->id_pack = id_pack;
  st->type_name = id_pack.as_tuple()[0].as_str();
  st->key = key;
  proxies_[std::move(key)] = st;
  return Netref(std::move(st));
}

void ProxyTable::forget(const std::string& key) noexcept {
  auto it = proxies_.find(key);
  if (it != proxies_.end() && it->second.expired()) proxies_.erase(it);
}

std::size_t ProxyTable::live() const noexcept {
  std::size_t n = 0;
  for (const auto& [k, w] : proxies_) n += w.expired() ? 0 : 1;
  return n;
}

}  // namespace tether::rpc::detail
