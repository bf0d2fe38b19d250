// StreamServer::start(2): two worker processes behind one port, supervised. The forking runs
// in a helper program (fork_server_helper), driven through spawn_process.
#include <signal.h>

#include <chrono>
#include <set>

#include "test_util.hpp"
#include "tether/net/connect.hpp"
#include "tether/net/process.hpp"

#ifndef TETHER_FORK_HELPER
#error "TETHER_FORK_HELPER must name the helper program"
#endif

namespace tether {
namespace {

using namespace std::chrono_literals;

class ForkTest : public testing::LoopTest {};

/// Asks a worker for its pid; makes it crash if the pid is in `crash_set`.
Task<long> ask_pid(std::uint16_t port, const std::set<long>* crash_set) {
  std::unique_ptr<BufferedStream> s = co_await open_connection("127.0.0.1", port);
  s->write(std::string_view("pid\n"));
  co_await s->drain();
  Bytes line = co_await s->read_until("\n");
  long pid = std::stol(line.str());
  if (crash_set && crash_set->count(pid)) {
    s->write(std::string_view("crash\n"));
    co_await s->drain();
    Bytes rest = co_await s->read_until_close();  // EOF: the worker is gone
    (void)rest;
  }
  co_return pid;
}

struct Outcome {
  std::set<long> first_pids;
  std::set<long> crashed;
  bool replacement_seen = false;
  std::string supervisor_output;
  ExitStatus status;
};

Task<Outcome> scenario(SpawnedProcess* helper) {
  Outcome out;
  Bytes port_line = co_await helper->stream->read_until("\n");
  std::uint16_t port = static_cast<std::uint16_t>(std::stoi(port_line.str().substr(5)));
  // Connections land on whichever worker accepts first: keep asking until both answered. A
  // count of attempts is not enough on a loaded machine, where the second worker may not be
  // scheduled while hundreds of connections go to the first; bound it by time instead.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (out.first_pids.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    long pid = co_await ask_pid(port, nullptr);
    out.first_pids.insert(pid);
  }
  // Crash every original worker that answers: the supervisor replaces each, so a pid outside
  // the first set must turn up (at the latest once both originals are gone).
  for (int i = 0; i < 200 && !out.replacement_seen; ++i) {
    long pid = co_await ask_pid(port, &out.first_pids);
    if (out.first_pids.count(pid)) {
      out.crashed.insert(pid);
    } else {
      out.replacement_seen = true;
    }
  }
  helper->process->send_signal(SIGTERM);
  Bytes rest = co_await helper->stream->read_until_close();
  out.supervisor_output = rest.str();
  out.status = co_await helper->process->wait();
  co_return out;
}

TEST_F(ForkTest, TwoWorkerProcessesServeOnePortAndCrashesAreRestarted) {
  SpawnedProcess helper = spawn_process({TETHER_FORK_HELPER});
  Outcome out = run(scenario(&helper), 60s);
  EXPECT_EQ(out.first_pids.size(), 2u) << "both workers should have served";
  EXPECT_EQ(out.first_pids.count(static_cast<long>(helper.process->pid())), 0u) << "the parent must not serve";
  EXPECT_GE(out.crashed.size(), 1u);
  EXPECT_TRUE(out.replacement_seen) << "a crashed worker must be replaced";
  EXPECT_EQ(out.supervisor_output, "supervisor done\n");
  EXPECT_TRUE(out.status.success()) << out.status.to_string();
}

}  // namespace
}  // namespace tether
