#pragma once
// Runs the built `tether` program (TETHER_TOOL) as a child process for the tool tests: to
// completion with a deadline (run_tool), or in the background, reading its first line of
// output with a deadline (Background). Waits are poll()s on pipes with deadlines, never sleeps.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace tether::testing {

using ToolClock = std::chrono::steady_clock;

struct ToolResult {
  int code = -1;  ///< exit code; 128 + signal when killed by one; -1 when it had to be killed
  std::string out;
  std::string err;
  double seconds = 0;
};

inline pid_t spawn(const std::vector<std::string>& argv, int* out_fd, int* err_fd, int* in_fd = nullptr) {
  int out[2], err[2], in[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe");
  }
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    ::dup2(in[0], STDIN_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  ::close(in[0]);
  *out_fd = out[0];
  *err_fd = err[0];
  if (in_fd) {
    *in_fd = in[1];
  } else {
    ::close(in[1]);
  }
  return pid;
}

inline int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

/// Reads both pipes until EOF on both or the deadline; true at EOF.
inline bool drain_pipes(int out_fd, int err_fd, std::string& out, std::string& err,
                        ToolClock::time_point deadline) {
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - ToolClock::now()).count();
    if (left <= 0) return false;
    pollfd fds[2] = {{out_open ? out_fd : -1, POLLIN, 0}, {err_open ? err_fd : -1, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t r = ::read(fds[i].fd, buf, sizeof buf);
      if (r > 0) {
        (i == 0 ? out : err).append(buf, static_cast<std::size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        (i == 0 ? out_open : err_open) = false;
      }
    }
  }
  return true;
}

/// Runs `tether ARGS...` to completion (killed after `timeout_s`).
inline ToolResult run_tool(const std::vector<std::string>& args, double timeout_s = 20) {
  std::vector<std::string> argv{TETHER_TOOL};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto t0 = ToolClock::now();
  int out_fd = -1, err_fd = -1;
  const pid_t pid = spawn(argv, &out_fd, &err_fd);
  ToolResult r;
  const auto deadline =
      t0 + std::chrono::duration_cast<ToolClock::duration>(std::chrono::duration<double>(timeout_s));
  const bool eof = drain_pipes(out_fd, err_fd, r.out, r.err, deadline);
  ::close(out_fd);
  ::close(err_fd);
  int status = 0;
  if (!eof) ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  r.code = eof ? decode_status(status) : -1;
  r.seconds = std::chrono::duration<double>(ToolClock::now() - t0).count();
  return r;
}

/// `tether ARGS...` in the background (a server, a tap, a long call).
class Background {
 public:
  explicit Background(const std::vector<std::string>& args) {
    std::vector<std::string> argv{TETHER_TOOL};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = spawn(argv, &out_fd_, &err_fd_);
  }
  /// Any program: argv[0] is its path.
  struct Program {};
  Background(Program, const std::vector<std::string>& argv) { pid_ = spawn(argv, &out_fd_, &err_fd_); }
  ~Background() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  /// The first line of stdout (without the newline), or nullopt if none came in time.
  std::optional<std::string> first_line(double timeout_s = 10) { return line(0, timeout_s); }

  /// Line `index` (0-based) of stdout, or nullopt if it did not come in time.
  std::optional<std::string> line(std::size_t index, double timeout_s = 10) {
    const auto deadline = ToolClock::now() + std::chrono::duration_cast<ToolClock::duration>(
                                                 std::chrono::duration<double>(timeout_s));
    auto nth_end = [&]() -> std::size_t {
      std::size_t pos = 0;
      for (std::size_t i = 0;; ++i) {
        const auto nl = out_.find('\n', pos);
        if (nl == std::string::npos) return std::string::npos;
        if (i == index) return nl;
        pos = nl + 1;
      }
    };
    while (nth_end() == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - ToolClock::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[4096];
      const ssize_t r = ::read(out_fd_, buf, sizeof buf);
      if (r <= 0) return std::nullopt;
      out_.append(buf, static_cast<std::size_t>(r));
    }
    const std::size_t end = nth_end();
    std::size_t start = 0;
    for (std::size_t i = 0; i < index; ++i) start = out_.find('\n', start) + 1;
    return out_.substr(start, end - start);
  }

  /// The address after "listening on " in the first line ("127.0.0.1:PORT"), or "".
  std::string listening_address(double timeout_s = 10) {
    auto line = first_line(timeout_s);
    if (!line || line->rfind("listening on ", 0) != 0) return "";
    std::string addr = line->substr(13);
    const auto comma = addr.find(',');
    if (comma != std::string::npos) addr.resize(comma);
    return addr;
  }

  /// Whether it is still running (not reaped yet).
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      code_ = decode_status(status);
      pid_ = -1;
      return false;
    }
    return true;
  }

  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  /// Waits for exit (SIGKILL after `timeout_s`), collecting all output.
  ToolResult wait(double timeout_s = 20) {
    ToolResult r;
    const auto deadline = ToolClock::now() + std::chrono::duration_cast<ToolClock::duration>(
                                                 std::chrono::duration<double>(timeout_s));
    std::string more_out;
    const bool eof = drain_pipes(out_fd_, err_fd_, more_out, err_, deadline);
    out_ += more_out;
    if (pid_ > 0) {
      if (!eof) ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      code_ = eof ? decode_status(status) : -1;
      pid_ = -1;
    }
    r.code = code_;
    r.out = out_;
    r.err = err_;
    return r;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  int code_ = -1;
  std::string out_;
  std::string err_;
};

/// A `tether serve --demo` (with --http when kHttp) on a loopback port from the kernel, started
/// once for a test suite and stopped gracefully after it (SIGTERM: exit code 0 expected).
template <bool kHttp>
class DemoServerSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<std::string> args{"serve", "--demo"};
    if (kHttp) args.emplace_back("--http");
    args.emplace_back("127.0.0.1:0");
    server_ = new Background(args);
    addr_ = server_->listening_address();
  }
  static void TearDownTestSuite() {
    server_->signal(SIGTERM);
    ToolResult r = server_->wait(15);
    EXPECT_EQ(r.code, 0) << r.err;  // graceful stop on SIGTERM
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_FALSE(addr_.empty()) << "tether serve --demo did not start"; }

  static inline Background* server_ = nullptr;
  static inline std::string addr_;
};

/// A loopback socket bound to a free port: listening (but never accepting) or closed again.
class PortHolder {
 public:
  explicit PortHolder(bool listen) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("bind");
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (listen) {
      ::listen(fd_, 16);
    } else {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~PortHolder() {
    if (fd_ >= 0) ::close(fd_);
  }
  PortHolder(const PortHolder&) = delete;
  PortHolder& operator=(const PortHolder&) = delete;
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

/// One line on stderr, ending in a newline.
inline bool one_line(const std::string& s) { return !s.empty() && s.find('\n') == s.size() - 1; }

}  // namespace tether::testing
