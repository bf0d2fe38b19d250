// Cross-check with stock Python RPyC at test time: rpyc.core.channel.Channel runs in a child
// /usr/bin/python3 (tests/channel/rpyc_channel_peer.py) over pipes. Its frames are compared
// with encode_frame byte for byte, and it decodes (and echoes) frames tether encoded.
// A missing python3 or rpyc is a test FAILURE, not a skip.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "frame_test_util.hpp"
#include "test_util.hpp"
#include "tether/base/endian.hpp"
#include "tether/base/error.hpp"
#include "tether/channel/channel.hpp"
#include "tether/stream/fd_transport.hpp"

extern char** environ;

namespace tether {
namespace {

using testing::random_text;

std::string python_path() {
  const char* env = std::getenv("TETHER_PYTHON");
  return env && *env ? env : "/usr/bin/python3";
}

/// A child python3 running the peer script with its stdin/stdout on two pipes. Kills and
/// reaps the child if the test ends early.
class PythonPeer {
 public:
  PythonPeer(EventLoop& loop, bool compress) {
    const std::string python = python_path();
    if (::access(python.c_str(), X_OK) != 0) {
      error_ = python + " is not executable (" + std::strerror(errno) +
               "): install python3 and python3-rpyc (Debian) or set TETHER_PYTHON";
      return;
    }
    int to_child[2];
    int from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
      error_ = std::string("pipe2: ") + std::strerror(errno);
      return;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    std::string script = TETHER_CHANNEL_PEER_SCRIPT;
    std::string mode = compress ? "1" : "0";
    std::vector<char*> argv = {const_cast<char*>(python.c_str()), script.data(), mode.data(), nullptr};
    const int rc = posix_spawn(&pid_, python.c_str(), &fa, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(to_child[0]);
    ::close(from_child[1]);
    if (rc != 0) {
      ::close(to_child[1]);
      ::close(from_child[0]);
      pid_ = -1;
      error_ = "posix_spawn " + python + ": " + std::strerror(rc);
      return;
    }
    transport_ = std::make_unique<FdTransport>(loop, Fd(from_child[0]), Fd(to_child[1]), "python");
  }

  ~PythonPeer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  [[nodiscard]] const std::string& error() const { return error_; }
  std::unique_ptr<Transport> take_transport() { return std::move(transport_); }

  /// Waits (bounded) for the child to exit; returns its exit status, or -1.
  int wait_exit(int timeout_ms = 20000) {
    if (pid_ <= 0) return -1;
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      const int n = ::poll(&p, 1, timeout_ms);
      ::close(pidfd);
      if (n <= 0) return -1;  // still running: the destructor kills it
    }
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  std::unique_ptr<Transport> transport_;
  std::string error_;
};

/// One frame exactly as it arrived: header, body, trailer.
Task<Bytes> read_raw_frame(BufferedStream* s) {
  co_await s->fill(kFrameHeaderSize);
  const std::size_t body = load_be32(s->buffer().peek());
  co_await s->fill(kFrameOverhead + body);
  co_return s->buffer().retrieve_as_bytes(kFrameOverhead + body);
}

Task<void> wait_closed(BufferedStream* s) { co_await s->wait_closed(); }

struct Outcome {
  std::string hello;
  bool finished = false;
};

/// The conversation with the Python peer. Failures are reported with gtest assertions.
/// `payloads` must outlive the task.
Task<void> converse(Channel* ch, const std::vector<std::string>* payloads, Outcome* out) {
  const ChannelOptions& opts = ch->options();
  Bytes hello = co_await ch->recv();
  out->hello = std::string(hello.view());
  const std::string zlib_tag = std::string("zlib=") + zlibVersion();
  const bool same_zlib = out->hello.find(zlib_tag) != std::string::npos;
  if (!same_zlib) {
    std::fprintf(stderr,
                 "note: zlib versions differ (python: %s, C++: %s); compressed frames are "
                 "compared by header and content only\n",
                 out->hello.c_str(), zlibVersion());
  }

  // 1. tether encodes, Python's Channel.recv decodes and re-sends with Channel.send; the frame
  //    Python produced is compared with encode_frame byte for byte.
  for (const std::string& p : *payloads) {
    ch->send(OutFrame::copied(p));
    co_await ch->drain();
    Bytes raw = co_await read_raw_frame(&ch->stream());
    const Bytes expected = encode_frame(p, opts);
    const bool should_compress = opts.compress && p.size() > opts.compress_threshold;
    const std::size_t body = load_be32(raw.data());
    EXPECT_EQ(raw.size(), body + kFrameOverhead);
    EXPECT_EQ(raw[4], should_compress ? 1 : 0) << "size " << p.size();
    EXPECT_EQ(raw[raw.size() - 1], kFrameTrailer);
    if (should_compress) {
      EXPECT_EQ(raw[5], 0x78);
      EXPECT_EQ(raw[6], 0x01);  // level 1, as tether sends
      const Bytes inflated = zlib_decompress(raw.view().substr(kFrameHeaderSize, body), p.size());
      EXPECT_TRUE(inflated.view() == p) << "python's compressed echo of " << p.size() << " bytes";
      if (same_zlib) {
        EXPECT_TRUE(raw == expected) << "compressed frame of " << p.size() << " bytes differs";
      }
    } else {
      EXPECT_TRUE(raw == expected) << "raw frame of " << p.size() << " bytes differs";
    }
    // The same bytes through tether's decoder.
    FrameDecoder dec(opts);
    Buffer buf;
    buf.append(raw.view());
    auto frame = dec.peek(buf);
    EXPECT_TRUE(frame && frame->view() == p);
  }

  // 2. Python sends an empty frame: Channel::recv skips it.
  ch->send(OutFrame::copied("CMD:empty"));
  Bytes after = co_await ch->recv();
  EXPECT_EQ(after.view(), "after-empty");
  EXPECT_EQ(ch->stats().empty_frames_in, 1u);

  // 3. The Channel::recv path on Python-encoded frames (compressed ones included).
  for (const std::string& p : *payloads) {
    ch->send(OutFrame::copied(p));
    Bytes echo = co_await ch->recv();
    EXPECT_TRUE(echo.view() == p) << "echo of " << p.size() << " bytes";
  }
  co_await ch->drain();
  out->finished = true;
}

std::vector<std::string> interop_payloads() {
  std::mt19937_64 rng(99);
  std::vector<std::string> v;
  v.push_back("a");
  std::string all(256, '\0');
  for (int i = 0; i < 256; ++i) all[i] = static_cast<char>(i);
  v.push_back(all);
  v.push_back(random_text(rng, 3000, 4));
  v.push_back(random_text(rng, 3001, 4));
  v.push_back(random_text(rng, 70000, 256));
  v.push_back(random_text(rng, 1 << 20, 4));     // 1 MiB compressible
  v.push_back(random_text(rng, 1 << 20, 256));   // 1 MiB random
  v.push_back(random_text(rng, 32 << 20, 4));    // 32 MiB compressible
  v.push_back(random_text(rng, 32 << 20, 256));  // 32 MiB random
  return v;
}

class ChannelInterop : public testing::LoopTest, public ::testing::WithParamInterface<bool> {};

TEST_P(ChannelInterop, StockRpycChannel) {
  const bool compress = GetParam();
  PythonPeer py(loop_, compress);
  ASSERT_TRUE(py.error().empty()) << py.error();
  ChannelOptions opts;
  opts.compress = compress;
  Channel ch(std::make_unique<BufferedStream>(py.take_transport()), opts);
  const std::vector<std::string> payloads = interop_payloads();
  Outcome out;
  std::string failure;
  try {
    run(converse(&ch, &payloads, &out), std::chrono::seconds(240));
  } catch (const std::exception& e) {
    failure = e.what();
  }
  ch.close();  // graceful: the python peer reads EOF once the transport is closed
  run(wait_closed(&ch.stream()));
  const int status = py.wait_exit();
  if (status == 3) {
    FAIL() << python_path() << " cannot import rpyc: install python3-rpyc (Debian) or set "
           << "TETHER_PYTHON to a python3 that has it";
  }
  ASSERT_TRUE(failure.empty()) << "conversation failed: " << failure;
  EXPECT_TRUE(out.finished);
  EXPECT_EQ(out.hello.rfind("hello rpyc=", 0), 0u) << out.hello;
  EXPECT_EQ(status, 0) << "python peer exit status";
}

INSTANTIATE_TEST_SUITE_P(Compression, ChannelInterop, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? std::string("compressed") : std::string("raw");
                         });

}  // namespace
}  // namespace tether
