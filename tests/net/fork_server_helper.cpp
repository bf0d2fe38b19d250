// Helper program for fork_test: a StreamServer started with start(2) on 127.0.0.1:0.
// Prints "port N" on stdout before forking. Each worker answers "pid\n" with its pid and
// dies from SIGKILL on "crash\n". The supervisor prints "supervisor done" when its workers
// have exited (after a SIGTERM to it) and exits 0.
#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "tether/base/error.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/net/stream_server.hpp"

using namespace tether;

namespace {

Task<void> pid_handler(std::unique_ptr<BufferedStream> s, Address) {
  while (true) {
    Bytes line;
    bool eof = false;
    try {
      line = co_await s->read_until("\n", 64);
    } catch (const IncompleteRead&) {
      eof = true;
    }
    if (eof) co_return;
    if (line.view() == "crash\n") ::kill(::getpid(), SIGKILL);
    s->write(std::to_string(::getpid()) + "\n");
    co_await s->drain();
  }
}

}  // namespace

int main() {
  ServerOptions opts;
  opts.max_restarts = 5;
  StreamServer server(pid_handler, opts);
  server.bind(0, "127.0.0.1");
  std::printf("port %u\n", server.ports().at(0));
  std::fflush(stdout);
  int id = server.start(2);
  if (id == StreamServer::kSupervisor) {
    std::printf("supervisor done\n");
    std::fflush(stdout);
    return 0;
  }
  EventLoop& loop = server.loop();
  loop.add_signal_handler(SIGTERM, [&loop](int) { loop.stop(); });
  loop.run();
  loop.remove_signal_handler(SIGTERM);
  server.close();
  return 0;
}
