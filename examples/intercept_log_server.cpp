// intercept_log_server: a tether server that logs every call it serves as one JSON line on
// stderr, with a CallInterceptor (tether/rpc/interceptor.hpp).
//
//   intercept_log_server [--host 127.0.0.1] [--port 18861]
//
// Prints "listening on HOST:PORT" on stdout, serves until SIGINT or SIGTERM. Each line:
//   {"trace":"t-1","side":"served","peer":"127.0.0.1:50312","handler":"callattr","method":"add",
//    "args":"(1, 2)","ok":true,"seconds":1.2e-05}
// and for a failed call "ok":false,"error_type":"ValueError","error":"...".

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "tether/rpc/interceptor.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

class JsonLog final : public tether::rpc::CallInterceptor {
 public:
  tether::rpc::Decision before(tether::rpc::CallInfo& info) override {
    info.trace_id = "t-" + std::to_string(next_.fetch_add(1) + 1);  // carried to after()
    return tether::rpc::Decision::proceed();
  }
  void after(const tether::rpc::CallInfo& info, const tether::rpc::CallOutcome& outcome) override {
    nlohmann::json line = {
        {"trace", info.trace_id}, {"side", info.side == tether::rpc::CallSide::kServed ? "served" : "sent"},
        {"peer", info.peer},      {"handler", lower(tether::rpc::handler_name(info.handler))},
        {"method", info.name},    {"args", info.args},
        {"ok", outcome.ok},       {"seconds", static_cast<double>(outcome.nanos) / 1e9}};
    if (!outcome.ok) {
      line["error_type"] = outcome.error_type;
      line["error"] = outcome.error_message;
    }
    // One write per line: lines from several loop threads do not interleave.
    const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(text.data(), 1, text.size(), stderr);
  }

 private:
  std::atomic<std::uint64_t> next_{0};
};

}  // namespace

int main(int argc, char** argv) {
  tether::ServeOptions options;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--host") == 0) {
      options.host = argv[i + 1];
    } else if (std::strcmp(argv[i], "--port") == 0) {
      options.port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
    } else {
      std::fprintf(stderr, "usage: intercept_log_server [--host H] [--port P]\n");
      return 2;
    }
  }
  tether::Service svc("Calc");
  svc.expose("add", [](std::int64_t a, std::int64_t b) { return a + b; });
  svc.expose("fail", [](std::string why) -> std::int64_t { throw std::invalid_argument(why); });
  options.connection.interceptors = {std::make_shared<JsonLog>()};
  options.connection.interceptor_repr_limit = 200;
  options.on_listen = [](const std::vector<tether::Address>& addresses) {
    std::printf("listening on %s\n", addresses.front().to_string().c_str());
    std::fflush(stdout);
  };
  tether::serve(svc, options);
  return 0;
}
