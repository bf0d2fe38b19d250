#pragma once
// A real etcd (Debian's etcd-server) for tests: one or more members on loopback ports that
// were free a moment before (bound to port 0 by this process, then released), in a temporary
// directory removed afterwards. Members can be killed (SIGKILL) and started again, with their
// data or wiped. Blocking helpers for test set-up: every wait is bounded.
//
// With a network namespace (one the test created), the members run inside it (`ip netns exec`,
// which execs etcd in place: the pid is etcd's) on `host`, an address of that namespace, and
// the health checks are made from a thread that entered it.

#include <curl/curl.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tether/base/fd.hpp"
#include "tether/net/sockets.hpp"

namespace tether::testing {

class EtcdCluster {
 public:
  /// The etcd program, or "" when it is not installed.
  static std::string program() {
    for (const char* p : {"/usr/bin/etcd", "/usr/local/bin/etcd"}) {
      if (::access(p, X_OK) == 0) return p;
    }
    return {};
  }

  /// Starts `members` members and waits until every one reports healthy (throws otherwise).
  explicit EtcdCluster(int members = 1, std::string host = "127.0.0.1", std::string netns = "",
                       std::string ip_program = "")
      : host_(std::move(host)), netns_(std::move(netns)), ip_program_(std::move(ip_program)) {
    if (program().empty()) throw std::runtime_error("etcd is not installed (Debian package etcd-server)");
    char tmpl[] = "/tmp/tether-etcd.XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    for (int i = 0; i < members; ++i) {
      Member m;
      m.name = "m" + std::to_string(i);
      m.client_port = free_port();
      m.peer_port = free_port();
      members_.push_back(m);
    }
    for (int i = 0; i < members; ++i) spawn(i, /*fresh=*/true);
    for (int i = 0; i < members; ++i) {
      if (!wait_healthy(i, std::chrono::seconds(30)))
        throw std::runtime_error("etcd did not become healthy: " + log(i));
    }
  }
  ~EtcdCluster() {
    for (int i = 0; i < static_cast<int>(members_.size()); ++i) kill(i);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  /// "127.0.0.1:PORT" of member i's client side.
  [[nodiscard]] std::string endpoint(int i) const {
    return host_ + ":" + std::to_string(members_.at(i).client_port);
  }
  /// "etcd://127.0.0.1:P0,127.0.0.1:P1,..." (members in order).
  [[nodiscard]] std::string url() const {
    std::string out = "etcd://";
    for (std::size_t i = 0; i < members_.size(); ++i) out += (i ? "," : "") + endpoint(static_cast<int>(i));
    return out;
  }

  /// SIGKILLs member i and reaps it.
  void kill(int i) {
    Member& m = members_.at(i);
    if (m.pid <= 0) return;
    ::kill(m.pid, SIGKILL);
    ::waitpid(m.pid, nullptr, 0);
    m.pid = -1;
  }
  /// Starts member i again on the same ports; `wipe`: with an empty data directory (a new
  /// one-member cluster: only for single-member clusters). Waits until it is healthy.
  void restart(int i, bool wipe) {
    kill(i);
    if (wipe) {
      std::error_code ec;
      std::filesystem::remove_all(data_dir(i), ec);
    }
    spawn(i, wipe);
    if (!wait_healthy(i, std::chrono::seconds(30)))
      throw std::runtime_error("etcd did not come back: " + log(i));
  }

  /// Polls member i's /health until it says true or `limit` passed.
  bool wait_healthy(int i, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (members_.at(i).pid > 0 && ::waitpid(members_.at(i).pid, &status, WNOHANG) == members_.at(i).pid) {
        members_.at(i).pid = -1;
        return false;  // it exited
      }
      std::string body;
      if (health(i, &body) == 200 && body.find("\"true\"") != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling an external process
    }
    return false;
  }

  /// A blocking HTTP request to `url` (POST when `method` is "POST"); the status, 0 if none.
  static long http(const std::string& method, const std::string& url, const std::string& body,
                   std::string* reply = nullptr, const std::string& header = "") {
    CURL* c = curl_easy_init();
    if (!c) return 0;
    std::string out;
    curl_slist* headers = header.empty() ? nullptr : curl_slist_append(nullptr, header.c_str());
    if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (method == "POST") curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, body.c_str());
    curl_easy_setopt(
        c, CURLOPT_WRITEFUNCTION, +[](char* d, std::size_t s, std::size_t n, void* u) {
          static_cast<std::string*>(u)->append(d, s * n);
          return s * n;
        });
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    if (reply) *reply = out;
    return status;
  }

