#pragma once
// Runs a Python helper (py_server.py) as a child process: reads "PORT <n>" from its stdout,
// keeps its stdin open (closing it makes the helper exit), reaps it on destruction.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace tether::testing {

class PyProcess {
 public:
  PyProcess(std::vector<std::string> argv, std::vector<std::string> env_extra = {}) {
    int out[2];
    int in[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(in[0], STDIN_FILENO);
      for (auto& e : env_extra) ::putenv(e.data());
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(in[0]);
    stdin_ = in[1];
    FILE* f = ::fdopen(out[0], "r");
    char line[256] = {};
    if (!f || !std::fgets(line, sizeof line, f)) {
      if (f) std::fclose(f);
      stop();
      throw std::runtime_error("python helper did not start: " + argv.back());
    }
    std::fclose(f);
    std::string s(line);
    if (s.rfind("PORT ", 0) != 0) {
      stop();
      throw std::runtime_error("python helper said: " + s);
    }
    port_ = static_cast<std::uint16_t>(std::stoi(s.substr(5)));
  }
  ~PyProcess() { stop(); }
  PyProcess(const PyProcess&) = delete;
  PyProcess& operator=(const PyProcess&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

 private:
  void stop() {
    if (stdin_ >= 0) {
      ::close(stdin_);
      stdin_ = -1;
    }
    if (pid_ > 0) {
      // It exits when its stdin closes; SIGKILL if it has not after 10 s.
      for (int i = 0; i < 1000; ++i) {
        int status;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          return;
        }
        ::usleep(10000);
      }
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  pid_t pid_ = -1;
  int stdin_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace tether::testing
