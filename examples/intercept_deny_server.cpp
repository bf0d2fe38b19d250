// intercept_deny_server: a tether server whose CallInterceptor refuses one method to every
// peer but those on an allow list (an authorization decision by peer address).
//
//   intercept_deny_server [--host 127.0.0.1] [--port 18861] [--deny reset] [--allow IP]...
//
// A refused call raises PermissionError in the caller (a stock RPyC client included); the
// connection stays open and the other methods work:
//   c = rpyc.connect("127.0.0.1", PORT)
//   c.root.add(1, 2)    # 3
//   c.root.reset()      # PermissionError: 'reset' is not allowed from 127.0.0.1

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "tether/rpc/interceptor.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/service.hpp"

namespace {

/// "127.0.0.1:50312" -> "127.0.0.1", "[::1]:50312" -> "::1".
std::string host_of(const std::string& peer) {
  const auto colon = peer.rfind(':');
  std::string host = colon == std::string::npos ? peer : peer.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host;
}

class DenyMethod final : public tether::rpc::CallInterceptor {
 public:
  DenyMethod(std::string method, std::set<std::string> allowed)
      : method_(std::move(method)), allowed_(std::move(allowed)) {}
  tether::rpc::Decision before(tether::rpc::CallInfo& info) override {
    if (info.name != method_) return tether::rpc::Decision::proceed();
    const std::string host = host_of(info.peer);
    if (allowed_.count(host)) return tether::rpc::Decision::proceed();
    return tether::rpc::Decision::deny("'" + method_ + "' is not allowed from " + host);
  }

 private:
  std::string method_;
  std::set<std::string> allowed_;
};

}  // namespace

int main(int argc, char** argv) {
  tether::ServeOptions options;
  std::string deny = "reset";
  std::set<std::string> allowed;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--host") == 0) {
      options.host = argv[i + 1];
    } else if (std::strcmp(argv[i], "--port") == 0) {
      options.port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
    } else if (std::strcmp(argv[i], "--deny") == 0) {
      deny = argv[i + 1];
    } else if (std::strcmp(argv[i], "--allow") == 0) {
      allowed.insert(argv[i + 1]);
    } else {
      std::fprintf(stderr,
                   "usage: intercept_deny_server [--host H] [--port P] [--deny METHOD] [--allow IP]...\n");
      return 2;
    }
  }
  auto counter = std::make_shared<std::int64_t>(0);
  tether::Service svc("Calc");
  svc.expose("add", [counter](std::int64_t a, std::int64_t b) {
    ++*counter;
    return a + b;
  });
  svc.expose("reset", [counter]() {
    const std::int64_t was = *counter;
    *counter = 0;
    return was;
  });
  options.connection.interceptors = {std::make_shared<DenyMethod>(deny, std::move(allowed))};
  options.on_listen = [](const std::vector<tether::Address>& addresses) {
    std::printf("listening on %s\n", addresses.front().to_string().c_str());
    std::fflush(stdout);
  };
  tether::serve(svc, options);
  return 0;
}
