// StreamServer::start(2): two worker processes behind one port, supervised. The forking runs
// in a helper program (fork_server_helper), driven through spawn_process.
#include <signal.h>

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

Task<long> ask_pid(std::uint16_t port, bool crash) {
  std::unique_ptr<BufferedStream> s = co_await open_connection("127.0.0.1", port);
  s->write(std::string_view("pid\n"));
  co_await s->drain();
  Bytes line = co_await s->read_until("\n");
  long pid = std::stol(line.str());
  if (crash) {
    s->write(std::string_view("crash\n"));
    co_await s->drain();
    Bytes rest = co_await s->read_until_close();  // EOF: the worker is gone
    (void)rest;
  }
  co_return pid;
}

struct Outcome {
  std::set<long> first_pids;
  long crashed = 0;
  bool replacement_seen = false;
  std::string supervisor_output;
  ExitStatus status;
};

Task<Outcome> scenario(SpawnedProcess* helper) {
  Outcome out;
  Bytes port_line = co_await helper->stream->read_until("\n");
  std::uint16_t port = static_cast<std::uint16_t>(std::stoi(port_line.str().substr(5)));
  // Connections land on whichever worker accepts first: keep asking until both answered.
  for (int i = 0; i < 500 && out.first_pids.size() < 2; ++i) {
    long pid = co_await ask_pid(port, false);
    out.first_pids.insert(pid);
  }
  // Crash one worker: the supervisor starts a replacement with a new pid.
  out.crashed = co_await ask_pid(port, true);
  for (int i = 0; i < 500 && !out.replacement_seen; ++i) {
    long pid = co_await ask_pid(port, false);
    if (!out.first_pids.count(pid)) out.replacement_seen = true;
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
  EXPECT_TRUE(out.first_pids.count(out.crashed));
  EXPECT_TRUE(out.replacement_seen) << "a crashed worker must be replaced";
  EXPECT_EQ(out.supervisor_output, "supervisor done\n");
  EXPECT_TRUE(out.status.success()) << out.status.to_string();
}

}  // namespace
}  // namespace tether
