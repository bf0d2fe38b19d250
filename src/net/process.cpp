#include "tether/net/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "net/readiness.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/fd_transport.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/time.hpp"

extern char** environ;

namespace tether {

namespace {

using detail::Readiness;

ExitStatus decode_status(int st) {
  ExitStatus s;
  if (WIFEXITED(st)) s.code = WEXITSTATUS(st);
  if (WIFSIGNALED(st)) s.signal = WTERMSIG(st);
  return s;
}

struct SpawnAttrs {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnAttrs() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnAttrs() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnAttrs(const SpawnAttrs&) = delete;
  SpawnAttrs& operator=(const SpawnAttrs&) = delete;
};

std::vector<std::string> build_env(const ProcessOptions& o) {
  std::vector<std::string> env;
  if (!o.clear_env) {
    for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  }
  for (const auto& kv : o.env) {
    auto eq = kv.find('=');
    std::string name = kv.substr(0, eq);
    std::erase_if(env, [&](const std::string& cur) { return cur.compare(0, name.size() + 1, name + "=") == 0; });
    env.push_back(kv);
  }
  return env;
}

}  // namespace

std::string ExitStatus::to_string() const {
  if (signal) return fmt::format("killed by signal {} ({})", signal, ::strsignal(signal));
  return fmt::format("exited with code {}", code);
}

ChildProcess::ChildProcess(EventLoop& loop, pid_t pid) : loop_(loop), pid_(pid) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) {
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    pidfd_.reset(fd);
  }
}

ChildProcess::~ChildProcess() {
  if (status_) return;
  if (poll()) return;
  ::kill(pid_, SIGKILL);
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
}

std::optional<ExitStatus> ChildProcess::poll() {
  if (status_) return status_;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = decode_status(st);
    pidfd_.reset();
  } else if (r < 0 && errno == ECHILD) {
    // Reaped by someone else (a SIGCHLD handler with SIG_IGN): the status is lost.
    status_ = ExitStatus{-1, 0};
    pidfd_.reset();
  }
  return status_;
}

bool ChildProcess::send_signal(int signo) noexcept {
  if (status_) return false;
  return ::kill(pid_, signo) == 0;
}

Task<ExitStatus> ChildProcess::wait() {
  loop_.assert_in_loop_thread();
  while (!poll()) {
    if (pidfd_) {
      Readiness r(loop_, pidfd_.get());
      r.clear(Readiness::kRead);
      co_await r.wait(Readiness::kRead);
    } else {
      // No pidfd (old kernel): poll with a short period.
      co_await sleep(std::chrono::milliseconds(10));
    }
  }
  co_return *status_;
}

SpawnedTransport spawn_process_transport(const std::vector<std::string>& argv, const ProcessOptions& o) {
  if (argv.empty() || argv[0].empty()) throw UsageError("spawn_process: empty argv");
  EventLoop& loop = EventLoop::current_or_throw();
  ignore_sigpipe();  // (the child gets SIGPIPE back at its default: see setsigdefault below)

  int in_pipe[2];   // child's stdin: child reads [0], we write [1]
  int out_pipe[2];  // child's stdout: child writes [1], we read [0]
  if (::pipe2(in_pipe, O_CLOEXEC) < 0) throw IoError(errno, "pipe2");
  Fd in_r(in_pipe[0]), in_w(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) < 0) throw IoError(errno, "pipe2");
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (!set_nonblocking(in_w.get()) || !set_nonblocking(out_r.get())) throw IoError(errno, "fcntl(O_NONBLOCK)");

  SpawnAttrs sa;
  posix_spawn_file_actions_adddup2(&sa.actions, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&sa.actions, out_w.get(), 1);
  if (o.stderr_mode == ChildStderr::kToStdout) {
    posix_spawn_file_actions_adddup2(&sa.actions, out_w.get(), 2);
  } else if (o.stderr_mode == ChildStderr::kDiscard) {
    posix_spawn_file_actions_addopen(&sa.actions, 2, "/dev/null", O_WRONLY, 0);
  }
  posix_spawn_file_actions_addclosefrom_np(&sa.actions, 3);
  if (!o.cwd.empty()) posix_spawn_file_actions_addchdir_np(&sa.actions, o.cwd.c_str());

  sigset_t empty, defaults;
  ::sigemptyset(&empty);
  ::sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM}) ::sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&sa.attr, &empty);
  posix_spawnattr_setsigdefault(&sa.attr, &defaults);
  posix_spawnattr_setflags(&sa.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<std::string> env = build_env(o);
  std::vector<char*> cenv;
  for (auto& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  pid_t pid = -1;
  int rc = o.search_path ? ::posix_spawnp(&pid, cargv[0], &sa.actions, &sa.attr, cargv.data(), cenv.data())
                         : ::posix_spawn(&pid, cargv[0], &sa.actions, &sa.attr, cargv.data(), cenv.data());
  if (rc != 0) throw IoError(rc, fmt::format("spawn '{}'", argv[0]));
  in_r.reset();
  out_w.reset();

  auto process = std::make_unique<ChildProcess>(loop, pid);
  std::string name = fmt::format("process:{}:{}", pid, argv[0]);
  auto transport = std::make_unique<FdTransport>(loop, std::move(out_r), std::move(in_w), std::move(name));
  return SpawnedTransport{std::move(transport), std::move(process)};
}

SpawnedProcess spawn_process(const std::vector<std::string>& argv, const ProcessOptions& options) {
  SpawnedTransport t = spawn_process_transport(argv, options);
  auto stream = std::make_unique<BufferedStream>(std::move(t.transport), options.stream);
  return SpawnedProcess{std::move(stream), std::move(t.process)};
}

}  // namespace tether
