#pragma once
/// \file Child processes as streams: spawn a command and talk to its stdin/stdout through
/// pipes (the stream's write side feeds the child's stdin; its read side is the child's
/// stdout; write_eof()/shutdown_write() closes the child's stdin).
///
/// The child is started with posix_spawn: every descriptor other than 0, 1 and 2 is closed in
/// the child, its signal mask is empty and common signals are reset to their defaults.
/// Writing to a pipe whose reader has gone raises SIGPIPE; spawning therefore sets SIGPIPE to
/// SIG_IGN in this process if it was at its default (ignore_sigpipe(): the write then fails
/// with Disconnected instead of killing the process); the child gets it back at SIG_DFL.

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/base/fd.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/transport.hpp"

namespace tether {

/// What happens to the child's stderr.
enum class ChildStderr { kInherit, kDiscard, kToStdout };

struct ProcessOptions {
  /// Working directory (empty: this process's).
  std::string cwd;
  /// Extra "NAME=value" entries added to (or overriding) the inherited environment.
  std::vector<std::string> env;
  /// Start from an empty environment instead of this process's.
  bool clear_env = false;
  /// Look argv[0] up in PATH when it has no '/'.
  bool search_path = true;
  ChildStderr stderr_mode = ChildStderr::kInherit;
  /// Options of the BufferedStream spawn_process() returns.
  StreamOptions stream;
};

/// How a child ended: exit code, or the signal that killed it.
struct ExitStatus {
  int code = 0;    ///< exit code when signal == 0
  int signal = 0;  ///< terminating signal, or 0
  [[nodiscard]] bool success() const noexcept { return signal == 0 && code == 0; }
  [[nodiscard]] std::string to_string() const;
  friend bool operator==(const ExitStatus&, const ExitStatus&) = default;
};

/// A spawned child. Loop thread only (the loop current at spawn). Destroying a ChildProcess
/// whose child is still running kills it (SIGKILL) and reaps it, so no zombie is left.
class TETHER_API ChildProcess {
 public:
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  /// Waits for the child to exit (pidfd: no polling, no SIGCHLD handler) and reaps it.
  /// Completes at once if it already was. Cancelling leaves the child running.
  Task<ExitStatus> wait();
  /// Non-blocking check; reaps and returns the status if the child has exited.
  std::optional<ExitStatus> poll();
  /// Sends a signal; false if the child is already reaped or kill() failed.
  bool send_signal(int signo) noexcept;

  /// Internal: created by spawn_process.
  ChildProcess(EventLoop& loop, pid_t pid);

 private:
  EventLoop& loop_;
  pid_t pid_;
  Fd pidfd_;
  std::optional<ExitStatus> status_;
};

/// The two halves of a spawn: a transport over the pipes, and the process.
struct SpawnedTransport {
  std::unique_ptr<Transport> transport;
  std::unique_ptr<ChildProcess> process;
};

/// The two halves of a spawn: a BufferedStream over the pipes, and the process.
struct SpawnedProcess {
  std::unique_ptr<BufferedStream> stream;
  std::unique_ptr<ChildProcess> process;
};

/// Starts argv[0] with arguments argv[1..] on the current loop. Throws IoError if the program
/// cannot be started (not found, not executable: the message names it) and UsageError for an
/// empty argv. The transport's peer_name() is "process:PID:argv0".
TETHER_API SpawnedTransport spawn_process_transport(const std::vector<std::string>& argv,
                                                    const ProcessOptions& options = {});

/// spawn_process_transport() wrapped in a BufferedStream (options.stream).
TETHER_API SpawnedProcess spawn_process(const std::vector<std::string>& argv, const ProcessOptions& options = {});

}  // namespace tether
