// A tether server on stdin/stdout, for the connect_process test.

#include <cstdint>
#include <cstdio>

#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"

int main() {
  try {
    tether::Service svc("CalcService");
    svc.expose(
        "add", [](std::int64_t a, std::int64_t b) { return a + b; }, tether::arg_names("a", "b"));
    tether::serve_stdio(svc);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "service_stdio_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