  /// POST /v3/<path> to member i (JSON in, JSON text out), with an auth token if given.
  std::string post(int i, const std::string& path, const std::string& json, const std::string& token = "") {
    std::string out;
    http("POST", "http://" + endpoint(i) + "/v3/" + path, json, &out,
         token.empty() ? "" : "Authorization: " + token);
    return out;
  }

  /// Member i's log (for failure messages).
  [[nodiscard]] std::string log(int i) const {
    std::string text;
    if (FILE* f = std::fopen((dir_ + "/" + members_.at(i).name + ".log").c_str(), "r")) {
      char buf[4096];
      std::size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
      std::fclose(f);
    }
    return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
  }

  [[nodiscard]] int size() const noexcept { return static_cast<int>(members_.size()); }

 private:
  struct Member {
    std::string name;
    std::uint16_t client_port = 0;
    std::uint16_t peer_port = 0;
    pid_t pid = -1;
  };

  static std::uint16_t free_port() {
    std::vector<Fd> fds = bind_sockets(0, "127.0.0.1");
    return local_address(fds.front().get()).port();
  }

  [[nodiscard]] std::string data_dir(int i) const { return dir_ + "/" + members_.at(i).name + ".data"; }

  /// GET /health of member i, from inside its namespace when it has one.
  long health(int i, std::string* body) {
    const std::string url = "http://" + endpoint(i) + "/health";
    if (netns_.empty()) return http("GET", url, "", body);
    long status = 0;
    std::thread t([&]() {
      const int fd = ::open(("/var/run/netns/" + netns_).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return;
      const bool entered = ::setns(fd, CLONE_NEWNET) == 0;
      ::close(fd);
      if (entered) status = http("GET", url, "", body);
    });
    t.join();
    return status;
  }

  void spawn(int i, bool fresh) {
    Member& m = members_.at(i);
    std::string cluster;
    for (const Member& o : members_) {
      cluster +=
          (cluster.empty() ? "" : ",") + o.name + "=http://" + host_ + ":" + std::to_string(o.peer_port);
    }
    const std::string client = "http://" + host_ + ":" + std::to_string(m.client_port);
    const std::string peer = "http://" + host_ + ":" + std::to_string(m.peer_port);
    std::vector<std::string> args;
    if (!netns_.empty()) args = {ip_program_, "netns", "exec", netns_};
    std::vector<std::string> etcd = {program(),
                                     "--name",
                                     m.name,
                                     "--data-dir",
                                     data_dir(i),
                                     "--listen-client-urls",
                                     client,
                                     "--advertise-client-urls",
                                     client,
                                     "--listen-peer-urls",
                                     peer,
                                     "--initial-advertise-peer-urls",
                                     peer,
                                     "--initial-cluster",
                                     cluster,
                                     "--initial-cluster-state",
                                     fresh ? "new" : "existing",
                                     "--initial-cluster-token",
                                     "tether-test",
                                     "--heartbeat-interval",
                                     "50",
                                     "--election-timeout",
                                     "500",
                                     "--logger",
                                     "zap",
                                     "--log-outputs",
                                     "stderr"};
    args.insert(args.end(), etcd.begin(), etcd.end());
    const std::string log_path = dir_ + "/" + m.name + ".log";
    std::vector<char*> argv;  // built before fork: the child only calls async-signal-safe functions
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    m.pid = pid;
  }

  std::string host_;
  std::string netns_;
  std::string ip_program_;
  std::string dir_;
  std::vector<Member> members_;
};

}  // namespace tether::testing
