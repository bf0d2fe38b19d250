#include "tether/registry/registry_client.hpp"

#include <fmt/format.h>

#include "registry/udp_socket.hpp"
#include "tether/base/error.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/time.hpp"
#include "tether/net/address.hpp"
#include "tether/net/connect.hpp"
#include "tether/registry/registry_url.hpp"

namespace tether::registry {

namespace {

long long millis(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

bool broadcast_rule(const RegistryClientOptions& o) {
  if (o.broadcast) return *o.broadcast;
  // RPyC: broadcast when an octet of the (IPv4) target is 255.
  std::string_view h = o.host;
  std::size_t at = 0;
  while (at <= h.size()) {
    const std::size_t dot = h.find('.', at);
    if (h.substr(at, dot == std::string_view::npos ? std::string_view::npos : dot - at) == "255") return true;
    if (dot == std::string_view::npos) break;
    at = dot + 1;
  }
  return false;
}

bool accept_ok(const Bytes& b) { return is_ok_reply(b.span()); }
bool accept_query(const Bytes& b) { return decode_query_reply(b.span()).has_value(); }
bool accept_list(const Bytes& b) { return decode_list_reply(b.span()).has_value(); }

/// The registry's address (a numeric host completes without the worker pool).
Task<Address> registry_address(const RegistryClientOptions& o) {
  std::vector<Address> addrs = co_await resolve(o.host, o.port);
  co_return addrs.front();  // resolve throws rather than return nothing
}

Task<Bytes> udp_exchange(RegistryClientOptions o, std::string what, Bytes request,
                         bool (*accept)(const Bytes&), bool wait_reply) {
  EventLoop& loop = EventLoop::current_or_throw();
  const TimePoint deadline = Clock::now() + o.timeout;
  Address to = co_await registry_address(o);
  std::optional<Address> local = Address::from_ip(
      o.interface.empty() ? (to.family() == Address::Family::kIPv6 ? "::" : "0.0.0.0") : o.interface, 0);
  if (!local) throw UsageError("registry client: interface must be a numeric address: " + o.interface);
  detail::UdpSocket sock(loop, *local);
  if (broadcast_rule(o)) sock.set_broadcast(true);
  if (!sock.send_to(request.span(), to)) throw IoError(sock.last_error(), "registry: send to " + what);
  if (!wait_reply) co_return Bytes();
  for (;;) {
    const Duration left = deadline - Clock::now();
    if (left <= Duration::zero()) break;
    const bool readable = co_await sock.readable(left);
    if (!readable) break;
    while (std::optional<detail::UdpSocket::Datagram> d = sock.try_receive(kMaxUdpListReply)) {
      if (d->from.port() != o.port) continue;  // RPyC: only replies from the registry's port
      if (accept(d->data)) co_return std::move(d->data);
      TETHER_LOG_DEBUG("registry client: ignored an unexpected reply from {}", d->from.to_string());
    }
  }
  throw Timeout(fmt::format("no registry answered at {} within {} ms", what, millis(o.timeout)));
}

Task<Bytes> tcp_exchange_body(RegistryClientOptions o, Bytes request, bool (*accept)(const Bytes&)) {
  ConnectOptions co;
  co.connect_timeout = o.timeout;
  std::unique_ptr<BufferedStream> stream = co_await open_connection(o.host, o.port, co);
  stream->write(request.view());
  co_await stream->flush();
  Bytes reply;
  while (reply.size() < kMaxUdpListReply) {
    Bytes chunk = co_await stream->read(kMaxUdpListReply - reply.size());
    if (chunk.empty()) break;
    reply.append(chunk.view());
    if (accept(reply)) co_return reply;
  }
  if (accept(reply)) co_return reply;
  throw ProtocolError(fmt::format("registry at tcp://{}:{} sent {} bytes that are not the expected reply",
                                  o.host, o.port, reply.size()));
}

Task<Bytes> tcp_exchange(RegistryClientOptions o, std::string what, Bytes request,
                         bool (*accept)(const Bytes&)) {
  const Duration limit = o.timeout;
  try {
    Bytes reply = co_await with_timeout(limit, tcp_exchange_body(std::move(o), std::move(request), accept));
    co_return reply;
  } catch (const Timeout&) {
    throw Timeout(fmt::format("no registry answered at {} within {} ms", what, millis(limit)));
  }
}

}  // namespace

std::string RegistryClient::describe() const {
  return std::string(options_.transport == RegistryTransport::kUdp ? "udp://" : "tcp://") +
         join_host_port(options_.host, options_.port);
}

Task<Bytes> RegistryClient::exchange(Bytes request, bool (*accept)(const Bytes& reply)) const {
  if (options_.transport == RegistryTransport::kUdp) {
    Bytes reply =
        co_await udp_exchange(options_, describe(), std::move(request), accept, /*wait_reply=*/true);
    co_return reply;
  }
  Bytes reply = co_await tcp_exchange(options_, describe(), std::move(request), accept);
  co_return reply;
}

Task<std::vector<HostPort>> RegistryClient::query(std::string name) const {
  Bytes reply = co_await exchange(encode_query(name), &accept_query);
  std::optional<std::vector<HostPort>> found = decode_query_reply(reply.span());
  co_return std::move(*found);
}

Task<bool> RegistryClient::register_service(std::vector<std::string> aliases, std::uint16_t port) const {
  try {
    Bytes reply = co_await exchange(encode_register(aliases, port), &accept_ok);
    (void)reply;
    co_return true;
  } catch (const Error& e) {
    TETHER_LOG_DEBUG("registry client: REGISTER of port {} at {} not acknowledged: {}", port, describe(),
                     e.what());
  }
  co_return false;
}

Task<void> RegistryClient::unregister(std::uint16_t port) const {
  try {
    if (options_.transport == RegistryTransport::kUdp) {
      Bytes none = co_await udp_exchange(options_, describe(), encode_unregister(port), &accept_ok, false);
      (void)none;
    } else {
      Bytes reply = co_await exchange(encode_unregister(port), &accept_ok);
      (void)reply;
    }
  } catch (const Error& e) {
    TETHER_LOG_DEBUG("registry client: UNREGISTER of port {} at {} failed: {}", port, describe(), e.what());
  }
}

Task<std::optional<std::vector<std::string>>> RegistryClient::list(
    std::optional<std::string> filter_host) const {
  Bytes reply = co_await exchange(encode_list(filter_host), &accept_list);
  std::optional<std::optional<std::vector<std::string>>> names = decode_list_reply(reply.span());
  co_return std::move(*names);
}

}  // namespace tether::registry
