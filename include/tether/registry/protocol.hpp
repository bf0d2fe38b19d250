#pragma once
/// \file The RPyC registry protocol (wire spec §16): the brine datagrams that servers, clients
/// and registries exchange, over UDP (one value per datagram) or TCP (one request per
/// connection, raw brine, no framing).
///
///   request:   ("RPYC", command, args)       command is case-insensitive
///   REGISTER   args (aliases: tuple of str, port: int)     reply "OK"
///   UNREGISTER args (port,)                                reply "OK"
///   QUERY      args (name,)                                reply ((host, port), ...)
///   LIST       args ((filter_host or None,),)              reply (name, ...) or None
///
/// Pure functions on memory: no I/O, no loop, no thread affinity. Decoding is bounded (a
/// request never exceeds kMaxDatagram bytes, and the brine limits below cap what it may hold).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tether/base/bytes.hpp"
#include "tether/base/export.hpp"
#include "tether/base/result.hpp"

namespace tether::registry {

/// RPyC's REGISTRY_PORT (UDP and TCP).
inline constexpr std::uint16_t kRegistryPort = 18811;
/// RPyC's MAX_DGRAM_SIZE: the largest request a registry reads, and the largest reply a
/// Python client reads for QUERY and REGISTER (and for LIST over TCP).
inline constexpr std::size_t kMaxDatagram = 1500;
/// A Python UDP client reads LIST replies of up to ten datagrams' size.
inline constexpr std::size_t kMaxUdpListReply = 10 * kMaxDatagram;
/// RPyC's DEFAULT_PRUNING_TIMEOUT: an entry not refreshed for this long is dropped.
inline constexpr std::chrono::seconds kPruningTimeout{240};
/// RPyC's RegistryClient.REREGISTER_INTERVAL.
inline constexpr std::chrono::seconds kReregisterInterval{60};
/// What a server waits before retrying a registration that was not acknowledged (RPyC's
/// registering thread wakes once a second).
inline constexpr std::chrono::seconds kRegisterRetry{1};
/// RPyC clients' default timeout for a registry's reply.
inline constexpr std::chrono::seconds kClientTimeout{2};
/// The first element of every request.
inline constexpr std::string_view kMagic = "RPYC";

enum class Command { kRegister, kUnregister, kQuery, kList };

/// "REGISTER", "UNREGISTER", "QUERY", "LIST".
TETHER_API std::string_view to_string(Command c) noexcept;

/// One decoded request. Which fields mean something depends on the command.
struct Request {
  Command command = Command::kQuery;
  std::vector<std::string> aliases;        ///< kRegister: as sent (the registry upper-cases them)
  std::uint16_t port = 0;                  ///< kRegister, kUnregister
  std::string name;                        ///< kQuery
  std::optional<std::string> filter_host;  ///< kList: nullopt = every service
};

/// Why a datagram was not a request. A registry ignores all of these (no reply), as RPyC's does.
enum class DecodeError {
  kGarbage,         ///< not one brine value, or over the brine limits below
  kBadMagic,        ///< not a 3-tuple starting with the str "RPYC"
  kUnknownCommand,  ///< the command is not a str naming one of the four commands
  kBadArguments,    ///< the arguments do not fit the command (types, arity, port range, sizes)
};
TETHER_API std::string_view to_string(DecodeError e) noexcept;

/// Bounds on what a request may carry beyond its size (the registry refuses more).
struct RequestLimits {
  std::size_t max_aliases = 16;      ///< aliases in one REGISTER
  std::size_t max_name_bytes = 128;  ///< one alias, queried name or filter host
};

/// A request datagram (or TCP payload). Never throws; anything over kMaxDatagram is kGarbage.
TETHER_API Result<Request, DecodeError> decode_request(std::span<const std::uint8_t> data,
                                                       const RequestLimits& limits = RequestLimits());

/// Request encoders (the bytes RPyC's clients send).
TETHER_API Bytes encode_register(const std::vector<std::string>& aliases, std::uint16_t port);
TETHER_API Bytes encode_unregister(std::uint16_t port);
TETHER_API Bytes encode_query(std::string_view name);
TETHER_API Bytes encode_list(const std::optional<std::string>& filter_host);

/// One (host, port) pair of a QUERY reply.
struct HostPort {
  std::string host;
  std::uint16_t port = 0;
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

/// Reply encoders. encode_query_reply keeps the leading entries that fit in `max_bytes` (a
/// Python client reads one kMaxDatagram); encode_list_reply likewise for names. `kept`, when
/// given, receives how many entries went in.
TETHER_API Bytes encode_ok_reply();
TETHER_API Bytes encode_query_reply(const std::vector<HostPort>& entries,
                                    std::size_t max_bytes = kMaxDatagram, std::size_t* kept = nullptr);
TETHER_API Bytes encode_list_reply(const std::optional<std::vector<std::string>>& names,
                                   std::size_t max_bytes = kMaxDatagram, std::size_t* kept = nullptr);

/// Reply decoders: nullopt when the bytes are not such a reply (bounded like requests, up to
/// kMaxUdpListReply bytes).
TETHER_API bool is_ok_reply(std::span<const std::uint8_t> data) noexcept;
TETHER_API std::optional<std::vector<HostPort>> decode_query_reply(std::span<const std::uint8_t> data);
/// The outer optional: a LIST reply at all; the inner: listing allowed (None = refused).
TETHER_API std::optional<std::optional<std::vector<std::string>>> decode_list_reply(
    std::span<const std::uint8_t> data);

}  // namespace tether::registry
