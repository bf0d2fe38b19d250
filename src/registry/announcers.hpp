#pragma once
// Private: the ServerHooks that announce a server (see tether/registry/announce.hpp).

#include <memory>
#include <optional>
#include <string>

#include "tether/registry/announce.hpp"
#include "tether/registry/registry_url.hpp"

namespace tether::registry::detail {

/// The port a server listens on (its first IP address), or nullopt (a Unix socket).
std::optional<std::uint16_t> listening_port(const ServerInfo& info);
/// info.host when it is one numeric address (not a wildcard, not a name), else "".
std::string listening_ip(const ServerInfo& info);

std::unique_ptr<ServerHook> make_rpyc_announcer(const ServerInfo& info, const RegistryUrl& url,
                                                const AnnounceOptions& options);
std::unique_ptr<ServerHook> make_etcd_announcer(const ServerInfo& info, const RegistryUrl& url,
                                                const AnnounceOptions& options);

}  // namespace tether::registry::detail
