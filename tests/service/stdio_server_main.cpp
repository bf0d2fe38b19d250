// A tether server on stdin/stdout, for the connect_process and connect_sync_process tests.

#include <cstdint>
#include <cstdio>
#include <functional>

#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"

int main() {
  try {
    tether::Service svc("CalcService");
    svc.expose(
        "add", [](std::int64_t a, std::int64_t b) { return a + b; }, tether::arg_names("a", "b"));
    // A blocking callback into the client (the sync facade's test).
    svc.expose("apply", [](std::function<std::int64_t(std::int64_t)> fn, std::int64_t x) { return fn(x); });
    tether::serve_stdio(svc);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "service_stdio_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
