#include "tether/registry/registry_server.hpp"

#include <algorithm>
#include <utility>

#include "registry/udp_socket.hpp"
#include "tether/base/error.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/stop_signals.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/loop/time.hpp"
#include "tether/net/stream_server.hpp"

namespace tether::registry {

struct RegistryServer::Impl {
  explicit Impl(RegistryServerOptions o)
      : options(std::move(o)), table(options.limits, options.pruning_timeout) {}

  RegistryServerOptions options;
  RegistryTable table;
  RegistryServerStats stats;
  EventLoop* loop = nullptr;
  std::unique_ptr<TaskGroup> tasks;
  std::unique_ptr<detail::UdpSocket> udp;
  // Destroyed first (declared last): its handlers use the members above.
  std::unique_ptr<StreamServer> tcp;

  void read_datagrams(RegistryServer& self);

  /// Warnings about refused requests, at most one per kWarnEvery per kind (a flood must not
  /// flood the log too); the ones left out are counted in the next.
  static constexpr Duration kWarnEvery = std::chrono::seconds(10);
  struct WarnLimit {
    TimePoint last{};
    std::uint64_t suppressed = 0;
  };
  WarnLimit network_warn;
  WarnLimit full_warn;
  /// True (with the suppressed count in `*skipped`) when a warning may be logged now.
  static bool may_warn(WarnLimit& w, std::uint64_t* skipped) {
    const TimePoint now = Clock::now();
    if (w.last != TimePoint{} && now - w.last < kWarnEvery) {
      ++w.suppressed;
      return false;
    }
    *skipped = std::exchange(w.suppressed, 0);
    w.last = now;
    return true;
  }
};

namespace {

Task<void> prune_periodically(RegistryServer::Impl* impl) {
  const Duration period =
      std::max<Duration>(impl->options.pruning_timeout / 4, std::chrono::milliseconds(100));
  for (;;) {
    co_await sleep(period);
    impl->table.prune(Clock::now());
  }
}

/// One TCP request: read until it decodes (or kMaxDatagram bytes, EOF, the time limit), reply,
/// close (RPyC's TCP registry: one request per connection).
Task<void> serve_tcp(RegistryServer* self, RegistryServer::Impl* impl, std::unique_ptr<BufferedStream> stream,
                     Address peer) {
  ++impl->stats.tcp_connections;
  Bytes request;
  const TimePoint deadline = Clock::now() + impl->options.tcp_timeout;
  try {
    while (request.size() <= kMaxDatagram) {
      const Duration left = deadline - Clock::now();
      if (left <= Duration::zero()) throw Timeout("registry: TCP request");
      Bytes chunk = co_await with_timeout(left, stream->read(kMaxDatagram + 1 - request.size()));
      if (chunk.empty()) break;  // EOF: decide on what arrived
      request.append(chunk.view());
      if (request.size() > kMaxDatagram) break;
      Result<Request, DecodeError> r = decode_request(request.span(), impl->options.request_limits);
      if (r || r.error() != DecodeError::kGarbage)
        break;  // complete (or wrong in a way more bytes won't fix)
    }
  } catch (const Timeout&) {
    ++impl->stats.tcp_timeouts;
    TETHER_LOG_DEBUG("registry: TCP client {} sent no complete request in time", peer.to_string());
    co_return;
  }
  std::optional<Bytes> reply = self->handle(request.span(), peer.host(), RegistryServer::Via::kTcp);
  if (!reply) co_return;
  stream->write(reply->view());
  co_await stream->flush();
  ++impl->stats.replies;
}

}  // namespace

void RegistryServer::Impl::read_datagrams(RegistryServer& self) {
  for (int i = 0; i < options.udp_batch; ++i) {
    std::optional<detail::UdpSocket::Datagram> d = udp->try_receive(kMaxDatagram + 1);
    if (!d) return;
    if (d->size > kMaxDatagram) {
      ++stats.oversized;
      TETHER_LOG_DEBUG("registry: ignored a {}-byte datagram from {}", d->size, d->from.to_string());
      continue;
    }
    std::optional<Bytes> reply = self.handle(d->data.span(), d->from.host(), Via::kUdp);
    if (!reply) continue;
    if (udp->send_to(reply->span(), d->from)) {
      ++stats.replies;
    } else {
      ++stats.send_errors;
    }
  }
}

RegistryServer::RegistryServer(RegistryServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

RegistryServer::~RegistryServer() { close(); }

void RegistryServer::start() {
  if (impl_->loop) throw UsageError("RegistryServer::start: already started");
  if (!impl_->options.udp && !impl_->options.tcp) throw UsageError("RegistryServer: neither UDP nor TCP");
  EventLoop& loop = EventLoop::current_or_throw();
  impl_->loop = &loop;
  try {
    if (impl_->options.udp) {
      std::vector<Address> addrs =
          resolve_blocking(impl_->options.host, impl_->options.port, AddressFamily::kAny,
                           /*passive=*/true);
      if (addrs.empty()) throw IoError(EADDRNOTAVAIL, "registry: resolve " + impl_->options.host);
      impl_->udp = std::make_unique<detail::UdpSocket>(loop, addrs.front());
      impl_->udp->on_readable([this]() { impl_->read_datagrams(*this); });
    }
    if (impl_->options.tcp) {
      ServerOptions so;
      so.max_connections = impl_->options.max_tcp_connections;
      so.handler_timeout = impl_->options.tcp_timeout * 2;  // backstop; serve_tcp keeps its own limit
      so.stream.max_buffer_size = 4 * kMaxDatagram;
      Impl* impl = impl_.get();
      StreamServer::Handler handler = [this, impl](std::unique_ptr<BufferedStream> stream, Address peer) {
        return serve_tcp(this, impl, std::move(stream), std::move(peer));
      };
      impl_->tcp = std::make_unique<StreamServer>(std::move(handler), so);
      // Port 0: the TCP port is chosen apart from the UDP one.
      impl_->tcp->listen(impl_->options.port, impl_->options.host);
    }
  } catch (...) {
    close();
    impl_->loop = nullptr;
    throw;
  }
  impl_->tasks = std::make_unique<TaskGroup>(loop);
  impl_->tasks->spawn(prune_periodically(impl_.get()));
  TETHER_LOG_INFO("registry: serving on {} (udp port {}, tcp port {})", impl_->options.host, udp_port(),
                  tcp_port());
}

void RegistryServer::close() {
  if (impl_->tcp) {
    impl_->tcp->close();
    impl_->tcp.reset();
  }
  impl_->udp.reset();
  impl_->tasks.reset();
}

std::uint16_t RegistryServer::udp_port() const noexcept {
  return impl_->udp ? impl_->udp->local_address().port() : 0;
}

std::uint16_t RegistryServer::tcp_port() const noexcept {
  if (!impl_->tcp) return 0;
  std::vector<std::uint16_t> ports = impl_->tcp->ports();
  return ports.empty() ? 0 : ports.front();
}

RegistryServerStats RegistryServer::stats() const {
  RegistryServerStats s = impl_->stats;
  s.services = impl_->table.services();
  s.entries = impl_->table.entries();
  s.removed = s.added - s.entries;  // entries only come in through REGISTER
  return s;
}

const RegistryServerOptions& RegistryServer::options() const noexcept { return impl_->options; }

RegistryTable& RegistryServer::table() noexcept { return impl_->table; }

std::optional<Bytes> RegistryServer::handle(std::span<const std::uint8_t> data, const std::string& peer_host,
                                            Via via) {
  RegistryServerStats& st = impl_->stats;
  const RegistryServerOptions& opt = impl_->options;
  if (data.size() > kMaxDatagram) {
    ++st.oversized;
    return std::nullopt;
  }
  Result<Request, DecodeError> decoded = decode_request(data, opt.request_limits);
  if (!decoded) {
    switch (decoded.error()) {
      case DecodeError::kGarbage: ++st.garbage; break;
      case DecodeError::kBadMagic: ++st.bad_magic; break;
      case DecodeError::kUnknownCommand: ++st.unknown_command; break;
      case DecodeError::kBadArguments: ++st.bad_arguments; break;
    }
    TETHER_LOG_DEBUG("registry: ignored a request from {}: {}", peer_host, to_string(decoded.error()));
    return std::nullopt;
  }
  ++st.requests;
  const Request& r = *decoded;
  const TimePoint now = Clock::now();
  switch (r.command) {
    case Command::kRegister:
    case Command::kUnregister: {
      if (!opt.allowed_networks.contains(peer_host)) {
        ++st.refused_network;
        std::uint64_t skipped = 0;
        if (Impl::may_warn(impl_->network_warn, &skipped)) {
          TETHER_LOG_WARN(
              "registry: refused {} from {} (not in the allowed networks {}); {} more refused since the last "
              "warning",
              to_string(r.command), peer_host, opt.allowed_networks.to_string(), skipped);
        }
        return std::nullopt;
      }
      if (r.command == Command::kUnregister) {
        impl_->table.unregister_endpoint(peer_host, r.port);
        return encode_ok_reply();
      }
      RegisterResult res = impl_->table.register_endpoint(peer_host, r.aliases, r.port, now);
      st.added += res.added;
      st.refused_full += res.refused;
      std::uint64_t skipped = 0;
      if (res.refused > 0 && Impl::may_warn(impl_->full_warn, &skipped)) {
        TETHER_LOG_WARN(
            "registry: table full, {} of {} aliases of {}:{} not recorded; {} more refused since the last "
            "warning",
            res.refused, r.aliases.size(), peer_host, r.port, skipped);
      }
      if (res.added + res.refreshed == 0 && !r.aliases.empty()) return std::nullopt;
      return encode_ok_reply();
    }
    case Command::kQuery: {
      std::vector<HostPort> found = impl_->table.query(r.name, now);
      std::size_t kept = 0;
      Bytes reply = encode_query_reply(found, kMaxDatagram, &kept);
      if (kept < found.size()) ++st.truncated_replies;
      return reply;
    }
    case Command::kList: {
      if (!opt.allow_listing) return encode_list_reply(std::nullopt);
      std::vector<std::string> names = impl_->table.list(r.filter_host);
      std::size_t kept = 0;
      Bytes reply = encode_list_reply(names, via == Via::kUdp ? kMaxUdpListReply : kMaxDatagram, &kept);
      if (kept < names.size()) ++st.truncated_replies;
      return reply;
    }
  }
  return std::nullopt;
}

void serve_until_signal(RegistryServer& server, std::function<void()> on_serving) {
  std::unique_ptr<EventLoop> own;
  if (!EventLoop::current()) own = std::make_unique<EventLoop>();
  EventLoop& loop = EventLoop::current_or_throw();
  StopSignals signals(loop);
  struct Closer {
    EventLoop& loop;
    RegistryServer& server;
    ~Closer() {
      server.close();
      for (int i = 0; i < 3; ++i) loop.run_once(Duration::zero());
    }
  } closer{loop, server};
  server.start();
  if (on_serving) on_serving();
  loop.run_until_complete(signals.wait());
  TETHER_LOG_INFO("registry: signal received, stopping");
}

}  // namespace tether::registry
