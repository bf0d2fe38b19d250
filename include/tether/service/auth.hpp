#pragma once
/// \file The optional shared-token check on connect (ServeOptions::auth_token,
/// ClientOptions::auth_token): tether-to-tether only.
///
/// Before the RPyC protocol starts -- where an RPyC server's `authenticator=` callable sees the
/// raw socket -- a tether client with a token sends
///
///     "TTHR" | version 0x01 | token length (u16, big-endian) | token
///
/// and the server answers "TTHR" 0x01 (accepted) or "TTHR" 0x00 (refused, then it closes).
/// The comparison is constant-time in the token's contents. A client that does not start with
/// the preamble (a stock RPyC client, a tether client without a token) gets its first request
/// answered with PermissionError("... requires an auth token ...") and the connection closes;
/// the server goes on serving others. The token travels in clear text unless the connection
/// is TLS: use it on loopback, Unix sockets or TLS; over networks prefer mutual TLS.

#include <cstddef>
#include <string>
#include <string_view>

#include "tether/base/error.hpp"
#include "tether/base/export.hpp"

namespace tether {

/// The server refused the client's auth token, or did not take part in the token handshake.
/// Kind: kProtocolError.
class TETHER_API AuthenticationError : public Error {
 public:
  explicit AuthenticationError(const std::string& what) : Error(ErrorKind::kProtocolError, what) {}
};

namespace auth {

inline constexpr std::string_view kMagic = "TTHR";
inline constexpr unsigned char kVersion = 1;
inline constexpr unsigned char kAccepted = 1;
inline constexpr unsigned char kRefused = 0;
/// Longest token accepted (bytes).
inline constexpr std::size_t kMaxTokenSize = 1024;

/// Equal contents, in time that depends only on expected.size() (and not on where the inputs
/// differ). `given` is what the peer sent, `expected` the configured token.
TETHER_API bool constant_time_equal(std::string_view given, std::string_view expected) noexcept;

/// The client's preamble for `token` (UsageError if empty or longer than kMaxTokenSize).
TETHER_API std::string client_hello(std::string_view token);

}  // namespace auth

}  // namespace tether
