// A peer in a process of its own, for tests that SIGKILL it or restart it.
//
//   fault_server [--host H] [--port P] [--log FILE]     serves FaultService (fault_service.hpp);
//                                                      prints "PORT <n>" once listening
//   fault_server --client PORT apply|slow               connects to 127.0.0.1:PORT, prints
//                                                      "PORT <PORT>", then calls apply(f, 1)
//                                                      (f blocks until the process is killed)
//                                                      or slow(2000)
//
// Either exits when its stdin reaches EOF (the test closed it), as tests/interop/py_process.hpp
// expects of its children.

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "fault_service.hpp"
#include "tether/rpc/bind.hpp"
#include "tether/service/serve.hpp"
#include "tether/service/sync.hpp"

namespace {

void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

/// Blocks until stdin reaches EOF.
void wait_for_stdin_eof() {
  char buf[64];
  while (::read(STDIN_FILENO, buf, sizeof buf) > 0) {
  }
}

int run_client(std::uint16_t port, const std::string& call) {
  tether::SyncConnection c = tether::connect_sync("127.0.0.1", port);
  say("PORT " + std::to_string(port));
  if (call == "slow") {
    (void)c.callattr<std::int64_t>("slow", 2000);
    return 0;
  }
  tether::ObjectPtr f = tether::make_function_object("blocks", [](std::int64_t) -> std::int64_t {
    wait_for_stdin_eof();
    std::_Exit(0);
  });
  (void)c.callattr<std::int64_t>("apply", f, 1);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tether::ServeOptions opts;
  opts.host = "127.0.0.1";
  opts.port = 0;
  opts.shutdown_grace = std::chrono::milliseconds(200);
  std::string log;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--host" && has_value) {
      opts.host = argv[++i];
    } else if (arg == "--port" && has_value) {
      opts.port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
    } else if (arg == "--log" && has_value) {
      log = argv[++i];
    } else if (arg == "--client" && i + 2 < argc) {
      const auto port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
      return run_client(port, argv[i + 2]);
    } else {
      std::fprintf(stderr,
                   "usage: fault_server [--host H] [--port P] [--log FILE] | --client PORT apply|slow\n");
      return 2;
    }
  }
  try {
    tether::testing::fault_counters().keep_ids = false;
    if (!log.empty()) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd < 0) throw std::runtime_error("cannot open " + log);
      tether::testing::fault_counters().log_fd = fd;
    }
    tether::ServerThread server(tether::testing::fault_service(), opts);
    say("PORT " + std::to_string(server.port()));
    wait_for_stdin_eof();
    server.stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fault_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
