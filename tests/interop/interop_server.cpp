// The tether server used by the Python-client interop tests. Listens on 127.0.0.1 with a
// kernel-chosen port, prints "PORT <n>" on stdout, serves until SIGTERM/SIGINT or stdin EOF.
// --no-compress: its channels do not compress (large bytes then leave spliced, uncopied).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <optional>

#include "interop_objects.hpp"
#include "tether/channel/channel.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/io_watcher.hpp"
#include "tether/rpc/connection.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/fd_transport.hpp"

using namespace tether;

int main(int argc, char** argv) {
  ChannelOptions channel_opts;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-compress") == 0) {
      channel_opts.compress = false;
    } else {
      std::fprintf(stderr, "usage: %s [--no-compress]\n", argv[0]);
      return 2;
    }
  }
  EventLoop loop;
  Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener.get(), 128) != 0) {
    std::perror("bind/listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("PORT %d\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  // What the roots report (interop_objects.hpp, ServerView): per connection number, its
  // connection and channel while open, its export count once its close was handled, and the
  // objects its root made (kept after the connection is gone, so a test can see them die).
  struct ConnRecord {
    Connection* conn = nullptr;  // null once closed
    Channel* channel = nullptr;  // owned by conn
    std::optional<std::size_t> exported_at_close;
    std::shared_ptr<interop::LiveObjects> live = std::make_shared<interop::LiveObjects>();
  };
  std::list<std::unique_ptr<Connection>> conns;
  std::map<std::int64_t, ConnRecord> records;
  std::int64_t next_id = 1;
  std::size_t closed_connections = 0;
  std::size_t last_closed_exported = 0;

  IoWatcher accept_watcher(loop, listener.get());
  accept_watcher.set_handler([&](std::uint32_t) {
    for (;;) {
      int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;
      int nodelay = 1;
      ::setsockopt(fd, IPPROTO_TCP, 1 /*TCP_NODELAY*/, &nodelay, sizeof nodelay);
      const std::int64_t id = next_id++;
      ConnRecord& rec = records[id];
      interop::ServerView view;
      view.connection_id = id;
      view.last_closed_exported = [&] { return last_closed_exported; };
      view.closed_connections = [&] { return closed_connections; };
      view.exported_at_close = [&](std::int64_t n) -> std::optional<std::size_t> {
        auto it = records.find(n);
        return it == records.end() ? std::nullopt : it->second.exported_at_close;
      };
      view.live_objects_of = [&](std::int64_t n) -> std::optional<std::size_t> {
        auto it = records.find(n);
        if (it == records.end()) return std::nullopt;
        return it->second.live->count();
      };
      view.connection_stats = [&records, id] {
        const ConnRecord& r = records.at(id);
        return r.conn ? r.conn->stats() : ConnectionStats{};
      };
      view.channel_stats = [&records, id] {
        const ConnRecord& r = records.at(id);
        return r.channel ? r.channel->stats() : ChannelStats{};
      };
      auto transport = std::make_unique<FdTransport>(loop, Fd(fd), "client");
      auto channel = std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(transport)), channel_opts);
      rec.channel = channel.get();
      auto conn = std::make_unique<Connection>(std::move(channel), interop::make_interop_root(std::move(view), rec.live));
      Connection* raw = conn.get();
      rec.conn = raw;
      auto it = conns.insert(conns.end(), std::move(conn));
      raw->set_close_callback([&, it, raw, id] {
        ConnRecord& r = records.at(id);
        r.exported_at_close = raw->stats().exported;
        r.conn = nullptr;
        r.channel = nullptr;
        last_closed_exported = *r.exported_at_close;
        ++closed_connections;
        // Destroy on a later turn: we are inside the connection's own close notification.
        loop.call_soon([&conns, it] { conns.erase(it); });
      });
      raw->start();
    }
  });
  accept_watcher.enable_reading();

  loop.add_signal_handler(SIGTERM, [&](int) { loop.stop(); });
  loop.add_signal_handler(SIGINT, [&](int) { loop.stop(); });
  IoWatcher stdin_watcher(loop, STDIN_FILENO);
  stdin_watcher.set_handler([&](std::uint32_t) {
    char buf[256];
    if (::read(STDIN_FILENO, buf, sizeof buf) <= 0) loop.stop();
  });
  stdin_watcher.enable_reading();
  loop.run();
  conns.clear();
  loop.remove_signal_handler(SIGTERM);
  loop.remove_signal_handler(SIGINT);
  return 0;
}
