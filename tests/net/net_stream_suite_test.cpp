// The typed stream suite (tests/stream/stream_suite.hpp) over the net layer's streams: TCP over
// IPv4 loopback, Unix sockets (abstract names) and TLS over TCP.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include <fmt/format.h>

#include "stream_suite.hpp"
#include "test_certs.hpp"
#include "tether/loop/gather.hpp"
#include "tether/net/sockets.hpp"
#include "tether/net/tls.hpp"
#include "tether/net/tls_transport.hpp"

namespace tether::testing {

namespace {

using namespace std::chrono_literals;

/// Small kernel buffers: back-pressure shows after a few hundred KiB, whatever the machine's
/// loopback autotuning (which can otherwise swallow several MiB and hide a full queue).
SocketOptions small_buffers() {
  SocketOptions o;
  o.send_buffer = 128 << 10;
  o.recv_buffer = 128 << 10;
  return o;
}

/// Connects a client to `listener` and accepts the server side: {client, server} fds.
Task<std::pair<Fd, Fd>> connected_pair(Fd listener) {
  Address addr = local_address(listener.get());
  if (addr.is_unix() && addr.host().empty()) throw UsageError("unnamed listener");
  Fd client = co_await connect_socket(addr, 5s, small_buffers());
  int s = ::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (s < 0) throw IoError(errno, "accept4");
  Fd server(s);
  apply_socket_options(server.get(), small_buffers());
  co_return std::make_pair(std::move(client), std::move(server));
}

/// Abortive close: RST instead of FIN (TCP).
void linger_zero(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

}  // namespace

struct TcpFactory {
  static constexpr const char* kName = "Tcp";
  static constexpr ErrorKind kResetError = ErrorKind::kDisconnected;

  static Task<StreamPair> make(EventLoop& loop, StreamOptions first, StreamOptions second) {
    std::vector<Fd> l = bind_sockets(0, "127.0.0.1");
    std::pair<Fd, Fd> fds = co_await connected_pair(std::move(l[0]));
    co_return make_stream_pair(std::make_unique<FdTransport>(loop, std::move(fds.first), "tcp-client"),
                               std::make_unique<FdTransport>(loop, std::move(fds.second), "tcp-server"), first, second);
  }
  static void reset(BufferedStream& victim, BufferedStream&) {
    linger_zero(victim.transport().fd());
    victim.abort();
  }
};

struct UnixFactory {
  static constexpr const char* kName = "Unix";
  static constexpr ErrorKind kResetError = ErrorKind::kDisconnected;

  static Task<StreamPair> make(EventLoop& loop, StreamOptions first, StreamOptions second) {
    static std::atomic<int> counter{0};
    Fd l = bind_unix_socket(fmt::format("@tether-suite-{}-{}", ::getpid(), counter.fetch_add(1)));
    std::pair<Fd, Fd> fds = co_await connected_pair(std::move(l));
    co_return make_stream_pair(std::make_unique<FdTransport>(loop, std::move(fds.first), "unix-client"),
                               std::make_unique<FdTransport>(loop, std::move(fds.second), "unix-server"), first,
                               second);
  }
  /// A unix socket closed with unread data makes its peer's reads fail with ECONNRESET.
  static void reset(BufferedStream& victim, BufferedStream& peer) {
    const char byte = 'r';
    [[maybe_unused]] auto n = ::send(peer.transport().fd(), &byte, 1, MSG_NOSIGNAL);
    victim.abort();
  }
};

struct TlsFactory {
  static constexpr const char* kName = "Tls";
  static constexpr ErrorKind kResetError = ErrorKind::kDisconnected;

  static const TlsContext& client_ctx() {
    static const TlsContext ctx = [] {
      TlsClientOptions o;
      o.ca_file = test_certs().ca_cert;
      return TlsContext::client(o);
    }();
    return ctx;
  }
  static const TlsContext& server_ctx() {
    static const TlsContext ctx = [] {
      TlsServerOptions o;
      o.cert_file = test_certs().server_cert;
      o.key_file = test_certs().server_key;
      return TlsContext::server(o);
    }();
    return ctx;
  }

  static Task<StreamPair> make(EventLoop& loop, StreamOptions first, StreamOptions second) {
    std::vector<Fd> l = bind_sockets(0, "127.0.0.1");
    std::pair<Fd, Fd> fds = co_await connected_pair(std::move(l[0]));
    std::vector<Task<std::unique_ptr<TlsTransport>>> hs;
    hs.push_back(TlsTransport::client(std::move(fds.first), client_ctx(), "localhost", 5s));
    hs.push_back(TlsTransport::server(std::move(fds.second), server_ctx(), 5s));
    std::vector<std::unique_ptr<TlsTransport>> t = co_await gather(std::move(hs));
    (void)loop;
    co_return make_stream_pair(std::move(t[0]), std::move(t[1]), first, second);
  }
  /// The TCP connection ends without close_notify (FIN, then RST): the peer's TLS layer reports
  /// Disconnected (a possible truncation), never a clean EOF.
  static void reset(BufferedStream& victim, BufferedStream&) {
    int fd = victim.transport().fd();
    linger_zero(fd);
    ::shutdown(fd, SHUT_WR);
    victim.abort();
  }
};

using NetStreamFactories = ::testing::Types<TcpFactory, UnixFactory, TlsFactory>;
INSTANTIATE_TYPED_TEST_SUITE_P(Net, StreamSuite, NetStreamFactories, FactoryNames);

}  // namespace tether::testing
