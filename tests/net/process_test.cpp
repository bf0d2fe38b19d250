// Child processes as streams.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include "test_util.hpp"
#include "tether/net/process.hpp"
#include "tether/stream/buffered_stream.hpp"

namespace tether {
namespace {

using namespace std::chrono_literals;

class ProcessTest : public testing::LoopTest {};

Task<std::string> cat_round_trip(SpawnedProcess* p) {
  p->stream->write(std::string_view("one\ntwo\n"));
  co_await p->stream->drain();
  Bytes first = co_await p->stream->read_until("\n");
  p->stream->write_eof();  // closes cat's stdin: it ends after echoing the rest
  Bytes rest = co_await p->stream->read_until_close();
  co_return first.str() + "|" + rest.str();
}

TEST_F(ProcessTest, TalksToCatThroughPipes) {
  SpawnedProcess p = spawn_process({"cat"});
  EXPECT_GT(p.process->pid(), 0);
  EXPECT_NE(p.stream->transport().peer_name().find("cat"), std::string::npos);
  EXPECT_EQ(run(cat_round_trip(&p)), "one\n|two\n");
  ExitStatus st = run(p.process->wait());
  EXPECT_TRUE(st.success()) << st.to_string();
}

TEST_F(ProcessTest, ExitCodeAndSignal) {
  SpawnedProcess three = spawn_process({"sh", "-c", "exit 3"});
  EXPECT_EQ(run(three.process->wait()), (ExitStatus{3, 0}));
  SpawnedProcess sleeper = spawn_process({"sleep", "30"});
  EXPECT_FALSE(sleeper.process->poll());
  EXPECT_TRUE(sleeper.process->send_signal(SIGKILL));
  ExitStatus st = run(sleeper.process->wait());
  EXPECT_EQ(st.signal, SIGKILL);
  EXPECT_FALSE(st.success());
  EXPECT_NE(st.to_string().find("signal"), std::string::npos);
  EXPECT_FALSE(sleeper.process->send_signal(SIGTERM));  // already reaped
}

Task<std::string> read_all(BufferedStream* s) {
  Bytes b = co_await s->read_until_close();
  co_return b.str();
}

TEST_F(ProcessTest, EnvironmentCwdAndStderr) {
  ProcessOptions o;
  o.env = {"TETHER_TEST_VALUE=forty-two"};
  o.cwd = "/";
  o.stderr_mode = ChildStderr::kToStdout;
  SpawnedProcess p = spawn_process({"sh", "-c", "echo $TETHER_TEST_VALUE; pwd; echo oops >&2"}, o);
  EXPECT_EQ(run(read_all(p.stream.get())), "forty-two\n/\noops\n");
  EXPECT_TRUE(run(p.process->wait()).success());
}

TEST_F(ProcessTest, OnlyStdioIsInherited) {
  // Descriptors above 2 are closed in the child, whatever their CLOEXEC flag.
  int leaked = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(leaked, 3);
  SpawnedProcess p = spawn_process({"sh", "-c", fmt::format("[ -e /proc/self/fd/{} ] && echo open || echo closed", leaked)});
  EXPECT_EQ(run(read_all(p.stream.get())), "closed\n");
  ::close(leaked);
  EXPECT_TRUE(run(p.process->wait()).success());
}

TEST_F(ProcessTest, MissingProgramIsAnIoError) {
  try {
    (void)spawn_process({"/nonexistent/tether-no-such-program"});
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(e.code(), ENOENT);
    EXPECT_NE(std::string(e.what()).find("tether-no-such-program"), std::string::npos);
  }
  EXPECT_THROW((void)spawn_process({}), UsageError);
}

TEST_F(ProcessTest, DestroyingARunningChildKillsAndReapsIt) {
  pid_t pid;
  {
    SpawnedProcess p = spawn_process({"sleep", "30"});
    pid = p.process->pid();
  }
  EXPECT_EQ(::kill(pid, 0), -1);  // no such process (reaped, not a zombie)
  EXPECT_EQ(errno, ESRCH);
}

}  // namespace
}  // namespace tether
