// StreamServer::start(n > 1): tornado's fork_processes. The parent forks n workers that
// serve the already-bound sockets, then supervises them with sigwaitinfo (no loop, no
// threads): crashed workers are restarted up to max_restarts, termination signals are
// forwarded to the workers.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "net/server_impl.hpp"
#include "tether/base/log.hpp"

namespace tether {

namespace {

class SignalMaskGuard {
 public:
  explicit SignalMaskGuard(const sigset_t& block) { ::pthread_sigmask(SIG_BLOCK, &block, &old_); }
  ~SignalMaskGuard() { restore(); }
  SignalMaskGuard(const SignalMaskGuard&) = delete;
  SignalMaskGuard& operator=(const SignalMaskGuard&) = delete;
  void restore() noexcept {
    if (restored_) return;
    restored_ = true;
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  [[nodiscard]] const sigset_t& old() const noexcept { return old_; }

 private:
  sigset_t old_{};
  bool restored_ = false;
};

std::string describe_status(int st) {
  if (WIFEXITED(st)) return fmt::format("exited with code {}", WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return fmt::format("killed by signal {} ({})", WTERMSIG(st), ::strsignal(WTERMSIG(st)));
  return "stopped";
}

void terminate_and_reap(std::map<pid_t, int>& children) {
  for (auto& [pid, id] : children) ::kill(pid, SIGTERM);
  for (auto& [pid, id] : children) {
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
  children.clear();
}

}  // namespace

int StreamServer::Impl::fork_and_supervise(int processes) {
  if (EventLoop::current()) {
    throw UsageError("StreamServer::start(n != 1) forks: call it before creating an EventLoop on this thread");
  }
  if (loop) throw UsageError("StreamServer::start(n != 1) after the server was attached to a loop");
  if (pending.empty()) throw UsageError("StreamServer::start(n != 1): bind() first");
  if (processes <= 0) processes = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  sigset_t handled;
  ::sigemptyset(&handled);
  for (int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) ::sigaddset(&handled, s);
  SignalMaskGuard mask(handled);

  std::map<pid_t, int> children;  // pid -> worker id
  // Returns true in the child.
  auto spawn = [&](int id) -> bool {
    pid_t pid = ::fork();
    if (pid < 0) {
      int err = errno;
      terminate_and_reap(children);
      throw IoError(err, "fork");
    }
    if (pid == 0) {
      mask.restore();
      children.clear();
      worker_id = id;
      for (auto& l : pending) l->unix_path.clear();  // the supervisor owns the socket file
      owned_loop = std::make_unique<EventLoop>();
      attach_to_current_loop();
      serve_pending();
      return true;
    }
    children.emplace(pid, id);
    return false;
  };

  for (int id = 0; id < processes; ++id) {
    if (spawn(id)) return id;
  }
  TETHER_LOG_INFO("supervisor {}: {} worker(s) started", ::getpid(), processes);

  int restarts = 0;
  bool stopping = false;
  while (!children.empty()) {
    siginfo_t info{};
    int sig = ::sigwaitinfo(&handled, &info);
    if (sig < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      terminate_and_reap(children);
      throw IoError(err, "sigwaitinfo");
    }
    if (sig != SIGCHLD) {
      if (!stopping) TETHER_LOG_INFO("supervisor: signal {}: stopping the workers", sig);
      stopping = true;
      for (auto& [pid, id] : children) ::kill(pid, SIGTERM);
      continue;
    }
    for (auto it = children.begin(); it != children.end();) {
      int st = 0;
      pid_t r = ::waitpid(it->first, &st, WNOHANG);
      if (r == 0) {
        ++it;
        continue;
      }
      int id = it->second;
      pid_t pid = it->first;
      it = children.erase(it);
      if (r < 0) continue;
      bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
      if (clean || stopping) {
        TETHER_LOG_INFO("supervisor: worker {} (pid {}) {}", id, pid, describe_status(st));
        continue;
      }
      TETHER_LOG_WARN("supervisor: worker {} (pid {}) {}; restarting", id, pid, describe_status(st));
      if (++restarts > opts.max_restarts) {
        terminate_and_reap(children);
        close_listeners();
        throw Error(ErrorKind::kLimitExceeded,
                    fmt::format("StreamServer: workers crashed {} times (max_restarts {})", restarts, opts.max_restarts));
      }
      if (spawn(id)) return id;
      it = children.begin();  // the map changed; rescan (reaped entries are gone)
    }
  }
  // The parent never serves: release its copies of the sockets.
  close_listeners();
  return kSupervisor;
}

}  // namespace tether
