#include "registry/etcd_keys.hpp"

#include <nlohmann/json.hpp>

#include "tether/registry/registry_url.hpp"
#include "tether/registry/table.hpp"

namespace tether::registry::detail {

std::string service_prefix(const std::string& prefix, const std::string& name) {
  return prefix + RegistryTable::normalize(name) + "/";
}

std::string service_key(const std::string& prefix, const std::string& name, const std::string& host,
                        std::uint16_t port) {
  return service_prefix(prefix, name) + join_host_port(host, port);
}

std::string service_value(rpc::Generation generation, bool tls, std::uint32_t weight) {
  nlohmann::json j = {{"generation", static_cast<int>(generation)}, {"tls", tls}, {"weight", weight}};
  return j.dump();
}

std::optional<Endpoint> parse_service_entry(std::string_view host_port, std::string_view value) {
  std::optional<HostPort> hp = split_host_port(host_port, 0);
  if (!hp || hp->port == 0) return std::nullopt;
  Endpoint ep;
  ep.host = std::move(hp->host);
  ep.port = hp->port;
  nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
  if (!j.is_object()) return ep;
  if (auto g = j.find("generation"); g != j.end() && g->is_number_integer()) {
    const int gen = g->get<int>();
    if (gen == 5) ep.generation = rpc::Generation::k5;
    if (gen == 6) ep.generation = rpc::Generation::k6;
  }
  if (auto t = j.find("tls"); t != j.end() && t->is_boolean()) ep.tls = t->get<bool>();
  if (auto w = j.find("weight"); w != j.end() && w->is_number_unsigned()) {
    ep.weight = static_cast<std::uint32_t>(std::min<std::uint64_t>(w->get<std::uint64_t>(), 1000000));
  }
  return ep;
}

}  // namespace tether::registry::detail
