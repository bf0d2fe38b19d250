#pragma once
// Private: what TlsContext holds, and OpenSSL error helpers.

#include <openssl/ssl.h>

#include <string>
#include <vector>

#include "tether/net/tls.hpp"

namespace tether {

struct TlsContext::Impl {
  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    if (ctx) SSL_CTX_free(ctx);
  }
  SSL_CTX* ctx = nullptr;
  bool server = false;
  bool check_hostname = true;
  std::vector<unsigned char> alpn_wire;  // length-prefixed protocol list
};

namespace detail {
/// Drains OpenSSL's thread-local error queue into "reason; reason" (empty if none).
std::string drain_openssl_errors();
}  // namespace detail

}  // namespace tether
