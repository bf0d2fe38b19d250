#pragma once
// Shared by the observability tests: a small service and loopback options with HTTP on the
// RPC port.

#include <cstdint>
#include <stdexcept>

#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"

namespace tether::testing {

/// add, mul and fail (raises ValueError "no good").
inline Service calc_service() {
  Service svc("Calc");
  svc.expose("add", [](std::int64_t a, std::int64_t b) { return a + b; });
  svc.expose("mul", [](std::int64_t a, std::int64_t b) { return a * b; });
  svc.expose("fail", []() -> std::int64_t { throw std::invalid_argument("no good"); });
  return svc;
}

/// 127.0.0.1 on a kernel-chosen port; HTTP on the RPC port when `http`.
inline ServeOptions observe_options(bool http) {
  ServeOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.http.on_rpc_port = http;
  return o;
}

}  // namespace tether::testing
